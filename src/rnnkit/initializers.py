"""Weight initializers by Keras name, drawn with torch's global RNG.

Each initializer fills a tensor given in *Keras orientation*: a kernel is ``(fan_in, fan_out)``.
rnnkit stores recurrent weights in PyTorch orientation ``(gates * units, fan_in)``, so the
recurrent layers draw in Keras orientation and transpose; that keeps Keras's fan computation and
orthogonality (orthonormal rows of the ``(units, gates * units)`` recurrent kernel).

Example:
    >>> w = get("glorot_uniform")((3, 8), torch.float32)   # or glorot_uniform(seed=1)((3, 8))
    >>> w.shape
    torch.Size([3, 8])
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

InitFunction = Callable[[tuple[int, ...], torch.dtype], torch.Tensor]


def _fans(shape: tuple[int, ...]) -> tuple[int, int]:
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[:-2]) if len(shape) > 2 else 1
    return shape[-2] * receptive, shape[-1] * receptive


def _draw_zeros(shape, dtype):
    return torch.zeros(shape, dtype=dtype)


def _draw_ones(shape, dtype):
    return torch.ones(shape, dtype=dtype)


def _draw_glorot_uniform(shape, dtype):
    fan_in, fan_out = _fans(shape)
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return torch.empty(shape, dtype=dtype).uniform_(-limit, limit)


def _draw_glorot_normal(shape, dtype):
    fan_in, fan_out = _fans(shape)
    std = math.sqrt(2.0 / (fan_in + fan_out))
    tensor = torch.empty(shape, dtype=dtype)
    return torch.nn.init.trunc_normal_(tensor, std=std, a=-2 * std, b=2 * std)


def _draw_he_uniform(shape, dtype):
    fan_in, _ = _fans(shape)
    limit = math.sqrt(6.0 / fan_in)
    return torch.empty(shape, dtype=dtype).uniform_(-limit, limit)


def _draw_he_normal(shape, dtype):
    fan_in, _ = _fans(shape)
    std = math.sqrt(2.0 / fan_in)
    tensor = torch.empty(shape, dtype=dtype)
    return torch.nn.init.trunc_normal_(tensor, std=std, a=-2 * std, b=2 * std)


def _draw_lecun_uniform(shape, dtype):
    fan_in, _ = _fans(shape)
    limit = math.sqrt(3.0 / fan_in)
    return torch.empty(shape, dtype=dtype).uniform_(-limit, limit)


def _draw_random_normal(shape, dtype):
    return torch.empty(shape, dtype=dtype).normal_(0.0, 0.05)


def _draw_random_uniform(shape, dtype):
    return torch.empty(shape, dtype=dtype).uniform_(-0.05, 0.05)


def _draw_orthogonal(shape, dtype):
    """Keras's orthogonal: QR of a normal matrix, sign-corrected, shaped ``(rows, cols)``."""
    rows, cols = math.prod(shape[:-1]), shape[-1]
    flat = torch.randn(max(rows, cols), min(rows, cols), dtype=torch.float64)
    q, r = torch.linalg.qr(flat)
    q = q * torch.sign(torch.diagonal(r))
    if rows < cols:
        q = q.T
    return q.reshape(shape).to(dtype)


_DRAWS: dict[str, InitFunction] = {
    "zeros": _draw_zeros,
    "ones": _draw_ones,
    "glorot_uniform": _draw_glorot_uniform,
    "glorot_normal": _draw_glorot_normal,
    "he_uniform": _draw_he_uniform,
    "he_normal": _draw_he_normal,
    "lecun_uniform": _draw_lecun_uniform,
    "random_normal": _draw_random_normal,
    "random_uniform": _draw_random_uniform,
    "orthogonal": _draw_orthogonal,
}


class Initializer:
    """A Keras-style initializer object: ``GlorotUniform(seed=None)(shape, dtype)``.

    With ``seed`` the draw is reproducible and independent of torch's global RNG.
    """

    keras_name = ""

    def __init__(self, seed: int | None = None) -> None:
        self.seed = seed

    def __call__(self, shape, dtype=None):
        dtype = dtype or torch.get_default_dtype()
        draw = _DRAWS[self.keras_name]
        if self.seed is None:
            return draw(tuple(shape), dtype)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            return draw(tuple(shape), dtype)

    def get_config(self) -> dict:
        return {"seed": self.seed}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(seed={self.seed})"


def _initializer_class(keras_name: str) -> type[Initializer]:
    class_name = "".join(part.title() for part in keras_name.split("_"))
    return type(class_name, (Initializer,), {"keras_name": keras_name,
                                             "__doc__": f"Keras's ``{keras_name}``."})


Zeros, Ones, GlorotUniform, GlorotNormal, HeUniform, HeNormal, LecunUniform, RandomNormal, \
    RandomUniform, Orthogonal = (_initializer_class(name) for name in _DRAWS)
_INITIALIZERS: dict[str, type[Initializer]] = {cls.keras_name: cls for cls in (
    Zeros, Ones, GlorotUniform, GlorotNormal, HeUniform, HeNormal, LecunUniform, RandomNormal,
    RandomUniform, Orthogonal)}


def get(identifier):
    """The initializer for a Keras name, an initializer object, or a ``(shape, dtype)`` callable."""
    if isinstance(identifier, type) and issubclass(identifier, Initializer):
        return identifier()
    if callable(identifier):
        return identifier
    if isinstance(identifier, str) and identifier in _INITIALIZERS:
        return _INITIALIZERS[identifier]()
    raise ValueError(
        f"initializer: unknown name {identifier!r}; expected one of {sorted(_INITIALIZERS)}"
    )


def name_of(identifier) -> str:
    """The Keras name of an initializer (for configs)."""
    if isinstance(identifier, str):
        get(identifier)
        return identifier
    if isinstance(identifier, Initializer):
        return identifier.keras_name
    return getattr(identifier, "__name__", repr(identifier))


# Keras's lowercase names are its classes too: ``glorot_uniform()`` builds an initializer.
zeros, ones, glorot_uniform, glorot_normal, he_uniform, he_normal, lecun_uniform, \
    random_normal, random_uniform, orthogonal = (_INITIALIZERS[name] for name in _DRAWS)
