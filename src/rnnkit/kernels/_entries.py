"""The native call's compiled entry points and the recipes that feed them (see
:mod:`rnnkit.kernels.native`).

Each family has a forward and a backward entry: compiled functions of one ``int64`` block (see
:class:`~rnnkit.kernels.native.Arguments`) that view its arrays and call the family's loops, as
the array-level ``forward``/``backward`` of the family module do from Python; and a recipe
builder that lays out the blocks in the same order. An entry and its builder must agree
argument by argument, so they sit side by side here. Each is wrapped as a numba ``cfunc`` per
dtype on first use (compiled once, then loaded from numba's cache).

A recipe covers every call of the built-in cells: initial states given or zeros, with or without
a mask and a recurrent-dropout mask, and for the LSTM every option.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np
from numba import carray, cfunc, types

from rnnkit.cells.base import GATES
from rnnkit.kernels import gru as gru_arrays
from rnnkit.kernels import lstm as lstm_arrays
from rnnkit.kernels import native
from rnnkit.kernels import rnn as rnn_arrays
from rnnkit.kernels._common import NUMPY_DTYPES, gemm_threads, halves_rows, pipeline_chunk
from rnnkit.kernels._lstm_loops import (
    lstm_backward,
    lstm_backward_weights,
    lstm_forward,
    lstm_forward_inputs,
)
from rnnkit.kernels._numba import jit
from rnnkit.kernels._rows import column_blocks
from rnnkit.kernels._step_loops import _pointer
from rnnkit.kernels._sync import project_in_chunks
from rnnkit.kernels.gru import (
    gru_backward,
    gru_backward_weights,
    gru_forward,
)
from rnnkit.kernels.native import GRADIENT, GRADIENT_COPY, INPUT, SAVED, Arguments
from rnnkit.kernels.rnn import (
    rnn_backward,
    rnn_backward_weights,
    rnn_forward,
)

BOOL = np.empty(0, np.bool_)
F32 = np.empty(0, np.float32)
F64 = np.empty(0, np.float64)
I64 = np.empty(0, np.int64)


# -- reading a block -------------------------------------------------------------------------
@jit
def scalar(a, k):
    """The ``k``-th scalar."""
    return a[1 + k]


@jit
def _at(a, k):
    """Where the ``k``-th array's four numbers start."""
    return 1 + a[0] + 4 * k


@jit
def array1(a, k, like):
    """The ``k``-th array as 1-D, of ``like``'s dtype."""
    i = _at(a, k)
    return carray(_pointer(a[i]), (a[i + 1],), like.dtype)


@jit
def array2(a, k, like):
    i = _at(a, k)
    return carray(_pointer(a[i]), (a[i + 1], a[i + 2]), like.dtype)


@jit
def array3(a, k, like):
    i = _at(a, k)
    return carray(_pointer(a[i]), (a[i + 1], a[i + 2], a[i + 3]), like.dtype)


# -- SimpleRNN -------------------------------------------------------------------------------
@jit
def rnn_forward_entry(a, like):
    """Scalars ``zero_output, act, chunk``; arrays ``x, h0, w_ih, w_hh, b_ih, b_hh, keep,
    recurrent, outputs, h_final, x_t, new, h_all, h_rec_all, packed, sync`` (see
    :func:`rnn_recipe`)."""
    rnn_forward(array3(a, 0, like), array2(a, 1, like), array2(a, 2, like).T, array2(a, 3, like),
                array1(a, 4, like), array1(a, 5, like), array2(a, 6, BOOL), array2(a, 7, like),
                scalar(a, 0) != 0, scalar(a, 1), array3(a, 8, like), array2(a, 9, like),
                array3(a, 10, like), array3(a, 11, like), array3(a, 12, like),
                array3(a, 13, like), array2(a, 14, like), scalar(a, 2), array1(a, 15, I64))


@jit
def rnn_forward_companion_entry(a, like):
    """The forward's companion, on the forward entry's block."""
    project_in_chunks(array3(a, 0, like), array2(a, 2, like).T, array3(a, 10, like),
                      array3(a, 11, like), scalar(a, 2), array1(a, 15, I64))


