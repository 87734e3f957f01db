"""The GEMMs over all steps, whole against in small-kernel pieces (``rnnkit.kernels._blas``).

For each shape the kernels meet at the small grid's sizes (T=100, I=H/2), times one ``np.dot``
on the whole GEMM and the piecewise function the kernels call, in compiled loops, on one BLAS
thread, alternating, and prints the medians::

    python bench/gemm_pieces.py [--rounds 5]

``tn``: the weight gradients, ``out (M, K) = a^T b`` for ``a (N, M)``, ``b (N, K)``
(:func:`~rnnkit.kernels._blas.gemm_tn_into`); ``nn``: the input projection and ``d(x)``, ``out =
a @ b`` (:func:`~rnnkit.kernels._blas.dot_rows`), with ``b`` row-major or a transposed view.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np
from numba import njit

from rnnkit.kernels._blas import dot_rows, gemm_tn_into, output_halves, piece_rows
from rnnkit.kernels._common import blas_threads

# Not cached on disk: each loop holds rnnkit's compiled functions, and a cache of this file would
# keep their old code after rnnkit's kernels change (see rnnkit.kernels._cache).


@njit
def _whole_tn(a, b, out, count):
    for _ in range(count):
        np.dot(a.T, b, out)


@njit
def _pieces_tn(a, b, out, count):
    for _ in range(count):
        gemm_tn_into(a, b, out, False)


@njit
def _whole_nn(a, b, out, count):
    for _ in range(count):
        np.dot(a, b, out)


@njit
def _pieces_nn(a, b, out, count):
    for _ in range(count):
        dot_rows(a, b, out)


# (kind, rows N, then M and K for tn: out (M, K); K and M for nn: (N, K) @ (K, M))
SHAPES = (
    ("tn", 3200, 256, 64),    # LSTM d(U), B=32, H=64
    ("tn", 3200, 256, 32),    # LSTM d(W), B=32, H=64
    ("tn", 3200, 256, 96),    # LSTM d(W) and d(U) in one GEMM, B=32, H=64 (where GEMMs run whole)
    ("tn", 3200, 128, 48),    # the same at H=32
    ("tn", 3200, 512, 64),    # LSTM d(W), B=32, H=128
    ("tn", 3200, 512, 128),   # LSTM d(U), B=32, H=128: too wide, two halves of out's rows
    ("tn", 800, 256, 96),     # B=8, H=64
    ("nn", 3200, 32, 256),    # input projection, B=32, H=64
    ("nn", 3200, 32, 64),     # one gate's input projection (gate-major), B=32, H=64
    ("nn", 800, 32, 64),      # the same at B=8
    ("nn", 3200, 256, 32),    # d(x), B=32, H=64
    ("nn", 3200, 64, 512),    # input projection, B=32, H=128
    ("nn-view", 3200, 64, 512),  # the same from W^T, a transposed view
)


def _arrays(kind, rows, m, k, dtype):
    generator = np.random.default_rng(0)
    if kind == "tn":
        a = generator.standard_normal((rows, m)).astype(dtype)
        b = generator.standard_normal((rows, k)).astype(dtype)
        return a, b, np.empty((m, k), dtype), m * k
    a = generator.standard_normal((rows, m)).astype(dtype)
    if kind == "nn-view":
        b = generator.standard_normal((k, m)).astype(dtype).T
    else:
        b = generator.standard_normal((m, k)).astype(dtype)
    return a, b, np.empty((rows, k), dtype), m * k


def _plan(kind, rows, m, k) -> str:
    """Rows per piece, ``2 x`` that for two halves of the output's rows (``tn`` only)."""
    if kind == "tn" and output_halves(m, k, rows) == 2:
        return f"2 x {piece_rows(m // 2 * k, rows)}"
    return str(piece_rows(m * k, rows))


def _time(function, a, b, out, count) -> float:
    start = time.perf_counter()
    function(a, b, out, count)
    return (time.perf_counter() - start) / count


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    print("GEMM                          dtype    rows/piece   whole ms  pieces ms  whole/pieces")
    with blas_threads(1):
        for dtype in (np.float32, np.float64):
            for kind, rows, m, k in SHAPES:
                a, b, out, row_macs = _arrays(kind, rows, m, k, dtype)
                whole, pieces = (_whole_tn, _pieces_tn) if kind == "tn" else (_whole_nn,
                                                                              _pieces_nn)
                count = max(3, int(2e8 / (2 * rows * row_macs)))
                for function in (whole, pieces):
                    function(a, b, out, 1)  # compile or load, and warm up
                times = {whole: [], pieces: []}
                for _ in range(args.rounds):
                    for function in (whole, pieces):
                        times[function].append(_time(function, a, b, out, count))
                t_whole, t_pieces = (1e3 * statistics.median(times[f]) for f in (whole, pieces))
                label = (f"({m}, {rows}) @ ({rows}, {k})" if kind == "tn" else
                         f"({rows}, {m}) @ ({m}, {k}){' view' if kind == 'nn-view' else ''}")
                print(f"{label:29s} {np.dtype(dtype).name:8s} {_plan(kind, rows, m, k):>10s}"
                      f" {t_whole:10.3f} {t_pieces:10.3f} {t_whole / t_pieces:12.2f}",
                      flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
