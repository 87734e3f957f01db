"""Torch-side plumbing shared by the fused kernels: eligibility, masks and tensor/array exchange."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import importlib.util
import math
import os
import sys
import threading

import numpy as np
import torch

from rnnkit.cells.base import GATES
from rnnkit.kernels import _mkl
from rnnkit.kernels._numba import activation_code

NUMPY_DTYPES = {torch.float32: np.float32, torch.float64: np.float64}


class Plan:
    """One call's settings for a compiled kernel: masks as arrays, activation codes, BLAS threads.

    ``keep (B, T)`` is True on real steps; ``recurrent`` is the ``(B, H_rec)`` recurrent-dropout
    mask, or a ``(0, 0)`` array when there is none.
    """

    __slots__ = ("keep", "recurrent", "zero_output", "activation", "recurrent_activation",
                 "threads", "spec", "chunk")

    def __init__(self, keep, recurrent, zero_output, codes, threads, spec, chunk=0):
        self.keep, self.recurrent, self.zero_output = keep, recurrent, zero_output
        self.activation, self.recurrent_activation = codes
        self.threads, self.spec = threads, spec
        self.chunk = chunk  # steps per chunk of the two-core pipeline, 0 for none (see below)


def tensors_fit(tensors, dtype: torch.dtype) -> bool:
    """True when every tensor is a CPU tensor of ``dtype`` (``None`` entries are skipped)."""
    return all(t.device.type == "cpu" and t.dtype == dtype for t in tensors if t is not None)


def codes_of(spec) -> tuple[int, int] | None:
    """``(activation, recurrent_activation)`` codes, or ``None`` if either has no kernel."""
    act, rec = activation_code(spec.activation), activation_code(spec.recurrent_activation)
    return None if act is None or rec is None else (act, rec)


def run_inputs_fit(inputs: torch.Tensor, state, state_size, mask, recurrent_mask) -> bool:
    """Whether a call's runtime arguments suit a kernel (else the reference loop runs it).

    States must be ``None`` (zeros) or ``(B, state_size[k])``, the mask a ``(B, T)`` bool CPU
    tensor and the recurrent mask broadcastable to ``(B, state_size[0])`` and free of autograd.
    """
    batch, steps = inputs.shape[:2]
    if state is not None and not (
        len(state) == len(state_size)
        and tensors_fit(state, inputs.dtype)
        and all(tuple(s.shape) == (batch, size) for s, size in zip(state, state_size))
    ):
        return False
    if mask is not None and (
        mask.device.type != "cpu" or mask.dtype != torch.bool or tuple(mask.shape) != (batch, steps)
    ):
        return False
    if recurrent_mask is None:
        return True
    broadcast_ok = tuple(recurrent_mask.shape) in {(batch, state_size[0]), (1, state_size[0])}
    return (
        broadcast_ok
        and tensors_fit([recurrent_mask], inputs.dtype)
        and not recurrent_mask.requires_grad
    )


def as_array(tensor: torch.Tensor) -> np.ndarray:
    """A C-contiguous numpy view (or copy) of ``tensor``'s values, outside autograd."""
    return np.ascontiguousarray(tensor.detach().numpy())


def arrays_of(dtype, *tensors) -> list[np.ndarray]:
    """Each tensor as :func:`as_array`; ``None`` becomes an empty 1-D array of ``dtype``.

    The compiled loops take every option as an array, so their signature (and cache) stays fixed.
    """
    return [
        np.empty(0, NUMPY_DTYPES[dtype]) if t is None else np.ascontiguousarray(t.detach().numpy())
        for t in tensors
    ]


def optional_matrix(tensor, dtype) -> np.ndarray:
    """``tensor`` as an array, or an empty ``(0, 0)`` array when it is ``None``."""
    if tensor is None:
        return np.empty((0, 0), NUMPY_DTYPES[dtype])
    return as_array(tensor)


