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
)
from rnnkit.kernels._lstm_loops import lstm_backward_arrays, lstm_forward_arrays

# The autograd inputs after ``plan``, in order.
INPUTS = ("x", "h0", "c0", "weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr",
          "weight_peephole", "ln_ih_weight", "ln_ih_bias", "ln_hh_weight", "ln_hh_bias",
          "ln_c_weight", "ln_c_bias")


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
        with blas_threads(plan.threads):
            outputs, h_final, c_final, saved = lstm_forward_arrays(*arrays, **settings(plan))
        ctx.plan, ctx.arrays, ctx.present = plan, (saved, arrays), present
        ctx.save_for_backward(*given[3:])  # the weights: a version check on in-place updates
        return torch.from_numpy(outputs), torch.from_numpy(h_final), torch.from_numpy(c_final)

    @staticmethod
    @once_differentiable
    def backward(ctx, d_outputs, d_h_final, d_c_final):
        plan, (saved, arrays) = ctx.plan, ctx.arrays
        ctx.saved_tensors  # noqa: B018  (raises if a weight changed in place since the forward)
        needs_given = iter(ctx.needs_input_grad[2:])
        needs = [next(needs_given) if flag else False for flag in ctx.present]  # by INPUTS
        with blas_threads(plan.threads):
            all_grads = lstm_backward_arrays(
                saved, arrays, as_array(d_outputs), d_h_final.detach().numpy(),
                d_c_final.detach().numpy(), needs, **settings(plan),
            )
        result = gradients(all_grads, needs)
        return (None, None, *(g for g, flag in zip(result, ctx.present) if flag))


def settings(plan: Plan) -> dict:
    """The keyword settings the array-level kernels take, from a call's plan."""
    return dict(
        eps=float(plan.spec.layer_norm_epsilon), keep=plan.keep, recurrent=plan.recurrent,
        zero_output=plan.zero_output, activation=plan.activation,
        recurrent_activation=plan.recurrent_activation,
    )


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
    with blas_threads(plan.threads):
        outputs, h_final, c_final, _ = lstm_forward_arrays(*arrays, **settings(plan))
    return torch.from_numpy(outputs), (torch.from_numpy(h_final), torch.from_numpy(c_final))
