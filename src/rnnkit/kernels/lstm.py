"""Fused LSTM over a whole sequence (peepholes, layer norm, projection), forward and BPTT.

With ``x̂_t = LN_ih(W x_t) + b_ih + b_hh`` (LN only with ``layer_norm``) and ``ĥ = m ⊙ h_{t-1}``::

    [a_i a_f a_g a_o] = x̂_t + LN_hh(U ĥ)
    i_t = σ(a_i + p_i ⊙ c_{t-1})      f_t = σ(a_f + p_f ⊙ c_{t-1})      g_t = tanh(a_g)
    c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t
    o_t = σ(a_o + p_o ⊙ c_t)
    h_t = W_hr (o_t ⊙ tanh(LN_c(c_t)))        (W_hr only with ``proj_size``)

``x̂`` for all steps is computed in torch (one GEMM, plus its layer norm), so autograd yields
``dX``, ``dW_ih``, the biases and ``LN_ih``'s parameters from it. The compiled loop does ``U ĥ``,
``W_hr m`` and one fused elementwise pass per step; its backward yields the gate gradients of all
steps, from which ``dU`` and ``dW_hr`` are single GEMMs.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from rnnkit.kernels._common import (
    SequenceMasks,
    as_array,
    flat,
    initial_state,
    masked_recurrent_inputs,
    optional_array,
    single_threaded_blas,
)
from rnnkit.kernels._lstm_loops import lstm_backward, lstm_forward


class LSTMConfig(NamedTuple):
    masks: SequenceMasks
    activation: int
    recurrent_activation: int
    layer_norm: bool
    epsilon: float


class LSTMSequence(torch.autograd.Function):
    """``(x̂ (B, T, 4H), h0, c0, weight_hh, weight_hr, peephole, ln_hh_*, ln_c_*)`` ->
    ``(outputs (B, T, R), h_T (B, R), c_T (B, H))``; absent options are ``None``."""

    @staticmethod
    def forward(
        ctx,
        config: LSTMConfig,
        x_proj,
        h0,
        c0,
        weight_hh,
        weight_hr,
        peephole,
        ln_hh_weight,
        ln_hh_bias,
        ln_c_weight,
        ln_c_bias,
    ):
        dtype, masks = x_proj.dtype, config.masks
        weight_hr_t = None if weight_hr is None else weight_hr.T
        options = [optional_array(weight_hr_t, dtype, 2), optional_array(peephole, dtype, 2)]
        options += [
            optional_array(p, dtype) for p in (ln_hh_weight, ln_hh_bias, ln_c_weight, ln_c_bias)
        ]
        with single_threaded_blas():
            outputs, *saved = lstm_forward(
                as_array(x_proj),
                as_array(h0),
                as_array(c0),
                as_array(weight_hh.T),
                *options,
                config.epsilon,
                masks.keep,
                masks.recurrent,
                masks.zero_output,
                config.activation,
                config.recurrent_activation,
            )
        ctx.config, ctx.saved = config, tuple(saved)
        ctx.options = (optional_array(weight_hr, dtype, 2), options[1], options[2], options[4])
        ctx.save_for_backward(weight_hh)
        h_states, c_states = saved[0], saved[1]
        return (
            torch.from_numpy(outputs),
            torch.from_numpy(h_states[:, -1].copy()),
            torch.from_numpy(c_states[:, -1].copy()),
        )

    @staticmethod
    @once_differentiable
    def backward(ctx, d_outputs, d_h_final, d_c_final):
        config, masks = ctx.config, ctx.config.masks
        (weight_hh,) = ctx.saved_tensors
        weight_hr, peephole, ln_hh_weight, ln_c_weight = ctx.options
        with single_threaded_blas():
            d_pre, d_proj, d_h_new, d_h0, d_c0, d_peep, d_ln = lstm_backward(
                as_array(d_outputs),
                as_array(d_h_final),
                as_array(d_c_final),
                ctx.saved,
                as_array(weight_hh),
                weight_hr,
                peephole,
                ln_hh_weight,
                ln_c_weight,
                masks.keep,
                masks.recurrent,
                masks.zero_output,
                config.activation,
                config.recurrent_activation,
            )
        needs = ctx.needs_input_grad
        h_states, m_all = torch.from_numpy(ctx.saved[0]), ctx.saved[4]
        d_weight_hh = (
            flat(d_proj).T @ masked_recurrent_inputs(h_states, masks) if needs[4] else None
        )
        d_weight_hr = flat(d_h_new).T @ flat(m_all) if needs[5] else None
        hidden = d_c0.shape[1]
        d_ln = torch.from_numpy(d_ln)
        d_layer_norm = (d_ln[0], d_ln[1], d_ln[2, :hidden], d_ln[3, :hidden])
        return (
            None,
            torch.from_numpy(d_pre),
            torch.from_numpy(d_h0),
            torch.from_numpy(d_c0),
            d_weight_hh,
            d_weight_hr,
            torch.from_numpy(d_peep) if needs[6] else None,
            *(grad if need else None for grad, need in zip(d_layer_norm, needs[7:])),
        )


def supports(spec, weights) -> bool:
    """Every LSTM option has a kernel, given the tensors the spec's options call for."""
    needed = ["weight_hr"] if spec.proj_size else []
    needed += ["weight_peephole"] if spec.peephole else []
    needed += ["ln_hh_weight", "ln_hh_bias", "ln_c_weight", "ln_c_bias"] if spec.layer_norm else []
    return all(getattr(weights, name) is not None for name in needed)


def _input_projection(spec, weights, inputs):
    """``x̂ = LN_ih(W x) + b_ih + b_hh`` for all steps at once: ``(B, T, 4H)``."""
    batch, steps, features = inputs.shape
    x_proj = inputs.reshape(batch * steps, features) @ weights.weight_ih.T  # (B*T, 4H)
    if spec.layer_norm:
        x_proj = F.layer_norm(
            x_proj,
            (x_proj.shape[-1],),
            weights.ln_ih_weight,
            weights.ln_ih_bias,
            spec.layer_norm_epsilon,
        )
    for bias in (weights.bias_ih, weights.bias_hh):
        if bias is not None:
            x_proj = x_proj + bias
    return x_proj.reshape(batch, steps, -1)


def run_lstm(cell, inputs, state, masks: SequenceMasks, codes: tuple[int, int]):
    """Fused LSTM: ``inputs (B, T, I)`` -> ``(outputs (B, T, R), (h_T (B, R), c_T (B, H)))``."""
    spec, weights = cell.spec, cell.weights()
    batch = inputs.shape[0]
    h0 = initial_state(state, 0, batch, spec.recurrent_size)
    c0 = initial_state(state, 1, batch, spec.hidden_size)
    norm = spec.layer_norm
    layer_norm = (
        [weights.ln_hh_weight, weights.ln_hh_bias, weights.ln_c_weight, weights.ln_c_bias]
        if norm
        else [None] * 4
    )
    config = LSTMConfig(masks, codes[0], codes[1], norm, float(spec.layer_norm_epsilon))
    outputs, h_final, c_final = LSTMSequence.apply(
        config,
        _input_projection(spec, weights, inputs),
        h0,
        c0,
        weights.weight_hh,
        weights.weight_hr if spec.proj_size else None,
        weights.weight_peephole if spec.peephole else None,
        *layer_norm,
    )
    return outputs, (h_final, c_final)
