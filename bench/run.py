"""rnnkit's speed benchmark: fused kernels against torch.nn, the PyTorch loop and TF-Keras.

    .venv/bin/python bench/run.py --quick       # a subset, a few minutes
    .venv/bin/python bench/run.py               # the full grid (much longer)

Everything is measured in this one process, interleaved: each repetition runs every contender
once, in turn, so a change in the machine's load hits all of them alike; the table reports
medians. See bench/README.md for the method and the targets checked at the end.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import itertools
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from rnnkit.kernels import _mkl

sys.path.insert(0, str(Path(__file__).resolve().parent))

import contenders as cs  # noqa: E402
import step as step_bench  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
FULL = {"batch": (1, 8, 32, 64), "steps": (10, 100), "hidden": (32, 64, 128, 256, 512)}
QUICK = {"batch": (1, 32), "steps": (10, 100), "hidden": (32, 128)}
SMALL_GRID = {"batch": (1, 8, 32), "steps": (10, 100), "hidden": (32, 64, 128)}  # the issue's
LARGE = (64, 100, 256, 512)  # (B, T, I, H) of the large-size target
SMALL = {"batch": 32, "hidden": 128}  # small sizes: B <= 32 and H <= 128


def input_size(hidden: int) -> int:
    """The grid's input width: ``I = H / 2`` (so B=64, T=100, H=512 is the large target)."""
    return max(1, hidden // 2)


# -- timing -------------------------------------------------------------------------------------
CLOCKS = {"thread": time.thread_time, "process": time.process_time, "wall": time.perf_counter}


def clock_for(threads: int, contender=None):
    """The clock a contender's medians use. Single-threaded: CPU time, which leaves out the time
    other processes hold the core on a shared machine: of the calling thread for torch-based
    contenders (all their work runs there), of the whole process for TF-Keras (its ops run on
    its pool threads; their spinning is TF's own cost). Multi-threaded: wall time."""
    if threads != 1:
        return CLOCKS["wall"]
    return CLOCKS[getattr(contender, "clock", "thread")]


CLOCK = time.perf_counter
THREADS = 1


def timed(function) -> float:
    start = CLOCK()
    function()
    return CLOCK() - start


# Calls per timed sample. A contender's first call after another has run is slow: on this shared
# machine, after the other contenders' samples (or even a 3 ms pure-Python spin) the next call took
# 130-370 us longer than a warm one, for rnnkit, torch.nn and rnnkit's bare arrays alike (RNN,
# B=1, T=10, H=32; the following calls recover over several more). That cost is about the same
# for every contender, so a sample of one fast call would carry it whole where a slow contender's
# sample carries it over many milliseconds. Each sample therefore runs its contender back to back
# for about the same time as every other's: SAMPLE_SECONDS, or the slowest contender's single
# call if longer, and records the mean per call, so that each is timed warm, as in a training loop.
SAMPLE_SECONDS = 0.02
MAX_CALLS = 2000


def timed_both(contender, calls: int = 1) -> tuple[float, float]:
    """``(contender's clock, wall clock)`` seconds per call, over ``calls`` calls in a row (on
    the contender's own torch thread count, if it has one)."""
    threads = contender.threads or THREADS
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    clock = clock_for(threads, contender)
    start, wall = clock(), time.perf_counter()
    for _ in range(calls):
        contender.run()
    return (clock() - start) / calls, (time.perf_counter() - wall) / calls


def interleaved(contenders, reps: int, budget: float) -> dict[str, list[tuple]]:
    """``(clock, wall)`` seconds per call of each contender: ``reps`` rounds (fewer past
    ``budget`` seconds, at least 3), each taking one sample of every contender, in a rotating
    order. A sample is the mean of the calls in a row that fill about the same time for every
    contender (see :data:`SAMPLE_SECONDS`)."""
    for contender in contenders:  # warm-up: compilation, caches, allocator
        contender.run()
    first = {c.name: timed_both(c) for c in contenders}
    span = max(SAMPLE_SECONDS, *(wall for _, wall in first.values()))
    calls = {name: max(1, min(MAX_CALLS, round(span / max(wall, 1e-9))))
             for name, (_, wall) in first.items()}
    per_round = sum(wall * calls[name] for name, (_, wall) in first.items())
    rounds = max(3, min(reps, int(budget / max(per_round, 1e-9))))
    times = {name: [] for name in first}
    for index in range(rounds):
        shift = index % len(contenders)
        for contender in contenders[shift:] + contenders[:shift]:
            times[contender.name].append(timed_both(contender, calls[contender.name]))
    return times


def sgemm_peak(threads: int, reps: int = 7) -> dict:
    """The machine's SGEMM rate now: best median GFLOP/s over a few shapes, torch (MKL) and
    NumPy (OpenBLAS), interleaved."""
    global CLOCK
    torch.set_num_threads(threads)
    CLOCK = clock_for(threads)
    from threadpoolctl import threadpool_limits

    shapes = [(1024, 1024, 1024), (2048, 2048, 2048), (6400, 256, 2048), (64, 512, 2048)]
    best, detail = 0.0, {}
    with threadpool_limits(threads):
        for m, k, n in shapes:
            a = np.random.default_rng(0).standard_normal((m, k), np.float32)
            b = np.random.default_rng(1).standard_normal((k, n), np.float32)
            out = np.empty((m, n), np.float32)
            ta, tb, tout = torch.from_numpy(a), torch.from_numpy(b), torch.from_numpy(out)
            runs = {"torch": functools.partial(torch.mm, ta, tb, out=tout),
                    "numpy": functools.partial(np.matmul, a, b, out=out)}
            for run in runs.values():
                run()
            samples = {name: [] for name in runs}
            for _ in range(reps):
                for name, run in runs.items():
                    samples[name].append(timed(run))
            for name, values in samples.items():
                rate = 2.0 * m * k * n / statistics.median(values) / 1e9
                detail[f"{name} {m}x{k}x{n}"] = round(rate, 1)
                best = max(best, rate)
    return {"threads": threads, "gflops": round(best, 1), "by_shape": detail}


# -- the grid -----------------------------------------------------------------------------------
def configs(grid: dict, variants, include_large: bool):
    for variant, batch, steps, hidden in itertools.product(
        variants, grid["batch"], grid["steps"], grid["hidden"]
    ):
        yield variant, batch, steps, input_size(hidden), hidden
    if include_large:
        b, t, i, h = LARGE
        if not (b in grid["batch"] and t in grid["steps"] and h in grid["hidden"]):
            for variant in variants:
                if variant == "lstm":
                    yield variant, b, t, i, h


def is_small(batch: int, hidden: int) -> bool:
    return batch <= SMALL["batch"] and hidden <= SMALL["hidden"]


def measure(variant, batch, steps, features, hidden, args, peak) -> dict:
    global THREADS
    torch.set_num_threads(args.threads)
    THREADS = args.threads
    times = interleaved(cs.torch_contenders(variant, batch, steps, features, hidden,
                                            threads=args.threads), args.reps, args.budget)
    torch.set_num_threads(args.threads)
    if not args.no_keras:
        # The Keras pair (rnnkit.layers against tf.keras) has rounds of its own, after the torch
        # ones: TensorFlow's pool threads spin on after each of its calls, and on a 2-core machine
        # they slowed the contenders run next to them (GRU at B=1, T=10, H=32: rnnkit 2.6x and
        # torch.nn 2.1x slower in shared rounds than in rounds without TensorFlow, measured).
        runs = [cs.keras_face_contender(variant, batch, steps, features, hidden)]
        keras = cs.keras_contender(variant, batch, steps, features, hidden, args.threads)
        if keras is not None:
            runs.append(keras)
        times.update(interleaved(runs, args.reps, args.budget))
    ms = {name: 1e3 * statistics.median(c for c, _ in values) for name, values in times.items()}
    wall_ms = {name: 1e3 * statistics.median(w for _, w in values)
               for name, values in times.items()}
    flops = cs.gemm_flops(cs.VARIANTS[variant]["family"], batch, steps, features, hidden)
    row = {
        "variant": variant, "batch": batch, "steps": steps, "input": features, "hidden": hidden,
        "threads": args.threads,
        "clock": "cpu (thread; process for tf.keras)" if args.threads == 1 else "wall",
        "reps": len(times["rnnkit"]), "ms": ms, "wall_ms": wall_ms,
        "gflops": 1e-6 * flops / ms["rnnkit"],
    }
    row["peak_fraction"] = row["gflops"] / peak["gflops"]
    baseline = "torch.nn" if "torch.nn" in ms else "loop"
    if ms.get(f"{baseline}@1", math.inf) < ms[baseline]:  # the peer is faster on one thread
        baseline = f"{baseline}@1"
    row["baseline"] = baseline
    row["speedup"] = ms[baseline] / ms["rnnkit"]
    if "tf.keras" in ms:
        row["speedup_vs_keras"] = ms["tf.keras"] / ms["rnnkit.layers"]
    return row


def print_row(row: dict) -> None:
    ms = row["ms"]
    other = ms[row["baseline"]]
    keras = ms.get("tf.keras")
    keras_text = f"{keras:9.2f} {row['speedup_vs_keras']:6.2f}x" if keras else " " * 17
    print(f"{row['variant']:15s} {row['batch']:3d} {row['steps']:4d} {row['input']:4d} "
          f"{row['hidden']:4d} | {ms['rnnkit']:9.2f} {row['baseline']:>8s} {other:9.2f} "
          f"{row['speedup']:6.2f}x | {keras_text} | {row['gflops']:6.1f} "
          f"{100 * row['peak_fraction']:5.1f}%", flush=True)


HEADER = (f"{'variant':15s} {'B':>3s} {'T':>4s} {'I':>4s} {'H':>4s} | {'rnnkit ms':>9s} "
          f"{'vs':>8s} {'ms':>9s} {'speedup':>7s} | {'keras ms':>9s} {'layers':>7s} | "
          f"{'GFLOP/s':>6s} {'peak':>6s}")


# -- targets ------------------------------------------------------------------------------------
def geomean(values) -> float:
    values = list(values)
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else float("nan")


def check_targets(rows, step_rows, peaks) -> list[dict]:
    checks = []

    def check(name, value, target, passed):
        checks.append({"target": name, "value": value, "goal": target, "met": bool(passed)})

    small = [r for r in rows if is_small(r["batch"], r["hidden"])]
    for variant, goal in (("lstm", 2.0), ("gru", 5.0), ("rnn", 5.0), ("lstm_peephole", 10.0),
                          ("lstm_layernorm", 10.0)):
        speedups = [r["speedup"] for r in small if r["variant"] == variant]
        if not speedups:
            continue
        mean = geomean(speedups)
        base = "torch.nn" if variant in ("lstm", "gru", "rnn") else "loop"
        check(f"{variant} small sizes, geomean speedup vs {base}", round(mean, 2), f">= {goal}x",
              mean >= goal)
        if variant == "lstm":
            worst = min(speedups)
            check("lstm small sizes, worst speedup vs torch.nn", round(worst, 2), ">= 0.9x",
                  worst >= 0.9)
    b, t, i, h = LARGE
    for r in rows:
        if (r["variant"], r["batch"], r["steps"], r["input"], r["hidden"]) == ("lstm", b, t, i, h):
            check(f"lstm large B{b} T{t} I{i} H{h} ({r['threads']} threads), speedup vs torch.nn",
                  round(r["speedup"], 2), ">= 0.9x", r["speedup"] >= 0.9)
            check(f"lstm large ({r['threads']} threads), fraction of SGEMM peak "
                  f"{peaks[r['threads']]['gflops']} GFLOP/s", round(r["peak_fraction"], 3),
                  ">= 0.60", r["peak_fraction"] >= 0.6)
    for s in step_rows:
        if s["contender"] == "rnnkit layer.step" and s["family"] == "lstm":
            check("streaming lstm layer.step() H=64 B=1, us per step", round(s["us"], 2),
                  "<= 5 us", s["us"] <= 5.0)
    return checks


def markdown_summary(result: dict) -> str:
    """The run as Markdown for the README: per variant and size, rnnkit's speedup over its
    baseline (ms in brackets), then the target checks."""
    rows = [r for r in result["grid"] if r.get("speedup")]
    threads = result.get("threads", 1)
    lines = []
    for variant in dict.fromkeys(r["variant"] for r in rows):
        mine = [r for r in rows if r["variant"] == variant and r["threads"] == threads]
        if not mine:
            continue
        baseline = mine[0]["baseline"].split("@")[0]
        note = "" if threads == 1 else " (@1: the peer on one thread, where it is faster)"
        sizes = sorted({(r["batch"], r["hidden"]) for r in mine})
        steps = sorted({r["steps"] for r in mine})
        lines += [f"**{variant}** vs {baseline}, {threads} thread(s): speedup (ms: rnnkit / "
                  f"{baseline}){note}", "",
                  "| B, H | " + " | ".join(f"T={t}" for t in steps) + " |",
                  "|---|" + "---|" * len(steps)]
        for batch, hidden in sizes:
            cells = []
            for t in steps:
                found = [r for r in mine
                         if (r["batch"], r["hidden"], r["steps"]) == (batch, hidden, t)]
                if found:
                    row = found[0]
                    at_one = "@1" if row["baseline"].endswith("@1") else ""
                    cells.append("{:.2f}x ({:.3g} / {:.3g}{})".format(
                        row["speedup"], row["ms"]["rnnkit"], row["ms"][row["baseline"]], at_one))
                else:
                    cells.append("")
            lines.append(f"| {batch}, {hidden} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["| target | measured | goal | met |", "|---|---|---|---|"]
    lines += [f"| {c['target']} | {c['value']} | {c['goal']} | {'yes' if c['met'] else 'no'} |"
              for c in result["targets"]]
    # The machine's phase moves every ratio against a per-op peer (see bench/README.md): name it.
    cell = [s["us"] for s in result.get("streaming", [])
            if s["family"] == "lstm" and s["contender"] == "torch.nn cell"]
    if cell:
        lines += ["", f"Machine phase: `nn.LSTMCell`'s streaming step took {cell[0]:.1f} µs in "
                      "this run."]
    return "\n".join(lines) + "\n"


# -- main ---------------------------------------------------------------------------------------
def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a subset of the grid (minutes)")
    parser.add_argument("--small", action="store_true",
                        help="the small-size grid of the targets (B <= 32, H <= 128) and the "
                             "large target")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch/BLAS/TF threads for the grid (default 1)")
    parser.add_argument("--large-threads", type=int, nargs="*", default=None,
                        help="thread counts for the large-size target (default: 1 and all cores)")
    parser.add_argument("--variants", default=",".join(cs.VARIANTS),
                        help="comma-separated subset of " + ",".join(cs.VARIANTS))
    parser.add_argument("--reps", type=int, default=15, help="rounds per configuration (max)")
    parser.add_argument("--budget", type=float, default=6.0,
                        help="seconds per configuration; fewer rounds (>= 3) past it")
    parser.add_argument("--no-keras", action="store_true", help="skip the TF-Keras columns")
    parser.add_argument("--no-step", action="store_true", help="skip the streaming benchmark")
    parser.add_argument("--no-grid", action="store_true", help="only the streaming benchmark")
    parser.add_argument("--out", type=Path, default=None, help="JSON path (default: results/)")
    return parser.parse_args(argv)


def cpu_description() -> dict:
    """The CPU's vendor, model and vector extensions, from /proc/cpuinfo where there is one: the
    machine may move between hosts, and which step GEMM is faster depends on the CPU (see
    rnnkit.kernels._mkl)."""
    fields = {}
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("vendor_id", "model name", "flags") and key not in fields:
                    fields[key] = value.strip()
    except OSError:
        return {}
    flags = fields.pop("flags", "").split()
    fields["vector"] = [flag for flag in ("avx2", "fma", "avx512f", "avx512vnni") if flag in flags]
    return fields


def main(argv=None) -> int:
    args = parse_args(argv)
    variants = [v for v in args.variants.split(",") if v]
    grid = QUICK if args.quick else SMALL_GRID if args.small else FULL
    kind = "quick" if args.quick else "small" if args.small else "full"
    cores = os.cpu_count() or 1
    large_threads = args.large_threads or sorted({1, cores})
    print(f"torch {torch.__version__}, oneDNN (mkldnn) enabled: {torch.backends.mkldnn.enabled}, "
          f"cpu cores: {cores}, load average: {os.getloadavg()}", flush=True)
    peaks = {}
    for threads in sorted({args.threads, *large_threads}):
        peaks[threads] = sgemm_peak(threads)
        print(f"SGEMM peak, {threads} thread(s): {peaks[threads]['gflops']} GFLOP/s "
              f"{peaks[threads]['by_shape']}", flush=True)
    rows = []
    if not args.no_grid:
        print(f"\nfused forward+backward, ms (median of interleaved runs), {args.threads} "
              f"thread(s); GFLOP/s and peak fraction are rnnkit's", flush=True)
        print(HEADER, flush=True)
        for variant, batch, steps, features, hidden in configs(grid, variants, False):
            row = measure(variant, batch, steps, features, hidden, args, peaks[args.threads])
            rows.append(row)
            print_row(row)
        if "lstm" in variants:
            b, t, i, h = LARGE
            print(f"\nlarge-size target, lstm B={b} T={t} I={i} H={h}", flush=True)
            print(HEADER, flush=True)
            for threads in large_threads:
                done = [r for r in rows if (r["variant"], r["batch"], r["steps"], r["hidden"],
                                            r["threads"]) == ("lstm", b, t, h, threads)]
                if done:  # the grid had it
                    print_row(done[0])
                    continue
                large_args = argparse.Namespace(**{**vars(args), "threads": threads,
                                                   "no_keras": True})
                row = measure("lstm", b, t, i, h, large_args, peaks[threads])
                rows.append(row)
                print_row(row)
    step_rows = []
    if not args.no_step:
        torch.set_num_threads(1)
        print("\nstreaming: one step at a time under torch.no_grad(), B=1, I=32, H=64, "
              "microseconds per step (median)", flush=True)
        step_rows = step_bench.run(quick=args.quick)
        for s in step_rows:
            print(f"  {s['family']:5s} {s['contender']:32s} {s['us']:8.2f} us", flush=True)
    checks = check_targets(rows, step_rows, peaks)
    print("\ntargets:", flush=True)
    for c in checks:
        print(f"  [{'met' if c['met'] else 'NOT met'}] {c['target']}: {c['value']} "
              f"(goal {c['goal']})", flush=True)
    result = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "argv": sys.argv[1:],
        "threads": args.threads,
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpu": cpu_description(), "mkl_packed_step": _mkl.packed_is_faster(),
                    "cores": cores, "torch": torch.__version__,
                    "mkldnn": torch.backends.mkldnn.enabled,
                    "load_average_end": os.getloadavg()},
        "input_size": "I = H / 2",
        "sgemm_peak": {str(k): v for k, v in peaks.items()},
        "grid": rows,
        "streaming": step_rows,
        "targets": checks,
    }
    out = args.out or RESULTS / (
        f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    out.with_suffix(".md").write_text(markdown_summary(result))
    print(f"\nwrote {out} and {out.with_suffix('.md').name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