@jit
def rnn_backward_entry(a, like):
    """Scalars ``zero_output, act, chunk``; arrays ``d_outputs, d_h, x_t, new, h_all, h_rec_all,
    packed, w_ih, w_hh, keep, recurrent, need, d_pre, both, result, d_x_t, d_x, d_w_ih, d_w_hh,
    d_b_ih, d_b_hh, sync``."""
    rnn_backward(array3(a, 0, like), array2(a, 1, like), array3(a, 2, like), array3(a, 3, like),
                 array3(a, 4, like), array3(a, 5, like), array2(a, 6, like), array2(a, 7, like),
                 array2(a, 8, like), array2(a, 9, BOOL), array2(a, 10, like), scalar(a, 0) != 0,
                 scalar(a, 1), array1(a, 11, BOOL), array3(a, 12, like), array2(a, 13, like),
                 array2(a, 14, like), array3(a, 15, like), array3(a, 16, like),
                 array2(a, 17, like), array2(a, 18, like), array1(a, 19, like),
                 array1(a, 20, like), scalar(a, 2), array1(a, 21, I64))


@jit
def rnn_backward_companion_entry(a, like):
    """The backward's companion, on the backward entry's block."""
    rnn_backward_weights(array3(a, 12, like), array3(a, 2, like), array3(a, 4, like),
                         array3(a, 5, like), array2(a, 10, like).size > 0, array2(a, 7, like),
                         array1(a, 11, BOOL), array2(a, 13, like), array2(a, 14, like),
                         array3(a, 15, like), array3(a, 16, like), array2(a, 17, like),
                         array2(a, 18, like), array1(a, 19, like), array1(a, 20, like),
                         scalar(a, 2), array1(a, 21, I64))


def _weights(arguments: Arguments, kernel, shapes) -> None:
    """The kernel's weights in order: per call from the inputs (``x`` is input 0, the present
    weights follow), or an empty constant where absent (biases, options that are off)."""
    position = 1
    for tensor, shape in zip(kernel.tensors, shapes):
        if tensor is None:
            arguments.constant(np.empty((0,) * len(shape), NUMPY_DTYPES[kernel.dtype]))
        else:
            arguments.tensor(INPUT, position, shape)
        position += tensor is not None


def _initial_states(arguments: Arguments, kernel, batch: int, sizes, with_state: bool) -> None:
    """The initial states: per call from the inputs that follow the weights (seen as
    ``(B, size)``; the call gives them in the final states' shape), or zeros."""
    first = 1 + len(kernel.weights)
    for k, size in enumerate(sizes):
        if with_state:
            arguments.tensor(INPUT, first + k, (batch, size))
        else:
            arguments.constant(np.zeros((batch, size), NUMPY_DTYPES[kernel.dtype]))


def _keep(arguments: Arguments, kernel, batch: int, steps: int, states: int, masked: bool) -> None:
    """The steps each row keeps, ``(B, T)`` booleans: per call from the input that follows the
    weights and the ``states`` initial states given as inputs, or all true."""
    if masked:
        arguments.tensor(INPUT, 1 + len(kernel.weights) + states, (batch, steps))
    else:
        arguments.constant(np.ones((batch, steps), np.bool_))


def _recurrent(arguments: Arguments, kernel, batch: int, width: int, states: int, call) -> None:
    """The recurrent-dropout mask, ``(B, width)``: per call from the last input (after the
    ``states`` initial states and the keep mask, when given), or an empty constant."""
    if call.dropped:
        position = 1 + len(kernel.weights) + states + call.masked
        arguments.tensor(INPUT, position, (batch, width))
    else:
        arguments.constant(np.empty((0, 0), NUMPY_DTYPES[kernel.dtype]))


def _final_shape(batch: int, size: int, stacked: bool) -> tuple[int, ...]:
    """A final state's shape: ``(1, B, s)`` (torch.nn's ``h_n`` of one layer) or ``(B, s)``."""
    return (1, batch, size) if stacked else (batch, size)


def _state_gradients(count: int, with_state: bool) -> list:
    """The initial states' gradients: the kernels leave them in the copies of the final states'
    incoming gradients (incoming gradients 1, 2, ...), which the C++ side names ``-2 - k``."""
    return [(-2 - k, 0) for k in range(1, 1 + count)] if with_state else []


