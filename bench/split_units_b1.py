"""A prototype, not used by the library: an LSTM forward and backward at B=1 with each step
split by units between two threads.

At B=1 the native call's two-core split, by batch rows (``rnnkit.kernels._entries.recipe``), has
nothing to split, and one core is idle. Each step's product ``U h`` reads all of ``U`` (256 KB at
H=128 in float32) from the L2 cache, forward and backward; one core streams it at about 3 µs a
step. Split by units, each thread keeps its units' rows of ``U`` (and of ``W``) in its own core's
cache and does half the work of every step; the two meet at a spin barrier (``_sync``'s release
stores and acquire loads) once per forward step and twice per backward step, where each adds the
other's partial ``d(h)`` for its units.

Each thread does, for its units (float32, zero initial states, the loss ``sum(outputs)``):
the input projection of its rows of ``W`` (one GEMM), the recurrence (its rows of ``U h`` as one
matrix-vector product, then the kernels' own B=1 cell, ``_lstm_loops._plain_row``), the cell's
backward (``_plain_row_backward``), its
share of ``d(h) = d(gates) U`` and then its rows of ``d(W)``, ``d(U)`` and the bias as GEMMs.
``d(x)`` is left out (a GEMM over all steps, split the same way plus one sum). One thread runs
the same loop with a single part. The results are checked against ``torch.nn.LSTM`` (outputs,
the initial states' gradients and the weights') first.

BLAS runs on one thread in each (as the native call's halves do): the parts' products are small,
and a BLAS that splits one of them across both cores while both are busy stalls. The second
thread is a Python thread started once; it runs the calls in step with the first, so
each call's start is one more barrier. That is a cheaper handoff than the task of torch's thread
pool a library call would use, whose cost these times leave out. ``--yield-after N`` makes a
waiting thread give its core up after ``N`` spins::

    .venv/bin/python bench/split_units_b1.py [--yield-after N]
"""

from __future__ import annotations

import argparse
import ctypes
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch
from numba import njit

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from rnnkit.kernels._common import blas_threads  # noqa: E402
from rnnkit.kernels._lstm_loops import _plain_row, _plain_row_backward  # noqa: E402
from rnnkit.kernels._sync import _load_acquire, _spin_pause, publish  # noqa: E402

_LIBC = ctypes.CDLL(None)
sched_yield = _LIBC.sched_yield  # called from compiled code (numba takes ctypes functions)
sched_yield.restype = ctypes.c_int
sched_yield.argtypes = []

OPTIONS = {"nogil": True, "error_model": "numpy",
           "fastmath": {"contract", "reassoc", "nsz", "arcp"}}
SIZES = [(10, 64), (10, 128), (10, 256), (100, 32), (100, 64), (100, 128), (100, 256)]


@njit(**OPTIONS)
def _meet(k, parts, count, sync, yield_after):
    """The barrier: both threads have reached their ``count``-th meeting. A thread waits by
    spinning; with ``yield_after > 0``, after that many spins it gives its core up
    (``sched_yield``) at each further one."""
    if parts > 1:
        publish(sync, 8 * k, count)
        spins = 0
        while _load_acquire(sync, 8 * (1 - k)) < count:
            spins += 1
            if 0 < yield_after < spins:
                sched_yield()
            else:
                _spin_pause()
    return count + 1


