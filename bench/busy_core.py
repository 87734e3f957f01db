"""Two threads beside a busy process: rnnkit's two-core calls with and without their fallback.

With two torch threads a native call may run two tasks at once, one per core: two halves of the
batch, or the recurrence and its companion (the GEMMs over all steps, chunk by chunk; see
``rnnkit.kernels._sync``). When another process keeps the second core busy, the pool's thread may
not run for a scheduler slice, and the call waits for it. A call whose second task starts or
ends late makes the next calls run both tasks on the calling thread for a while (``run_two`` in
``rnnkit/kernels/_native.cpp``). This script measures that, forward and backward
(``out.sum().backward()``, float32, I = H/2), wall time, at each size:

- ``rnnkit@1`` and ``torch.nn@1``: one thread;
- ``rnnkit@2`` and ``torch.nn@2``: two threads;
- ``never@2``: rnnkit on two threads with the fallback off (``set_late_after`` set past any
  delay), as before it existed;

first with the machine as it is, then beside one busy process (a Python loop this script starts
and stops). The contenders' samples alternate; each sample is the mean over about 0.1 s of calls
in a row, and the table shows the median sample in ms::

    .venv/bin/python bench/busy_core.py [--rounds 5] [--sizes B,T,H ...]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

import rnnkit.nn
from rnnkit.kernels import native

sys.path.insert(0, str(Path(__file__).resolve().parent))

import contenders as cs  # noqa: E402

SIZES = [(1, 10, 32), (1, 100, 64), (1, 100, 128), (8, 10, 32), (8, 100, 64), (32, 10, 64),
         (32, 100, 128)]
CONTENDERS = ["rnnkit@1", "rnnkit@2", "never@2", "torch.nn@1", "torch.nn@2"]
NEVER = 1 << 62
SAMPLE_SECONDS = 0.1


def measure(sizes, rounds: int) -> dict:
    extension = native.extension()
    default = extension.set_late_after(NEVER)
    extension.set_late_after(default)
    times = {}
    for batch, steps, hidden in sizes:
        torch.manual_seed(0)
        x = torch.randn(batch, steps, hidden // 2)
        ours = cs.module_contender("rnnkit", rnnkit.nn.LSTM(hidden // 2, hidden, batch_first=True),
                                   x).run
        peer = cs.module_contender("torch.nn", torch.nn.LSTM(hidden // 2, hidden, batch_first=True),
                                   x).run
        samples = {name: [] for name in CONTENDERS}
        for k in range(rounds):
            for name in CONTENDERS[k % len(CONTENDERS):] + CONTENDERS[:k % len(CONTENDERS)]:
                torch.set_num_threads(int(name[-1]))
                extension.set_late_after(NEVER if name == "never@2" else default)
                run = peer if name.startswith("torch.nn") else ours
                run()
                count, start = 0, time.perf_counter()
                while time.perf_counter() - start < SAMPLE_SECONDS:
                    run()
                    count += 1
                samples[name].append((time.perf_counter() - start) / count * 1e3)
        extension.set_late_after(default)
        times[batch, steps, hidden] = {name: statistics.median(v) for name, v in samples.items()}
    return times


def table(title: str, times: dict) -> str:
    lines = [title, "B    T    H    " + "".join(f"{name:>12}" for name in CONTENDERS)]
    for (batch, steps, hidden), row in times.items():
        lines.append(f"{batch:<4} {steps:<4} {hidden:<4} "
                     + "".join(f"{row[name]:12.3f}" for name in CONTENDERS))
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sizes", nargs="+", help="B,T,H each (default: a set from B=1 to 32)")
    args = parser.parse_args(argv)
    if native.extension() is None:
        print("the native call is not built: python -m rnnkit.kernels.native build")
        return 1
    sizes = [tuple(int(n) for n in s.split(",")) for s in args.sizes] if args.sizes else SIZES
    threads = torch.get_num_threads()
    print(f"ms per forward and backward, LSTM, float32, medians of {args.rounds} samples",
          flush=True)
    print(table("machine as it is", measure(sizes, args.rounds)), flush=True)
    before = native.extension().held_up_calls()
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        beside = measure(sizes, args.rounds)
    finally:
        busy.kill()
        busy.wait()
        torch.set_num_threads(threads)
    after = native.extension().held_up_calls()
    print(table("beside one busy process", beside))
    print(f"beside it: {after[0] - before[0]} two-task calls were held up; "
          f"{after[1] - before[1]} calls ran both tasks on one thread after one")
    return 0


if __name__ == "__main__":
    sys.exit(main())
