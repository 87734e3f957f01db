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
        try:
            array = np.asarray(value)
        except ValueError as error:  # nested lists of unequal lengths
            raise ValueError(f"{name}: expected a rectangular numeric array, got nested sequences "
                             f"of unequal lengths ({error})") from None
        if array.dtype == object:
            raise TypeError(f"{name}: expected a numeric array, got an array of Python objects")
        if array.dtype.kind not in "biufc":
            raise TypeError(f"{name}: expected a numeric array, got dtype {array.dtype}")
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
        tensor = cast_float(tensor, dtype, name)
    return tensor


def cast_float(tensor: torch.Tensor, dtype: torch.dtype, name: str) -> torch.Tensor:
    """``tensor`` cast to the floating ``dtype``; a finite value that would become infinite raises.

    Casting float64 data above float32's maximum (or float32 data above float16's) would otherwise
    turn it into inf, and the outputs into NaN, without a word.
    """
    cast = tensor.to(dtype)
    if (tensor.is_floating_point() and dtype.is_floating_point and tensor.device.type != "meta"
            and torch.finfo(dtype).max < torch.finfo(tensor.dtype).max):
        overflow = torch.isinf(cast) & torch.isfinite(tensor)
        if bool(overflow.any()):
            index = tuple(int(i) for i in overflow.nonzero()[0])
            raise ValueError(
                f"{name}: expected values within {dtype}'s range (|x| <= "
                f"{torch.finfo(dtype).max:.4g}), got {float(tensor[index]):.4g} at index {index} "
                f"(the {tensor.dtype} input overflows when cast to {dtype})"
            )
    return cast


def check_device(tensor: torch.Tensor, device: torch.device, name: str) -> None:
    """``tensor`` must be on ``device`` (the layer's weights'), the meta device included."""
    if tensor.device != device:
        raise ValueError(
            f"{name}: expected a tensor on {device} (the layer's weights' device), "
            f"got one on {tensor.device}"
        )


def check_has_data(tensor: torch.Tensor, name: str) -> None:
    """Values that must be read (lengths, token ids, masks) cannot be on the meta device."""
    if tensor.device.type == "meta":
        raise ValueError(f"{name}: expected a tensor with data (its values are checked), got one "
                         "on the meta device")


# torch implements few operations (no min/max/comparisons) for its wide unsigned integer types.
_WIDE_UNSIGNED = tuple(
    dtype for dtype in (getattr(torch, f"uint{bits}", None) for bits in (16, 32, 64))
    if dtype is not None
)


def value_range(tensor: torch.Tensor) -> tuple:
    """``(min, max)`` of a non-empty real tensor as Python numbers, for any integer width."""
    if tensor.dtype in _WIDE_UNSIGNED:
        values = tensor.detach().cpu().numpy()
        return int(values.min()), int(values.max())
    low, high = tensor.min().item(), tensor.max().item()
    return low, high


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
    given = mask
    mask = as_tensor(mask, "mask")
    if np.ndim(given) == 0:  # as_tensor gives a scalar shape (1,), which must not pass as (B, T)
        raise ValueError(f"mask: expected shape (batch, timesteps) = ({batch}, {steps}), "
                         "got a scalar")
    if mask.device.type == "meta" and (device.type != "meta" or mask.dtype != torch.bool):
        check_has_data(mask, "mask")
    mask = mask.to(device)
    if tuple(mask.shape) != (batch, steps):
        raise ValueError(
            f"mask: expected shape (batch, timesteps) = ({batch}, {steps}), "
            f"got {tuple(mask.shape)}"
        )
    if mask.is_complex():
        raise TypeError(f"mask: expected a boolean or 0/1 tensor, got dtype {mask.dtype}")
    if mask.dtype != torch.bool:
        values = torch.unique(mask)
        if not bool(((values == 0) | (values == 1)).all()):
            raise ValueError("mask: expected only 0/1 or True/False values, "
                             f"got values {values[:5].tolist()}")
        mask = mask.bool()
    return mask


def lengths_to_mask(lengths, batch: int, steps: int, device: torch.device) -> torch.Tensor:
    """A right-padded ``(B, T)`` mask from per-sequence lengths in ``[1, T]``."""
    given = lengths
    lengths = as_tensor(lengths, "lengths")
    if np.ndim(given) == 0:  # as_tensor gives a scalar shape (1,), which must not pass as (B,)
        raise ValueError(f"lengths: expected shape ({batch},), got a scalar")
    if lengths.is_floating_point() or lengths.is_complex() or lengths.dtype == torch.bool:
        raise TypeError(f"lengths: expected an integer tensor, got dtype {lengths.dtype}")
    if tuple(lengths.shape) != (batch,):
        raise ValueError(f"lengths: expected shape ({batch},), got {tuple(lengths.shape)}")
    check_has_data(lengths, "lengths")
    if batch:
        low, high = value_range(lengths)
        if low < 1 or high > steps:
            raise ValueError(
                f"lengths: expected every length in [1, {steps}] (the number of timesteps), "
                f"got min {low} and max {high}"
            )
    positions = torch.arange(steps, device=device)
    return positions[None, :] < lengths.to(device=device, dtype=torch.int64)[:, None]


def check_state(state: Sequence[torch.Tensor], sizes: Sequence[int], batch: int,
                dtype: torch.dtype, name: str = "initial_state",
                device: torch.device | None = None) -> list[torch.Tensor]:
    """Validate a list of ``(B, size)`` state tensors against the cell's ``state_size``.

    With ``device``, every tensor must be on it (NumPy arrays are moved there).
    """
    if isinstance(state, (torch.Tensor, np.ndarray)):
        state = [state]
    if not isinstance(state, (list, tuple)):
        raise TypeError(f"{name}: expected a list of {len(sizes)} tensor(s), "
                        f"got {type(state).__name__}")
    state = list(state)
    if len(state) != len(sizes):
        raise ValueError(f"{name}: expected {len(sizes)} tensor(s), got {len(state)}")
    checked = []
    for index, (tensor, size) in enumerate(zip(state, sizes)):
        if isinstance(tensor, np.ndarray) and device is not None:
            tensor = as_tensor(tensor, f"{name}[{index}]").to(device)
        tensor = as_float_tensor(tensor, f"{name}[{index}]", dtype)
        if device is not None:
            check_device(tensor, device, f"{name}[{index}]")
        if tuple(tensor.shape) != (batch, size):
            raise ValueError(
                f"{name}[{index}]: expected shape (batch, units) = ({batch}, {size}), "
                f"got {tuple(tensor.shape)}"
            )
        checked.append(tensor)
    return checked
