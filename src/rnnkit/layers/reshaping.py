"""Keras's shape layers: ``Flatten``, ``Reshape`` and ``RepeatVector``. None has weights.

Example:
    >>> RepeatVector(3)(np.ones((2, 4), "float32")).shape
    torch.Size([2, 3, 4])
    >>> Reshape((-1, 2))(np.ones((2, 3, 4), "float32")).shape
    torch.Size([2, 6, 2])
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from rnnkit import _checks
from rnnkit.layers.base import Layer
from rnnkit.layers.core import check_positive_int


def _known_product(sizes) -> int | None:
    return None if any(size is None for size in sizes) else math.prod(sizes)


class Flatten(Layer):
    """Flatten every axis but the batch: ``(B, d1, d2, ...) -> (B, d1 * d2 * ...)``."""

    def __init__(self, data_format: str | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        if data_format not in (None, "channels_last"):
            raise ValueError(
                f"data_format: rnnkit supports 'channels_last' only, got {data_format!r}"
            )
        self.data_format = data_format or "channels_last"

    def call(self, inputs, mask=None, training=None):
        inputs = _checks.as_tensor(inputs, "inputs")
        if inputs.dim() < 1:
            raise ValueError("inputs: expected a tensor with a batch axis, got a scalar")
        return inputs.reshape(inputs.shape[0], -1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], _known_product(tuple(input_shape)[1:]))

    def get_config(self) -> dict:
        config = super().get_config()
        config["data_format"] = self.data_format
        return config


class Reshape(Layer):
    """Reshape each sample to ``target_shape`` (without the batch axis; one entry may be -1)."""

    def __init__(self, target_shape: Sequence[int], **kwargs) -> None:
        super().__init__(**kwargs)
        target_shape = tuple(target_shape)
        for size in target_shape:
            if isinstance(size, bool) or not isinstance(size, int) or (size < 1 and size != -1):
                raise ValueError(
                    f"target_shape: expected positive integers and at most one -1, "
                    f"got {target_shape}"
                )
        if target_shape.count(-1) > 1:
            raise ValueError(f"target_shape: expected at most one -1, got {target_shape}")
        self.target_shape = target_shape

    def _resolve(self, sample_size: int | None) -> tuple[int | None, ...]:
        """``target_shape`` with its -1 filled in for samples of ``sample_size`` values."""
        known = math.prod(size for size in self.target_shape if size != -1)
        if sample_size is None:
            return tuple(None if size == -1 else size for size in self.target_shape)
        if (-1 in self.target_shape and sample_size % known) or (
            -1 not in self.target_shape and sample_size != known
        ):
            raise ValueError(
                f"inputs: cannot reshape samples of {sample_size} values to "
                f"target_shape {self.target_shape} ({known} values"
                f"{' times an inferred axis' if -1 in self.target_shape else ''})"
            )
        return tuple(sample_size // known if size == -1 else size for size in self.target_shape)

    def call(self, inputs, mask=None, training=None):
        inputs = _checks.as_tensor(inputs, "inputs")
        if inputs.dim() < 1:
            raise ValueError("inputs: expected a tensor with a batch axis, got a scalar")
        target = self._resolve(math.prod(inputs.shape[1:]))
        return inputs.reshape(inputs.shape[0], *target)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self._resolve(_known_product(tuple(input_shape)[1:])))

    def get_config(self) -> dict:
        config = super().get_config()
        config["target_shape"] = list(self.target_shape)
        return config


class RepeatVector(Layer):
    """Repeat a vector ``n`` times: ``(B, F) -> (B, n, F)``, e.g. to feed a decoder RNN."""

    def __init__(self, n: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.n = check_positive_int(n, "n")

    def call(self, inputs, mask=None, training=None):
        inputs = _checks.as_tensor(inputs, "inputs")
        _checks.check_rank(inputs, "inputs", 2, "(batch, features)")
        return inputs.unsqueeze(1).repeat(1, self.n, 1)  # (B, n, F)

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 2:
            raise ValueError(
                f"inputs: expected a rank-2 shape (batch, features), got {tuple(input_shape)}"
            )
        return (input_shape[0], self.n, input_shape[1])

    def get_config(self) -> dict:
        config = super().get_config()
        config["n"] = self.n
        return config
