"""Training throughput of data-parallel fit with 1 and with 2 processes (reported, not asserted).

Each run goes through rnnkit.training.distributed.launch (torch.distributed.run, gloo on
loopback) and trains the same LSTM forecaster on the same synthetic windows with the same global
batch, split across the ranks; each process gets cores // nproc torch threads. Rank 0 times the
epochs after a warm-up epoch and writes samples/s.

usage: python bench/distributed_throughput.py [--nproc 1 2] [--epochs 3] [--batch 128]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path


def worker(args) -> None:
    import numpy as np
    import torch

    from rnnkit.layers import LSTM, Dense
    from rnnkit.models import Sequential
    from rnnkit.training import distributed
    from rnnkit.utils import set_random_seed

    world = distributed.world_size()
    series = np.sin(np.linspace(0, 400, args.samples + 24)).astype("float32")
    x = np.stack([series[i:i + 24] for i in range(args.samples)])[..., None]  # (N, 24, 1)
    y = series[24:24 + args.samples, None]  # (N, 1)
    set_random_seed(0)
    model = Sequential([LSTM(args.units), Dense(1)])
    model.build_from_batch(torch.from_numpy(x[:1]))
    model.compile("adam", "mse")
    batch = args.batch // world  # the same global batch whatever the number of processes
    model.fit(x, y, batch_size=batch, epochs=1, verbose=0)  # warm-up: kernels, DDP buckets
    if world > 1:
        torch.distributed.barrier()
    start = time.perf_counter()
    model.fit(x, y, batch_size=batch, epochs=args.epochs, verbose=0)
    elapsed = time.perf_counter() - start
    if distributed.is_main_process():
        Path(args.out).write_text(json.dumps({
            "nproc": world, "threads": torch.get_num_threads(), "seconds": elapsed,
            "samples_per_second": args.samples * args.epochs / elapsed,
            "steps_per_second": -(-args.samples // args.batch) * args.epochs / elapsed}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nproc", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=128, help="the global batch")
    parser.add_argument("--samples", type=int, default=4096)
    parser.add_argument("--units", type=int, default=64)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    from rnnkit.training import distributed

    results = []
    with tempfile.TemporaryDirectory() as scratch:
        for nproc in args.nproc:
            out = Path(scratch) / f"{nproc}.json"
            flags = ["--worker", "--out", str(out), "--epochs", str(args.epochs), "--batch",
                     str(args.batch), "--samples", str(args.samples), "--units", str(args.units)]
            code = distributed.launch(nproc, [__file__, *flags])
            if code != 0:
                sys.exit(f"the run with {nproc} process(es) failed (exit code {code})")
            results.append(json.loads(out.read_text()))
    print(f"LSTM({args.units}) on {args.samples} windows (24, 1), global batch {args.batch}, "
          f"{args.epochs} epochs; {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f}")
    base = results[0]["samples_per_second"]
    for result in results:
        print(f"  {result['nproc']} process(es) x {result['threads']} thread(s): "
              f"{result['samples_per_second']:8.0f} samples/s, "
              f"{result['steps_per_second']:6.1f} steps/s, "
              f"x{result['samples_per_second'] / base:.2f}")


if __name__ == "__main__":
    main()
