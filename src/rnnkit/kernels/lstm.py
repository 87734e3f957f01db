"""Fused LSTM over a whole sequence (peepholes, layer norm, projection), forward and BPTT.

With ``x̂_t = LN_ih(W x_t) + b_ih + b_hh`` (LN only with ``layer_norm``) and ``ĥ = m ⊙ h_{t-1}``::

    [a_i a_f a_g a_o] = x̂_t + LN_hh(U ĥ)
    i_t = σ(a_i + p_i ⊙ c_{t-1})      f_t = σ(a_f + p_f ⊙ c_{t-1})      g_t = tanh(a_g)
    c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t
    o_t = σ(a_o + p_o ⊙ c_t)
    h_t = W_hr (o_t ⊙ tanh(LN_c(c_t)))        (W_hr only with ``proj_size``)

Forward and backward are one compiled call each (:mod:`rnnkit.kernels._lstm_loops`), input
projection and weight gradients included, behind the ``autograd.Function`` of
:mod:`rnnkit.kernels.fused`, which drives this module's array-level interface.
"""

from __future__ import annotations

from rnnkit.kernels._common import Plan, arrays_of, optional_matrix
from rnnkit.kernels._lstm_loops import lstm_backward_arrays, lstm_forward_arrays

# The weights the kernel reads, in the order of the loops' arguments (and of their gradients).
FIELDS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr", "weight_peephole",
          "ln_ih_weight", "ln_ih_bias", "ln_hh_weight", "ln_hh_bias", "ln_c_weight", "ln_c_bias")
LAYER_NORM_FIELDS = FIELDS[6:]


def supports(spec, weights) -> bool:
    """Every LSTM option has a kernel, given the tensors the spec's options call for."""
    return all(getattr(weights, name) is not None for name in _option_fields(spec))


def _option_fields(spec) -> tuple[str, ...]:
    """The optional weights ``spec`` uses."""
    return (
        (("weight_hr",) if spec.proj_size else ())
        + (("weight_peephole",) if spec.peephole else ())
        + (LAYER_NORM_FIELDS if spec.layer_norm else ())
    )


def weight_tensors(spec, weights) -> tuple:
    """The tensors in :data:`FIELDS` order; ``None`` for absent biases and options that are off."""
    used = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", *_option_fields(spec))
    return tuple(getattr(weights, name) if name in used else None for name in FIELDS)


def prepare(spec, tensors, dtype) -> tuple:
    """The weights as the loops take them: ``(w_ih, w_hh, b_ih, b_hh, w_hr, peep, ln)``, views of
    the tensors where they are contiguous, empty arrays for absent ones (``ln``: six vectors)."""
    w_ih, w_hh, b_ih, b_hh, w_hr, peep, *ln = tensors
    w_ih_, w_hh_, b_ih_, b_hh_, *ln_ = arrays_of(dtype, w_ih, w_hh, b_ih, b_hh, *ln)
    return (w_ih_, w_hh_, b_ih_, b_hh_, optional_matrix(w_hr, dtype),
            optional_matrix(peep, dtype), ln_)


def settings(plan: Plan) -> dict:
    """The keyword settings the array-level kernels take, from a call's plan."""
    return dict(
        eps=float(plan.spec.layer_norm_epsilon), keep=plan.keep, recurrent=plan.recurrent,
        zero_output=plan.zero_output, activation=plan.activation,
        recurrent_activation=plan.recurrent_activation,
    )


def forward(plan: Plan, x, states, prepared):
    """``x (B, T, I)``, ``states = [h0 (B, R), c0 (B, H)]`` -> ``(outputs (B, T, R),
    [h_T, c_T], saved)``."""
    arrays = (x, *states, *prepared)
    outputs, h_final, c_final, saved = lstm_forward_arrays(*arrays, **settings(plan))
    return outputs, (h_final, c_final), (saved, arrays)


def backward(plan: Plan, saved, d_outputs, d_finals, needs) -> tuple:
    """The gradients of ``(x, h0, c0, *FIELDS)`` flagged in ``needs`` (others unspecified)."""
    loop_saved, arrays = saved
    return lstm_backward_arrays(loop_saved, arrays, d_outputs, *d_finals, needs, **settings(plan))
