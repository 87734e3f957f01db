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
  the last through BLAS's ``beta``. ``np.dot`` has no ``beta``, so this module binds scipy's
  ``sgemm``/``dgemm`` (the functions numba's ``np.dot`` reaches) to symbols of its own, as
  :mod:`rnnkit.kernels._mkl` binds MKL's: numba's disk cache holds no address.

A piece has a multiple of 8 rows, at least :data:`MIN_PIECE_ROWS`; a GEMM whose rows are too
wide for that runs whole, as before. (Pieces of 8 rows were slower than one GEMM at three of the
four shapes tried, such as ``(512, 3200) @ (3200, 192)``, measured.)
The same caching note as :mod:`rnnkit.kernels._numba` applies.
"""

from __future__ import annotations

import ctypes

import numpy as np
from llvmlite import binding, ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from rnnkit.kernels._numba import as_dtype_of, jit

# OpenBLAS's limit for its small-matrix SGEMM kernel (AVX-512 builds), in multiply-adds.
SMALL_GEMM_MACS = 1_000_000
MIN_PIECE_ROWS = 16
SYMBOLS = {"sgemm": "rnnkit_blas_sgemm", "dgemm": "rnnkit_blas_dgemm"}


def _scipy_blas_address(name: str) -> int:
    """The address of ``scipy.linalg.cython_blas``'s ``name`` (the Fortran interface: every
    argument by pointer)."""
    from scipy.linalg import cython_blas

    capsule = cython_blas.__pyx_capi__[name]
    api = ctypes.pythonapi
    api.PyCapsule_GetName.restype = ctypes.c_char_p
    api.PyCapsule_GetName.argtypes = [ctypes.py_object]
    api.PyCapsule_GetPointer.restype = ctypes.c_void_p
    api.PyCapsule_GetPointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
    return api.PyCapsule_GetPointer(capsule, api.PyCapsule_GetName(capsule))


for _name, _symbol in SYMBOLS.items():
    binding.add_symbol(_symbol, _scipy_blas_address(_name))

_I32 = ir.IntType(32)
_CHAR = ir.IntType(8)


def _gemm_type(real):
    pointer = real.as_pointer()
    char, integer = _CHAR.as_pointer(), _I32.as_pointer()
    return ir.FunctionType(ir.VoidType(), [char, char, integer, integer, integer, pointer,
                                           pointer, integer, pointer, integer, pointer, pointer,
                                           integer])


@intrinsic
def _gemm(typingctx, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
    """Fortran ``?gemm('N', trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)``, column-major,
    addresses and sizes as int64; ``alpha`` and ``beta`` pick single or double precision."""
    if alpha not in (types.float32, types.float64) or beta != alpha:
        return None
    single = alpha == types.float32
    real = ir.FloatType() if single else ir.DoubleType()

    def codegen(context, builder, signature, args):
        trans_b_, m_, n_, k_, alpha_, a_, lda_, b_, ldb_, beta_, c_, ldc_ = args
        function = cgutils.get_or_insert_function(
            builder.module, _gemm_type(real), SYMBOLS["sgemm" if single else "dgemm"])

        def by_pointer(value, kind):
            return cgutils.alloca_once_value(builder, value if kind is None else kind(value))

        def int32(value):
            return by_pointer(builder.trunc(value, _I32), None)

        def address(value):
            return builder.inttoptr(value, real.as_pointer())

        transpose = builder.select(builder.icmp_signed("!=", trans_b_, trans_b_.type(0)),
                                   _CHAR(ord("T")), _CHAR(ord("N")))
        builder.call(function, [
            by_pointer(_CHAR(ord("N")), None), by_pointer(transpose, None), int32(m_), int32(n_),
            int32(k_), by_pointer(alpha_, None), address(a_), int32(lda_), address(b_),
            int32(ldb_), by_pointer(beta_, None), address(c_), int32(ldc_),
        ])
        return context.get_dummy_value()

    sizes = (types.int64,) * 4
    return types.void(*sizes, alpha, *sizes, beta, types.int64, types.int64), codegen


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
def gemm_tn_into(a, b, out, accumulate):
    """``out = a^T b``, or ``out += a^T b`` with ``accumulate``, for ``a (N, M)``, ``b (N, K)``,
    ``out (M, K)`` (rows contiguous, one dtype), in pieces of :func:`piece_rows` rows of ``a``
    and ``b``, each added to ``out`` by the GEMM itself.

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
    lda, ldb, ldc = _row_stride(a), _row_stride(b), _row_stride(out)
    piece = piece_rows(width * depth, rows)
    one = as_dtype_of(1.0, out)
    beta = one if accumulate else as_dtype_of(0.0, out)
    # column-major, out^T (K, M) = b^T (K, n) @ a (n, M): b as stored, a transposed
    for n0 in range(0, rows, piece):
        count = min(piece, rows - n0)
        _gemm(1, depth, width, count, one, b[n0:].ctypes.data, ldb, a[n0:].ctypes.data, lda,
              beta, out.ctypes.data, ldc)
        beta = one


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