def _one_state_recipe(kernel, call, scalars, saved_shapes, backward_shape):
    """SimpleRNN's and GRU's recipe, which differ only in their scalars, saved arrays and work
    arrays. Forward arrays: ``x, h0, w_ih, w_hh, b_ih, b_hh, keep, recurrent, outputs, h_final,
    *saved, sync``; backward: ``d_outputs, d_h, *saved, w_ih, w_hh, keep, recurrent, need,
    *work, d_x, d_w_ih, d_w_hh, d_b_ih, d_b_hh, sync`` (``sync``: see :mod:`~rnnkit.kernels.
    _sync`, for a family with companions). ``saved_shapes`` and ``backward_shape(needs) ->
    (gradient shapes, need, work shapes)`` are the family module's, which allocates the same
    arrays on the Python path. ``scalars`` is ``(forward, backward)``, each starting with
    ``zero_output``. ``call`` is :func:`recipe`'s :class:`Call`."""
    batch, steps, with_state, stacked = call.batch, call.steps, call.with_state, call.stacked
    w_ih, w_hh, b_ih, b_hh = kernel.tensors
    width, features = w_ih.shape
    hidden = w_hh.shape[1]
    weight_shapes = ((width, features), (width, hidden), (width,), (width,))

    forward = Arguments(scalars[0])
    forward.tensor(INPUT, 0, (batch, steps, features))
    _initial_states(forward, kernel, batch, (hidden,), with_state)
    _weights(forward, kernel, weight_shapes)
    _keep(forward, kernel, batch, steps, with_state, call.masked)
    _recurrent(forward, kernel, batch, hidden, with_state, call)
    outputs = forward.allocate((batch, steps, hidden))
    h_final = forward.allocate(_final_shape(batch, hidden, stacked), (batch, hidden))
    saved, saved_offsets = forward.allocate_parts(saved_shapes)
    forward.sync()

    has_ih, has_hh = b_ih is not None, b_hh is not None  # Keras cells have b_ih alone
    backwards = []
    for with_x in (False, True):
        backward = Arguments(scalars[1])
        backward.tensor(GRADIENT, 0, (batch, steps, hidden))
        backward.tensor(GRADIENT_COPY, 1, (batch, hidden))
        for shape, offset in zip(saved_shapes, saved_offsets):
            backward.tensor(SAVED, 0, shape, offset)
        backward.tensor(INPUT, 1, weight_shapes[0])
        backward.tensor(INPUT, 2, weight_shapes[1])
        _keep(backward, kernel, batch, steps, with_state, call.masked)
        _recurrent(backward, kernel, batch, hidden, with_state, call)
        # The gradients of (x, h0, w_ih, w_hh, b_ih, b_hh); h0's is always computed.
        gradient_shapes, need, work = backward_shape((with_x, False, True, True, has_ih, has_hh))
        backward.constant(need)
        backward.allocate_parts(work)  # allocation 0
        for shape in gradient_shapes:  # d_x, d_w_ih, d_w_hh, d_b_ih, d_b_hh
            backward.allocate(shape if isinstance(shape, tuple) else (shape,))
        backward.sync()
        backwards.append(backward)
    d_x = 1  # the allocation of x's gradient; the weights' follow
    present = (True, True, True, has_ih, has_hh)  # x, w_ih, w_hh, b_ih, b_hh
    gradients = [(d_x + k, 0) for k in range(5) if present[k]]
    gradients += _state_gradients(1, with_state) + [None] * (call.masked + call.dropped)
    return forward, backwards, (outputs, h_final), [saved], gradients


def rnn_recipe(kernel, call):
    hidden, features = kernel.tensors[0].shape
    batch, steps = call.batch, call.steps
    # With a chunk the GEMMs over all steps run on the companion thread (see _sync).
    chunk = 0 if call.single_core else pipeline_chunk("rnn", batch, steps, features, hidden, hidden)
    scalars = [call.zero_output, kernel.codes[0], chunk]  # zero_output, act, chunk

    def backward_shape(needs):
        return rnn_arrays._backward_shape(batch, steps, features, hidden, needs)

    packs = rnn_arrays.packing(NUMPY_DTYPES[kernel.dtype], batch, hidden)
    return *_one_state_recipe(kernel, call, (scalars, scalars),
                              rnn_arrays.saved_shapes(batch, steps, features, hidden,
                                                      call.dropped, packs),
                              backward_shape), chunk > 0


