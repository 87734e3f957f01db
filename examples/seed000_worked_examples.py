"""Seed 000's one-step LSTM and GRU examples, recomputed with rnnkit's step API.

Run it with ``python examples/seed000_worked_examples.py``. It prints every intermediate value
next to the one seed 000 printed; docs/seed_examples.md explains the differences.

How the seed is read (see the doc for the alternatives that were rejected):

- the input is the scalar ``x = 0.5`` (input dimension 1, as the seed says);
- ``W x`` and ``U h`` are matrix-vector products with one row per unit, as the formulas are
  written; a 2x2 ``W`` has one column too many for a scalar input, and only its first column
  multiplies ``x`` (the same as an input ``[0.5, 0]``);
- the GRU uses the seed's ``h_t = (1 - z) h_{t-1} + z h~_t``. rnnkit's GRU (like Keras and PyTorch)
  computes ``u h_{t-1} + (1 - u) h~_t``; since ``1 - sigmoid(a) = sigmoid(-a)``, loading the update
  gate's weights and bias negated gives ``u = 1 - z`` and so the seed's cell.
"""

from __future__ import annotations

import numpy as np
import torch

from rnnkit.inspect.seed000 import (  # the seed's numbers, read as the docstring says
    C_PREV,
    H_PREV,
    X,
    gru_keras_weights,
    lstm_keras_weights,
)
from rnnkit.layers import GRU, LSTM

C_PREV, H_PREV = np.array(C_PREV), np.array(H_PREV)

# What seed 000 printed for each quantity computed below (same keys).
SEED_LSTM = {
    "i.x": (0.05, 0.1),
    "i.rec": (0.55, 0.65),
    "i.pre": (0.6, 0.75),
    "i": (0.55, 0.68),
    "f.x": (0.25, 0.35),
    "f.rec": (0.75, 0.85),
    "f.pre": (1.0, 1.2),
    "f": (0.73, 0.78),
    "g.x": (0.45, 0.55),
    "g.rec": (0.7, 0.8),
    "g.pre": (1.15, 1.35),
    "g": (0.58, 0.66),
    "f*c_prev": (0.292, 0.39),
    "c": (0.479, 0.63),
    "o.x": (0.65, 0.75),
    "o.rec": (0.95, 1.05),
    "o.pre": (1.6, 1.8),
    "o": (0.82, 0.87),
    "tanh(c)": (0.44, 0.53),
    "h": (0.36, 0.46),
}
SEED_GRU = {
    "z.x": (0.05, 0.1),
    "z.rec": (0.45, 0.55),
    "z.pre": (0.5, 0.65),
    "z": (0.62, 0.66),
    "r.x": (0.25, 0.35),
    "r.rec": (0.65, 0.75),
    "r.pre": (0.9, 1.1),
    "r": (0.71, 0.75),
    "h~.x": (0.45, 0.55),
    "h~.rec": (0.55, 0.65),
    "h~.pre": (1.0, 1.2),
    "h~": (0.58, 0.62),
    "(1-z)*h_prev": (0.38, 0.42),
    "z*h~": (0.36, 0.41),
    "h": (0.74, 0.83),
}

LABELS = {
    "i": "input gate i_t",
    "f": "forget gate f_t",
    "g": "candidate c~_t",
    "o": "output gate o_t",
    "f*c_prev": "f_t * c_{t-1}",
    "c": "cell state c_t",
    "tanh(c)": "tanh(c_t)",
    "h": "hidden state h_t",
    "z": "update gate z_t",
    "r": "reset gate r_t",
    "h~": "candidate h~_t",
    "(1-z)*h_prev": "(1 - z_t) * h_{t-1}",
    "z*h~": "z_t * h~_t",
    "h~.rec": "h~: U (r * h) + b",
}


def _sigmoid(a: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-a))


