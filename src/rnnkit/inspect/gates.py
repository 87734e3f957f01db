"""Gate traces: every gate's activation at every step, from the reference equations.

Example:
    >>> layer = rnnkit.layers.LSTM(4)                               # doctest: +SKIP
    >>> trace = trace_gates(layer, x)                               # doctest: +SKIP
    >>> trace["forget"].shape   # (B, T, H)                         # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np
import torch

from rnnkit._checks import as_float_tensor, check_rank
from rnnkit.cells.base import BuiltinCell


def _cell_of(layer) -> BuiltinCell:
    cell = getattr(layer, "cell", layer)
    if not isinstance(cell, BuiltinCell):
        raise TypeError(f"layer: expected a built-in recurrent layer or cell (LSTM, GRU, "
                        f"SimpleRNN), got {type(layer).__name__}")
    return cell


@torch.no_grad()
def trace_gates(layer, inputs, initial_state=None) -> dict[str, np.ndarray]:
    """Run ``layer``'s cell over ``inputs (B, T, I)`` and return each gate as ``(B, T, H)``.

    Also returns ``"h"`` (the output) per step. ``go_backwards`` is ignored: steps are in input
    order.
    """
    cell = _cell_of(layer)
    dtype = next(cell.parameters()).dtype if cell.built else torch.get_default_dtype()
    inputs = as_float_tensor(inputs, "inputs", dtype)
    check_rank(inputs, "inputs", 3, "(batch, timesteps, features)")
    if not cell.built:
        cell.build(inputs.shape[-1])
    batch = inputs.shape[0]
    state = tuple(initial_state) if initial_state is not None else cell.get_initial_state(
        batch, inputs.dtype, inputs.device)
    traces: dict[str, list[torch.Tensor]] = {}
    for t in range(inputs.shape[1]):
        output, state, gates = cell.step_with_gates(cell.spec, cell.weights(), inputs[:, t],
                                                    tuple(state))
        for name, value in {**gates, "h": output}.items():
            traces.setdefault(name, []).append(value)
    return {name: torch.stack(values, dim=1).cpu().numpy() for name, values in traces.items()}
