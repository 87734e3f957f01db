"""Fused SimpleRNN over a whole sequence, forward and backpropagation through time.

    h_t = act(W x_t + b_ih + b_hh + U (m ⊙ h_{t-1}))        (m: the recurrent-dropout mask)

``W x_t + b`` for all steps is one torch GEMM (autograd gives ``dX``, ``dW`` and ``db`` from it);
the compiled loop does ``U h`` per step and the activation; its backward yields the
pre-activation gradients of all steps, from which ``dU`` is one more GEMM.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch.autograd.function import once_differentiable

from rnnkit.cells.base import affine
from rnnkit.kernels._common import (
    SequenceMasks,
    as_array,
    flat,
    initial_state,
    masked_recurrent_inputs,
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


class RNNConfig(NamedTuple):
    masks: SequenceMasks
    activation: int


@jit
def rnn_forward(x_proj, h0, weight_hh_t, keep, recurrent_mask, zero_output, act):
    """Run the recurrence on ``x_proj (B, T, H)`` from ``h0 (B, H)`` with ``weight_hh_t (H, H)``.

    Returns ``outputs (B, T, H)``, ``states (B, T+1, H)`` (the carried h, ``states[:, 0] = h0``)
    and ``new (B, T, H)``, the unmasked ``h_t`` each step, kept for the backward pass.
    """
    batch, steps, hidden = x_proj.shape
    outputs = np.empty_like(x_proj)
    new = np.empty_like(x_proj)
    states = np.empty((batch, steps + 1, hidden), x_proj.dtype)
    states[:, 0] = h0
    h_rec = np.empty_like(h0)
    h_proj = np.empty_like(h0)  # (B, H)
    for t in range(steps):
        recurrent_input(states, t, recurrent_mask, h_rec)
        np.dot(h_rec, weight_hh_t, h_proj)
        for b in range(batch):
            for j in range(hidden):
                h_proj[b, j] += x_proj[b, t, j]
            activate_block(act, h_proj[b], new[b, t])
            emit_step(outputs, states, b, t, keep[b, t], zero_output, new[b, t])
    return outputs, states, new


@jit
def rnn_backward(d_outputs, d_final, new, weight_hh, keep, recurrent_mask, zero_output, act):
    """Backpropagate through time; returns ``d_pre (B, T, H)`` and ``d_h0 (B, H)``."""
    batch, steps, hidden = new.shape
    d_pre = np.zeros_like(new)
    d_state = d_final.copy()  # gradient of the carried h after the current step
    carry = np.zeros_like(d_final)
    d_new = np.empty_like(d_final)
    d_pre_t = np.empty_like(d_final)
    d_rec = np.empty_like(d_final)
    for t in range(steps - 1, -1, -1):
        for b in range(batch):
            route_output_grad(d_outputs, carry, b, t, keep[b, t], zero_output, d_state, d_new)
            for j in range(hidden):
                d_pre_t[b, j] = d_new[b, j] * derivative(act, new[b, t, j])
            d_pre[b, t] = d_pre_t[b]
        np.dot(d_pre_t, weight_hh, d_rec)
        for b in range(batch):
            if keep[b, t]:
                d_state[b] = d_rec[b] * recurrent_mask[b]
    return d_pre, d_state


class SimpleRNNSequence(torch.autograd.Function):
    """``(x_proj (B, T, H), h0 (B, H), weight_hh (H, H)) -> (outputs (B, T, H), h_T (B, H))``."""

    @staticmethod
    def forward(ctx, config: RNNConfig, x_proj, h0, weight_hh):
        masks = config.masks
        with single_threaded_blas():
            outputs, states, new = rnn_forward(
                as_array(x_proj),
                as_array(h0),
                as_array(weight_hh.T),
                masks.keep,
                masks.recurrent,
                masks.zero_output,
                config.activation,
            )
        ctx.config, ctx.arrays = config, (states, new)
        ctx.save_for_backward(weight_hh)
        return torch.from_numpy(outputs), torch.from_numpy(states[:, -1].copy())

    @staticmethod
    @once_differentiable
    def backward(ctx, d_outputs, d_final):
        config, (states, new) = ctx.config, ctx.arrays
        (weight_hh,) = ctx.saved_tensors
        masks = config.masks
        with single_threaded_blas():
            d_pre, d_h0 = rnn_backward(
                as_array(d_outputs),
                as_array(d_final),
                new,
                as_array(weight_hh),
                masks.keep,
                masks.recurrent,
                masks.zero_output,
                config.activation,
            )
        d_weight_hh = None
        if ctx.needs_input_grad[3]:
            h_rec = masked_recurrent_inputs(torch.from_numpy(states), masks)  # (B*T, H)
            d_weight_hh = flat(d_pre).T @ h_rec
        return None, torch.from_numpy(d_pre), torch.from_numpy(d_h0), d_weight_hh


def supports(spec, weights) -> bool:
    """SimpleRNN has no options beyond the activation, checked by the dispatcher."""
    return True


def run_simple_rnn(cell, inputs, state, masks: SequenceMasks, codes: tuple[int, int]):
    """Fused SimpleRNN: ``inputs (B, T, I)`` -> ``(outputs (B, T, H), (h_T,))``."""
    weights = cell.weights()
    batch, steps, features = inputs.shape
    hidden = cell.spec.hidden_size
    x_proj = affine(
        inputs.reshape(batch * steps, features), weights.weight_ih, weights.bias_ih
    )  # (B*T, H)
    if weights.bias_hh is not None:
        x_proj = x_proj + weights.bias_hh
    h0 = initial_state(state, 0, batch, hidden)
    config = RNNConfig(masks, codes[0])
    outputs, h_final = SimpleRNNSequence.apply(
        config, x_proj.reshape(batch, steps, hidden), h0, weights.weight_hh
    )
    return outputs, (h_final,)
