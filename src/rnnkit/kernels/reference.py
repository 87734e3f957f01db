"""The reference path: a Python loop over time calling the cell once per step.

It runs any cell that follows the cell protocol (see :mod:`rnnkit.cells.base`) and is the ground
truth the fused kernels are tested against.
"""

from __future__ import annotations

import torch


def _call_cell(cell, x_t, state, recurrent_mask):
    if recurrent_mask is None:
        return cell(x_t, state)
    return cell(x_t, state, recurrent_mask=recurrent_mask)


def run_reference(cell, inputs: torch.Tensor, state: tuple[torch.Tensor, ...] | None,
                  mask: torch.Tensor | None = None, recurrent_mask: torch.Tensor | None = None,
                  zero_output_for_mask: bool = False, stacked: bool = False):
    """Run ``cell`` over ``inputs (B, T, I)`` from ``state``; returns ``(outputs, state)``.

    ``state`` ``None`` means zeros of ``cell.state_size``. Where ``mask[b, t]`` is False the state
    is carried unchanged and the output repeats the previous one (zeros before the first real
    step), or is zero if ``zero_output_for_mask``. The returned state's tensors are ``(B, s)``,
    or ``(1, B, s)`` with ``stacked``.
    """
    if state is None:
        batch = inputs.shape[0]
        state = tuple(inputs.new_zeros(batch, size) for size in cell.state_size)
    outputs = []
    previous_output = None
    for t in range(inputs.shape[1]):
        output, new_state = _call_cell(cell, inputs[:, t], state, recurrent_mask)
        new_state = (new_state,) if isinstance(new_state, torch.Tensor) else tuple(new_state)
        if mask is not None:
            keep = mask[:, t, None]  # (B, 1)
            if previous_output is None:
                previous_output = torch.zeros_like(output)
            fallback = torch.zeros_like(output) if zero_output_for_mask else previous_output
            output = torch.where(keep, output, fallback)
            new_state = tuple(torch.where(keep, new, old) for new, old in zip(new_state, state))
        outputs.append(output)
        previous_output = output
        state = new_state
    if stacked:
        state = tuple(tensor.unsqueeze(0) for tensor in state)
    return torch.stack(outputs, dim=1), state
