"""Fused GRU over a whole sequence, in both of Keras's forms, forward and BPTT.

With ``x̂_t = W x_t + b_ih`` (plus the parts of ``b_hh`` that add straight to it) and
``ĥ = m ⊙ h_{t-1}`` (``m`` the recurrent-dropout mask)::

    r_t = σ(x̂_r + U_r ĥ)          z_t = σ(x̂_z + U_z ĥ)
    reset_after=True:   n_t = tanh(x̂_n + r_t ⊙ (U_n ĥ + b_hn))
    reset_after=False:  n_t = tanh(x̂_n + U_n (r_t ⊙ ĥ))
    h_t = z_t ⊙ h_{t-1} + (1 - z_t) ⊙ n_t

The forward is one compiled call: ``x̂`` for all steps as one GEMM, then per step the recurrent
GEMM (two when the reset gate comes first) and one fused elementwise pass. The backward is one
compiled call too, ending with one GEMM per weight gradient. The ``autograd.Function`` of
:mod:`rnnkit.kernels.fused` drives them through this module's array-level interface.
"""

from __future__ import annotations

import numpy as np

from rnnkit.kernels._common import Plan, arrays_of, blas_threads, transposed
from rnnkit.kernels._numba import (
    ONE_32,
    SIGMOID,
    TANH,
    activate,
    derivative,
    jit,
    sigmoid_t,
    tanh_t,
)
from rnnkit.kernels._rows import (
    copy,
    emit_outputs,
    input_gradients,
    masked_state_grad,
    recurrent_rows,
    route_output_grads,
    sum_rows,
    time_major_projection,
)


@jit
def _after_row(h_proj, x_row, h_prev, bias_n, hidden, act, rec_act, gates, aux, h_new):
    """One reset-after row: ``gates (3H,)`` (activated ``r, z, n``), ``aux = U_n ĥ + b_hn`` and
    the unmasked ``h_new``; ``h_proj (3H,)`` holds ``U ĥ``, ``bias_n (H,)`` is ``b_hn``."""
    two_h = 2 * hidden
    if act == TANH and rec_act == SIGMOID:
        for j in range(hidden):
            a = h_proj[two_h + j] + bias_n[j]
            r = sigmoid_t(h_proj[j] + x_row[j])
            z = sigmoid_t(h_proj[hidden + j] + x_row[hidden + j])
            n = tanh_t(x_row[two_h + j] + r * a)
            gates[j], gates[hidden + j], gates[two_h + j] = r, z, n
            aux[j] = a
            h_new[j] = z * h_prev[j] + (ONE_32 - z) * n
        return
    for j in range(two_h):
        gates[j] = h_proj[j] + x_row[j]
    activate(rec_act, gates[:two_h], gates[:two_h])
    for j in range(hidden):
        aux[j] = h_proj[two_h + j] + bias_n[j]
        gates[two_h + j] = x_row[two_h + j] + gates[j] * aux[j]
    activate(act, gates[two_h:], gates[two_h:])
    for j in range(hidden):
        z = gates[hidden + j]
        h_new[j] = z * h_prev[j] + (ONE_32 - z) * gates[two_h + j]


@jit
def gru_forward(x, h0, weight_ih_t, first_t, n_t, bias_ih, bias_hh, reset_after, keep,
                recurrent_mask, zero_output, act, rec_act, outputs, h_final, x_t, gates, aux,
                h_all, h_rec_all):
    """Run the recurrence on ``x (B, T, I)`` from ``h0 (B, H)``.

    ``first_t`` is ``U^T (H, 3H)`` when ``reset_after``, else ``U_rz^T (H, 2H)`` with
    ``n_t = U_n^T (H, H)``. Fills ``outputs (B, T, H)``, ``h_final`` and, for the backward pass,
    ``x_t (T, B, I)``, ``gates (T, B, 3H)`` (activated ``r, z, n``), ``aux (T, B, H)`` (``U_n ĥ
    + b_hn`` if ``reset_after``, else ``r ⊙ ĥ``), the carried ``h_all (T+1, B, H)`` and, with a
    recurrent mask, ``h_rec_all (T, B, H)``.
    """
    batch, steps = x.shape[0], x.shape[1]
    hidden = h0.shape[1]
    two_h = 2 * hidden
    x_proj = time_major_projection(x, x_t, weight_ih_t, bias_ih, bias_hh,
                                   two_h if reset_after else 3 * hidden)
    for b in range(batch):
        copy(h0[b], h_all[0, b])
    h_proj = np.empty((batch, first_t.shape[1]), x.dtype)
    bias_n = np.zeros(hidden, x.dtype)  # b_hn, inside the reset product
    if reset_after and bias_hh.size > 0:
        copy(bias_hh[two_h:], bias_n)
    h_new = np.empty_like(h0)
    n_pre = np.empty_like(h0)
    for t in range(steps):
        h_rec = recurrent_rows(h_all, h_rec_all, recurrent_mask, t)
        np.dot(h_rec, first_t, h_proj)
        if reset_after:
            for b in range(batch):
                _after_row(h_proj[b], x_proj[t, b], h_all[t, b], bias_n, hidden, act, rec_act,
                           gates[t, b], aux[t, b], h_new[b])
        else:
            reset_h = aux[t]
            for b in range(batch):
                g = gates[t, b]
                for j in range(two_h):
                    g[j] = h_proj[b, j] + x_proj[t, b, j]
                activate(rec_act, g[:two_h], g[:two_h])
                for j in range(hidden):
                    reset_h[b, j] = g[j] * h_rec[b, j]
            np.dot(reset_h, n_t, n_pre)
            for b in range(batch):
                g = gates[t, b]
                for j in range(hidden):
                    g[two_h + j] = n_pre[b, j] + x_proj[t, b, two_h + j]
                activate(act, g[two_h:], g[two_h:])
                for j in range(hidden):
                    z = g[hidden + j]
                    h_new[b, j] = z * h_all[t, b, j] + (ONE_32 - z) * g[two_h + j]
        emit_outputs(outputs, h_all, h_new, t, keep, zero_output)
    for b in range(batch):
        copy(h_all[steps, b], h_final[b])


