"""The recurrent step's GEMM on a packed weight: MKL's packed-GEMM API, where torch carries MKL.

Each step of a recurrence multiplies a few rows (the batch) by the same recurrent weight. OpenBLAS
copies ("packs") that weight into its kernel's layout on every call; at B=8..32 and H=32..128
the packing costs as much as the arithmetic. MKL's ``cblas_sgemm_pack`` packs it once per
sequence and ``cblas_sgemm_compute`` reuses the packed copy at every step: that is how oneDNN,
behind ``nn.LSTM``, runs its recurrence. Measured on one thread of one host of this project's
machine (AMD EPYC), per step, forward ``(B, H) @ (H, 4H)`` and backward ``(B, 4H) @ (4H, H)``,
OpenBLAS against packed MKL: B=8, H=64: 18.6 and 16.9 µs against 7.7 and 6.3; B=32, H=128: 119
and 86 µs against 71 and 56. At B=1 (a matrix-vector product) OpenBLAS stays faster, and the
loops keep it there.

Which of the two is faster depends on the CPU. On another host of the same machine (AMD EPYC with
AVX-512, a higher SGEMM peak), OpenBLAS ran B=8, H=64's forward product in 2.44 against 4.06 µs,
and every family's whole call was 6-51% slower packed, at every size from B=2 to 32 and H=32 to
128. So whether the loops pack is decided by timing the two once per process
(:func:`packed_is_faster`), unless :data:`PREFERENCE` says.

torch's x86 builds link MKL into ``libtorch_cpu`` and export these functions (float32 only).
They are found once, at import, and bound to symbols of our own that the compiled loops call, so
numba's disk cache holds no address: ``available()`` says whether they were found. Where they
were not (other platforms, other torch builds) the symbols point at a stub that is never called,
and the layouts never ask for a packed weight, so the loops keep their OpenBLAS paths.
"""

from __future__ import annotations

import ctypes
import functools
import os
import time
from pathlib import Path

import numpy as np
import torch
from llvmlite import binding, ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from rnnkit.kernels._numba import jit

PACK_SYMBOL, COMPUTE_SYMBOL = "rnnkit_sgemm_pack", "rnnkit_sgemm_compute"
THREADS_SYMBOL = "rnnkit_mkl_set_num_threads_local"
# CBLAS constants (MKL's values)
_ROW_MAJOR, _NO_TRANS, _TRANS, _PACKED, _B_MATRIX = 101, 111, 112, 151, 162


def _functions():
    """MKL's ``(pack_get_size, pack, compute)`` from torch's CPU library, or ``None``."""
    if os.environ.get("RNNKIT_MKL", "1") == "0":
        return None
    library = Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"
    try:
        handle = ctypes.CDLL(str(library))  # already loaded by torch: the same handle
        found = (handle.cblas_sgemm_pack_get_size, handle.cblas_sgemm_pack,
                 handle.cblas_sgemm_compute, handle.MKL_Set_Num_Threads_Local)
    except (OSError, AttributeError):
        return None
    size = found[0]
    size.restype, size.argtypes = ctypes.c_size_t, [ctypes.c_int] * 4
    return found


_FOUND = _functions()


def _address(function) -> int:
    return ctypes.cast(function, ctypes.c_void_p).value


if _FOUND is None:
    # Never called (no layout asks for a packed weight), but the loops' code must still link:
    # a C function of Python's, which exists on every platform.
    _NEVER_CALLED = ctypes.CFUNCTYPE(None)(lambda: None)
    for symbol in (PACK_SYMBOL, COMPUTE_SYMBOL, THREADS_SYMBOL):
        binding.add_symbol(symbol, _address(_NEVER_CALLED))
else:
    for symbol, function in zip((PACK_SYMBOL, COMPUTE_SYMBOL, THREADS_SYMBOL), _FOUND[1:]):
        binding.add_symbol(symbol, _address(function))


def available() -> bool:
    """Whether the packed GEMM runs in this process (MKL found, and ``RNNKIT_MKL`` is not 0)."""
    return _FOUND is not None


# Step GEMMs up to this many multiply-adds run on a packed weight (see worthwhile): at B=32,
# H=128 the LSTM's packed product (2^21) took 67 against 88 us, at B=64, H=512 (2^26) 2.4 against
# 1.5 ms on OpenBLAS (measured on one thread), and with two threads the large LSTM fell from 1.22x
# to 0.85x nn.LSTM.
PACKED_MAX_MACS = 1 << 22


