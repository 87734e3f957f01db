"""Translation between rnnkit's cell parameters (PyTorch layout) and Keras's weight lists.

Keras stores ``kernel (I, G*H)``, ``recurrent_kernel (H, G*H)`` and ``bias (G*H,)`` — transposed
from rnnkit — and orders GRU gates ``z, r, h`` where rnnkit uses ``r, z, n``. A GRU with
``reset_after=True`` has a ``(2, 3H)`` bias: input bias then recurrent bias. rnnkit's extensions
follow, in this order: a separate recurrent bias, the projection ``(H, P)``, the peepholes
``(3, H)`` for i, f, o, and the layer-norm gains and offsets (ih, hh, c).
"""

from __future__ import annotations

import numpy as np
import torch

from rnnkit.cells.base import BuiltinCell

_LAYER_NORM = ("ln_ih_weight", "ln_ih_bias", "ln_hh_weight", "ln_hh_bias", "ln_c_weight",
               "ln_c_bias")


def _reorder_gates(cell: BuiltinCell, tensor: torch.Tensor) -> torch.Tensor:
    """Swap the first two gate blocks of a GRU (r, z, n <-> z, r, h): its own inverse."""
    if cell.family != "gru":
        return tensor
    reset, update, candidate = tensor.chunk(3, dim=0)
    return torch.cat([update, reset, candidate], dim=0)


def _entries(cell: BuiltinCell):
    """``(parameter name, to_keras, from_keras)`` for each Keras weight, in Keras's order."""
    gates = lambda t: _reorder_gates(cell, t)  # noqa: E731
    transposed = (lambda t: gates(t).T, lambda k: gates(k.T))
    entries = [("weight_ih", *transposed), ("weight_hh", *transposed)]
    fused_gru_bias = cell.family == "gru" and getattr(cell, "reset_after", False)
    if fused_gru_bias and getattr(cell, "bias_ih", None) is not None:
        entries.append(("bias_ih+bias_hh", None, None))
    else:
        entries += [(name, gates, gates) for name in ("bias_ih", "bias_hh")
                    if getattr(cell, name, None) is not None]
    if getattr(cell, "weight_hr", None) is not None:
        entries.append(("weight_hr", lambda t: t.T, lambda k: k.T))
    identity = (lambda t: t, lambda k: k)
    entries += [(name, *identity) for name in ("weight_peephole", *_LAYER_NORM)
                if getattr(cell, name, None) is not None]
    return entries


def keras_weights(cell: BuiltinCell) -> list[np.ndarray]:
    """The cell's weights as Keras's list of NumPy arrays."""
    arrays = []
    with torch.no_grad():
        for name, to_keras, _ in _entries(cell):
            if name == "bias_ih+bias_hh":
                value = torch.stack([_reorder_gates(cell, cell.bias_ih),
                                     _reorder_gates(cell, cell.bias_hh)])
            else:
                value = to_keras(getattr(cell, name))
            arrays.append(value.detach().cpu().numpy().copy())
    return arrays


def set_keras_weights(cell: BuiltinCell, arrays, owner: str) -> None:
    """Load Keras's list of arrays into the cell; shapes are checked against Keras's first."""
    expected = [a.shape for a in keras_weights(cell)]
    arrays = list(arrays)
    if len(arrays) != len(expected):
        raise ValueError(f"{owner}: set_weights expected {len(expected)} arrays with shapes "
                         f"{expected}, got {len(arrays)}")
    for index, (array, shape) in enumerate(zip(arrays, expected)):
        if tuple(np.shape(array)) != tuple(shape):
            raise ValueError(f"{owner}: weights[{index}] expected shape {tuple(shape)}, "
                             f"got {tuple(np.shape(array))}")
    with torch.no_grad():
        for (name, _, from_keras), array in zip(_entries(cell), arrays):
            value = torch.as_tensor(np.asarray(array))
            if name == "bias_ih+bias_hh":
                cell.bias_ih.copy_(_reorder_gates(cell, value[0]))
                cell.bias_hh.copy_(_reorder_gates(cell, value[1]))
            else:
                getattr(cell, name).copy_(from_keras(value))
