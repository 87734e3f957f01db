"""Weight initializers by Keras name, drawn with torch's global RNG.

Each initializer fills a tensor given in *Keras orientation*: a kernel is ``(fan_in, fan_out)``.
rnnkit stores recurrent weights in PyTorch orientation ``(gates * units, fan_in)``, so the
recurrent layers draw in Keras orientation and transpose; that keeps Keras's fan computation and
orthogonality (orthonormal rows of the ``(units, gates * units)`` recurrent kernel).

Example:
    >>> w = get("glorot_uniform")((3, 8), torch.float32)
    >>> w.shape
    torch.Size([3, 8])
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

Initializer = Callable[[tuple[int, ...], torch.dtype], torch.Tensor]


def _fans(shape: tuple[int, ...]) -> tuple[int, int]:
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[:-2]) if len(shape) > 2 else 1
    return shape[-2] * receptive, shape[-1] * receptive


def zeros(shape, dtype):
    return torch.zeros(shape, dtype=dtype)


def ones(shape, dtype):
    return torch.ones(shape, dtype=dtype)


def glorot_uniform(shape, dtype):
    fan_in, fan_out = _fans(shape)
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return torch.empty(shape, dtype=dtype).uniform_(-limit, limit)


def glorot_normal(shape, dtype):
    fan_in, fan_out = _fans(shape)
    std = math.sqrt(2.0 / (fan_in + fan_out))
    return torch.nn.init.trunc_normal_(torch.empty(shape, dtype=dtype), std=std, a=-2 * std, b=2 * std)


def he_uniform(shape, dtype):
    fan_in, _ = _fans(shape)
    limit = math.sqrt(6.0 / fan_in)
    return torch.empty(shape, dtype=dtype).uniform_(-limit, limit)


def he_normal(shape, dtype):
    fan_in, _ = _fans(shape)
    std = math.sqrt(2.0 / fan_in)
    return torch.nn.init.trunc_normal_(torch.empty(shape, dtype=dtype), std=std, a=-2 * std, b=2 * std)


def lecun_uniform(shape, dtype):
    fan_in, _ = _fans(shape)
    limit = math.sqrt(3.0 / fan_in)
    return torch.empty(shape, dtype=dtype).uniform_(-limit, limit)


def random_normal(shape, dtype):
    return torch.empty(shape, dtype=dtype).normal_(0.0, 0.05)


def random_uniform(shape, dtype):
    return torch.empty(shape, dtype=dtype).uniform_(-0.05, 0.05)


def orthogonal(shape, dtype):
    """Keras's orthogonal: QR of a normal matrix, sign-corrected, shaped ``(rows, cols)``."""
    rows, cols = math.prod(shape[:-1]), shape[-1]
    flat = torch.randn(max(rows, cols), min(rows, cols), dtype=torch.float64)
    q, r = torch.linalg.qr(flat)
    q = q * torch.sign(torch.diagonal(r))
    if rows < cols:
        q = q.T
    return q.reshape(shape).to(dtype)


_INITIALIZERS: dict[str, Initializer] = {
    "zeros": zeros,
    "ones": ones,
    "glorot_uniform": glorot_uniform,
    "glorot_normal": glorot_normal,
    "he_uniform": he_uniform,
    "he_normal": he_normal,
    "lecun_uniform": lecun_uniform,
    "random_normal": random_normal,
    "random_uniform": random_uniform,
    "orthogonal": orthogonal,
}


def get(identifier: str | Initializer) -> Initializer:
    """Return the initializer for a Keras name or a callable ``(shape, dtype) -> Tensor``."""
    if callable(identifier):
        return identifier
    if isinstance(identifier, str) and identifier in _INITIALIZERS:
        return _INITIALIZERS[identifier]
    raise ValueError(
        f"initializer: unknown name {identifier!r}; expected one of {sorted(_INITIALIZERS)}"
    )


def name_of(identifier: str | Initializer) -> str:
    if isinstance(identifier, str):
        get(identifier)
        return identifier
    return getattr(identifier, "__name__", repr(identifier))
