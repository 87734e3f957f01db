"""Gradient flow: ``‖∂L/∂h_t‖`` against ``t``, measured by backpropagation through time.

This replaces seed 001's illustration (random numbers shaped like a decay) with a measurement:
run a recurrent layer over a sequence, take a loss on the last output, and read the gradient of that
loss with respect to every hidden state.

Example:
    >>> norms = gradient_norms(rnnkit.layers.LSTM(32), x, y)       # doctest: +SKIP
    >>> norms.shape   # (T,)                                        # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np
import torch

from rnnkit._checks import as_float_tensor, check_rank
from rnnkit.inspect.gates import _cell_of


def gradient_norms(layer, inputs, targets=None, head: torch.nn.Module | None = None,
                   loss_fn=None) -> np.ndarray:
    """Mean over the batch of ``‖∂L/∂h_t‖₂`` for ``t = 1..T``, with L a loss on ``h_T``.

    ``head`` maps ``h_T`` to a prediction (a random linear map to 1 output if None); ``loss_fn``
    defaults to mean squared error against ``targets`` (zeros if None). Returns ``(T,)``.
    """
    cell = _cell_of(layer)
    dtype = next(cell.parameters()).dtype if cell.built else torch.get_default_dtype()
    inputs = as_float_tensor(inputs, "inputs", dtype)
    check_rank(inputs, "inputs", 3, "(batch, timesteps, features)")
    if not cell.built:
        cell.build(inputs.shape[-1])
    batch, steps = inputs.shape[:2]
    state = cell.get_initial_state(batch, inputs.dtype, inputs.device)
    hidden = []
    for t in range(steps):
        output, state = cell(inputs[:, t], state)
        hidden.append(output)
    head = head or torch.nn.Linear(cell.output_size, 1, dtype=inputs.dtype)
    prediction = head(hidden[-1])
    targets = torch.zeros_like(prediction) if targets is None else as_float_tensor(
        targets, "targets", inputs.dtype).reshape(prediction.shape)
    loss = (loss_fn or torch.nn.functional.mse_loss)(prediction, targets)
    grads = torch.autograd.grad(loss, hidden)
    return np.array([g.norm(dim=-1).mean().item() for g in grads])