# -- GRU ----------------------------------------------------------------------------------------
@jit
def _gru_blocks(w_hh, reset_after):
    """``(first, n_block)`` as :func:`rnnkit.kernels.gru._recurrent_blocks` gives them."""
    if reset_after:
        return w_hh, np.empty((0, 0), w_hh.dtype)
    hidden = w_hh.shape[1]
    return w_hh[: 2 * hidden], w_hh[2 * hidden :]


@jit
def gru_forward_entry(a, like):
    """Scalars ``zero_output, act, rec_act, reset_after, blocks, chunk``; arrays ``x, h0, w_ih,
    w_hh, b_ih, b_hh, keep, recurrent, outputs, h_final, x_t, gates, aux, h_all, h_rec_all,
    packed, sync``."""
    first, n_block = _gru_blocks(array2(a, 3, like), scalar(a, 3) != 0)
    gru_forward(array3(a, 0, like), array2(a, 1, like), array2(a, 2, like).T, first, n_block,
                scalar(a, 4), array1(a, 4, like), array1(a, 5, like), scalar(a, 3) != 0,
                array2(a, 6, BOOL), array2(a, 7, like), scalar(a, 0) != 0, scalar(a, 1),
                scalar(a, 2), array3(a, 8, like), array2(a, 9, like), array3(a, 10, like),
                array3(a, 11, like), array3(a, 12, like), array3(a, 13, like),
                array3(a, 14, like), array2(a, 15, like), scalar(a, 5), array1(a, 16, I64))


@jit
def gru_forward_companion_entry(a, like):
    """The forward's companion, on the forward entry's block."""
    project_in_chunks(array3(a, 0, like), array2(a, 2, like).T, array3(a, 10, like),
                      array3(a, 11, like), scalar(a, 5), array1(a, 16, I64))


@jit
def gru_backward_entry(a, like):
    """Scalars ``zero_output, act, rec_act, reset_after, blocks, chunk``; arrays ``d_outputs,
    d_h, x_t, gates, aux, h_all, h_rec_all, packed, w_ih, w_hh, keep, recurrent, need, d_pre,
    d_proj, d_x_t, d_x, d_w_ih, d_w_hh, d_b_ih, d_b_hh, sync``."""
    reset_after = scalar(a, 3) != 0
    first, n_block = _gru_blocks(array2(a, 9, like), reset_after)
    gru_backward(array3(a, 0, like), array2(a, 1, like), array3(a, 2, like), array3(a, 3, like),
                 array3(a, 4, like), array3(a, 5, like), array3(a, 6, like), array2(a, 7, like),
                 array2(a, 8, like), first, n_block, scalar(a, 4), reset_after,
                 array2(a, 10, BOOL), array2(a, 11, like), scalar(a, 0) != 0, scalar(a, 1),
                 scalar(a, 2), array1(a, 12, BOOL), array3(a, 13, like), array3(a, 14, like),
                 array3(a, 15, like), array3(a, 16, like), array2(a, 17, like),
                 array2(a, 18, like), array1(a, 19, like), array1(a, 20, like), scalar(a, 5),
                 array1(a, 21, I64))


@jit
def gru_backward_companion_entry(a, like):
    """The backward's companion, on the backward entry's block."""
    gru_backward_weights(array3(a, 2, like), array3(a, 4, like), array3(a, 5, like),
                         array3(a, 6, like), array2(a, 11, like).size > 0, array2(a, 8, like),
                         scalar(a, 3) != 0, array1(a, 12, BOOL), array3(a, 13, like),
                         array3(a, 14, like), array3(a, 15, like), array3(a, 16, like),
                         array2(a, 17, like), array2(a, 18, like), array1(a, 19, like),
                         array1(a, 20, like), scalar(a, 5), array1(a, 21, I64))


