"""The compiled loops of the fused LSTM (see :mod:`rnnkit.kernels.lstm` for the equations).

Per step the forward does ``U ĥ`` (and ``W_hr m``) as BLAS GEMMs and one fused elementwise pass per
row; the backward runs the steps in reverse, producing the gate gradients of every step.
"""

from __future__ import annotations

import numpy as np

from rnnkit.kernels._numba import (
    activate_block,
    derivative,
    emit_step,
    jit,
    layer_norm_row,
    layer_norm_row_backward,
    recurrent_input,
    route_output_grad,
)


@jit
def _recurrent_projection(h_rec, weight_hh_t, ln_weight, ln_bias, eps, h_proj, h_hat, rstd, t):
    """``h_proj = LN_hh(h_rec U^T)``, ``(B, 4H)``; saves the normalised rows in ``h_hat[:, t]``."""
    np.dot(h_rec, weight_hh_t, h_proj)
    if ln_weight.size == 0:
        return
    for b in range(h_proj.shape[0]):
        rstd[b, t] = layer_norm_row(h_proj[b], eps, h_hat[b, t])
        for j in range(h_proj.shape[1]):
            h_proj[b, j] = h_hat[b, t, j] * ln_weight[j] + ln_bias[j]


@jit
def _cell_row(x_row, pre, c_prev, peephole, act, rec_act, gates, c_new):
    """Gates ``i, f, g, o`` (activated, into ``gates (4H,)``) and ``c_new (H,)`` for one row.

    ``pre (4H,)`` holds ``LN_hh(U ĥ)`` on entry and is used as scratch.
    """
    hidden = c_prev.size
    peep = peephole.shape[0] > 0
    for j in range(4 * hidden):
        pre[j] += x_row[j]
    if peep:
        for j in range(hidden):
            pre[j] += peephole[0, j] * c_prev[j]
            pre[hidden + j] += peephole[1, j] * c_prev[j]
    activate_block(rec_act, pre[: 2 * hidden], gates[: 2 * hidden])
    activate_block(act, pre[2 * hidden : 3 * hidden], gates[2 * hidden : 3 * hidden])
    for j in range(hidden):
        c_new[j] = gates[hidden + j] * c_prev[j] + gates[j] * gates[2 * hidden + j]
    if peep:
        for j in range(hidden):
            pre[3 * hidden + j] += peephole[2, j] * c_new[j]
    activate_block(rec_act, pre[3 * hidden :], gates[3 * hidden :])


@jit
def _hidden_row(c_new, gates, ln_weight, ln_bias, eps, act, c_hat, tanh_c, m):
    """``m = o ⊙ act(LN_c(c_new))`` for one row; returns LN's ``1 / std`` (1 without LN)."""
    hidden = c_new.size
    rstd = 1.0
    if ln_weight.size > 0:
        rstd = layer_norm_row(c_new, eps, c_hat)
        for j in range(hidden):
            tanh_c[j] = c_hat[j] * ln_weight[j] + ln_bias[j]
        activate_block(act, tanh_c, tanh_c)
    else:
        activate_block(act, c_new, tanh_c)
    for j in range(hidden):
        m[j] = gates[3 * hidden + j] * tanh_c[j]
    return rstd


