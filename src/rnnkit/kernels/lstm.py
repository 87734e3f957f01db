"""Fused LSTM over a whole sequence (peepholes, layer norm, projection), forward and BPTT.

With ``x̂_t = LN_ih(W x_t) + b_ih + b_hh`` (LN only with ``layer_norm``) and ``ĥ = m ⊙ h_{t-1}``::

    [a_i a_f a_g a_o] = x̂_t + LN_hh(U ĥ)
    i_t = σ(a_i + p_i ⊙ c_{t-1})      f_t = σ(a_f + p_f ⊙ c_{t-1})      g_t = tanh(a_g)
    c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t
    o_t = σ(a_o + p_o ⊙ c_t)
    h_t = W_hr (o_t ⊙ tanh(LN_c(c_t)))        (W_hr only with ``proj_size``)

Forward and backward are one compiled call each (:mod:`rnnkit.kernels._lstm_loops`), input
projection and weight gradients included, behind one ``autograd.Function``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.autograd.function import once_differentiable

from rnnkit.kernels._common import (
    Plan,
    arrays_of,
    as_array,
    blas_threads,
    broadcast_state,
    gradients,
    needs_autograd,
    optional_matrix,
    transposed,
)
from rnnkit.kernels._lstm_loops import lstm_backward, lstm_forward

# The autograd inputs after ``plan``, in order.
INPUTS = ("x", "h0", "c0", "weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr",
          "weight_peephole", "ln_ih_weight", "ln_ih_bias", "ln_hh_weight", "ln_hh_bias",
          "ln_c_weight", "ln_c_bias")


def _empty(dtype, *shape) -> np.ndarray:
    return np.empty(shape, dtype)


def lstm_forward_arrays(plan: Plan, x_, h0_, c0_, w_ih, w_hh, b_ih, b_hh, w_hr, peep, ln):
    """Run the compiled forward; returns ``(outputs, h_T, c_T, saved)`` as arrays."""
    batch, steps, features = x_.shape
    hidden, rec = c0_.shape[1], h0_.shape[1]
    dtype = x_.dtype
    proj, norm = w_hr.shape[0] > 0, ln[0].size > 0
    four_h = 4 * hidden
    has_mask = plan.recurrent.size > 0
    outputs = _empty(dtype, batch, steps, rec)
    h_final, c_final = _empty(dtype, batch, rec), _empty(dtype, batch, hidden)
    saved = (
        _empty(dtype, steps, batch, features),  # x_t
        _empty(dtype, steps * batch if norm else 0, four_h),  # x_hat
        _empty(dtype, steps * batch if norm else 0),  # rstd_ih
        _empty(dtype, steps, batch, four_h),  # gates
        _empty(dtype, steps + 1, batch, hidden),  # c_all
        _empty(dtype, steps, batch, hidden),  # tanh_c
        _empty(dtype, steps + 1, batch, rec),  # h_all
        _empty(dtype, steps if has_mask else 0, batch, rec),  # h_rec_all
        _empty(dtype, steps if proj else 0, batch, hidden),  # m_all
        _empty(dtype, steps if norm else 0, batch, four_h),  # h_hat
        _empty(dtype, steps if norm else 0, batch, hidden),  # c_hat
        _empty(dtype, steps if norm else 0, batch, 2),  # rstd
    )
    with blas_threads(plan.threads):
        lstm_forward(
            x_, h0_, c0_, w_ih.T, transposed(w_hh), b_ih, b_hh, transposed(w_hr), peep, *ln,
            float(plan.spec.layer_norm_epsilon), plan.keep, plan.recurrent, plan.zero_output,
            plan.activation, plan.recurrent_activation, outputs, h_final, c_final, *saved,
        )
    return outputs, h_final, c_final, saved


class LSTMSequence(torch.autograd.Function):
    """``(plan, present, *tensors)`` -> ``(outputs (B, T, R), h_T (B, R), c_T (B, H))``, where
    ``tensors`` are those of ``(x (B, T, I), h0 (B, R), c0 (B, H), *weights)`` (in :data:`INPUTS`
    order) that ``present`` flags as given."""

    @staticmethod
    def forward(ctx, plan: Plan, present: tuple[bool, ...], *given):
        # Only the present tensors go through autograd (each input costs it time): ``present``
        # flags which of INPUTS they are.
        given_iter = iter(given)
        tensors = [next(given_iter) if flag else None for flag in present]
        arrays = lstm_arrays(*tensors[:9], tensors[9:])
        outputs, h_final, c_final, saved = lstm_forward_arrays(plan, *arrays)
        ctx.plan, ctx.arrays, ctx.present = plan, (saved, arrays), present
        ctx.save_for_backward(*given[3:])  # the weights: a version check on in-place updates
        return torch.from_numpy(outputs), torch.from_numpy(h_final), torch.from_numpy(c_final)

    @staticmethod
    @once_differentiable
    def backward(ctx, d_outputs, d_h_final, d_c_final):
        plan, (saved, arrays) = ctx.plan, ctx.arrays
        ctx.saved_tensors  # noqa: B018  (raises if a weight changed in place since the forward)
        x_, h0_, c0_, w_ih, w_hh, b_ih, b_hh, w_hr, peep, ln = arrays
        needs_given = iter(ctx.needs_input_grad[2:])
        needs = [next(needs_given) if flag else False for flag in ctx.present]  # by INPUTS
        dtype = x_.dtype
        batch, steps, features = x_.shape
        hidden, rec = c0_.shape[1], h0_.shape[1]
        four_h = 4 * hidden
        d_out = as_array(d_outputs)
        d_h = np.array(d_h_final.detach().numpy(), dtype, order="C")  # copies: filled in place
        d_c = np.array(d_c_final.detach().numpy(), dtype, order="C")
        grads = (
            _empty(dtype, batch if needs[0] else 0, steps, features),
            d_h,
            d_c,
            _empty(dtype, *((four_h, features) if needs[3] else (0, 0))),
            _empty(dtype, *((four_h, rec) if needs[4] else (0, 0))),
            _empty(dtype, four_h if needs[5] else 0),
            _empty(dtype, four_h if needs[6] else 0),
            _empty(dtype, *((rec, hidden) if needs[7] and w_hr.shape[0] else (0, 0))),
            np.empty_like(peep),
            _empty(dtype, 6, four_h),
        )
        need = np.array([needs[0], needs[3], needs[4], needs[5], needs[6], needs[7]])
        with blas_threads(plan.threads):
            lstm_backward(
                d_out, d_h, d_c, *saved, w_ih, w_hh, w_hr, peep, ln[0], ln[2], ln[4], plan.keep,
                plan.recurrent, plan.zero_output, plan.activation, plan.recurrent_activation,
                need, *grads,
            )
        d_ln = grads[9]
        all_grads = (*grads[:9], d_ln[0], d_ln[1], d_ln[2], d_ln[3], d_ln[4, :hidden],
                     d_ln[5, :hidden])
        result = gradients(all_grads, needs)
        return (None, None, *(g for g, flag in zip(result, ctx.present) if flag))


def lstm_arrays(x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh, weight_hr, peephole,
                layer_norm):
    """The tensors as the arrays the compiled loops take (empty ones for absent options)."""
    dtype = x.dtype
    x_, h0_, c0_, w_ih, w_hh, b_ih, b_hh, *ln = arrays_of(
        dtype, x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh, *layer_norm
    )
    w_hr, peep = optional_matrix(weight_hr, dtype), optional_matrix(peephole, dtype)
    return x_, h0_, c0_, w_ih, w_hh, b_ih, b_hh, w_hr, peep, ln


def supports(spec, weights) -> bool:
    """Every LSTM option has a kernel, given the tensors the spec's options call for."""
    needed = ["weight_hr"] if spec.proj_size else []
    needed += ["weight_peephole"] if spec.peephole else []
    needed += ["ln_ih_weight", "ln_ih_bias", "ln_hh_weight", "ln_hh_bias", "ln_c_weight",
               "ln_c_bias"] if spec.layer_norm else []
    return all(getattr(weights, name) is not None for name in needed)


