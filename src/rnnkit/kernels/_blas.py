"""GEMMs over all steps in pieces that OpenBLAS runs through its small-matrix kernel.

OpenBLAS (scipy's build, which numba's ``np.dot`` calls) runs a GEMM of at most
:data:`SMALL_GEMM_MACS` multiply-adds through a kernel that reads its operands where they are,
and larger ones through its general path, which first copies ("packs") them into its own
layout. The GEMMs over all steps of a small recurrence are tall and thin: the weight gradient
``d(U) = Σ_t d(gates_t)^T h_t`` is ``(4H, T*B) @ (T*B, H)``, whose packing of the long operand
took 22% of the layer-norm LSTM's backward at B=32, T=100, H=64 (perf, 1 thread). Cut into
pieces of a few dozen rows, each piece fits the small kernel: at B=32, T=100, H=64 that
gradient took 1.06 against 1.61 ms (``bench/gemm_pieces.py``, 1 thread, AMD EPYC Zen 4).

- :func:`dot_rows`: ``out = a @ b`` in pieces of rows of ``a`` and ``out`` (the input
  projection, ``d(x)``);
- :func:`gemm_tn_into`: ``out (+)= a^T b`` in pieces of the rows both share, each piece added to
  the last through BLAS's ``beta``. ``np.dot`` has no ``beta``; numba's own GEMM helper
  (``numba_xxgemm``, which its ``np.dot`` and ``np.linalg`` call, and which finds scipy's BLAS on
  first use) has one, and this module calls it.

A piece has a multiple of 8 rows, at least :data:`MIN_PIECE_ROWS`; a GEMM whose rows are too
wide for that runs whole, as before. (Pieces of 8 rows were slower than one GEMM at three of the
four shapes tried, such as ``(512, 3200) @ (3200, 192)``, measured.)

Only where OpenBLAS has that kernel (:func:`~rnnkit.kernels._numba.blas_small_gemm`). Elsewhere
each piece goes through the general path, packing included: with OpenBLAS's Haswell kernels
forced on the same host (``OPENBLAS_CORETYPE=Haswell``), the projection's pieces took up to 2.0x
the whole GEMM and a forward and backward up to 18% longer (bench/results/*-haswell-*). There
every GEMM runs whole.
"""

from __future__ import annotations

import numpy as np
from numba import types
from numba.extending import overload

from rnnkit.kernels._numba import BLAS_SMALL_GEMM, jit

# OpenBLAS's limit for its small-matrix GEMM kernel, in multiply-adds; 0 (every GEMM whole)
# where it has none.
SMALL_GEMM_MACS = 1_000_000 if BLAS_SMALL_GEMM else 0
MIN_PIECE_ROWS = 16


def _numba_xxgemm(dtype):
    """numba's exported ``numba_xxgemm(kind, transa, transb, m, n, k, *alpha, *a, lda, *b, ldb,
    *beta, *c, ldc)``: BLAS's column-major ``?gemm``, the scalars by pointer; returns 0, or -1
    when no BLAS was found."""
    pointer = types.CPointer(dtype)
    return types.ExternalFunction("numba_xxgemm", types.intc(
        types.char, types.char, types.char, types.intp, types.intp, types.intp, pointer, pointer,
        types.intp, pointer, types.intp, pointer, pointer, types.intp))


def _gemm_piece(a, b, out, beta):
    """``out^T = b^T @ a`` column-major, i.e. ``out (+)= a^T b`` row-major, ``beta`` scaling
    ``out`` first (see :func:`gemm_tn_into`)."""
    out *= beta
    out += a.T @ b


@overload(_gemm_piece, jit_options={"error_model": "numpy"})
def _gemm_piece_compiled(a, b, out, beta):
    xxgemm = _numba_xxgemm(out.dtype)
    kind = ord("s" if out.dtype == types.float32 else "d")

    def impl(a, b, out, beta):
        scalars = np.empty(2, out.dtype)  # alpha, beta
        scalars[0], scalars[1] = 1.0, beta
        status = xxgemm(kind, ord("n"), ord("t"), b.shape[1], a.shape[1], a.shape[0],
                        scalars[0:].ctypes, b.ctypes, _row_stride(b), a.ctypes, _row_stride(a),
                        scalars[1:].ctypes, out.ctypes, _row_stride(out))
        if status != 0:
            raise RuntimeError("numba_xxgemm found no BLAS (numba's np.dot needs scipy)")

    return impl