def gru_recipe(kernel, call):
    batch, steps = call.batch, call.steps
    three_h, features = kernel.tensors[0].shape
    hidden = three_h // 3
    reset_after = bool(kernel.spec.reset_after)
    width = three_h if reset_after else 2 * hidden  # the rows of the first step GEMM's matrix
    act, rec_act = kernel.codes
    zero_output = call.zero_output
    # With a chunk the GEMMs over all steps run on the companion thread (see _sync).
    chunk = 0 if call.single_core else pipeline_chunk("gru", batch, steps, features, three_h,
                                                      hidden)
    forward_scalars = [zero_output, act, rec_act, reset_after,
                       column_blocks(batch, hidden, width), chunk]
    backward_scalars = [zero_output, act, rec_act, reset_after,
                        column_blocks(batch, width, hidden), chunk]

    def backward_shape(needs):
        return gru_arrays._backward_shape(batch, steps, features, hidden, width, needs)[:3]

    packs = gru_arrays.packing(NUMPY_DTYPES[kernel.dtype], batch, hidden)
    return *_one_state_recipe(kernel, call, (forward_scalars, backward_scalars),
                              gru_arrays.saved_shapes(batch, steps, features, hidden,
                                                      call.dropped, reset_after, packs),
                              backward_shape), chunk > 0


# -- LSTM (plain, peephole, layer norm, projection) -----------------------------------------
@jit
def lstm_forward_entry(a, like):
    """Scalars ``zero_output, act, rec_act, batch_minor, chunk``; arrays ``x, h0, c0, w_ih, w_hh,
    b_ih, b_hh, w_hr, peephole, ln (six), eps, keep, recurrent, outputs, h_final, c_final,
    saved, layout, sync``."""
    lstm_forward(array3(a, 0, like), array2(a, 1, like), array2(a, 2, like),
                 array2(a, 3, like).T, array2(a, 4, like), array1(a, 5, like),
                 array1(a, 6, like), array2(a, 7, like).T,
                 array2(a, 8, like), array1(a, 9, like), array1(a, 10, like), array1(a, 11, like),
                 array1(a, 12, like), array1(a, 13, like), array1(a, 14, like),
                 array1(a, 15, F64)[0], array2(a, 16, BOOL), array2(a, 17, like),
                 scalar(a, 0) != 0, scalar(a, 1), scalar(a, 2), scalar(a, 3) != 0,
                 array3(a, 18, like), array2(a, 19, like), array2(a, 20, like),
                 array1(a, 21, like), array2(a, 22, I64), scalar(a, 4), array1(a, 23, I64))


@jit
def lstm_forward_companion_entry(a, like):
    """The forward's companion, on the forward entry's block."""
    lstm_forward_inputs(array3(a, 0, like), array2(a, 3, like).T, array1(a, 5, like),
                        array1(a, 6, like), array1(a, 9, like), array1(a, 10, like),
                        array1(a, 12, like), array1(a, 15, F64)[0], scalar(a, 1), scalar(a, 2),
                        array1(a, 21, like), array2(a, 22, I64), scalar(a, 4),
                        array1(a, 23, I64))


@jit
def lstm_backward_entry(a, like):
    """Scalars ``zero_output, act, rec_act, batch_minor, chunk``; arrays ``d_outputs, saved,
    layout, w_ih, w_hh, w_hr, peephole, ln_ih_weight, ln_hh_weight, ln_c_weight, keep,
    recurrent, need, work, work_layout, d_x, d_h, d_c, d_w_ih, d_w_hh, d_b_ih, d_b_hh, d_w_hr,
    d_peep, d_ln, sync``."""
    lstm_backward(array3(a, 0, like), array1(a, 1, like), array2(a, 2, I64), array2(a, 3, like),
                  array2(a, 4, like), array2(a, 5, like),
                  array2(a, 6, like), array1(a, 7, like), array1(a, 8, like),
                  array1(a, 9, like), array2(a, 10, BOOL), array2(a, 11, like),
                  scalar(a, 0) != 0, scalar(a, 1), scalar(a, 2), scalar(a, 3) != 0,
                  array1(a, 12, BOOL), array1(a, 13, like), array2(a, 14, I64),
                  array3(a, 15, like), array2(a, 16, like), array2(a, 17, like),
                  array2(a, 18, like), array2(a, 19, like), array1(a, 20, like),
                  array1(a, 21, like), array2(a, 22, like), array2(a, 23, like),
                  array2(a, 24, like), scalar(a, 4), array1(a, 25, I64))


