"""Which side pays the interplay: each half of a pair of calls, timed inside the pair.

``bench/ceiling.py`` finds that the no-op autograd node (``floor``) and rnnkit's array-level
kernels (``array``), run one after the other in each call, take 36-55 µs more at B=1 than the two
apart. This script times each half of such a pair separately, and pairs the floor with small
controls as well:

- ``array``: rnnkit's compiled forward and backward on arrays (ceiling.py's ``array_level``);
- ``numpy``: ``np.sum`` of 8 floats;
- ``torch``: ``torch.sum`` of 8 floats;
- ``numba``: a compiled loop summing 8 floats, called from Python;
- ``floor``: the floor again (each half a run of the same code).

``alone`` is a half's time in a loop of its own; ``in the pair`` its time when each call of it
follows the other half. If both halves slow down, and a 1 µs NumPy call slows down several-fold
after the floor while a torch op does not, the interplay is the two code paths evicting each
other's code and data from the core's caches, not work in either path::

    python bench/interplay.py [--sizes B,T,H ...]

One thread; wall-clock medians of rounds of calls (``time.perf_counter_ns``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from numba import njit

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ceiling import array_level, floor_run  # noqa: E402
from run import input_size  # noqa: E402

CALLS, ROUNDS, WARM = 2000, 5, 200


@njit(cache=False)
def _numba_sum(values):
    total = values.dtype.type(0)
    for value in values:
        total += value
    return total


def controls(variant: str, batch: int, steps: int, hidden: int) -> dict:
    """The second halves: name -> ``run()``."""
    values, tensor = np.ones(8, np.float32), torch.ones(8)
    return {"array": array_level(variant, batch, steps, input_size(hidden), hidden),
            "numpy": lambda: values.sum(),
            "torch": lambda: tensor.sum(),
            "numba": lambda: _numba_sum(values)}


def alone(run) -> float:
    """Median µs per call of ``run`` in a loop of its own."""
    for _ in range(WARM):
        run()
    rounds = []
    for _ in range(ROUNDS):
        start = time.perf_counter_ns()
        for _ in range(CALLS):
            run()
        rounds.append((time.perf_counter_ns() - start) / CALLS / 1e3)
    return statistics.median(rounds)


def paired(first, second) -> tuple[float, float]:
    """Median µs per call of each of ``first`` and ``second``, called one after the other."""
    for _ in range(WARM):
        first()
        second()
    rounds = []
    clock = time.perf_counter_ns
    for _ in range(ROUNDS):
        spent_first = spent_second = 0
        for _ in range(CALLS):
            start = clock()
            first()
            middle = clock()
            second()
            spent_first += middle - start
            spent_second += clock() - middle
        rounds.append((spent_first / CALLS / 1e3, spent_second / CALLS / 1e3))
    return (statistics.median(r[0] for r in rounds), statistics.median(r[1] for r in rounds))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", default="lstm")
    parser.add_argument("--sizes", nargs="+", metavar="B,T,H", default=["1,10,32", "1,10,128"])
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    for size in args.sizes:
        batch, steps, hidden = (int(n) for n in size.split(","))
        floor = floor_run(args.variant, batch, steps, input_size(hidden), hidden)
        if floor is None:
            return 1
        print(f"{args.variant} B={batch} T={steps} H={hidden}: µs per call, alone -> in the pair "
              f"(floor first)", flush=True)
        floor_alone = alone(floor)
        for name, run in {**controls(args.variant, batch, steps, hidden), "floor": floor}.items():
            run_alone = alone(run)
            floor_paired, run_paired = paired(floor, run)
            print(f"  floor {floor_alone:6.1f} -> {floor_paired:6.1f}   {name:6s} "
                  f"{run_alone:7.1f} -> {run_paired:7.1f}   interplay "
                  f"{floor_paired + run_paired - floor_alone - run_alone:6.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