@jit
def lstm_forward(
    x_proj,
    h0,
    c0,
    weight_hh_t,
    weight_hr_t,
    peephole,
    ln_hh_weight,
    ln_hh_bias,
    ln_c_weight,
    ln_c_bias,
    eps,
    keep,
    recurrent_mask,
    zero_output,
    act,
    rec_act,
):
    """Run the recurrence on ``x_proj (B, T, 4H)`` from ``h0 (B, R)``, ``c0 (B, H)``.

    Absent options are arrays with a zero dimension. Returns ``outputs (B, T, R)``, the carried
    ``h_states (B, T+1, R)`` and ``c_states (B, T+1, H)``, and for the backward pass ``gates
    (B, T, 4H)``, ``tanh_c (B, T, H)``, ``m (B, T, H or 0)``, ``h_hat (B, T, 4H or 0)``,
    ``c_hat (B, T, H or 0)`` and ``rstd (B, T, 2)`` (of ``LN_hh`` and ``LN_c``).
    """
    batch, steps, four_h = x_proj.shape
    hidden, rec, dtype = four_h // 4, h0.shape[1], x_proj.dtype
    proj, norm = weight_hr_t.shape[0] > 0, ln_hh_weight.size > 0
    outputs = np.empty((batch, steps, rec), dtype)
    h_states = np.empty((batch, steps + 1, rec), dtype)
    c_states = np.empty((batch, steps + 1, hidden), dtype)
    h_states[:, 0], c_states[:, 0] = h0, c0
    gates = np.empty_like(x_proj)
    tanh_c = np.empty((batch, steps, hidden), dtype)
    m_all = np.empty((batch, steps, hidden if proj else 0), dtype)
    h_hat = np.empty((batch, steps, four_h if norm else 0), dtype)
    c_hat = np.empty((batch, steps, hidden if norm else 0), dtype)
    rstd = np.ones((batch, steps, 2), dtype)
    h_rec, h_proj = np.empty_like(h0), np.empty((batch, four_h), dtype)
    c_new, m, h_new = np.empty_like(c0), np.empty_like(c0), np.empty_like(h0)
    for t in range(steps):
        recurrent_input(h_states, t, recurrent_mask, h_rec)
        _recurrent_projection(
            h_rec, weight_hh_t, ln_hh_weight, ln_hh_bias, eps, h_proj, h_hat, rstd[:, :, 0], t
        )
        for b in range(batch):
            _cell_row(
                x_proj[b, t],
                h_proj[b],
                c_states[b, t],
                peephole,
                act,
                rec_act,
                gates[b, t],
                c_new[b],
            )
            rstd[b, t, 1] = _hidden_row(
                c_new[b],
                gates[b, t],
                ln_c_weight,
                ln_c_bias,
                eps,
                act,
                c_hat[b, t],
                tanh_c[b, t],
                m[b],
            )
        if proj:
            np.dot(m, weight_hr_t, h_new)
            m_all[:, t] = m
        else:
            h_new[:] = m
        for b in range(batch):
            emit_step(outputs, h_states, b, t, keep[b, t], zero_output, h_new[b])
            c_states[b, t + 1] = c_new[b] if keep[b, t] else c_states[b, t]
    return outputs, h_states, c_states, gates, tanh_c, m_all, h_hat, c_hat, rstd


@jit
def _hidden_row_backward(
    d_m, gates, tanh_c, c_hat, rstd, ln_weight, act, d_out, d_c, d_ln_weight, d_ln_bias
):
    """Backward of ``m = o ⊙ act(LN_c(c))``: ``d_out`` gets d(o), ``d_c`` gets d(c)."""
    hidden = d_m.size
    for j in range(hidden):
        d_out[j] = d_m[j] * tanh_c[j]
        d_c[j] = d_m[j] * gates[3 * hidden + j] * derivative(act, tanh_c[j])
    if ln_weight.size > 0:
        layer_norm_row_backward(d_c.copy(), c_hat, rstd, ln_weight, d_c, d_ln_weight, d_ln_bias)


@jit
def _cell_row_backward(
    d_out, d_c_from_h, gates, c_prev, c_new, peephole, act, rec_act, d_pre, d_c, d_peephole
):
    """Backward of one row's gates: ``d_pre (4H,)``; ``d_c (H,)`` goes from d(c_t) to d(c_{t-1})."""
    hidden = c_prev.size
    peep = peephole.shape[0] > 0
    for j in range(hidden):
        input_gate, forget_gate = gates[j], gates[hidden + j]
        candidate, output_gate = gates[2 * hidden + j], gates[3 * hidden + j]
        d_pre_o = d_out[j] * derivative(rec_act, output_gate)
        d_cell = d_c[j] + d_c_from_h[j]
        if peep:
            d_cell += peephole[2, j] * d_pre_o
        d_pre_i = d_cell * candidate * derivative(rec_act, input_gate)
        d_pre_f = d_cell * c_prev[j] * derivative(rec_act, forget_gate)
        d_pre[j], d_pre[hidden + j] = d_pre_i, d_pre_f
        d_pre[2 * hidden + j] = d_cell * input_gate * derivative(act, candidate)
        d_pre[3 * hidden + j] = d_pre_o
        d_c[j] = d_cell * forget_gate
        if peep:
            d_c[j] += peephole[0, j] * d_pre_i + peephole[1, j] * d_pre_f
            d_peephole[0, j] += d_pre_i * c_prev[j]
            d_peephole[1, j] += d_pre_f * c_prev[j]
            d_peephole[2, j] += d_pre_o * c_new[j]