@jit
def lstm_backward_companion_entry(a, like):
    """The backward's companion, on the backward entry's block."""
    lstm_backward_weights(array1(a, 1, like), array2(a, 2, I64), array2(a, 3, like),
                          array1(a, 7, like), array2(a, 11, like).size > 0, array1(a, 12, BOOL),
                          array1(a, 13, like), array2(a, 14, I64), array3(a, 15, like),
                          array2(a, 18, like), array2(a, 19, like), array1(a, 20, like),
                          array1(a, 21, like), array2(a, 22, like), array2(a, 24, like),
                          scalar(a, 4), array1(a, 25, I64))


def lstm_recipe(kernel, call):
    batch, steps, with_state, stacked = call.batch, call.steps, call.with_state, call.stacked
    spec = kernel.spec
    w_ih, w_hh, b_ih, b_hh, w_hr, peep, *ln = kernel.tensors
    four_h, features = w_ih.shape
    hidden = four_h // 4
    proj = w_hr is not None
    rec = w_hr.shape[0] if proj else hidden  # the width of h: proj_size with a projection
    dtype = NUMPY_DTYPES[kernel.dtype]
    act, rec_act = kernel.codes
    norm = bool(spec.layer_norm)
    gate_major = lstm_arrays.gate_major(kernel.codes)
    packed = lstm_arrays.packing(dtype, batch, rec, hidden)
    size, layout, minor = lstm_arrays._forward_shape(
        batch, steps, features, hidden, rec, norm, call.dropped, proj, gate_major, packed)
    ln_shapes = ((four_h,),) * 4 + ((hidden,),) * 2
    weight_shapes = ((four_h, features), (four_h, rec), (four_h,), (four_h,),
                     (rec, hidden) if proj else (0, 0), (3, hidden), *ln_shapes)

    # With a chunk the GEMMs over all steps run on the companion thread (see _sync).
    chunk = 0 if call.single_core else pipeline_chunk("lstm", batch, steps, features, four_h, rec)
    forward = Arguments([call.zero_output, act, rec_act, minor, chunk])
    forward.tensor(INPUT, 0, (batch, steps, features))
    _initial_states(forward, kernel, batch, (rec, hidden), with_state)
    _weights(forward, kernel, weight_shapes)
    forward.constant(np.array([spec.layer_norm_epsilon], np.float64))
    _keep(forward, kernel, batch, steps, 2 * with_state, call.masked)
    _recurrent(forward, kernel, batch, rec, 2 * with_state, call)
    outputs = forward.allocate((batch, steps, rec))
    h_final = forward.allocate(_final_shape(batch, rec, stacked), (batch, rec))
    c_final = forward.allocate(_final_shape(batch, hidden, stacked), (batch, hidden))
    saved = forward.allocate((size,))
    forward.constant(layout)
    forward.sync()

    has_ih, has_hh = b_ih is not None, b_hh is not None  # Keras cells have b_ih alone
    weights_present = [t is not None for t in kernel.tensors]
    backwards = []
    for with_x in (False, True):
        needs = (with_x, False, False, True, True, has_ih, has_hh, proj, *weights_present[5:])
        shapes, need, work_size, work_layout, minor_b = lstm_arrays._backward_shape(
            batch, steps, features, hidden, rec, norm, proj, needs, gate_major, packed)
        backward = Arguments([call.zero_output, act, rec_act, minor_b, chunk])
        backward.tensor(GRADIENT, 0, (batch, steps, rec))
        backward.tensor(SAVED, 0, (size,))
        backward.constant(layout)
        backward.tensor(INPUT, 1, weight_shapes[0])
        backward.tensor(INPUT, 2, weight_shapes[1])
        options = [(4, weight_shapes[4]), (5, (3, hidden)), (6, (four_h,)), (8, (four_h,)),
                   (10, (hidden,))]  # w_hr, the peepholes and the three LN weights
        for index, shape in options:
            if kernel.tensors[index] is None:
                backward.constant(np.empty((0,) * len(shape), dtype))
            else:
                backward.tensor(INPUT, sum(weights_present[:index]) + 1, shape)
        _keep(backward, kernel, batch, steps, 2 * with_state, call.masked)
        _recurrent(backward, kernel, batch, rec, 2 * with_state, call)
        backward.constant(need)
        backward.allocate((work_size,))
        backward.constant(work_layout)
        d_x, d_w_ih, d_w_hh, d_b_ih, d_b_hh, d_w_hr = shapes
        backward.allocate(d_x)  # allocation 1
        backward.tensor(GRADIENT_COPY, 1, (batch, rec))
        backward.tensor(GRADIENT_COPY, 2, (batch, hidden))
        for shape in (d_w_ih, d_w_hh, (d_b_ih,), (d_b_hh,), d_w_hr):  # allocations 2-6
            backward.allocate(shape)
        backward.allocate((3, hidden) if peep is not None else (0, 0))  # d_peep: 7
        backward.allocate((6, four_h))  # d_ln: 8
        backward.sync()
        backwards.append(backward)
    gradients = [(1, 0), (2, 0), (3, 0)] + [(4, 0)] * has_ih + [(5, 0)] * has_hh
    gradients += [(6, 0)] * proj
    if peep is not None:
        gradients.append((7, 0))
    if ln[0] is not None:
        gradients += [(8, row * four_h) for row in range(6)]
    gradients += _state_gradients(2, with_state) + [None] * (call.masked + call.dropped)
    return forward, backwards, (outputs, h_final, c_final), [saved], gradients, chunk > 0


