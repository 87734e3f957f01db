"""Array-level forward-and-backward times of the fused kernels, for A/B runs across processes.

Each size runs its family's compiled forward then backward on NumPy arrays (as
``bench/perf_profile.py`` builds them: no tensors, autograd or native call), interleaved over the
sizes for ``--rounds`` rounds, and prints the median ms per size. Settings fixed when the kernels
are compiled (an environment variable, a patched module constant with a numba cache of its own)
are compared by running it in alternating processes, each way more than once::

    RNNKIT_NATIVE=0 python bench/array_times.py lstm,gru 32,100,64 8,100,128

Arguments: variants (as in ``bench/run.py``), then sizes ``B,T,H`` (I = H/2). One thread.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from perf_profile import passes  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("variants", help="comma-separated, e.g. lstm,gru,lstm_layernorm")
    parser.add_argument("sizes", nargs="+", help="B,T,H each")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    sizes = [tuple(int(n) for n in size.split(",")) for size in args.sizes]
    runs = {}
    for variant in args.variants.split(","):
        for size in sizes:
            forward, backward = passes(variant, *size)
            forward(), backward()  # compiled or loaded before timing
            runs[variant, size] = forward, backward
    samples = {key: [] for key in runs}
    for _ in range(args.rounds):
        for (variant, size), (forward, backward) in runs.items():
            repeats = max(3, int(1e5 / (size[0] * size[1] * size[2])))
            start = time.perf_counter()
            for _ in range(repeats):
                forward()
                backward()
            samples[variant, size].append((time.perf_counter() - start) / repeats * 1e3)
    for (variant, size), times in samples.items():
        print(f"{variant:16} B={size[0]:<3} T={size[1]:<4} H={size[2]:<4} "
              f"{statistics.median(times):8.3f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
