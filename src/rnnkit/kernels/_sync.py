"""Progress counters shared by two compiled loops running at once on two cores.

A fused kernel may split its work in two: the recurrence, which is sequential, and the big GEMMs
over all steps (the input projection, the weight and input gradients), which are not. With two
cores the native call runs the second part, the *companion*, on a worker thread next to the
first, chunk by chunk (see :mod:`rnnkit.kernels.native`): the forward's companion projects the
inputs of a chunk of steps while the recurrence runs the previous chunk; the backward's takes the
gate gradients of each chunk the recurrence has finished and turns them into weight and input
gradients.

The two meet through a small ``int64`` array, ``sync``: one side publishes how many chunks it has
finished (a release store, after its writes), the other waits until enough are (acquire loads),
and so sees those writes. Run one after the other (the Python path), the waits find the counts
already reached and return at once: the same chunks, the same arithmetic.
"""

from __future__ import annotations

import os
import platform

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from rnnkit.kernels._numba import jit
from rnnkit.kernels._rows import project_steps

_X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")
_POSIX = os.name == "posix"
# Pauses (about 25 ns each on this machine's x86 cores) a wait spins before it naps: about 0.5 ms,
# longer than the waits of calls that take a few ms. A longer wait is the backward companion's
# for a long chunk, whose nap delays it by about 70 µs at most, or the other side's core taken by
# another process, when spinning on would hold this core too (see `run_two` in _native.cpp).
SPIN_PAUSES = 20000


def _element_pointer(context, builder, array_type, array, index):
    ary = context.make_array(array_type)(context, builder, array)
    return cgutils.get_item_pointer(context, builder, array_type, ary, [index])


@intrinsic
def _load_acquire(typingctx, array, index):
    """``array[index]`` (an ``int64`` array), loaded with acquire ordering."""
    if not (isinstance(array, types.Array) and array.dtype == types.int64):
        return None

    def codegen(context, builder, signature, args):
        pointer = _element_pointer(context, builder, signature.args[0], args[0], args[1])
        return builder.load_atomic(pointer, "acquire", 8)

    return types.int64(array, index), codegen


@intrinsic
def _store_release(typingctx, array, index, value):
    """``array[index] = value`` (an ``int64`` array), stored with release ordering."""
    if not (isinstance(array, types.Array) and array.dtype == types.int64):
        return None

    def codegen(context, builder, signature, args):
        pointer = _element_pointer(context, builder, signature.args[0], args[0], args[1])
        value = context.cast(builder, args[2], signature.args[2], types.int64)
        builder.store_atomic(value, pointer, "release", 8)
        return context.get_dummy_value()

    return types.void(array, index, value), codegen


@intrinsic
def _spin_pause(typingctx):
    """The CPU's spin-wait hint (``pause`` on x86, nothing elsewhere)."""

    def codegen(context, builder, signature, args):
        if _X86:
            pause = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.VoidType(), []), "llvm.x86.sse2.pause")
            builder.call(pause, [])
        return context.get_dummy_value()

    return types.void(), codegen


@intrinsic
def _nap(typingctx):
    """Leave the core for a moment (``usleep(1)``; nothing off POSIX)."""

    def codegen(context, builder, signature, args):
        if _POSIX:
            function = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.IntType(32), [ir.IntType(32)]), "usleep")
            builder.call(function, [ir.Constant(ir.IntType(32), 1)])
        return context.get_dummy_value()

    return types.void(), codegen


@jit
def publish(sync, slot, count):
    """Make ``count`` visible in ``sync[slot]``, after every write made before it."""
    _store_release(sync, slot, count)


@jit
def wait_for(sync, slot, count):
    """Return once ``sync[slot] >= count``; the other side's writes before it are then seen.

    It spins for ``SPIN_PAUSES`` pauses, then naps between loads (``usleep(1)``: about 70 µs
    here)."""
    spins = 0
    while _load_acquire(sync, slot) < count:
        if spins < SPIN_PAUSES:
            _spin_pause()
            spins += 1
        else:
            _nap()


@jit
def chunk_count(steps, chunk):
    """How many chunks of ``chunk`` steps cover ``steps`` (the last may be shorter)."""
    return (steps + chunk - 1) // chunk


@jit
def project_in_chunks(x, weight_ih_t, x_t, out, chunk, sync):
    """A forward's companion for a family whose input projection is row-major (GRU, SimpleRNN):
    :func:`~rnnkit.kernels._rows.project_steps` chunk by chunk of ``chunk`` steps, each
    published in ``sync[0]`` for the recurrence, which waits for a chunk before its first step."""
    steps = x.shape[1]
    for k in range(chunk_count(steps, chunk)):
        project_steps(x, weight_ih_t, x_t, out, k * chunk, min(steps, (k + 1) * chunk))
        publish(sync, 0, k + 1)