def run_lstm(cell, inputs, state, plan: Plan):
    """Fused LSTM: ``inputs (B, T, I)`` -> ``(outputs (B, T, R), (h_T (B, R), c_T (B, H)))``."""
    spec, weights = cell.spec, cell.weights()
    batch = inputs.shape[0]
    h0 = broadcast_state(state[0], batch, spec.recurrent_size)
    c0 = broadcast_state(state[1], batch, spec.hidden_size)
    layer_norm = (
        [weights.ln_ih_weight, weights.ln_ih_bias, weights.ln_hh_weight, weights.ln_hh_bias,
         weights.ln_c_weight, weights.ln_c_bias]
        if spec.layer_norm
        else [None] * 6
    )
    tensors = (inputs, h0, c0, weights.weight_ih, weights.weight_hh, weights.bias_ih,
               weights.bias_hh, weights.weight_hr if spec.proj_size else None,
               weights.weight_peephole if spec.peephole else None, *layer_norm)
    if needs_autograd(*tensors):
        present = tuple(t is not None for t in tensors)
        outputs, h_final, c_final = LSTMSequence.apply(
            plan, present, *(t for t in tensors if t is not None)
        )
        return outputs, (h_final, c_final)
    arrays = lstm_arrays(*tensors[:9], tensors[9:])
    outputs, h_final, c_final, _ = lstm_forward_arrays(plan, *arrays)
    return torch.from_numpy(outputs), (torch.from_numpy(h_final), torch.from_numpy(c_final))