def run_lstm() -> dict[str, np.ndarray]:
    """Every intermediate of the seed's LSTM step; ``c`` and ``h`` come from ``layer.step``.

    The gate values are read off the layer's own (Keras-layout) weights, so they show what the
    loaded layer computes; ``check`` is the largest gap between them and the step's c_t and h_t.
    """
    layer = LSTM(2, input_shape=(None, 1), dtype="float64")
    layer.set_weights(lstm_keras_weights())
    x, h, c = np.array([[X]]), H_PREV[None, :], C_PREV[None, :]
    with torch.no_grad():
        _, (h_t, c_t) = layer.step(x, [h, c])  # (1, 2) each
    kernel, recurrent_kernel, bias = layer.get_weights()
    x_terms = np.split((x @ kernel)[0], 4)
    recurrent_terms = np.split((h @ recurrent_kernel + bias)[0], 4)
    values: dict[str, np.ndarray] = {}
    for name, x_term, recurrent_term in zip("ifgo", x_terms, recurrent_terms, strict=True):
        values[f"{name}.x"], values[f"{name}.rec"] = x_term, recurrent_term
        values[f"{name}.pre"] = x_term + recurrent_term
        values[name] = (np.tanh if name == "g" else _sigmoid)(values[f"{name}.pre"])
    values["f*c_prev"] = values["f"] * C_PREV
    values["c"] = c_t[0].numpy()
    values["tanh(c)"] = np.tanh(values["c"])
    values["h"] = h_t[0].numpy()
    check_c = values["f*c_prev"] + values["i"] * values["g"] - values["c"]
    check_h = values["o"] * values["tanh(c)"] - values["h"]
    values["check"] = np.array([np.abs(check_c).max(), np.abs(check_h).max()])
    return values


def run_gru() -> dict[str, np.ndarray]:
    """Every intermediate of the seed's GRU step, in the seed's convention; ``h`` from ``step``."""
    layer = GRU(2, reset_after=False, input_shape=(None, 1), dtype="float64")
    layer.set_weights(gru_keras_weights())
    x, h = np.array([[X]]), H_PREV[None, :]
    with torch.no_grad():
        _, (h_t,) = layer.step(x, [h])
    kernel, recurrent_kernel, bias = layer.get_weights()
    kernel_zr, kernel_h = kernel[:, :4], kernel[:, 4:]
    rec_zr, rec_h = recurrent_kernel[:, :4], recurrent_kernel[:, 4:]
    x_z, x_r = np.split((x @ kernel_zr)[0], 2)
    rec_z, rec_r = np.split((h @ rec_zr + bias[:4])[0], 2)
    values = {"z.x": -x_z, "z.rec": -rec_z, "r.x": x_r, "r.rec": rec_r}  # undo the negation
    for name in ("z", "r"):
        values[f"{name}.pre"] = values[f"{name}.x"] + values[f"{name}.rec"]
        values[name] = _sigmoid(values[f"{name}.pre"])
    values["h~.x"] = (x @ kernel_h)[0]
    values["h~.rec"] = (values["r"] * H_PREV) @ rec_h + bias[4:]
    values["h~.pre"] = values["h~.x"] + values["h~.rec"]
    values["h~"] = np.tanh(values["h~.pre"])
    values["(1-z)*h_prev"] = (1.0 - values["z"]) * H_PREV
    values["z*h~"] = values["z"] * values["h~"]
    values["h"] = h_t[0].numpy()
    values["check"] = np.abs(values["(1-z)*h_prev"] + values["z*h~"] - values["h"]).max()[None]
    return values


def _label(key: str) -> str:
    gate, _, part = key.partition(".")
    if key in LABELS:
        return LABELS[key]
    return {"x": f"{gate}: W x", "rec": f"{gate}: U h + b", "pre": f"{gate}: pre-activation"}[part]


def _print_table(title: str, values: dict[str, np.ndarray], seed: dict[str, tuple]) -> None:
    print(title)
    print(f"  {'quantity':<24}{'rnnkit (float64)':<24}seed 000")
    for key, printed in seed.items():
        computed = ", ".join(f"{v:.6f}" for v in values[key])
        shown = ", ".join(f"{v:g}" for v in printed)
        print(f"  {_label(key):<24}[{computed}]  [{shown}]")
    print(f"  largest gap between the gate equations and layer.step: {values['check'].max():.1e}")
    print()


def main() -> None:
    _print_table("LSTM, one step: x = 0.5, h = [0.2, 0.3], c = [0.4, 0.5]", run_lstm(), SEED_LSTM)
    _print_table(
        "GRU (seed's h = (1 - z) h + z h~), one step: x = 0.5, h = [0.2, 0.3]", run_gru(), SEED_GRU
    )


if __name__ == "__main__":
    main()