@njit(**OPTIONS)
def part(k, parts, calls, x, w_ih, w_hh, bias, gx, h_all, c_all, tanh_c, d_gates, partial, d_h,
         d_c, d_w_ih, d_w_hh, d_b, sync, yield_after):
    """Thread ``k`` of ``parts``, ``calls`` times: the forward and backward of its ``hh = H /
    parts`` units. Its arrays are its units' rows, gate-major (``[i; f; g; o]``, ``hh`` rows
    each): ``w_ih (4hh, I)``, ``w_hh (4hh, H)``, ``bias (4hh,)``, ``gx (T, 4hh)`` (the
    activated gates once the forward is done), ``c_all (T+1, hh)``, ``tanh_c (T, hh)``,
    ``d_gates (T, 4hh)``, ``d_c (hh,)`` and the gradients. Shared: ``h_all (T+1, H)``, ``partial
    (parts, H)``, ``d_h (H,)`` and ``sync``; ``yield_after`` as for :func:`_meet`."""
    steps = x.shape[0]
    hh = c_all.shape[1]
    lo = k * hh
    one = np.float32(1.0)
    product = np.empty(4 * hh, np.float32)
    d_m = np.empty(hh, np.float32)
    no_peephole = np.empty((0, 0), np.float32)
    met = 1
    for _ in range(calls):
        met = _meet(k, parts, met, sync, yield_after)
        np.dot(x, w_ih.T, gx)
        for j in range(hh):
            h_all[0, lo + j] = 0.0
            c_all[0, j] = 0.0
        met = _meet(k, parts, met, sync, yield_after)
        for t in range(steps):
            np.dot(w_hh, h_all[t], product)
            for r in range(4 * hh):
                product[r] += bias[r]
            _plain_row(gx[t], product, c_all[t], no_peephole, c_all[t + 1], tanh_c[t],
                       h_all[t + 1, lo : lo + hh])
            met = _meet(k, parts, met, sync, yield_after)
        for j in range(hh):
            d_h[lo + j] = 0.0
            d_c[j] = 0.0
        for t in range(steps - 1, -1, -1):
            dg = d_gates[t]
            for j in range(hh):
                d_m[j] = d_h[lo + j] + one  # d(sum(outputs)) / d(h_t) = 1
            _plain_row_backward(d_m, gx[t], c_all[t], c_all[t + 1], tanh_c[t], no_peephole, d_c,
                                dg, no_peephole)
            np.dot(dg, w_hh, partial[k])  # this part's share of d(h_{t-1}) (H,)
            met = _meet(k, parts, met, sync, yield_after)
            for j in range(hh):
                s = partial[0, lo + j]
                for other in range(1, parts):
                    s += partial[other, lo + j]
                d_h[lo + j] = s
            met = _meet(k, parts, met, sync, yield_after)  # partial is rewritten at the next step
        np.dot(d_gates.T, x, d_w_ih)
        np.dot(d_gates.T, h_all[:steps], d_w_hh)
        for r in range(4 * hh):
            s = np.float32(0.0)
            for t in range(steps):
                s += d_gates[t, r]
            d_b[r] = s


def rows_of(matrix, k: int, parts: int, hidden: int):
    """Part ``k``'s units' rows of a gate-major ``(4H, ·)`` matrix (or ``(4H,)`` vector)."""
    hh = hidden // parts
    return np.ascontiguousarray(np.concatenate(
        [matrix[g * hidden + k * hh : g * hidden + (k + 1) * hh] for g in range(4)]))