def gate_gradient_shapes(batch, steps, features, width, hidden, needs):
    """For a family whose ``needs`` flag the gradients of ``(x, h0, w_ih, w_hh, b_ih, b_hh)``
    (GRU, SimpleRNN; ``width`` = gates x ``hidden``): the shapes of the arrays of the gradients of
    ``(x, w_ih, w_hh, b_ih, b_hh)``, empty where not needed, and the ``need`` flags (a bool array)
    their compiled backward takes."""
    shapes = (
        (batch if needs[0] else 0, steps, features),
        (width, features) if needs[2] else (0, 0),
        (width, hidden) if needs[3] else (0, 0),
        width if needs[4] else 0,
        width if needs[5] else 0,
    )
    return shapes, np.array([needs[0], needs[2], needs[3], needs[4], needs[5]])


# Arrays carved from one block start on a multiple of this many elements (64 bytes in float32),
# so that each starts as aligned as the block.
ALIGN_ITEMS = 16


@functools.lru_cache(maxsize=64)
def block_layout(shapes: tuple[tuple[int, ...], ...]) -> tuple[int, np.ndarray]:
    """``(size, layout)``: the elements of one block that holds arrays of ``shapes`` in turn, and
    ``layout (n, 4)``, a row ``(start, *shape)`` per array (shapes padded with ones), which the
    loops' ``_views`` take the arrays back out with (the native call's recipes place arrays in
    one allocation by the same starts). Shared by every call of these sizes (and
    left writeable: numba's dispatcher types read-only arrays on a slow path).

    One block instead of an array each: fewer ``np.empty`` calls, and fewer arguments for numba
    to unbox on each compiled call (the forward takes 28 instead of 38, the backward 30 instead
    of 43): 6-8% off the array-level forward and backward at B=1, T=10 (measured).
    """
    layout = np.ones((len(shapes), 4), np.int64)
    size = 0
    for row, shape in zip(layout, shapes):
        row[0] = size
        row[1 : 1 + len(shape)] = shape
        size += -(-math.prod(shape) // ALIGN_ITEMS) * ALIGN_ITEMS
    return size, layout


def plan_of(spec, inputs: torch.Tensor, mask, recurrent_mask, zero_output: bool, codes) -> Plan:
    """The :class:`Plan` of one call of ``spec``'s kernel (masks broadcast to full arrays)."""
    batch, steps = inputs.shape[:2]
    if mask is None:
        keep = np.ones((batch, steps), dtype=np.bool_)
    else:
        keep = np.ascontiguousarray(mask.detach().numpy())
    width = spec.recurrent_size
    if recurrent_mask is None:
        recurrent = np.empty((0, 0), NUMPY_DTYPES[inputs.dtype])
    else:
        recurrent = as_array(recurrent_mask.detach().expand(batch, width))
    gates = GATES[spec.family]
    threads = gemm_threads(batch, gates * spec.hidden_size, width)
    chunk = pipeline_chunk(spec.family, batch, steps, inputs.shape[2], gates * spec.hidden_size,
                           width)
    return Plan(keep, recurrent, bool(zero_output), codes, threads, spec, chunk)


@functools.cache
def blas_available() -> bool:
    """numba's ``np.dot`` calls BLAS through scipy: without scipy the kernels cannot compile."""
    return importlib.util.find_spec("scipy") is not None


@functools.cache
def _scipy_blas_controllers() -> tuple:
    """threadpoolctl handles on the BLAS that numba's ``np.dot`` calls (scipy's), if any."""
    try:
        import scipy.linalg.cython_blas  # noqa: F401  (loads the library numba will call)
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return ()
    import scipy

    # scipy's own copy lives in site-packages/scipy.libs (Linux, Windows) or scipy/.dylibs (macOS).
    site_packages = os.path.dirname(os.path.dirname(scipy.__file__))
    return tuple(
        controller
        for controller in ThreadpoolController().lib_controllers
        if controller.user_api == "blas"
        and os.path.relpath(controller.filepath, site_packages).startswith("scipy")
    )


@functools.cache
def _openblas_thread_functions():
    """``(get, set)``: OpenBLAS's own thread-count functions for scipy's BLAS, or ``None``.

    Called directly through ctypes they cost well under a microsecond; threadpoolctl's context
    manager costs about a hundred per use, more than a small kernel's whole run.
    """
    controllers = _scipy_blas_controllers()
    if len(controllers) != 1 or controllers[0].internal_api != "openblas":
        return None
    dynlib = getattr(controllers[0], "dynlib", None)
    if getattr(controllers[0], "threading_layer", None) == "openmp":
        return None  # an OpenMP build counts per thread, through omp_*: left to threadpoolctl
    for prefix in ("", "scipy_"):
        for suffix in ("", "64_", "_64"):
            get = getattr(dynlib, f"{prefix}openblas_get_num_threads{suffix}", None)
            set_ = getattr(dynlib, f"{prefix}openblas_set_num_threads{suffix}", None)
            if get is not None and set_ is not None:
                get.restype, get.argtypes = ctypes.c_int, []
                set_.restype, set_.argtypes = None, [ctypes.c_int]
                return get, set_
    return None


@contextlib.contextmanager
def _threadpoolctl_blas(threads: int):
    controllers = _scipy_blas_controllers()
    previous = [controller.num_threads for controller in controllers]
    for controller in controllers:
        controller.set_num_threads(threads)
    try:
        yield
    finally:
        for controller, count in zip(controllers, previous):
            controller.set_num_threads(count)


class blas_threads:  # noqa: N801  (used as a context manager, like threadpoolctl's)
    """Run the compiled loops' GEMMs on ``threads`` BLAS threads.

    Each step's GEMM is small and the steps are sequential: waking a BLAS thread pool once per
    step costs more than it gains, and on a busy machine far more (18x slower measured on 2 cores),
    so small problems run on one thread (see :func:`gemm_threads`).

    With OpenBLAS (scipy's, which numba's ``np.dot`` calls) the count set is left in place after
    the block, not restored: setting it back to 2 after every call woke OpenBLAS's second thread,
    whose spin-wait then held the other core (hyperthread) and slowed the torch ops and Python
    that ran next, e.g. ``out.sum()`` 4 -> 200-1000 us and the whole backward 2.5x, LSTM B=8,
    T=100, H=64 (measured). The count only changes when a call needs another one, so scipy's
    BLAS keeps the count of rnnkit's last call; ``threadpoolctl`` sets it for other uses.
    """

    __slots__ = ("threads", "fallback")

    def __init__(self, threads: int = 1) -> None:
        self.threads = threads

    def __enter__(self):
        functions = _openblas_thread_functions()
        self.fallback = None
        if functions is None:
            self.fallback = _threadpoolctl_blas(self.threads)
            self.fallback.__enter__()
            return self
        get, set_ = functions
        if get() != self.threads:
            set_(self.threads)
        return self

    def __exit__(self, *exc):
        if self.fallback is not None:
            return self.fallback.__exit__(*exc)
        return False


# Per step, a GEMM of fewer multiply-adds than this runs on one BLAS thread: below it the second
# thread's wake-up and join cost more than it saves (and far more on a loaded machine).
PARALLEL_STEP_MACS = 1 << 23


def gemm_threads(batch: int, width: int, depth: int) -> int:
    """BLAS threads for a recurrence whose step GEMM is ``(batch, depth) @ (depth, width)``."""
    if batch * width * depth < PARALLEL_STEP_MACS:
        return 1
    return max(1, torch.get_num_threads())


# Per family whose kernels have companions (see rnnkit.kernels._sync), the least input projection
# (multiply-adds over all steps) worth a second core. Measured on two threads, pipelined against
# not, forward and backward, at sizes the halves (see halves_rows) do not take: LSTM 1.27-1.33x at
# B=1, T=100, H=128, 0.96-1.16x at H=64, 0.82-1.07x at H=32, 1.06-1.10x at T=10, H=128 and
# 1.05-1.09x at B=8, T=10, H=32; GRU 1.05-1.12x at B=1, T=10, H=128 and 1.02-1.12x at T=100,
# H=64; SimpleRNN 1.02-1.09x at B=1, T=10, H=128 and 1.06-1.09x at T=100, H=64 (bench/
# pipeline_ab.py). Smaller calls gained less than a call held up by a busy second core costs
# (see `run_two` in _native.cpp): the LSTM 0.99-1.09x at B=1, T=10, H=32-64, the GRU 0.88-1.03x at
# B=8, T=10, H=32. (Before the halves took every batch of 8 rows or more, the LSTM lost at B=8,
# T=100, H=32: 0.82x; the thresholds were 2^22, 2^20 and 2^18, and the chunks 32 rows or more.)
PIPELINE_MIN_MACS = {"lstm": 1 << 17, "gru": 1 << 17, "rnn": 1 << 16}
# Rows (steps x batch) of a chunk at least, and chunks at most. At B=1, T=100, H=128 the LSTM ran
# 1.27x faster than unpipelined with chunks of 32 steps, 1.31x with chunks of 13. At T=10 chunks
# of 1 step lost 8% against chunks of 2 (B=8, H=32), chunks of 2 steps 4% against 4 (B=1, H=32).
PIPELINE_MIN_ROWS = 4
PIPELINE_MAX_CHUNKS = 8


def pipeline_chunk(family: str, batch: int, steps: int, features: int, width: int,
                   depth: int) -> int:
    """Steps per chunk when a call of these sizes runs on two cores, the recurrence on one and the
    GEMMs over all steps on the other (see :mod:`rnnkit.kernels._sync`); 0 to run on one.

    Two cores are used when torch may use two threads, the step GEMM runs on one BLAS thread (see
    :func:`gemm_threads`) and the input projection has at least ``PIPELINE_MIN_MACS[family]``
    multiply-adds. A chunk holds at least ``PIPELINE_MIN_ROWS`` rows, and there are at least 2
    and at most ``PIPELINE_MAX_CHUNKS``. (A native call that :func:`halves_rows` splits runs its
    halves without companions.)
    """
    least = PIPELINE_MIN_MACS.get(family)
    if least is None or torch.get_num_threads() < 2:
        return 0
    if gemm_threads(batch, width, depth) != 1 or batch * steps * width * features < least:
        return 0
    chunk = max(-(-steps // PIPELINE_MAX_CHUNKS), -(-PIPELINE_MIN_ROWS // batch))
    return chunk if chunk < steps else 0


# The least multiply-adds of a call's GEMMs over all steps (its input projection and step GEMMs,
# ``B*T*width*(I + depth)``) for which the native call splits its batch in two halves run at once
# on the two cores (see rnnkit.kernels._entries.recipe). Measured on two threads, forward and
# backward against the one-core recurrence with its companion, with the step GEMMs on OpenBLAS:
# 1.1-1.4x faster at B=4-32, T=100, H=64-128 (B=32, T=100, H=128: 1.28x for the LSTM, 1.36x for
# the GRU), 0.94-1.01x for the LSTM at T=10, H=32, B=4 and 8, below this size.
HALVES_MIN_MACS = 1 << 20
# With the step GEMMs on MKL's packed weights (see rnnkit.kernels._mkl.worthwhile), halves of 2
# or 3 rows cost nearly what 4 rows do (LSTM, T=100, H=64, 1 thread: 1.27 ms at B=2, 1.74 at B=3,
# 1.65 at B=4): the split lost at B=4 and 6 (0.75-0.91x) and won at B=2 (halves of one row, which
# never pack) and from B=8. So packed calls split from this batch on, or at B=2.
HALVES_MIN_BATCH_PACKED = 8


def halves_rows(batch: int, steps: int, features: int, width: int, depth: int, dtype) -> int:
    """The rows of the first half when a native call of these sizes and ``dtype`` splits its
    batch in two (see :func:`rnnkit.kernels._entries.recipe`), else 0.

    It splits when torch may use two threads, the batch has two rows at least, its step GEMM
    ``(batch, depth) @ (depth, width)`` runs on one BLAS thread (see :func:`gemm_threads`; a
    larger one is split between the threads already) and its GEMMs have at least
    ``HALVES_MIN_MACS`` multiply-adds; where the halves' step GEMMs would run packed, only at B=2
    or from ``HALVES_MIN_BATCH_PACKED`` rows.
    """
    if torch.get_num_threads() < 2 or batch < 2:
        return 0
    if gemm_threads(batch, width, depth) != 1:
        return 0
    if batch * steps * width * (features + depth) < HALVES_MIN_MACS:
        return 0
    rows = (batch + 1) // 2
    small = 2 < batch < HALVES_MIN_BATCH_PACKED
    if small and _mkl.worthwhile(dtype, batch - rows, (batch - rows) * depth * width):
        return 0
    return rows


_work_arrays = threading.local()


def workspace(name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
    """A work array of ``shape`` that no result aliases, reused across this thread's calls.

    Fresh memory is zeroed by the kernel page by page as it is first touched: at B=64, T=100,
    H=512 the backward's 50 MB of work arrays cost about 20 000 page faults and 30-90 ms per call
    (measured), against nothing when reused. Each name keeps the largest array asked for.
    """
    size = math.prod(shape)
    key = (name, dtype)
    buffer = _work_arrays.__dict__.get(key)
    if buffer is None or buffer.size < size:
        buffer = np.empty(size, dtype)
        _work_arrays.__dict__[key] = buffer
    return buffer[:size].reshape(shape)


# Large arrays a call hands on (the forward's saved arrays and outputs) come from a per-thread
# pool of buffers, each reused once no array views it any more. glibc gives large freed blocks
# back to the system, so a fresh array of this size costs a page fault per 4 KB on every call:
# 1 500 faults, about 3 ms, per SimpleRNN call at B=32, T=100, H=128 (measured), against none
# from the pool.
POOLED_MIN_BYTES = 1 << 20
POOL_MAX_BYTES = 256 << 20  # per thread and dtype; past it, arrays are simply allocated
_pools = threading.local()


def _free_references() -> int:
    """``sys.getrefcount`` of a pooled buffer that nothing but the pool holds, as :func:`recycled`
    sees it (the pool list, a local name and the call's argument)."""
    pool = [np.empty(1)]
    buffer = pool[0]
    return sys.getrefcount(buffer)


FREE_REFERENCES = _free_references()


def recycled(shape: tuple[int, ...], dtype) -> np.ndarray:
    """An uninitialised array of ``shape``, like ``np.empty``; from 1 MB up it views a buffer of
    this thread's pool that no other array views (an array given to torch stays alive, and keeps
    its buffer out of the pool, as long as its tensor does)."""
    size, dtype = math.prod(shape), np.dtype(dtype)
    if size * dtype.itemsize < POOLED_MIN_BYTES:
        return np.empty(shape, dtype)
    pool = _pools.__dict__.setdefault(dtype, [])
    smaller = None
    for index in range(len(pool)):
        buffer = pool[index]
        if sys.getrefcount(buffer) == FREE_REFERENCES:
            if buffer.size >= size:
                return buffer[:size].reshape(shape)
            smaller = index
    if smaller is not None:
        del pool[smaller]  # a free buffer too small for this size: make way for a larger one
    fresh = np.empty(size, dtype)
    if (sum(b.size for b in pool) + size) * dtype.itemsize <= POOL_MAX_BYTES:
        pool.append(fresh)
    return fresh.reshape(shape)
