"""Fused SimpleRNN over a whole sequence, forward and backpropagation through time.

    h_t = act(W x_t + b_ih + b_hh + U (m ⊙ h_{t-1}))        (m: the recurrent-dropout mask)

The forward is one compiled call: ``W x + b`` for all steps as one GEMM, then per step the GEMM
``U ĥ`` and the activation. The backward is one compiled call too: the steps in reverse give the
pre-activation gradients of all steps, from which ``dX``, ``dW``, ``dU`` and the biases are one
GEMM (or sum) each; the backward's work arrays are kept between calls (fresh memory that size
costs a page fault per 4 kB on every call). In float32 at B > 1 the step GEMMs of both passes
run on ``U`` packed once per call, where MKL is found (:mod:`rnnkit.kernels._mkl`). The
``autograd.Function`` of :mod:`rnnkit.kernels.fused` drives them through this module's
array-level interface.
"""

from __future__ import annotations

import functools

import numpy as np

from rnnkit.kernels import _mkl
from rnnkit.kernels._common import (
    Plan,
    arrays_of,
    gate_gradient_shapes,
    recycled,
    workspace,
)
from rnnkit.kernels._mkl import pack, pack_transposed, packed_product, restore, serial
from rnnkit.kernels._numba import (
    TANH,
    activate,
    jit,
    tanh_t,
    times_derivative,
)
from rnnkit.kernels._rows import (
    both_weights_at_once,
    copy,
    emit_outputs,
    input_x_gradient_into,
    masked_state_grad,
    project_steps,
    recurrent_rows,
    repeat_rows,
    route_output_grads,
    sum_rows,
    weight_gradients_into,
)
from rnnkit.kernels._sync import chunk_count, project_in_chunks, publish, wait_for


@jit
def _activate_block(act, block, product, bias):
    """``block = act(block + product + bias)`` over one step's ``(B*H,)`` values, flat: ``x̂``
    in, ``h_t`` out; ``bias`` is the biases repeated for every row.

    One loop over the whole batch, tanh inlined: LLVM vectorises it, and a loop this long keeps
    the vector units busy where a loop per row of a few vectors waits on each one's latency
    (a row loop took about 80 ns a call beyond its work at H=32, measured).
    """
    if act == TANH:
        for j in range(block.shape[0]):
            block[j] = tanh_t(block[j] + product[j] + bias[j])
        return
    for j in range(block.shape[0]):
        block[j] += product[j] + bias[j]
    activate(act, block, block)