@jit
def gru_backward(d_outputs, d_h, x_t, gates, aux, h_all, h_rec_all, weight_ih, first, n_block,
                 reset_after, keep, recurrent_mask, zero_output, act, rec_act, need, d_x,
                 d_weight_ih, d_weight_hh, d_bias_ih, d_bias_hh):
    """Backpropagate through time. ``first`` and ``n_block`` are ``gru_forward``'s untransposed.

    ``d_h`` holds the final state's gradient on entry and the initial state's on exit. ``need``
    flags ``(dX, dW_ih, dW_hh, db_ih, db_hh)``; the arrays of unneeded gradients may be empty.
    """
    steps, batch, three_h = gates.shape
    hidden = three_h // 3
    two_h = 2 * hidden
    width = first.shape[0]  # 3H, or 2H when the reset gate comes first
    dtype = gates.dtype
    rows = batch * steps
    plain = act == TANH and rec_act == SIGMOID
    d_pre = np.empty((steps, batch, three_h), dtype)
    d_proj = np.empty((steps, batch, width), dtype)
    carry = np.zeros_like(d_h)
    d_new = np.empty_like(d_h)
    d_direct = np.empty_like(d_h)
    d_rec = np.empty_like(d_h)
    d_reset_h = np.empty_like(d_h)
    d_n_t = np.empty_like(d_h)
    d_bias_hn = np.zeros(hidden, dtype)
    for t in range(steps - 1, -1, -1):
        route_output_grads(d_outputs, carry, t, keep, zero_output, d_h, d_new)
        h_rec = h_all[t] if recurrent_mask.size == 0 else h_rec_all[t]
        for b in range(batch):
            g, h_prev, a = gates[t, b], h_all[t, b], aux[t, b]
            dp, dq = d_pre[t, b], d_proj[t, b]
            for j in range(hidden):
                reset, update, cand = g[j], g[hidden + j], g[two_h + j]
                dn = d_new[b, j]
                if plain:
                    d_z = dn * (h_prev[j] - cand) * (update * (ONE_32 - update))
                    d_n = dn * (ONE_32 - update) * (ONE_32 - cand * cand)
                else:
                    d_z = dn * (h_prev[j] - cand) * derivative(rec_act, update)
                    d_n = dn * (ONE_32 - update) * derivative(act, cand)
                dp[hidden + j] = d_z
                dp[two_h + j] = d_n
                d_n_t[b, j] = d_n
                d_direct[b, j] = dn * update
                dq[hidden + j] = d_z
                if reset_after:
                    if plain:
                        d_r = d_n * a[j] * (reset * (ONE_32 - reset))
                    else:
                        d_r = d_n * a[j] * derivative(rec_act, reset)
                    dp[j] = d_r
                    dq[j] = d_r
                    dq[two_h + j] = d_n * reset
                    d_bias_hn[j] += d_n * reset
        if reset_after:
            np.dot(d_proj[t], first, d_rec)
        else:
            np.dot(d_n_t, n_block, d_reset_h)  # d(r ⊙ ĥ)
            for b in range(batch):
                g = gates[t, b]
                for j in range(hidden):
                    d_r = d_reset_h[b, j] * h_rec[b, j] * derivative(rec_act, g[j])
                    d_pre[t, b, j] = d_r
                    d_proj[t, b, j] = d_r
            np.dot(d_proj[t], first, d_rec)
            for b in range(batch):
                for j in range(hidden):
                    d_rec[b, j] += d_reset_h[b, j] * gates[t, b, j]
        masked_state_grad(d_rec, recurrent_mask, t, keep, d_h)
        for b in range(batch):
            if keep[b, t]:
                for j in range(hidden):
                    d_h[b, j] += d_direct[b, j]
    d_pre2 = d_pre.reshape(rows, three_h)
    if need[2]:
        h_rec2 = (h_rec_all if recurrent_mask.size > 0 else h_all[:steps]).reshape(rows, hidden)
        if reset_after:
            np.dot(d_proj.reshape(rows, width).T, h_rec2, d_weight_hh)
        else:
            d_weight_hh[:two_h] = np.dot(d_proj.reshape(rows, width).T, h_rec2)
            d_n2 = np.ascontiguousarray(d_pre2[:, two_h:])
            d_weight_hh[two_h:] = np.dot(d_n2.T, aux.reshape(rows, hidden))
    sum_rows(d_pre2, d_bias_ih)
    if need[4]:
        if reset_after:
            sums = np.zeros(three_h, dtype)
            sum_rows(d_pre2, sums)
            for j in range(two_h):
                d_bias_hh[j] = sums[j]
            for j in range(hidden):
                d_bias_hh[two_h + j] = d_bias_hn[j]
        else:
            sum_rows(d_pre2, d_bias_hh)
    input_gradients(d_pre2, x_t, weight_ih, need[0], need[1], d_x, d_weight_ih)


