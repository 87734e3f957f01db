"""Argument checks for the torch.nn drop-ins.

Every check raises a ``ValueError`` or ``TypeError`` naming the argument, what was expected and what
was received, in the style of :mod:`rnnkit._checks`.
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np
import torch

from rnnkit._checks import as_float_tensor, check_size
from rnnkit.kernels import BACKENDS

NONLINEARITIES = ("tanh", "relu")


def check_positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(
            f"{name}: expected a positive integer, got {type(value).__name__} {value!r}"
        )
    if value <= 0:
        raise ValueError(f"{name}: expected a positive integer, got {value}")
    return int(value)


def check_dropout(dropout, num_layers: int) -> float:
    """A probability in [0, 1]; warns, as torch.nn does, when there is no layer to drop between."""
    if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real) or not 0 <= dropout <= 1:
        raise ValueError(f"dropout: expected a probability in [0, 1], got {dropout!r}")
    if dropout > 0 and num_layers == 1:
        warnings.warn(
            f"dropout: {dropout} has no effect with num_layers=1; it is applied to the outputs "
            "of every layer but the last",
            UserWarning,
            stacklevel=3,
        )
    return float(dropout)


def check_proj_size(proj_size, hidden_size: int) -> int:
    if isinstance(proj_size, bool) or not isinstance(proj_size, (int, np.integer)):
        raise TypeError(f"proj_size: expected an integer, got {type(proj_size).__name__}")
    if proj_size < 0 or (proj_size and proj_size >= hidden_size):
        raise ValueError(
            f"proj_size: expected 0 or an integer in [1, hidden_size={hidden_size}), "
            f"got {proj_size}"
        )
    return int(proj_size)


def check_choice(value, choices: tuple[str, ...], name: str) -> str:
    if value not in choices:
        raise ValueError(f"{name}: expected one of {choices}, got {value!r}")
    return value


def check_backend(backend) -> str:
    return check_choice(backend, BACKENDS, "backend")


def check_dtype(tensor: torch.Tensor, dtype: torch.dtype, name: str) -> None:
    if tensor.dtype != dtype:
        raise TypeError(
            f"{name}: expected dtype {dtype} (the module's parameters; convert the module with "
            f".to(dtype) or the tensor), got {tensor.dtype}"
        )


def check_device(tensor: torch.Tensor, device: torch.device, name: str) -> None:
    if tensor.device != device:
        raise ValueError(f"{name}: expected a tensor on {device}, got one on {tensor.device}")


def check_input(value, input_size: int, dtype: torch.dtype, batch_first: bool) -> torch.Tensor:
    """A floating ``input`` of rank 3 (batched, batch-first or time-major) or 2 (unbatched)."""
    tensor = as_float_tensor(value, "input")
    rank = tensor.dim()
    if rank == 3:
        seq_axis = 1 if batch_first else 0
    elif rank == 2:
        seq_axis = 0
    else:
        raise ValueError(
            f"input: expected a 3-D tensor {_layout(3, batch_first)} or a 2-D unbatched tensor "
            f"(seq_len, input_size), got shape {tuple(tensor.shape)}"
        )
    check_size(tensor.shape[-1], input_size, "input", "input_size (the last dimension)")
    if tensor.shape[seq_axis] == 0:
        raise ValueError(
            f"input: expected seq_len >= 1 (as torch.nn), got shape {tuple(tensor.shape)} "
            f"{_layout(rank, batch_first)}"
        )
    check_dtype(tensor, dtype, "input")
    return tensor


def _layout(rank: int, batch_first: bool) -> str:
    """The axes of an input of ``rank``, for error messages."""
    if rank != 3:
        return "(seq_len, input_size)"
    return "(batch, seq_len, input_size)" if batch_first else "(seq_len, batch, input_size)"


def check_packed_data(data: torch.Tensor, input_size: int, dtype: torch.dtype) -> None:
    if not data.is_floating_point():
        raise TypeError(f"input: expected a floating-point PackedSequence, got dtype {data.dtype}")
    if data.dim() != 2:
        raise ValueError(
            f"input: expected PackedSequence data of shape (sum(lengths), input_size), "
            f"got shape {tuple(data.shape)}"
        )
    check_size(data.shape[-1], input_size, "input", "input_size (the last dimension)")
    check_dtype(data, dtype, "input")


def check_hidden(
    value, name: str, expected: tuple[int, ...], layout: str, reference: torch.Tensor
) -> torch.Tensor:
    """One initial-state tensor of shape ``expected``, on ``reference``'s dtype and device."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(value).__name__}")
    tensor = as_float_tensor(value, name)
    if tuple(tensor.shape) != expected:
        raise ValueError(f"{name}: expected shape {layout} = {expected}, got {tuple(tensor.shape)}")
    check_dtype(tensor, reference.dtype, name)
    check_device(tensor, reference.device, name)
    return tensor