# -- entry points and recipes ------------------------------------------------------------------
SIGNATURE = types.void(types.CPointer(types.int64))


def _gru_forward_f32(a):
    gru_forward_entry(a, F32)


def _gru_forward_f64(a):
    gru_forward_entry(a, F64)


def _gru_backward_f32(a):
    gru_backward_entry(a, F32)


def _gru_backward_f64(a):
    gru_backward_entry(a, F64)


def _gru_forward_companion_f32(a):
    gru_forward_companion_entry(a, F32)


def _gru_forward_companion_f64(a):
    gru_forward_companion_entry(a, F64)


def _gru_backward_companion_f32(a):
    gru_backward_companion_entry(a, F32)


def _gru_backward_companion_f64(a):
    gru_backward_companion_entry(a, F64)


def _lstm_forward_f32(a):
    lstm_forward_entry(a, F32)


def _lstm_forward_f64(a):
    lstm_forward_entry(a, F64)


def _lstm_backward_f32(a):
    lstm_backward_entry(a, F32)


def _lstm_backward_f64(a):
    lstm_backward_entry(a, F64)


def _lstm_forward_companion_f32(a):
    lstm_forward_companion_entry(a, F32)


def _lstm_forward_companion_f64(a):
    lstm_forward_companion_entry(a, F64)


def _lstm_backward_companion_f32(a):
    lstm_backward_companion_entry(a, F32)


def _lstm_backward_companion_f64(a):
    lstm_backward_companion_entry(a, F64)


def _rnn_forward_f32(a):
    rnn_forward_entry(a, F32)


def _rnn_forward_f64(a):
    rnn_forward_entry(a, F64)


def _rnn_backward_f32(a):
    rnn_backward_entry(a, F32)


def _rnn_backward_f64(a):
    rnn_backward_entry(a, F64)


def _rnn_forward_companion_f32(a):
    rnn_forward_companion_entry(a, F32)


def _rnn_forward_companion_f64(a):
    rnn_forward_companion_entry(a, F64)


def _rnn_backward_companion_f32(a):
    rnn_backward_companion_entry(a, F32)


def _rnn_backward_companion_f64(a):
    rnn_backward_companion_entry(a, F64)