def _recurrent_blocks(weight_hh: np.ndarray, reset_after: bool):
    """``(U, empty)`` when ``reset_after``, else ``(U_rz, U_n)``: C-contiguous views."""
    if reset_after:
        return weight_hh, np.empty((0, 0), weight_hh.dtype)
    hidden = weight_hh.shape[1]
    return weight_hh[: 2 * hidden], weight_hh[2 * hidden :]


def gru_forward_arrays(plan: Plan, x_, h0_, w_ih, w_hh, b_ih, b_hh):
    """Run the compiled forward; returns ``(outputs, h_T, saved, blocks)`` as arrays."""
    batch, steps, features = x_.shape
    hidden, dtype = h0_.shape[1], x_.dtype
    reset_after = bool(plan.spec.reset_after)
    first, n_block = _recurrent_blocks(w_hh, reset_after)
    outputs = np.empty((batch, steps, hidden), dtype)
    h_final = np.empty((batch, hidden), dtype)
    saved = (
        np.empty((steps, batch, features), dtype),  # x_t
        np.empty((steps, batch, 3 * hidden), dtype),  # gates
        np.empty((steps, batch, hidden), dtype),  # aux
        np.empty((steps + 1, batch, hidden), dtype),  # h_all
        np.empty((steps if plan.recurrent.size else 0, batch, hidden), dtype),  # h_rec_all
    )
    with blas_threads(plan.threads):
        gru_forward(x_, h0_, w_ih.T, transposed(first), transposed(n_block), b_ih, b_hh,
                    reset_after, plan.keep, plan.recurrent, plan.zero_output, plan.activation,
                    plan.recurrent_activation, outputs, h_final, *saved)
    return outputs, h_final, saved, (first, n_block)


FIELDS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def supports(spec, weights) -> bool:
    """Both GRU forms have a kernel."""
    return True


def weight_tensors(spec, weights) -> tuple:
    """The tensors in :data:`FIELDS` order (``None`` for absent biases)."""
    return tuple(getattr(weights, name) for name in FIELDS)


def prepare(spec, tensors, dtype) -> tuple:
    """The weights as arrays (views where the tensors are contiguous; absent biases empty)."""
    return tuple(arrays_of(dtype, *tensors))


def forward(plan: Plan, x, states, prepared):
    """``x (B, T, I)``, ``states = [h0 (B, H)]`` -> ``(outputs (B, T, H), [h_T], saved)``."""
    outputs, h_final, saved, blocks = gru_forward_arrays(plan, x, states[0], *prepared)
    return outputs, (h_final,), (saved, blocks, x, prepared[0])


def backward(plan: Plan, saved, d_outputs, d_finals, needs) -> tuple:
    """The gradients of ``(x, h0, *FIELDS)`` flagged in ``needs`` (others empty)."""
    loop_saved, blocks, x, weight_ih = saved
    dtype = x.dtype
    batch, steps, features = x.shape
    hidden = blocks[0].shape[1]
    d_h = np.array(d_finals[0], dtype, order="C")  # a copy: filled in place
    grads = (
        np.empty((batch if needs[0] else 0, steps, features), dtype),
        d_h,
        np.empty((3 * hidden, features) if needs[2] else (0, 0), dtype),
        np.empty((3 * hidden, hidden) if needs[3] else (0, 0), dtype),
        np.empty(3 * hidden if needs[4] else 0, dtype),
        np.empty(3 * hidden if needs[5] else 0, dtype),
    )
    need = np.array([needs[0], needs[2], needs[3], needs[4], needs[5]])
    gru_backward(d_outputs, d_h, *loop_saved, weight_ih, *blocks, bool(plan.spec.reset_after),
                 plan.keep, plan.recurrent, plan.zero_output, plan.activation,
                 plan.recurrent_activation, need, grads[0], *grads[2:])
    return grads