# Whether the step GEMMs run on packed weights where their sizes allow (see worthwhile): None
# decides by timing, once per process (packed_is_faster); True or False forces it (the tests run
# both paths on any machine).
PREFERENCE: bool | None = None


def worthwhile(dtype, batch: int, macs: int) -> bool:
    """Whether a recurrence whose step GEMM has ``batch`` rows and ``macs`` multiply-adds runs it
    on its weight packed once per call: float32, B > 1 (OpenBLAS's matrix-vector product is
    faster at B=1), at most :data:`PACKED_MAX_MACS`, MKL found, and the packed product faster
    than OpenBLAS's on this machine (:func:`packed_is_faster`, or :data:`PREFERENCE` when set).
    Every family asks here."""
    if not (1 < batch and macs <= PACKED_MAX_MACS and np.dtype(dtype) == np.float32
            and _FOUND is not None):
        return False
    return packed_is_faster() if PREFERENCE is None else PREFERENCE


# The step GEMM that packed_is_faster times, (rows, depth, width): the LSTM's forward product at
# B=16, H=64. It decides for every size: where one was faster, it was at every size measured.
CALIBRATION_SHAPE = (16, 64, 256)
# How much faster the packed product must be to be chosen: where the two are about as fast,
# the loops keep OpenBLAS, their path on every machine.
CALIBRATION_MARGIN = 0.9


@functools.cache
def packed_is_faster() -> bool:
    """Whether MKL's packed product beats OpenBLAS's on this machine, by
    :data:`CALIBRATION_MARGIN`: each timed on one thread on :data:`CALIBRATION_SHAPE`, the best
    of seven runs of 100 products, alternating (about 17 ms, once per process). ``False``
    without MKL."""
    if _FOUND is None:
        return False
    from rnnkit.kernels._common import blas_threads  # not at the top: _common imports _mkl

    rows, depth, width = CALIBRATION_SHAPE
    generator = np.random.default_rng(0)
    weight = generator.standard_normal((width, depth)).astype(np.float32)
    a = generator.standard_normal((rows, depth)).astype(np.float32)
    out = np.empty((rows, width), np.float32)
    packed = np.empty(packed_size(rows, width, depth), np.float32)
    pack_transposed(weight, packed)
    weight_t = np.ascontiguousarray(weight.T)
    contenders = ((_repeat_dot, weight_t), (_repeat_packed, packed))  # OpenBLAS, then MKL
    best = [np.inf, np.inf]
    with blas_threads(1):
        for k in range(8):  # the first round warms both up and is not counted
            for which, (repeat, right) in enumerate(contenders):
                start = time.perf_counter()
                repeat(a, right, out, 100)
                if k > 0:
                    best[which] = min(best[which], time.perf_counter() - start)
    return best[1] < CALIBRATION_MARGIN * best[0]