ENTRIES = {
    ("rnn", np.float32): (_rnn_forward_f32, _rnn_backward_f32, _rnn_forward_companion_f32,
                          _rnn_backward_companion_f32),
    ("rnn", np.float64): (_rnn_forward_f64, _rnn_backward_f64, _rnn_forward_companion_f64,
                          _rnn_backward_companion_f64),
    ("gru", np.float32): (_gru_forward_f32, _gru_backward_f32, _gru_forward_companion_f32,
                          _gru_backward_companion_f32),
    ("gru", np.float64): (_gru_forward_f64, _gru_backward_f64, _gru_forward_companion_f64,
                          _gru_backward_companion_f64),
    ("lstm", np.float32): (_lstm_forward_f32, _lstm_backward_f32, _lstm_forward_companion_f32,
                           _lstm_backward_companion_f32),
    ("lstm", np.float64): (_lstm_forward_f64, _lstm_backward_f64, _lstm_forward_companion_f64,
                           _lstm_backward_companion_f64),
}
BUILDERS = {"rnn": rnn_recipe, "gru": gru_recipe, "lstm": lstm_recipe}


@functools.cache
def entry_addresses(family: str, dtype) -> tuple[int, ...]:
    """The compiled entries' addresses (compiled, or loaded from numba's cache, on first use):
    forward and backward, then their companions where the family has them."""
    return tuple(cfunc(SIGNATURE, cache=True)(f).address for f in ENTRIES[family, dtype])


class Call(NamedTuple):
    """What a recipe is built for: the sizes; initial states given as inputs after the weights
    (``with_state``) or zeros; final states ``(1, B, s)`` (``stacked``) or ``(B, s)``; a mask
    ``(B, T)`` given as an input after them (``masked``), whose masked steps output zeros
    (``zero_output``) or repeat the previous output; a recurrent-dropout mask ``(B, W)`` given as
    the last input (``dropped``)."""

    batch: int
    steps: int
    with_state: bool = False
    stacked: bool = True
    masked: bool = False
    zero_output: bool = False
    dropped: bool = False
    single_core: bool = False  # no companion (see rnnkit.kernels._sync), as a half's call


def recipe(kernel, call: Call):
    """The native recipe of ``kernel`` for ``call``; ``None`` without the build or for a family
    without entries.

    With two threads and a batch large enough (see :func:`~rnnkit.kernels._common.halves_rows`)
    the call is split in two halves of the batch, each with a recipe of its own for its rows,
    which the C++ side runs at once on the two cores: the rows of a recurrence are independent,
    so the halves never wait for each other. Their outputs and the gradients of x and of the
    initial states are the two halves' rows of one tensor; the weights' gradients are summed."""
    name = kernel.spec.family
    if BUILDERS.get(name) is None or native.extension() is None:
        return None
    spec = kernel.spec
    width = GATES[name] * spec.hidden_size
    first = halves_rows(call.batch, call.steps, kernel.tensors[0].shape[1], width,
                        spec.recurrent_size, NUMPY_DTYPES[kernel.dtype])
    if first == 0:
        return _recipe(kernel, call)[0]
    (one, shapes), (other, _) = (_recipe(kernel, call._replace(batch=rows, single_core=True))
                                 for rows in (first, call.batch - first))
    made = native.extension().Recipe()
    state_dim = 1 if call.stacked else 0
    states = len(shapes) - 1
    input_dims = ([0] + [-1] * len(kernel.weights) + [state_dim] * (states * call.with_state)
                  + [0] * (call.masked + call.dropped))
    returned_dims = [0] + [state_dim] * states
    whole = [list(shape) for shape in shapes]
    for shape, dim in zip(whole, returned_dims):
        shape[dim] = call.batch
    made.set_halves(one, other, input_dims, returned_dims, whole)  # each half on one BLAS thread
    return made


def _recipe(kernel, call: Call):
    """``(recipe, shapes of its returned tensors)`` for ``call`` as one call."""
    name = kernel.spec.family
    forward, backwards, returned, saved, gradients, pipelined = BUILDERS[name](kernel, call)
    entries = entry_addresses(name, NUMPY_DTYPES[kernel.dtype])
    companions = entries[2:4] if pipelined else (0, 0)
    made = native.make_recipe(forward, backwards, entries[:2], returned, saved, gradients,
                              companions)
    spec = kernel.spec
    made.threads = gemm_threads(call.batch, GATES[name] * spec.hidden_size, spec.recurrent_size)
    return made, [forward.allocations[index] for index in returned]