@jit
def rnn_forward(x, h0, weight_ih_t, weight_hh, bias_ih, bias_hh, keep, recurrent_mask,
                zero_output, act, outputs, h_final, x_t, new, h_all, h_rec_all, packed, chunk,
                sync):
    """Run the recurrence on ``x (B, T, I)`` from ``h0 (B, H)``; ``weight_hh`` is ``U (H, H)`` as
    stored (C-contiguous).

    Fills ``outputs (B, T, H)``, ``h_final`` and, for the backward pass, ``x_t (T, B, I)``,
    ``new (T, B, H)`` (the unmasked ``h_t`` of every step), the carried ``h_all (T+1, B, H)`` and,
    with a recurrent mask, ``h_rec_all (T, B, H)`` (each step's ``m ⊙ h_{t-1}``). Each step's
    ``ĥ U^T`` runs on ``U^T`` packed into ``packed (1, P)`` where it has columns (see
    :func:`packing`), else on a transposed copy. With a ``chunk``, the companion
    (:func:`~rnnkit.kernels._sync.project_in_chunks`) projects the inputs.
    """
    batch, steps, features = x.shape
    hidden = h0.shape[1]
    # Written straight into ``new``, which each step then activates in place; the biases join
    # the step's row pass, while the row is in cache.
    if chunk == 0:
        project_steps(x, weight_ih_t, x_t, new, 0, steps)
    flat = batch * hidden
    bias = np.zeros(hidden, x.dtype)
    if bias_ih.size > 0:
        bias += bias_ih
    if bias_hh.size > 0:
        bias += bias_hh
    bias_rows = np.empty((1, flat), x.dtype)  # the biases repeated for every row
    repeat_rows(bias, batch, bias_rows)
    for b in range(batch):
        copy(h0[b], h_all[0, b])
    packs = packed.shape[1] > 0
    threads = serial(packs)
    if packs:
        pack_transposed(weight_hh, packed[0])
        weight_hh_t = np.empty((0, 0), x.dtype)
    else:
        # A C-contiguous copy: OpenBLAS's small GEMMs ran about 30% faster on it than on the
        # transposed view (measured at 128x512).
        weight_hh_t = np.ascontiguousarray(weight_hh.T)
    product = np.empty_like(h0)  # U ĥ
    for t in range(steps):
        if chunk > 0 and t % chunk == 0:
            wait_for(sync, 0, t // chunk + 1)
        h_rec = recurrent_rows(h_all, h_rec_all, recurrent_mask, t)
        if packs:
            packed_product(h_rec, packed[0], product)
        else:
            np.dot(h_rec, weight_hh_t, product)
        _activate_block(act, new[t].reshape(flat), product.reshape(flat), bias_rows[0])
        emit_outputs(outputs, h_all, new[t], t, keep, zero_output)
    restore(threads)
    for b in range(batch):
        copy(h_all[steps, b], h_final[b])


@jit
def rnn_backward(d_outputs, d_h, x_t, new, h_all, h_rec_all, packed, weight_ih, weight_hh, keep,
                 recurrent_mask, zero_output, act, need, d_pre, both, result, d_x_t, d_x,
                 d_weight_ih, d_weight_hh, d_bias_ih, d_bias_hh, chunk, sync):
    """Backpropagate through time. ``d_h`` holds the final state's gradient on entry and the
    initial state's on exit. The forward's ``packed`` buffer, where it has columns, takes ``U``
    packed for each step's ``d(h) = d(x̂) U``. ``need`` flags ``(dX, dW_ih, dW_hh, db_ih,
    db_hh)``; the arrays of unneeded gradients may be empty. ``d_pre (T, B, H)`` and the work
    arrays of :func:`~rnnkit.kernels._rows.weight_gradients_into` and (for ``dX``) ``d_x_t`` are
    kept by the caller between calls. With a ``chunk``, the companion
    (:func:`rnn_backward_weights`) computes the gradients that are GEMMs over all steps."""
    steps, batch, hidden = new.shape
    carry = np.zeros_like(d_h)
    d_rec = np.empty_like(d_h)
    packs = packed.shape[1] > 0
    threads = serial(packs)
    if packs:
        pack(weight_hh, packed[0])
    for t in range(steps - 1, -1, -1):
        d_t = d_pre[t]
        route_output_grads(d_outputs, carry, t, keep, zero_output, d_h, d_t)
        times_derivative(act, new[t].reshape(batch * hidden), d_t.reshape(batch * hidden))
        if packs:
            packed_product(d_t, packed[0], d_rec)
        else:
            np.dot(d_t, weight_hh, d_rec)
        masked_state_grad(d_rec, recurrent_mask, t, keep, d_h)
        if chunk > 0 and t % chunk == 0:  # the chunk's gradients, for the companion
            publish(sync, 0, chunk_count(steps, chunk) - t // chunk)
    restore(threads)
    if chunk == 0:
        rnn_step_gradients(d_pre, x_t, h_all, h_rec_all, recurrent_mask.size > 0, weight_ih,
                           need, both, result, d_x_t, d_x, d_weight_ih, d_weight_hh, d_bias_ih,
                           d_bias_hh, 0, steps, False)


@jit
def rnn_step_gradients(d_pre, x_t, h_all, h_rec_all, has_mask, weight_ih, need, both, result,
                       d_x_t, d_x, d_weight_ih, d_weight_hh, d_bias_ih, d_bias_hh, t0, t1,
                       accumulate):
    """What steps ``t0 .. t1 - 1`` give, from their pre-activation gradients, to the weights' and
    biases' gradients (added to the other steps' with ``accumulate``) and to ``x``'s: a GEMM (or
    a sum) each over the steps' rows."""
    steps, batch, hidden = d_pre.shape
    features = x_t.shape[2]
    total = steps * batch
    n0, n1 = t0 * batch, t1 * batch
    d_pre2 = d_pre.reshape(total, hidden)[n0:n1]
    h_rec = (h_rec_all if has_mask else h_all[:steps]).reshape(total, hidden)[n0:n1]
    weight_gradients_into(d_pre2, x_t.reshape(total, features)[n0:n1], h_rec, need[1], need[2],
                          both[n0:n1], result, d_weight_ih, d_weight_hh, accumulate)
    sum_rows(d_pre2, d_bias_ih, accumulate)
    sum_rows(d_pre2, d_bias_hh, accumulate)
    if need[0]:
        input_x_gradient_into(d_pre2, weight_ih, d_x_t, d_x, t0, t1)


@jit
def rnn_backward_weights(d_pre, x_t, h_all, h_rec_all, has_mask, weight_ih, need, both, result,
                         d_x_t, d_x, d_weight_ih, d_weight_hh, d_bias_ih, d_bias_hh, chunk,
                         sync):
    """The backward's companion (see :mod:`rnnkit.kernels._sync`): :func:`rnn_step_gradients`
    chunk by chunk, last chunk first, each once :func:`rnn_backward` has published it."""
    steps = d_pre.shape[0]
    count = chunk_count(steps, chunk)
    for k in range(count - 1, -1, -1):
        wait_for(sync, 0, count - k)
        rnn_step_gradients(d_pre, x_t, h_all, h_rec_all, has_mask, weight_ih, need, both, result,
                           d_x_t, d_x, d_weight_ih, d_weight_hh, d_bias_ih, d_bias_hh, k * chunk,
                           min(steps, (k + 1) * chunk), k != count - 1)


def packing(dtype, batch: int, hidden: int) -> bool:
    """Whether the step GEMMs run on ``U`` packed once per call (see
    :func:`rnnkit.kernels._mkl.worthwhile`)."""
    return _mkl.worthwhile(dtype, batch, batch * hidden * hidden)


def saved_shapes(batch, steps, features, hidden, masked, packs) -> tuple:
    """The shapes of the forward's saved arrays ``x_t, new, h_all, h_rec_all, packed`` (see
    :func:`rnn_forward`; ``h_rec_all`` is empty without a recurrent mask, ``packed`` without
    ``packs``). U packed for the forward and for the backward takes the same room (it is
    square)."""
    room = _mkl.packed_size(batch, hidden, hidden) if packs else 0
    return ((steps, batch, features), (steps, batch, hidden), (steps + 1, batch, hidden),
            (steps if masked else 0, batch, hidden), (1, room))


def rnn_forward_arrays(plan: Plan, x_, h0_, w_ih, w_hh, b_ih, b_hh):
    """Run the compiled forward (on the caller's BLAS threads); returns ``(outputs, h_T,
    saved)`` as arrays."""
    batch, steps, features = x_.shape
    hidden, dtype = h0_.shape[1], x_.dtype
    outputs = recycled((batch, steps, hidden), dtype)
    h_final = np.empty((batch, hidden), dtype)
    shapes = saved_shapes(batch, steps, features, hidden, plan.recurrent.size > 0,
                          packing(dtype, batch, hidden))
    saved = tuple(recycled(shape, dtype) for shape in shapes)
    # Here the companion runs first, then the recurrence; the native call runs them at once.
    sync = np.zeros(1, np.int64)
    if plan.chunk > 0:
        project_in_chunks(x_, w_ih.T, saved[0], saved[1], plan.chunk, sync)
    rnn_forward(x_, h0_, w_ih.T, w_hh, b_ih, b_hh, plan.keep, plan.recurrent,
                plan.zero_output, plan.activation, outputs, h_final, *saved, plan.chunk, sync)
    return outputs, h_final, saved


STATES = ("h",)  # the recurrent states, in the order calls give them
FIELDS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def supports(spec, weights) -> bool:
    """SimpleRNN has no options beyond the activation, checked by the dispatcher."""
    return True


def weight_tensors(spec, weights) -> tuple:
    """The tensors in :data:`FIELDS` order (``None`` for absent biases)."""
    return tuple(getattr(weights, name) for name in FIELDS)


def prepare(spec, tensors, dtype) -> tuple:
    """The weights as arrays (views where the tensors are contiguous; absent biases empty)."""
    return tuple(arrays_of(dtype, *tensors))


def forward(plan: Plan, x, states, prepared):
    """``x (B, T, I)``, ``states = [h0 (B, H)]`` -> ``(outputs (B, T, H), [h_T], saved)``."""
    outputs, h_final, saved = rnn_forward_arrays(plan, x, states[0], *prepared)
    return outputs, (h_final,), (saved, x, prepared)


@functools.lru_cache(maxsize=64)
def _backward_shape(batch, steps, features, hidden, needs):
    """What a backward of these sizes and ``needs`` needs besides its arrays (kept per sizes):
    the shapes of the gradients of ``(x, *FIELDS)``, the ``need`` flags the loops take and the
    shapes of the work arrays ``d_pre``, ``both``, ``result``, ``d_x_t``."""
    rows = steps * batch
    both_weights = needs[2] and needs[3] and both_weights_at_once()
    shapes, need = gate_gradient_shapes(batch, steps, features, hidden, hidden, needs)
    work = (
        (steps, batch, hidden),
        (rows, features + hidden) if both_weights else (0, 0),
        (hidden, features + hidden) if both_weights else (0, 0),
        (steps if needs[0] else 0, batch, features),
    )
    return shapes, need, work


WORK_NAMES = ("rnn_d_pre", "rnn_both", "rnn_result", "rnn_d_x_t")


def backward(plan: Plan, saved, d_outputs, d_finals, needs) -> tuple:
    """The gradients of ``(x, h0, *FIELDS)`` flagged in ``needs`` (others empty)."""
    loop_saved, x, (weight_ih, weight_hh, _, _) = saved
    dtype = x.dtype
    batch, steps, features = x.shape
    shapes, need, work = _backward_shape(batch, steps, features, weight_hh.shape[1], tuple(needs))
    d_x, d_weight_ih, d_weight_hh, d_bias_ih, d_bias_hh = (np.empty(s, dtype) for s in shapes)
    d_h = np.array(d_finals[0], dtype, order="C")  # a copy: filled in place
    works = tuple(map(workspace, WORK_NAMES, work, (dtype,) * 4))
    gradients = (d_x, d_weight_ih, d_weight_hh, d_bias_ih, d_bias_hh)
    sync = np.zeros(1, np.int64)
    rnn_backward(d_outputs, d_h, *loop_saved, weight_ih, weight_hh, plan.keep, plan.recurrent,
                 plan.zero_output, plan.activation, need, *works, *gradients, plan.chunk, sync)
    if plan.chunk > 0:  # the companion, after the recurrence here (at once in the native call)
        x_t, _, h_all, h_rec_all, _ = loop_saved
        rnn_backward_weights(works[0], x_t, h_all, h_rec_all, plan.recurrent.size > 0, weight_ih,
                             need, *works[1:], *gradients, plan.chunk, sync)
    return d_x, d_h, d_weight_ih, d_weight_hh, d_bias_ih, d_bias_hh