class Split:
    """The arrays of one split of an ``nn.LSTM``'s weights on ``x (T, I)`` in ``parts``."""

    def __init__(self, module: torch.nn.LSTM, x: np.ndarray, parts: int, yield_after: int = 0):
        w_ih, w_hh, b_ih, b_hh = (p.detach().numpy() for p in module.parameters())
        steps, hidden = x.shape[0], module.hidden_size
        hh, f32 = hidden // parts, np.float32
        self.parts, self.hidden, self.x, self.yield_after = parts, hidden, x, yield_after
        self.h_all = np.zeros((steps + 1, hidden), f32)
        self.partial = np.zeros((parts, hidden), f32)
        self.d_h = np.zeros(hidden, f32)
        self.sync = np.zeros(16, np.int64)
        self.own = [dict(
            w_ih=rows_of(w_ih, k, parts, hidden), w_hh=rows_of(w_hh, k, parts, hidden),
            bias=rows_of(b_ih + b_hh, k, parts, hidden), gx=np.empty((steps, 4 * hh), f32),
            c_all=np.empty((steps + 1, hh), f32), tanh_c=np.empty((steps, hh), f32),
            d_gates=np.empty((steps, 4 * hh), f32), d_c=np.empty(hh, f32),
            d_w_ih=np.empty((4 * hh, x.shape[1]), f32), d_w_hh=np.empty((4 * hh, hidden), f32),
            d_b=np.empty(4 * hh, f32)) for k in range(parts)]

    def arguments(self, k: int, calls: int):
        a = self.own[k]
        return (k, self.parts, calls, self.x, a["w_ih"], a["w_hh"], a["bias"], a["gx"],
                self.h_all, a["c_all"], a["tanh_c"], a["d_gates"], self.partial, self.d_h,
                a["d_c"], a["d_w_ih"], a["d_w_hh"], a["d_b"], self.sync, self.yield_after)

    def run(self, calls: int) -> float:
        """Seconds per call over ``calls`` calls."""
        self.sync[:] = 0
        start = time.perf_counter()
        if self.parts == 1:
            part(*self.arguments(0, calls))
        else:
            worker = threading.Thread(target=part, args=self.arguments(1, calls))
            worker.start()
            part(*self.arguments(0, calls))
            worker.join()
        return (time.perf_counter() - start) / calls

    def gathered(self, name: str) -> np.ndarray:
        """A per-part gradient ``(4hh, ·)`` put back in the module's gate-major rows."""
        hh = self.hidden // self.parts
        rows = [self.own[k][name][g * hh : (g + 1) * hh] for g in range(4)
                for k in range(self.parts)]
        return np.concatenate(rows)


def largest_error(split: Split, module: torch.nn.LSTM) -> float:
    """The split's largest difference from ``module`` (outputs, the initial states' gradients,
    ``d(W)``, ``d(U)`` and the bias's)."""
    split.run(1)
    x = torch.from_numpy(split.x)[:, None]
    h0 = torch.zeros(1, 1, split.hidden, requires_grad=True)
    c0 = torch.zeros(1, 1, split.hidden, requires_grad=True)
    module.zero_grad()
    out, _ = module(x, (h0, c0))
    out.sum().backward()
    d_c = np.concatenate([own["d_c"] for own in split.own])
    pairs = [(split.h_all[1:], out[:, 0]), (split.d_h, h0.grad[0, 0]), (d_c, c0.grad[0, 0]),
             (split.gathered("d_w_ih"), module.weight_ih_l0.grad),
             (split.gathered("d_w_hh"), module.weight_hh_l0.grad),
             (split.gathered("d_b"), module.bias_hh_l0.grad)]
    return max(float(np.abs(mine - theirs.detach().numpy()).max()) for mine, theirs in pairs)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--yield-after", type=int, default=0, metavar="N",
                        help="spins after which a waiting thread yields its core (0: never)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    with blas_threads(1):  # scipy's OpenBLAS, which numba's np.dot calls
        return measure(args.yield_after)


def measure(yield_after: int) -> int:
    print("B=1, I=H/2, float32; µs per forward+backward (wall; medians and fastest of 7 "
          "interleaved runs); largest difference from torch.nn.LSTM per split; the barrier "
          + (f"yields after {yield_after} spins" if yield_after else "spins"), flush=True)
    for steps, hidden in SIZES:
        torch.manual_seed(0)
        module = torch.nn.LSTM(hidden // 2, hidden)
        x = np.random.default_rng(0).standard_normal((steps, hidden // 2)).astype(np.float32)
        splits = [Split(module, x, parts, yield_after) for parts in (1, 2)]
        errors = [largest_error(split, module) for split in splits]
        calls = max(20, 20000 // steps)
        times = ([], [])
        for _ in range(7):
            for split, samples in zip(splits, times):
                samples.append(split.run(calls))
        (one, two), (one_min, two_min) = ([1e6 * pick(samples) for samples in times]
                                          for pick in (statistics.median, min))
        print(f"T={steps:<4d} H={hidden:<4d} one thread {one:8.1f}  two {two:8.1f}  "
              f"({one / two:.2f}x; fastest runs {one_min:.1f} and {two_min:.1f}, "
              f"{one_min / two_min:.2f}x)  largest error {errors[0]:.1e} / {errors[1]:.1e}",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
