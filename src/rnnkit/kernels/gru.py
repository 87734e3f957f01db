"""Fused GRU over a whole sequence, in both of Keras's forms, forward and BPTT.

With ``x̂_t = W x_t + b_ih`` (plus the parts of ``b_hh`` that add straight to it) and
``ĥ = m ⊙ h_{t-1}`` (``m`` the recurrent-dropout mask)::

    r_t = σ(x̂_r + U_r ĥ)          z_t = σ(x̂_z + U_z ĥ)
    reset_after=True:   n_t = tanh(x̂_n + r_t ⊙ (U_n ĥ + b_hn))
    reset_after=False:  n_t = tanh(x̂_n + U_n (r_t ⊙ ĥ))
    h_t = z_t ⊙ h_{t-1} + (1 - z_t) ⊙ n_t

``x̂`` for all steps is one torch GEMM; the compiled loop does the recurrent GEMMs (one, or two
when the reset gate comes first) and one fused elementwise pass per step. Its backward yields the
gate gradients of all steps, from which ``dU`` is one GEMM per block.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from rnnkit.cells.base import affine
from rnnkit.kernels._common import (
    SequenceMasks,
    as_array,
    flat,
    initial_state,
    masked_recurrent_inputs,
    optional_array,
    single_threaded_blas,
)
from rnnkit.kernels._numba import (
    activate_block,
    derivative,
    emit_step,
    jit,
    recurrent_input,
    route_output_grad,
)


class GRUConfig(NamedTuple):
    masks: SequenceMasks
    activation: int
    recurrent_activation: int
    reset_after: bool


@jit
def _reset_update_row(x_row, h_row, rec_act, gates):
    """``r`` and ``z`` (activated) into ``gates[:2H]`` for one row; ``h_row[:2H]`` is scratch."""
    two_h = 2 * (gates.size // 3)
    for j in range(two_h):
        h_row[j] += x_row[j]
    activate_block(rec_act, h_row[:two_h], gates[:two_h])


@jit
def _candidate_after_row(x_row, h_row, bias_hn, act, gates, aux):
    """Reset-after candidate ``n = act(x̂_n + r ⊙ (U_n ĥ + b_hn))``; ``aux`` keeps the bracket."""
    hidden = aux.size
    pre = h_row[2 * hidden :]  # scratch once U_n ĥ has gone into aux
    for j in range(hidden):
        aux[j] = pre[j] + (bias_hn[j] if bias_hn.size > 0 else 0.0)
        pre[j] = x_row[2 * hidden + j] + gates[j] * aux[j]
    activate_block(act, pre, gates[2 * hidden :])


@jit
def _candidates_before(x_proj, t, h_rec, weight_n_t, act, gates, aux):
    """Reset-before candidates ``n = act(x̂_n + U_n (r ⊙ ĥ))``; ``aux[:, t]`` keeps ``r ⊙ ĥ``."""
    batch, hidden = h_rec.shape
    reset_h = np.empty_like(h_rec)  # (B, H)
    for b in range(batch):
        for j in range(hidden):
            reset_h[b, j] = gates[b, t, j] * h_rec[b, j]
    aux[:, t] = reset_h
    pre = np.dot(reset_h, weight_n_t)  # (B, H)
    for b in range(batch):
        for j in range(hidden):
            pre[b, j] += x_proj[b, t, 2 * hidden + j]
        activate_block(act, pre[b], gates[b, t, 2 * hidden :])


@jit
def gru_forward(
    x_proj,
    h0,
    weight_first_t,
    weight_n_t,
    bias_hn,
    reset_after,
    keep,
    recurrent_mask,
    zero_output,
    act,
    rec_act,
):
    """Run the recurrence on ``x_proj (B, T, 3H)`` from ``h0 (B, H)``.

    ``weight_first_t`` is ``U^T (H, 3H)`` when ``reset_after``, else ``U_rz^T (H, 2H)`` with
    ``weight_n_t = U_n^T (H, H)``. Returns ``outputs (B, T, H)``, the carried ``states
    (B, T+1, H)``, ``gates (B, T, 3H)`` (activated ``r, z, n``) and ``aux (B, T, H)``
    (``U_n ĥ + b_hn`` if ``reset_after``, else ``r ⊙ ĥ``).
    """
    batch, steps, three_h = x_proj.shape
    hidden = three_h // 3
    outputs = np.empty((batch, steps, hidden), x_proj.dtype)
    states = np.empty((batch, steps + 1, hidden), x_proj.dtype)
    states[:, 0] = h0
    gates, aux = np.empty_like(x_proj), np.empty_like(outputs)
    h_rec, h_new = np.empty_like(h0), np.empty_like(h0)
    h_proj = np.empty((batch, weight_first_t.shape[1]), x_proj.dtype)
    for t in range(steps):
        recurrent_input(states, t, recurrent_mask, h_rec)
        np.dot(h_rec, weight_first_t, h_proj)
        for b in range(batch):
            _reset_update_row(x_proj[b, t], h_proj[b], rec_act, gates[b, t])
            if reset_after:
                _candidate_after_row(x_proj[b, t], h_proj[b], bias_hn, act, gates[b, t], aux[b, t])
        if not reset_after:
            _candidates_before(x_proj, t, h_rec, weight_n_t, act, gates, aux)
        for b in range(batch):
            for j in range(hidden):
                update = gates[b, t, hidden + j]
                h_new[b, j] = (
                    update * states[b, t, j] + (1.0 - update) * gates[b, t, 2 * hidden + j]
                )
            emit_step(outputs, states, b, t, keep[b, t], zero_output, h_new[b])
    return outputs, states, gates, aux


@jit
def _gate_grads_row(d_new, h_prev, gates, aux, reset_after, act, rec_act, d_pre, d_direct):
    """``d_pre`` for one row: d(z), d(n) pre-activations, and d(r) when ``reset_after``.

    ``d_direct`` gets ``z ⊙ d_new``, the gradient reaching ``h_{t-1}`` outside the GEMMs.
    """
    hidden = h_prev.size
    for j in range(hidden):
        reset, update, cand = gates[j], gates[hidden + j], gates[2 * hidden + j]
        d_pre[hidden + j] = d_new[j] * (h_prev[j] - cand) * derivative(rec_act, update)
        d_pre[2 * hidden + j] = d_new[j] * (1.0 - update) * derivative(act, cand)
        d_direct[j] = d_new[j] * update
        if reset_after:
            d_pre[j] = d_pre[2 * hidden + j] * aux[j] * derivative(rec_act, reset)


@jit
def _reset_grads_before(d_pre_t, h_rec, gates_t, weight_n, rec_act, d_rec):
    """Reset-before: ``d(r ⊙ ĥ) = d_n U_n``; fills d(r) into ``d_pre_t`` and adds ``r ⊙ d(r ⊙ ĥ)``
    (the part of d(ĥ) through U_n) to ``d_rec``."""
    batch, hidden = h_rec.shape
    d_reset_h = np.dot(np.ascontiguousarray(d_pre_t[:, 2 * hidden :]), weight_n)  # (B, H)
    for b in range(batch):
        for j in range(hidden):
            reset = gates_t[b, j]
            d_pre_t[b, j] = d_reset_h[b, j] * h_rec[b, j] * derivative(rec_act, reset)
            d_rec[b, j] = d_reset_h[b, j] * reset


@jit
def gru_backward(
    d_outputs,
    d_final,
    states,
    gates,
    aux,
    weight_first,
    weight_n,
    reset_after,
    keep,
    recurrent_mask,
    zero_output,
    act,
    rec_act,
):
    """Backpropagate through time; returns ``d_pre (B, T, 3H)`` (of ``x̂``), ``d_proj
    (B, T, 3H)`` (of the recurrent GEMMs' outputs), ``d_h0 (B, H)`` and ``d_bias_hn (H,)``.

    ``weight_first`` is ``U (3H, H)`` when ``reset_after``, else ``U_rz (2H, H)`` with
    ``weight_n = U_n (H, H)``.
    """
    batch, steps, three_h = gates.shape
    hidden, first = three_h // 3, weight_first.shape[0]
    d_pre, d_proj = np.zeros_like(gates), np.zeros_like(gates)
    d_h, carry, d_new = d_final.copy(), np.zeros_like(d_final), np.empty_like(d_final)
    d_direct, d_rec, h_rec = np.zeros_like(d_final), np.zeros_like(d_final), np.empty_like(d_final)
    d_pre_t, d_bias_hn = np.zeros((batch, three_h), gates.dtype), np.zeros(hidden, gates.dtype)
    for t in range(steps - 1, -1, -1):
        for b in range(batch):
            route_output_grad(d_outputs, carry, b, t, keep[b, t], zero_output, d_h, d_new)
            _gate_grads_row(
                d_new[b],
                states[b, t],
                gates[b, t],
                aux[b, t],
                reset_after,
                act,
                rec_act,
                d_pre_t[b],
                d_direct[b],
            )
        d_proj_t = d_pre_t.copy()
        if reset_after:
            for b in range(batch):
                d_proj_t[b, 2 * hidden :] *= gates[b, t, :hidden]
                d_bias_hn += d_proj_t[b, 2 * hidden :]
        else:
            recurrent_input(states, t, recurrent_mask, h_rec)
            _reset_grads_before(d_pre_t, h_rec, gates[:, t], weight_n, rec_act, d_rec)
            d_proj_t[:, :hidden] = d_pre_t[:, :hidden]
        d_pre[:, t], d_proj[:, t] = d_pre_t, d_proj_t
        d_from_first = np.dot(np.ascontiguousarray(d_proj_t[:, :first]), weight_first)  # (B, H)
        for b in range(batch):
            if keep[b, t]:
                d_h[b] = (d_from_first[b] + d_rec[b]) * recurrent_mask[b] + d_direct[b]
    return d_pre, d_proj, d_h, d_bias_hn


def _recurrent_weights(weight_hh: torch.Tensor, reset_after: bool, transpose: bool, dtype):
    """``(U, placeholder)`` when ``reset_after``, else ``(U_rz, U_n)``, as arrays (maybe ``.T``)."""
    hidden = weight_hh.shape[1]
    blocks = [weight_hh] if reset_after else [weight_hh[: 2 * hidden], weight_hh[2 * hidden :]]
    arrays = [as_array(block.T if transpose else block) for block in blocks]
    return arrays[0], arrays[1] if len(arrays) > 1 else optional_array(None, dtype, 2)


class GRUSequence(torch.autograd.Function):
    """``(x̂ (B, T, 3H), h0 (B, H), weight_hh (3H, H), bias_hn (H,) or None)`` ->
    ``(outputs (B, T, H), h_T (B, H))``."""

    @staticmethod
    def forward(ctx, config: GRUConfig, x_proj, h0, weight_hh, bias_hn):
        masks, reset_after = config.masks, config.reset_after
        first_t, n_t = _recurrent_weights(weight_hh, reset_after, True, x_proj.dtype)
        with single_threaded_blas():
            outputs, states, gates, aux = gru_forward(
                as_array(x_proj),
                as_array(h0),
                first_t,
                n_t,
                optional_array(bias_hn, x_proj.dtype),
                reset_after,
                masks.keep,
                masks.recurrent,
                masks.zero_output,
                config.activation,
                config.recurrent_activation,
            )
        ctx.config, ctx.arrays = config, (states, gates, aux)
        ctx.save_for_backward(weight_hh)
        return torch.from_numpy(outputs), torch.from_numpy(states[:, -1].copy())

    @staticmethod
    @once_differentiable
    def backward(ctx, d_outputs, d_final):
        config, (states, gates, aux) = ctx.config, ctx.arrays
        masks, reset_after = config.masks, config.reset_after
        (weight_hh,) = ctx.saved_tensors
        first, n_block = _recurrent_weights(weight_hh, reset_after, False, d_final.dtype)
        with single_threaded_blas():
            d_pre, d_proj, d_h0, d_bias_hn = gru_backward(
                as_array(d_outputs),
                as_array(d_final),
                states,
                gates,
                aux,
                first,
                n_block,
                reset_after,
                masks.keep,
                masks.recurrent,
                masks.zero_output,
                config.activation,
                config.recurrent_activation,
            )
        d_weight_hh = None
        if ctx.needs_input_grad[3]:
            h_rec = masked_recurrent_inputs(torch.from_numpy(states), masks)  # (B*T, H)
            d_proj = flat(d_proj)  # (B*T, 3H)
            if reset_after:
                d_weight_hh = d_proj.T @ h_rec
            else:
                hidden = h_rec.shape[1]
                d_weight_hh = torch.cat(
                    [d_proj[:, : 2 * hidden].T @ h_rec, d_proj[:, 2 * hidden :].T @ flat(aux)]
                )
        d_bias_hn = torch.from_numpy(d_bias_hn) if ctx.needs_input_grad[4] else None
        return None, torch.from_numpy(d_pre), torch.from_numpy(d_h0), d_weight_hh, d_bias_hn


def supports(spec, weights) -> bool:
    """Both GRU forms have a kernel."""
    return True


def _input_projection(spec, weights, inputs):
    """``x̂ = W x + b_ih`` plus the parts of ``b_hh`` outside the reset product: ``(B, T, 3H)``."""
    batch, steps, features = inputs.shape
    hidden = spec.hidden_size
    x_proj = affine(
        inputs.reshape(batch * steps, features), weights.weight_ih, weights.bias_ih
    )  # (B*T, 3H)
    if weights.bias_hh is not None:
        bias = weights.bias_hh
        x_proj = x_proj + (F.pad(bias[: 2 * hidden], (0, hidden)) if spec.reset_after else bias)
    return x_proj.reshape(batch, steps, 3 * hidden)


def run_gru(cell, inputs, state, masks: SequenceMasks, codes: tuple[int, int]):
    """Fused GRU: ``inputs (B, T, I)`` -> ``(outputs (B, T, H), (h_T,))``."""
    spec, weights = cell.spec, cell.weights()
    hidden = spec.hidden_size
    h0 = initial_state(state, 0, inputs.shape[0], hidden)
    bias_hn = None
    if spec.reset_after and weights.bias_hh is not None:
        bias_hn = weights.bias_hh[2 * hidden :]
    config = GRUConfig(masks, codes[0], codes[1], bool(spec.reset_after))
    outputs, h_final = GRUSequence.apply(
        config, _input_projection(spec, weights, inputs), h0, weights.weight_hh, bias_hn
    )
    return outputs, (h_final,)
