"""Activation functions by Keras name.

``get("tanh")`` returns a torch function. The names and formulas follow Keras 3; in particular
``hard_sigmoid(x) = relu6(x + 3) / 6``, Keras 3's definition (Keras 2 used ``0.2 x + 0.5``).

Example:
    >>> import torch
    >>> get("hard_sigmoid")(torch.tensor([0.0]))
    tensor([0.5000])
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

Activation = Callable[[torch.Tensor], torch.Tensor]


def linear(x: torch.Tensor) -> torch.Tensor:
    return x


def hard_sigmoid(x: torch.Tensor) -> torch.Tensor:
    return F.relu6(x + 3.0) / 6.0


def softmax(x: torch.Tensor) -> torch.Tensor:
    return torch.softmax(x, dim=-1)


def log_softmax(x: torch.Tensor) -> torch.Tensor:
    return torch.log_softmax(x, dim=-1)


def selu(x: torch.Tensor) -> torch.Tensor:
    return F.selu(x)


def exponential(x: torch.Tensor) -> torch.Tensor:
    return torch.exp(x)


_ACTIVATIONS: dict[str, Activation] = {
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "hard_sigmoid": hard_sigmoid,
    "relu": torch.relu,
    "relu6": F.relu6,
    "linear": linear,
    "elu": F.elu,
    "selu": selu,
    "gelu": F.gelu,
    "softplus": F.softplus,
    "softsign": F.softsign,
    "swish": F.silu,
    "silu": F.silu,
    "exponential": exponential,
    "softmax": softmax,
    "log_softmax": log_softmax,
}


def get(identifier: str | Activation | None, name: str = "activation") -> Activation:
    """Return the activation for a Keras name, a callable, or ``None`` (meaning linear).

    ``name`` is the argument the identifier came from, for the error message.
    """
    if identifier is None:
        return linear
    if callable(identifier):
        return identifier
    if isinstance(identifier, str) and identifier in _ACTIVATIONS:
        return _ACTIVATIONS[identifier]
    raise ValueError(
        f"{name}: unknown name {identifier!r}; expected a callable or one of "
        f"{sorted(_ACTIVATIONS)}"
    )


def name_of(fn: str | Activation | None) -> str:
    """The Keras name of an activation, or the callable's ``__name__`` for a user function."""
    if fn is None:
        return "linear"
    if isinstance(fn, str):
        get(fn)
        return fn
    for name, candidate in _ACTIVATIONS.items():
        if candidate is fn:
            return name
    return getattr(fn, "__name__", repr(fn))
