"""Input validation shared by every public entry point.

Each check raises a ``ValueError`` or ``TypeError`` whose message names the argument, what was
expected and what was received. Nothing is broadcast silently.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def as_tensor(value, name: str) -> torch.Tensor:
    """Convert a NumPy array, a list, or a pandas object to a tensor without copying a tensor."""
    if isinstance(value, torch.Tensor):
        return value
    if hasattr(value, "to_numpy"):
        value = value.to_numpy()
    if isinstance(value, (np.ndarray, list, tuple, float, int, np.generic)):
        array = np.asarray(value)
        if array.dtype == object:
            raise TypeError(f"{name}: expected a numeric array, got an array of Python objects")
        array = np.ascontiguousarray(array)
        if not array.flags.writeable:  # e.g. pandas' read-only views; torch needs a writable one
            array = array.copy()
        return torch.from_numpy(array)
    raise TypeError(
        f"{name}: expected a torch.Tensor or a NumPy array, got {type(value).__name__}"
    )


def as_float_tensor(value, name: str, dtype: torch.dtype | None = None) -> torch.Tensor:
    """A floating tensor; NumPy input is cast to ``dtype`` (Keras's autocast), ints are refused."""
    tensor = as_tensor(value, name)
    if not tensor.is_floating_point():
        raise TypeError(
            f"{name}: expected a floating-point tensor, got dtype {tensor.dtype}"
            " (cast it with .float() if the integers are real values)"
        )
    if dtype is not None and tensor.dtype != dtype:
        tensor = tensor.to(dtype)
    return tensor


def check_rank(tensor: torch.Tensor, name: str, rank: int, layout: str) -> None:
    if tensor.dim() != rank:
        raise ValueError(
            f"{name}: expected a rank-{rank} tensor {layout}, got shape {tuple(tensor.shape)}"
        )


def check_size(actual: int, expected: int, name: str, what: str) -> None:
    if actual != expected:
        raise ValueError(f"{name}: expected {what} = {expected}, got {actual}")


def check_mask(mask, batch: int, steps: int, device: torch.device) -> torch.Tensor | None:
    """A boolean ``(B, T)`` mask, or ``None``. True marks a real step."""
    if mask is None:
        return None
    mask = as_tensor(mask, "mask").to(device)
    if tuple(mask.shape) != (batch, steps):
        raise ValueError(
            f"mask: expected shape (batch, timesteps) = ({batch}, {steps}), "
            f"got {tuple(mask.shape)}"
        )
    if mask.dtype != torch.bool:
        if mask.is_floating_point() or mask.dtype in (torch.int8, torch.int16, torch.int32,
                                                      torch.int64, torch.uint8):
            values = torch.unique(mask)
            if not bool(((values == 0) | (values == 1)).all()):
                raise ValueError("mask: expected only 0/1 or True/False values, "
                                 f"got values {values[:5].tolist()}")
        mask = mask.bool()
    return mask


def lengths_to_mask(lengths, batch: int, steps: int, device: torch.device) -> torch.Tensor:
    """A right-padded ``(B, T)`` mask from per-sequence lengths in ``[1, T]``."""
    lengths = as_tensor(lengths, "lengths")
    if lengths.is_floating_point() or lengths.dtype == torch.bool:
        raise TypeError(f"lengths: expected an integer tensor, got dtype {lengths.dtype}")
    if tuple(lengths.shape) != (batch,):
        raise ValueError(f"lengths: expected shape ({batch},), got {tuple(lengths.shape)}")
    if batch and (int(lengths.min()) < 1 or int(lengths.max()) > steps):
        raise ValueError(
            f"lengths: expected every length in [1, {steps}] (the number of timesteps), "
            f"got min {int(lengths.min())} and max {int(lengths.max())}"
        )
    positions = torch.arange(steps, device=device)
    return positions[None, :] < lengths.to(device)[:, None]


def check_state(state: Sequence[torch.Tensor], sizes: Sequence[int], batch: int,
                dtype: torch.dtype, name: str = "initial_state") -> list[torch.Tensor]:
    """Validate a list of ``(B, size)`` state tensors against the cell's ``state_size``."""
    if isinstance(state, (torch.Tensor, np.ndarray)):
        state = [state]
    state = list(state)
    if len(state) != len(sizes):
        raise ValueError(f"{name}: expected {len(sizes)} tensor(s), got {len(state)}")
    checked = []
    for index, (tensor, size) in enumerate(zip(state, sizes)):
        tensor = as_float_tensor(tensor, f"{name}[{index}]", dtype)
        if tuple(tensor.shape) != (batch, size):
            raise ValueError(
                f"{name}[{index}]: expected shape (batch, units) = ({batch}, {size}), "
                f"got {tuple(tensor.shape)}"
            )
        checked.append(tensor)
    return checked