@jit
def _recurrent_projection_backward(d_pre_t, h_hat, rstd, ln_weight, t, d_proj, d_ln_w, d_ln_b):
    """Gradient of ``U ĥ`` (before ``LN_hh``) at step ``t``; kept in ``d_proj[:, t]`` with LN."""
    if ln_weight.size == 0:
        return d_pre_t  # U ĥ adds straight into the gates: ``d_proj`` is ``d_pre``
    d_proj_t = np.empty_like(d_pre_t)
    for b in range(d_pre_t.shape[0]):
        layer_norm_row_backward(
            d_pre_t[b], h_hat[b, t], rstd[b, t], ln_weight, d_proj_t[b], d_ln_w, d_ln_b
        )
    d_proj[:, t] = d_proj_t
    return d_proj_t


@jit
def lstm_backward(
    d_outputs,
    d_h_final,
    d_c_final,
    saved,
    weight_hh,
    weight_hr,
    peephole,
    ln_hh_weight,
    ln_c_weight,
    keep,
    recurrent_mask,
    zero_output,
    act,
    rec_act,
):
    """Backpropagate through time. ``saved`` is ``lstm_forward``'s tuple minus ``outputs``.

    Returns ``d_pre (B, T, 4H)`` (of ``x̂``), ``d_proj (B, T, 4H)`` (of ``U ĥ``), ``d_h_new
    (B, T, P or 0)`` (of the projection's output), ``d_h0``, ``d_c0`` and the gradients of
    ``peephole``, ``LN_hh`` and ``LN_c``'s weights and biases.
    """
    h_states, c_states, gates, tanh_c, m_all, h_hat, c_hat, rstd = saved
    batch, steps, four_h = gates.shape
    hidden, proj, norm = four_h // 4, weight_hr.shape[0] > 0, ln_hh_weight.size > 0
    d_pre = np.zeros_like(gates)
    d_proj = np.zeros((batch, steps, four_h if norm else 0), gates.dtype)
    d_h_new = np.zeros((batch, steps, d_h_final.shape[1] if proj else 0), gates.dtype)
    d_h, d_c, carry = d_h_final.copy(), d_c_final.copy(), np.zeros_like(d_h_final)
    d_peep, d_ln = np.zeros_like(peephole), np.zeros((4, four_h), gates.dtype)
    d_new, d_m = np.empty_like(d_h_final), np.empty((batch, hidden), gates.dtype)
    d_out, d_c_from_h = np.empty(hidden, gates.dtype), np.empty(hidden, gates.dtype)
    d_pre_t, d_rec = np.zeros((batch, four_h), gates.dtype), np.empty_like(d_h_final)
    for t in range(steps - 1, -1, -1):
        for b in range(batch):
            route_output_grad(d_outputs, carry, b, t, keep[b, t], zero_output, d_h, d_new)
        if proj:
            np.dot(d_new, weight_hr, d_m)
            d_h_new[:, t] = d_new
        else:
            d_m[:] = d_new
        for b in range(batch):
            d_pre_t[b] = 0.0
            if keep[b, t]:
                _hidden_row_backward(
                    d_m[b],
                    gates[b, t],
                    tanh_c[b, t],
                    c_hat[b, t],
                    rstd[b, t, 1],
                    ln_c_weight,
                    act,
                    d_out,
                    d_c_from_h,
                    d_ln[2, :hidden],
                    d_ln[3, :hidden],
                )
                _cell_row_backward(
                    d_out,
                    d_c_from_h,
                    gates[b, t],
                    c_states[b, t],
                    c_states[b, t + 1],
                    peephole,
                    act,
                    rec_act,
                    d_pre_t[b],
                    d_c[b],
                    d_peep,
                )
        d_pre[:, t] = d_pre_t
        d_proj_t = _recurrent_projection_backward(
            d_pre_t, h_hat, rstd[:, :, 0], ln_hh_weight, t, d_proj, d_ln[0], d_ln[1]
        )
        np.dot(d_proj_t, weight_hh, d_rec)
        for b in range(batch):
            if keep[b, t]:
                d_h[b] = d_rec[b] * recurrent_mask[b]
    return d_pre, d_proj if norm else d_pre, d_h_new, d_h, d_c, d_peep, d_ln
