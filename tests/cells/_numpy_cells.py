"""A tiny NumPy transcription of the equations in the docstrings of ``rnnkit.cells``.

It shares no code with the package: each function is written from the module docstring of
``cells/rnn.py``, ``cells/lstm.py`` (peepholes of Gers & Schmidhuber 2000, layer norm of
Ba et al. 2016 section 3.1) or ``cells/gru.py``. Weights use rnnkit's layout
(``weight_ih (G*H, I)``, gates i, f, g, o for LSTM and r, z, n for GRU).
"""

from __future__ import annotations

import numpy as np

ACTIVATIONS = {
    "tanh": np.tanh,
    "sigmoid": lambda a: 1.0 / (1.0 + np.exp(-a)),
    "hard_sigmoid": lambda a: np.clip((a + 3.0) / 6.0, 0.0, 1.0),  # Keras 3: relu6(a + 3) / 6
    "relu": lambda a: np.maximum(a, 0.0),
    "linear": lambda a: a,
}


def layer_norm(values: np.ndarray, gain: np.ndarray, offset: np.ndarray, eps: float) -> np.ndarray:
    """LN over the last axis with the biased variance, as in Ba et al. (2016), eq. 4."""
    mean = values.mean(axis=-1, keepdims=True)
    variance = ((values - mean) ** 2).mean(axis=-1, keepdims=True)
    return (values - mean) / np.sqrt(variance + eps) * gain + offset


def _bias(weights: dict, name: str, width: int) -> np.ndarray:
    value = weights.get(name)
    return np.zeros(width) if value is None else value


def rnn_step(spec, weights: dict, x: np.ndarray, state: tuple) -> tuple:
    """h_t = act(W x_t + b + U h_{t-1}), plus torch's ``bias_hh`` when present."""
    (h_prev,) = state
    width = spec.hidden_size
    pre = (
        x @ weights["weight_ih"].T
        + _bias(weights, "bias_ih", width)
        + h_prev @ weights["weight_hh"].T
        + _bias(weights, "bias_hh", width)
    )
    h = ACTIVATIONS[spec.activation](pre)
    return h, (h,)


def lstm_step(spec, weights: dict, x: np.ndarray, state: tuple) -> tuple:
    """The LSTM of ``cells/lstm.py`` with its peephole, layer-norm and projection options."""
    h_prev, c_prev = state
    width = spec.hidden_size
    sigma = ACTIVATIONS[spec.recurrent_activation]
    act = ACTIVATIONS[spec.activation]
    input_part = x @ weights["weight_ih"].T
    recurrent_part = h_prev @ weights["weight_hh"].T
    if spec.layer_norm:
        eps = spec.layer_norm_epsilon
        input_part = layer_norm(input_part, weights["ln_ih_weight"], weights["ln_ih_bias"], eps)
        recurrent_part = layer_norm(
            recurrent_part, weights["ln_hh_weight"], weights["ln_hh_bias"], eps
        )
    pre = (
        input_part
        + recurrent_part
        + _bias(weights, "bias_ih", 4 * width)
        + _bias(weights, "bias_hh", 4 * width)
    )
    pre_i, pre_f, pre_g, pre_o = np.split(pre, 4, axis=-1)
    if spec.peephole:
        peep_i, peep_f, peep_o = weights["weight_peephole"]
        pre_i = pre_i + peep_i * c_prev
        pre_f = pre_f + peep_f * c_prev
    c = sigma(pre_f) * c_prev + sigma(pre_i) * act(pre_g)
    if spec.peephole:
        pre_o = pre_o + peep_o * c  # the output gate looks at the new cell state
    shown_c = c
    if spec.layer_norm:
        shown_c = layer_norm(
            c, weights["ln_c_weight"], weights["ln_c_bias"], spec.layer_norm_epsilon
        )
    h = sigma(pre_o) * act(shown_c)
    if spec.proj_size:
        h = h @ weights["weight_hr"].T
    return h, (h, c)


def gru_step(spec, weights: dict, x: np.ndarray, state: tuple) -> tuple:
    """The GRU of ``cells/gru.py`` in both reset modes; h_t = z h_{t-1} + (1 - z) n_t."""
    (h_prev,) = state
    width = spec.hidden_size
    sigma = ACTIVATIONS[spec.recurrent_activation]
    act = ACTIVATIONS[spec.activation]
    w_r, w_z, w_n = np.split(weights["weight_ih"], 3)
    u_r, u_z, u_n = np.split(weights["weight_hh"], 3)
    b_r, b_z, b_n = np.split(_bias(weights, "bias_ih", 3 * width), 3)
    c_r, c_z, c_n = np.split(_bias(weights, "bias_hh", 3 * width), 3)
    reset = sigma(x @ w_r.T + b_r + h_prev @ u_r.T + c_r)
    update = sigma(x @ w_z.T + b_z + h_prev @ u_z.T + c_z)
    if spec.reset_after:
        candidate = act(x @ w_n.T + b_n + reset * (h_prev @ u_n.T + c_n))
    else:
        candidate = act(x @ w_n.T + b_n + (reset * h_prev) @ u_n.T + c_n)
    h = update * h_prev + (1.0 - update) * candidate
    return h, (h,)


STEPS = {"rnn": rnn_step, "lstm": lstm_step, "gru": gru_step}


def step(cell, x: np.ndarray, state: tuple) -> tuple:
    """One NumPy step of a built rnnkit ``cell`` (its spec and weights read as arrays)."""
    weights = {
        name: value.detach().numpy()
        for name, value in cell.weights()._asdict().items()
        if value is not None
    }
    return STEPS[cell.family](cell.spec, weights, x, state)