@jit
def piece_rows(row_macs, rows):
    """Rows per piece of a GEMM over ``rows`` rows of ``row_macs`` multiply-adds each: the most,
    in multiples of 8, that keep a piece within :data:`SMALL_GEMM_MACS`; ``rows`` (one piece)
    when that is fewer than :data:`MIN_PIECE_ROWS` or covers them all."""
    count = SMALL_GEMM_MACS // max(row_macs, 1)
    count -= count % 8
    if count < MIN_PIECE_ROWS or count >= rows:
        return max(rows, 1)
    return count


@jit
def _transposed(matrix):
    """Whether a 2-D array's elements are not contiguous along its rows."""
    return matrix.shape[1] > 1 and matrix.strides[1] != matrix.itemsize


@jit
def _row_stride(matrix):
    """Elements between the rows of a 2-D array whose rows are contiguous (else ValueError)."""
    if _transposed(matrix):
        raise ValueError("gemm_tn_into takes arrays whose rows are contiguous")
    return max(matrix.strides[0] // matrix.itemsize, matrix.shape[1], 1)


@jit
def output_halves(width, depth, rows):
    """How many blocks of ``out``'s rows :func:`gemm_tn_into` runs ``out (M, K) = a^T b`` in,
    for ``a (N, M)``: 2 when its rows are too wide for pieces (``M K`` past the small kernel's
    limit over :data:`MIN_PIECE_ROWS` rows) and half of them are not, else 1.

    The LSTM's ``d(U)`` at H=128 is ``(512, 3200) @ (3200, 128)``: whole, 5.90 ms; in two halves
    of 256 rows, each in 24-row pieces, 4.53 ms (``bench/gemm_pieces.py``, 1 thread). Four
    blocks or more, as a ``(1024, 3200) @ (3200, 256)`` would need, were slower than whole there
    (measured in a prototype)."""
    if width % 2 or piece_rows(width * depth, rows) < rows:  # odd, or in pieces already
        return 1
    return 2 if piece_rows(width // 2 * depth, rows) < rows else 1


@jit
def gemm_tn_into(a, b, out, accumulate):
    """``out = a^T b``, or ``out += a^T b`` with ``accumulate``, for ``a (N, M)``, ``b (N, K)``,
    ``out (M, K)`` (rows contiguous, one dtype), in pieces of :func:`piece_rows` rows of ``a``
    and ``b``, each added to ``out`` by the GEMM itself; for rows too wide for pieces, in two
    halves of ``out``'s rows (:func:`output_halves`).

    Example (in compiled code)::

        gemm_tn_into(d_gates, h, d_weight_hh, False)   # (4H, H) = (N, 4H)^T @ (N, H)
    """
    rows, width, depth = a.shape[0], a.shape[1], b.shape[1]
    if b.shape[0] != rows or out.shape[0] != width or out.shape[1] != depth:
        raise ValueError("gemm_tn_into: shapes do not match (a (N, M), b (N, K), out (M, K))")
    if rows == 0:
        if not accumulate:
            out[:] = 0.0
        return
    blocks = output_halves(width, depth, rows)
    part = width // blocks
    piece = piece_rows(part * depth, rows)
    for k in range(blocks):
        a_k, out_k = a[:, k * part : (k + 1) * part], out[k * part : (k + 1) * part]
        beta = 1.0 if accumulate else 0.0
        for n0 in range(0, rows, piece):
            n1 = min(rows, n0 + piece)
            _gemm_piece(a_k[n0:n1], b[n0:n1], out_k, beta)
            beta = 1.0


@jit
def dot_rows(a, b, out):
    """``out = a @ b`` for ``a (N, K)``, ``b (K, M)``, ``out (N, M)``: ``np.dot`` on pieces of
    :func:`piece_rows` rows of ``a`` and ``out``.

    ``b`` is made row-major first if it is not (a transposed view, as ``W^T`` is of a ``(M,
    K)`` weight): OpenBLAS has no small kernel for that product, and pieces of ``(3200, 64) @
    (64, 512)`` on the view took 3.6 against 2.3 ms whole (measured)."""
    rows = a.shape[0]
    piece = piece_rows(b.shape[0] * b.shape[1], rows)
    if piece >= rows or _transposed(a):
        np.dot(a, b, out)
    elif _transposed(b):
        _dot_pieces(a, np.ascontiguousarray(b), out, piece)
    else:
        _dot_pieces(a, b, out, piece)


@jit
def _dot_pieces(a, b, out, piece):
    """``out = a @ b`` by ``np.dot`` on pieces of ``piece`` rows of ``a`` and ``out``."""
    rows = a.shape[0]
    for n0 in range(0, rows, piece):
        n1 = min(rows, n0 + piece)
        np.dot(a[n0:n1], b, out[n0:n1])
