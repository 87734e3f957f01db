"""Fused SimpleRNN over a whole sequence, forward and backpropagation through time.

    h_t = act(W x_t + b_ih + b_hh + U (m ⊙ h_{t-1}))        (m: the recurrent-dropout mask)

The forward is one compiled call: ``W x + b`` for all steps as one GEMM, then per step the GEMM
``U ĥ`` and the activation. The backward is one compiled call too: the steps in reverse give the
pre-activation gradients of all steps, from which ``dX``, ``dW``, ``dU`` and the biases are one
GEMM (or sum) each. The ``autograd.Function`` of :mod:`rnnkit.kernels.fused` drives them through
this module's array-level interface.
"""

from __future__ import annotations

import numpy as np

from rnnkit.kernels._common import Plan, arrays_of, blas_threads, transposed
from rnnkit.kernels._numba import (
    activate,
    jit,
    times_derivative,
)
from rnnkit.kernels._rows import (
    copy,
    emit_outputs,
    input_x_gradient,
    masked_state_grad,
    recurrent_rows,
    route_output_grads,
    sum_rows,
    time_major_projection,
    weight_gradients,
)


@jit
def rnn_forward(x, h0, weight_ih_t, weight_hh_t, bias_ih, bias_hh, keep, recurrent_mask,
                zero_output, act, outputs, h_final, x_t, new, h_all, h_rec_all):
    """Run the recurrence on ``x (B, T, I)`` from ``h0 (B, H)``.

    Fills ``outputs (B, T, H)``, ``h_final`` and, for the backward pass, ``x_t (T, B, I)``,
    ``new (T, B, H)`` (the unmasked ``h_t`` of every step), the carried ``h_all (T+1, B, H)`` and,
    with a recurrent mask, ``h_rec_all (T, B, H)`` (each step's ``m ⊙ h_{t-1}``).
    """
    batch, steps = x.shape[0], x.shape[1]
    hidden = h0.shape[1]
    x_proj = time_major_projection(x, x_t, weight_ih_t, bias_ih, bias_hh, hidden)
    for b in range(batch):
        copy(h0[b], h_all[0, b])
    for t in range(steps):
        h_rec = recurrent_rows(h_all, h_rec_all, recurrent_mask, t)
        new_t = new[t]
        np.dot(h_rec, weight_hh_t, new_t)
        for b in range(batch):
            row = new_t[b]
            for j in range(hidden):
                row[j] += x_proj[t, b, j]
            activate(act, row, row)
        emit_outputs(outputs, h_all, new_t, t, keep, zero_output)
    for b in range(batch):
        copy(h_all[steps, b], h_final[b])


@jit
def rnn_backward(d_outputs, d_h, x_t, new, h_all, h_rec_all, weight_ih, weight_hh, keep,
                 recurrent_mask, zero_output, act, need, d_x, d_weight_ih, d_weight_hh,
                 d_bias_ih, d_bias_hh):
    """Backpropagate through time. ``d_h`` holds the final state's gradient on entry and the
    initial state's on exit. ``need`` flags ``(dX, dW_ih, dW_hh, db_ih, db_hh)``; the arrays of
    unneeded gradients may be empty."""
    steps, batch, hidden = new.shape
    rows = batch * steps
    d_pre = np.empty_like(new)
    carry = np.zeros_like(d_h)
    d_rec = np.empty_like(d_h)
    for t in range(steps - 1, -1, -1):
        d_t = d_pre[t]
        route_output_grads(d_outputs, carry, t, keep, zero_output, d_h, d_t)
        for b in range(batch):
            times_derivative(act, new[t, b], d_t[b])
        np.dot(d_t, weight_hh, d_rec)
        masked_state_grad(d_rec, recurrent_mask, t, keep, d_h)
    d_pre2 = d_pre.reshape(rows, hidden)
    h_rec = h_rec_all if recurrent_mask.size > 0 else h_all[:steps]
    weight_gradients(d_pre2, x_t.reshape(rows, x_t.shape[2]), h_rec.reshape(rows, hidden),
                     need[1], need[2], d_weight_ih, d_weight_hh)
    sum_rows(d_pre2, d_bias_ih)
    sum_rows(d_pre2, d_bias_hh)
    if need[0]:
        input_x_gradient(d_pre2, x_t, weight_ih, d_x)


def rnn_forward_arrays(plan: Plan, x_, h0_, w_ih, w_hh, b_ih, b_hh):
    """Run the compiled forward; returns ``(outputs, h_T, saved)`` as arrays."""
    batch, steps, features = x_.shape
    hidden, dtype = h0_.shape[1], x_.dtype
    outputs = np.empty((batch, steps, hidden), dtype)
    h_final = np.empty((batch, hidden), dtype)
    saved = (
        np.empty((steps, batch, features), dtype),  # x_t
        np.empty((steps, batch, hidden), dtype),  # new
        np.empty((steps + 1, batch, hidden), dtype),  # h_all
        np.empty((steps if plan.recurrent.size else 0, batch, hidden), dtype),  # h_rec_all
    )
    with blas_threads(plan.threads):
        rnn_forward(x_, h0_, w_ih.T, transposed(w_hh), b_ih, b_hh, plan.keep, plan.recurrent,
                    plan.zero_output, plan.activation, outputs, h_final, *saved)
    return outputs, h_final, saved


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


def backward(plan: Plan, saved, d_outputs, d_finals, needs) -> tuple:
    """The gradients of ``(x, h0, *FIELDS)`` flagged in ``needs`` (others empty)."""
    loop_saved, x, (weight_ih, weight_hh, _, _) = saved
    dtype = x.dtype
    batch, steps, features = x.shape
    hidden = weight_hh.shape[1]
    d_h = np.array(d_finals[0], dtype, order="C")  # a copy: filled in place
    grads = (
        np.empty((batch if needs[0] else 0, steps, features), dtype),
        d_h,
        np.empty((hidden, features) if needs[2] else (0, 0), dtype),
        np.empty((hidden, hidden) if needs[3] else (0, 0), dtype),
        np.empty(hidden if needs[4] else 0, dtype),
        np.empty(hidden if needs[5] else 0, dtype),
    )
    need = np.array([needs[0], needs[2], needs[3], needs[4], needs[5]])
    rnn_backward(d_outputs, d_h, *loop_saved, weight_ih, weight_hh, plan.keep, plan.recurrent,
                 plan.zero_output, plan.activation, need, grads[0], *grads[2:])
    return grads
