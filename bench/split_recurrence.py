"""A prototype of a two-core path that was not built: the LSTM's forward recurrence with each
step split by units between two threads.

When it was written, rnnkit's two-core path ran the recurrence on one core and the GEMMs over all
steps on the other (see ``rnnkit.kernels._sync``). oneDNN instead splits each step between the
threads. The native call now splits the batch in two halves instead, one per core (see
``rnnkit.kernels._entries.recipe``), which needs no barrier at all; a split by units would still
be the way for B=1, whose row cannot be split. This times
that split on the kernels' own pieces: each thread takes half the units, multiplies ``h_t`` by its
units' rows of U on MKL's packed GEMM (one per gate, as the gate-major step does), runs the flat
cell (``_lstm_gate_major.flat_cell``) over its half of the batch's units, writes its half of
``h_{t+1}`` and waits at a spin barrier (``_sync.publish`` and ``wait_for``) for the other half.
The input projections are given. The second thread is a Python thread started per call, whose
start is inside the two-thread times. It prints, for T=100 and float32, the one-thread and
two-thread times and the largest difference between their ``h`` (the products are the same, so
it should be 0)::

    .venv/bin/python bench/split_recurrence.py
"""
import statistics
import threading
import time

import numpy as np

from rnnkit.kernels import _mkl
from rnnkit.kernels._lstm_gate_major import flat_cell
from rnnkit.kernels._mkl import pack_transposed, packed_product, packed_size, restore, serial
from rnnkit.kernels._numba import jit
from rnnkit.kernels._sync import publish, wait_for

if not _mkl.available():
    raise SystemExit("needs MKL's packed GEMM (torch's x86 build)")

@jit
def part_recurrence(k, parts, gx, packs, h_all, c_part, tanh_part, prod, m, sync):
    """Part ``k`` of ``parts``: its units' steps. ``gx (T, 4, B*hh)``: its gate-major input
    projections (activated in place); ``packs (4, ·)``: its rows of U per gate, packed;
    ``c_part (T+1, B*hh)``, ``tanh_part (T, B*hh)``, ``prod (4, B, hh)``, ``m (B*hh,)``."""
    steps, batch, hidden = gx.shape[0], h_all.shape[1], h_all.shape[2]
    hh = hidden // parts
    width = batch * hh
    threads = serial(True)
    for t in range(steps):
        for other in range(parts):
            wait_for(sync, other, t)
        for g in range(4):
            packed_product(h_all[t], packs[g], prod[g])
        u = prod.reshape(4, width)
        flat_cell(gx[t, 0], gx[t, 1], gx[t, 2], gx[t, 3], u[0], u[1], u[2], u[3],
                  c_part[t], c_part[t + 1], tanh_part[t], m)
        for b in range(batch):
            for j in range(hh):
                h_all[t + 1, b, k * hh + j] = m[b * hh + j]
        publish(sync, k, t + 1)
    restore(threads)


def setup(batch, hidden, steps, parts, seed):
    """Each part's packed rows of U and gate-major input projections."""
    rng = np.random.default_rng(seed)
    weight = (rng.standard_normal((4 * hidden, hidden)) * 0.1).astype(np.float32)
    projected = rng.standard_normal((steps, batch, 4, hidden)).astype(np.float32)
    hh = hidden // parts
    state = []
    for k in range(parts):
        packs = np.empty((4, packed_size(batch, hh, hidden)), np.float32)
        for g in range(4):
            rows = weight[g * hidden + k * hh : g * hidden + (k + 1) * hh]
            pack_transposed(np.ascontiguousarray(rows), packs[g])
        mine = projected[:, :, :, k * hh : (k + 1) * hh].transpose(0, 2, 1, 3)
        state.append((packs, np.ascontiguousarray(mine).reshape(steps, 4, batch * hh)))
    return state


def run(batch, hidden, steps, parts, state):
    """One forward recurrence on ``parts`` threads: (seconds, h_all)."""
    hh = hidden // parts
    h_all = np.zeros((steps + 1, batch, hidden), np.float32)
    sync = np.zeros(parts, np.int64)
    args = [(k, parts, gx.copy(), packs, h_all, np.zeros((steps + 1, batch * hh), np.float32),
             np.empty((steps, batch * hh), np.float32), np.empty((4, batch, hh), np.float32),
             np.empty(batch * hh, np.float32), sync) for k, (packs, gx) in enumerate(state)]
    start = time.perf_counter()
    if parts == 1:
        part_recurrence(*args[0])
    else:
        worker = threading.Thread(target=part_recurrence, args=args[1])
        worker.start()
        part_recurrence(*args[0])
        worker.join()
    return time.perf_counter() - start, h_all


def main():
    steps = 100
    for batch, hidden in ((8, 32), (8, 64), (32, 32), (32, 64), (8, 128), (32, 128)):
        one, two = setup(batch, hidden, steps, 1, 1), setup(batch, hidden, steps, 2, 1)
        run(batch, hidden, steps, 1, one)
        run(batch, hidden, steps, 2, two)
        times = ([], [])
        for _ in range(21):  # interleaved
            for parts, state, samples in ((1, one, times[0]), (2, two, times[1])):
                seconds, h_all = run(batch, hidden, steps, parts, state)
                samples.append(seconds)
                if parts == 1:
                    h_one = h_all
        a, b = statistics.median(times[0]), statistics.median(times[1])
        print(f"B={batch} H={hidden} T={steps}: one thread {a * 1e3:.2f} ms, two {b * 1e3:.2f} ms "
              f"({a / b:.2f}x), max |h1 - h2| {float(np.abs(h_one - h_all).max()):.1e}")


if __name__ == "__main__":
    main()