@functools.lru_cache(maxsize=256)
def packed_size(rows: int, width: int, depth: int) -> int:
    """float32 elements of a packed ``(depth, width)`` right-hand side for ``rows`` rows, rounded
    up to whole cache lines; 0 when the packed GEMM is not available."""
    if _FOUND is None:
        return 0
    elements = -(-_FOUND[0](_B_MATRIX, rows, width, depth) // 4)
    return -(-elements // 16) * 16


_I32 = ir.IntType(32)
_POINTER = ir.IntType(8).as_pointer()
_PACK_TYPE = ir.FunctionType(ir.VoidType(), [_I32] * 6 + [ir.FloatType(), _POINTER, _I32,
                                                           _POINTER])
_COMPUTE_TYPE = ir.FunctionType(ir.VoidType(), [_I32] * 6 + [_POINTER, _I32, _POINTER, _I32,
                                                             ir.FloatType(), _POINTER, _I32])


def _int32(builder, value):
    return builder.trunc(value, _I32)


def _pointer(builder, address):
    return builder.inttoptr(address, _POINTER)


@intrinsic
def _pack(typingctx, trans, width, depth, source, ld, dest):
    """``cblas_sgemm_pack`` of a row-major right-hand side (int64 arguments, addresses)."""

    def codegen(context, builder, signature, args):
        trans_, width_, depth_, source_, ld_, dest_ = args
        function = cgutils.get_or_insert_function(builder.module, _PACK_TYPE, PACK_SYMBOL)
        transpose = builder.select(builder.icmp_signed("!=", trans_, trans_.type(0)),
                                   _I32(_TRANS), _I32(_NO_TRANS))
        builder.call(function, [
            _I32(_ROW_MAJOR), _I32(_B_MATRIX), transpose, _I32(1), _int32(builder, width_),
            _int32(builder, depth_), ir.Constant(ir.FloatType(), 1.0),
            _pointer(builder, source_), _int32(builder, ld_), _pointer(builder, dest_),
        ])
        return context.get_dummy_value()

    return types.void(types.int64, types.int64, types.int64, types.int64, types.int64,
                      types.int64), codegen


@intrinsic
def _compute(typingctx, rows, width, depth, a, lda, packed, c, ldc):
    """``cblas_sgemm_compute`` (row-major, ``A`` as stored, ``B`` packed, ``beta = 0``)."""

    def codegen(context, builder, signature, args):
        rows_, width_, depth_, a_, lda_, packed_, c_, ldc_ = args
        function = cgutils.get_or_insert_function(builder.module, _COMPUTE_TYPE, COMPUTE_SYMBOL)
        builder.call(function, [
            _I32(_ROW_MAJOR), _I32(_NO_TRANS), _I32(_PACKED), _int32(builder, rows_),
            _int32(builder, width_), _int32(builder, depth_), _pointer(builder, a_),
            _int32(builder, lda_), _pointer(builder, packed_), _I32(0),
            ir.Constant(ir.FloatType(), 0.0), _pointer(builder, c_), _int32(builder, ldc_),
        ])
        return context.get_dummy_value()

    return types.void(*([types.int64] * 8)), codegen


@intrinsic
def _set_local_threads(typingctx, count):
    """MKL's ``MKL_Set_Num_Threads_Local``: this thread's MKL thread count (0: the global one);
    returns the previous local count."""

    def codegen(context, builder, signature, args):
        function = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(_I32, [_I32]), THREADS_SYMBOL)
        previous = builder.call(function, [_int32(builder, args[0])])
        return builder.sext(previous, ir.IntType(64))

    return types.int64(types.int64), codegen


@jit
def serial(packs):
    """When ``packs``, make this thread's packed products run on one thread; returns what
    :func:`restore` takes (-1 when not ``packs``: nothing to undo). The loops call MKL for one
    step's small GEMM at a time: with torch's two threads MKL forked for each, and an LSTM at
    B=8, T=100, H=32 took 5.6 instead of 1.6 ms (measured)."""
    return _set_local_threads(1) if packs else -1


@jit
def restore(previous):
    """Undo :func:`serial`."""
    if previous >= 0:
        _set_local_threads(previous)


@jit
def pack_transposed(rows, packed):
    """Pack ``rows (N, K)`` (C-contiguous, float32) as the right-hand side ``rows^T (K, N)`` into
    ``packed`` (at least :func:`packed_size` elements)."""
    width, depth = rows.shape
    _pack(1, width, depth, rows.ctypes.data, depth, packed.ctypes.data)


@jit
def pack(matrix, packed):
    """Pack ``matrix (K, N)`` (C-contiguous, float32) as the right-hand side into ``packed``."""
    depth, width = matrix.shape
    _pack(0, width, depth, matrix.ctypes.data, width, packed.ctypes.data)


@jit
def _repeat_dot(a, weight_t, out, count):
    """``count`` times ``out = a @ weight_t`` on OpenBLAS (see :func:`packed_is_faster`)."""
    for _ in range(count):
        np.dot(a, weight_t, out)


@jit
def _repeat_packed(a, packed, out, count):
    """``count`` times :func:`packed_product`, on one MKL thread (see :func:`packed_is_faster`)."""
    threads = serial(True)
    for _ in range(count):
        packed_product(a, packed, out)
    restore(threads)


@jit
def packed_product(a, packed, out):
    """``out (M, N) = a (M, K) @ B``, ``B`` as :func:`pack` or :func:`pack_transposed` left it in
    ``packed``; ``a`` and ``out`` C-contiguous float32."""
    rows, depth = a.shape
    width = out.shape[1]
    _compute(rows, width, depth, a.ctypes.data, depth, packed.ctypes.data, out.ctypes.data, width)
