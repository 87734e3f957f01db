"""ONNX's ``LSTM``, ``GRU`` and ``RNN`` operators from rnnkit cells.

One operator runs one layer in one or both directions over time-major input ``X (T, B, I)`` and
returns ``Y (T, D, B, H)``, ``Y_h (D, B, H)`` (and LSTM's ``Y_c``). Its weights are stacked per
direction, ``W (D, G*H, I)``, ``R (D, G*H, H)``, ``B (D, 2*G*H)`` (input biases then recurrent
biases) and LSTM's peepholes ``P (D, 3H)``. rnnkit's PyTorch gate order is rearranged:

- LSTM: rnnkit ``i, f, g, o`` -> ONNX ``i, o, f, c``; peepholes rnnkit ``i, f, o`` -> ONNX
  ``i, o, f``.
- GRU: rnnkit ``r, z, n`` -> ONNX ``z, r, h``; ``reset_after=True`` is ``linear_before_reset=1``.
- RNN: one block, unchanged.

``sequence_lens (B,)`` stops each sequence at its length: later outputs are zero, ``Y_h`` is the
state at the last real step, and the reverse direction starts at each sequence's own end.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rnnkit import activations
from rnnkit.cells.base import CellSpec, CellWeights
from rnnkit.interop._onnx_graph import RECURRENT_ACTIVATIONS, GraphBuilder

_OPERATORS = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN"}
_GATE_ORDER = {"lstm": (0, 3, 1, 2), "gru": (1, 0, 2), "rnn": (0,)}
_PEEPHOLE_ORDER = (0, 2, 1)  # rnnkit's rows i, f, o -> ONNX's i, o, f


@dataclass
class RecurrentOutputs:
    sequence: str  # Y (T, D, B, H)
    last_h: str  # Y_h (D, B, H)
    last_c: str | None  # Y_c (D, B, H), LSTM only


def _numpy(tensor, dtype) -> np.ndarray:
    return tensor.detach().cpu().numpy().astype(dtype)


def _reorder(array: np.ndarray, family: str) -> np.ndarray:
    order = _GATE_ORDER[family]
    blocks = np.split(array, len(order), axis=0)
    return np.concatenate([blocks[index] for index in order], axis=0)


def _check_spec(spec: CellSpec, where: str) -> None:
    if spec.proj_size:
        raise ValueError(f"{where}: LSTM projection (proj_size={spec.proj_size}) has no "
                         "counterpart in ONNX's LSTM operator")
    if spec.layer_norm:
        raise ValueError(f"{where}: layer_norm=True has no counterpart in ONNX's LSTM operator")


def _activations(spec: CellSpec, where: str) -> list[str]:
    names = {"lstm": [spec.recurrent_activation, spec.activation, spec.activation],
             "gru": [spec.recurrent_activation, spec.activation],
             "rnn": [spec.activation]}[spec.family]
    keras_names = []
    for value in names:
        name = activations.name_of(value)
        if name not in RECURRENT_ACTIVATIONS or activations.get(name) is not activations.get(
                value):
            raise ValueError(f"{where}: activation {name!r} is not one ONNX's recurrent "
                             f"operators take; supported: {sorted(RECURRENT_ACTIVATIONS)}")
        keras_names.append(name)
    return keras_names


def _stacked_weights(cells: list[tuple[CellSpec, CellWeights]], dtype) -> dict[str, np.ndarray]:
    family = cells[0][0].family
    gate_rows = cells[0][1].weight_ih.shape[0]
    w, r, b, p = [], [], [], []
    for _, weights in cells:
        w.append(_reorder(_numpy(weights.weight_ih, dtype), family))
        r.append(_reorder(_numpy(weights.weight_hh, dtype), family))
        biases = [np.zeros(gate_rows, dtype) if bias is None else _reorder(_numpy(bias, dtype),
                                                                            family)
                  for bias in (weights.bias_ih, weights.bias_hh)]
        b.append(np.concatenate(biases))
        if weights.weight_peephole is not None:
            p.append(_numpy(weights.weight_peephole, dtype)[list(_PEEPHOLE_ORDER)].reshape(-1))
    stacked = {"W": np.stack(w), "R": np.stack(r)}
    if any(weights.bias_ih is not None or weights.bias_hh is not None for _, weights in cells):
        stacked["B"] = np.stack(b)
    if p:
        stacked["P"] = np.stack(p)
    return stacked


def recurrent_op(builder: GraphBuilder, cells: list[tuple[CellSpec, CellWeights]],
                 inputs: str, hint: str, *, reverse: bool = False, lengths: str | None = None,
                 initial_state: list[str] | None = None) -> RecurrentOutputs:
    """One ONNX recurrent node over time-major ``inputs (T, B, I)``.

    ``cells`` holds one ``(spec, weights)`` (``reverse`` picks the direction) or two (forward,
    backward: a bidirectional node). ``lengths`` is an int32 ``(B,)`` value; ``initial_state``
    holds ``(D, B, H)`` values (h, and c for LSTM).
    """
    specs = [spec for spec, _ in cells]
    first = specs[0]
    for spec in specs:
        _check_spec(spec, hint)
        if (spec.family, spec.hidden_size, spec.reset_after) != (
                first.family, first.hidden_size, first.reset_after):
            raise ValueError(f"{hint}: the two directions must share the cell kind, size and "
                             "reset_after to form one ONNX operator")
    if len({(w.weight_peephole is None) for _, w in cells}) > 1:
        raise ValueError(f"{hint}: one direction has peepholes and the other not")
    family = first.family
    names, alphas, betas = [], [], []
    for spec in specs:
        for keras_name in _activations(spec, hint):
            onnx_name, alpha, beta = RECURRENT_ACTIVATIONS[keras_name]
            names.append(onnx_name)
            # onnxruntime reads alpha/beta only for the activations that take them, in order.
            if alpha is not None:
                alphas.append(alpha)
                betas.append(beta)
    weights = _stacked_weights(cells, builder.float_dtype)
    arguments = [inputs, builder.constant(weights["W"], f"{hint}/W"),
                 builder.constant(weights["R"], f"{hint}/R"),
                 builder.constant(weights["B"], f"{hint}/B") if "B" in weights else "",
                 lengths or "", *(initial_state or [])]
    if "P" in weights:
        arguments += [""] * (7 - len(arguments)) + [builder.constant(weights["P"], f"{hint}/P")]
    while arguments[-1] == "":
        arguments.pop()
    attributes = {"hidden_size": first.hidden_size, "activations": names,
                  "direction": "bidirectional" if len(cells) == 2 else (
                      "reverse" if reverse else "forward")}
    if alphas:
        attributes.update(activation_alpha=alphas, activation_beta=betas)
    if family == "gru":
        attributes["linear_before_reset"] = int(first.reset_after)
    outputs = builder.op(_OPERATORS[family], arguments, hint, outputs=3 if family == "lstm" else 2,
                         **attributes)
    return RecurrentOutputs(outputs[0], outputs[1], outputs[2] if family == "lstm" else None)
