"""A perf profile of one fused kernel's array-level forward or backward, with numba's functions
named.

numba's compiled code carries no symbols perf can read. This script compiles the kernels in its
own process (on the Python path, with a numba cache of its own, so that nothing is loaded from a
cache whose code it cannot name), writes ``/tmp/perf-<pid>.map`` (perf's map of JIT code: the
address, size and name of every compiled function in the process), then runs ``perf record`` on
itself while it repeats the chosen pass::

    RNNKIT_NATIVE=0 NUMBA_CACHE_DIR=$(mktemp -d) .venv/bin/python bench/perf_profile.py \\
        lstm_layernorm 32 100 64 backward --seconds 8 --out /tmp/ln.data
    perf report -i /tmp/ln.data --no-children --sort sym

Arguments: the variant (as in ``bench/run.py``), B, T, H (I = H/2), and ``forward`` or
``backward``. Needs ``perf``. The sizes of the map's entries are the distances to the next entry.
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from numba.core.registry import CPUDispatcher

sys.path.insert(0, str(Path(__file__).resolve().parent))

import contenders as cs  # noqa: E402
from run import input_size  # noqa: E402

from rnnkit.kernels import fused  # noqa: E402
from rnnkit.kernels._common import blas_threads  # noqa: E402


def _readable(name: str) -> str:
    """``module.function`` from numba's mangled name (its last two parts)."""
    match = re.search(r"_ZN(.*)", name)
    if not match:
        return name[:100]
    rest, parts = match.group(1), []
    while rest and rest[0].isdigit():
        digits = re.match(r"\d+", rest).group(0)
        size = int(digits)
        parts.append(rest[len(digits): len(digits) + size])
        rest = rest[len(digits) + size:]
    return ".".join(parts[-2:]) if parts else name[:100]


def write_perf_map() -> int:
    """Write ``/tmp/perf-<pid>.map`` for the functions numba compiled in this process; returns
    how many it named."""
    entries = {}
    for dispatcher in (o for o in gc.get_objects() if isinstance(o, CPUDispatcher)):
        for result in dispatcher.overloads.values():
            library = result.library
            try:
                module = library._final_module  # absent for code loaded from numba's cache
            except Exception:  # noqa: BLE001
                continue
            for function in module.functions:
                if function.is_declaration:
                    continue
                address = library.get_pointer_to_function(function.name)
                if address:
                    entries[address] = _readable(function.name)
    addresses = sorted(entries)
    with open(f"/tmp/perf-{os.getpid()}.map", "w") as out:
        for k, address in enumerate(addresses):
            size = addresses[k + 1] - address if k + 1 < len(addresses) else 4096
            out.write(f"{address:x} {min(size, 1 << 20):x} {entries[address]}\n")
    return len(addresses)


def passes(variant: str, batch: int, steps: int, hidden: int):
    """The family's array-level forward and backward for the ``rnnkit.nn`` module of ``variant``
    (as ``bench/ceiling.py`` builds them)."""
    spec = cs.VARIANTS[variant]
    features = input_size(hidden)
    module = cs.RNNKIT_NN[spec["family"]](features, hidden, batch_first=True, **spec["options"])
    x = torch.randn(batch, steps, features, generator=torch.Generator().manual_seed(0))
    kernel = fused.select(module._bound_cell(0, 0), x).__self__
    plan = kernel.plan(x, None, None, True)
    family, inputs = kernel.family, x.numpy()
    states = kernel.zero_state(batch, module._bound_cell(0, 0).state_size)
    needs = [False] * (1 + len(states)) + [t is not None for t in kernel.tensors]
    outputs, finals, saved = family.forward(plan, inputs, states, kernel.prepared)
    d_outputs, d_finals = np.ones_like(outputs), [np.zeros_like(f) for f in finals]

    def forward():
        with blas_threads(plan.threads):
            family.forward(plan, inputs, states, kernel.prepared)

    def backward():
        with blas_threads(plan.threads):
            family.backward(plan, saved, d_outputs, d_finals, needs)

    return forward, backward


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("variant", choices=sorted(cs.VARIANTS))
    parser.add_argument("batch", type=int)
    parser.add_argument("steps", type=int)
    parser.add_argument("hidden", type=int)
    parser.add_argument("which", choices=("forward", "backward"))
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--out", default="perf.data")
    args = parser.parse_args(argv)
    if os.environ.get("RNNKIT_NATIVE", "1") != "0" or not os.environ.get("NUMBA_CACHE_DIR"):
        raise SystemExit("run with RNNKIT_NATIVE=0 and a NUMBA_CACHE_DIR of its own (see --help)")
    torch.set_num_threads(1)
    forward, backward = passes(args.variant, args.batch, args.steps, args.hidden)
    forward()
    backward()  # compiled in this process: the map can name them
    named = write_perf_map()
    if named == 0:
        raise SystemExit("no function compiled in this process: NUMBA_CACHE_DIR held them "
                         "already; use an empty one")
    print(f"named {named} compiled functions", flush=True)
    chosen = forward if args.which == "forward" else backward
    recorder = subprocess.Popen(["perf", "record", "-F", "4000", "-p", str(os.getpid()), "-o",
                                 args.out, "--", "sleep", str(args.seconds)])
    time.sleep(0.5)
    end = time.time() + args.seconds + 1
    while time.time() < end:
        chosen()
    return recorder.wait()


if __name__ == "__main__":
    sys.exit(main())
