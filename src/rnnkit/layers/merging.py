"""Keras's merge layers: ``Concatenate`` and the element-wise ``Add``, ``Subtract``, ``Multiply``,
``Average``, ``Maximum``, ``Minimum``, with the lowercase functional helpers (``concatenate``...).

Each takes a list of tensors. Element-wise merges need equal ranks and, per axis, equal sizes or
a size of 1 (Keras's broadcasting); ``Concatenate`` needs equal sizes on every axis but ``axis``.
Masks combine as in Keras 3: element-wise merges OR the masks (None if any input is unmasked);
``Concatenate`` ORs them along the feature axis and joins them along the time axis.

Example:
    >>> a, b = np.ones((2, 5, 3), "float32"), np.ones((2, 5, 4), "float32")
    >>> concatenate([a, b]).shape
    torch.Size([2, 5, 7])
    >>> Add()([a, a]).shape
    torch.Size([2, 5, 3])
"""

from __future__ import annotations

import functools

import torch

from rnnkit import _checks
from rnnkit.layers.base import Layer


def _as_tensor_list(inputs, layer: str, count: int | None = None) -> list[torch.Tensor]:
    if not isinstance(inputs, (list, tuple)):
        raise TypeError(f"inputs: {layer} expects a list of tensors, got {type(inputs).__name__}")
    expected = f"exactly {count}" if count else "at least 1"
    if (count and len(inputs) != count) or not inputs:
        raise ValueError(f"inputs: {layer} expects {expected} tensor(s), got {len(inputs)}")
    return [_checks.as_tensor(x, f"inputs[{i}]") for i, x in enumerate(inputs)]


def _check_shape_list(input_shape, layer: str) -> list[tuple]:
    """Shapes of a list of inputs; base ``forward`` hands a single tensor's shape as a tuple."""
    if not isinstance(input_shape, list):
        raise TypeError(
            f"inputs: {layer} expects a list of tensors, got a single tensor of shape "
            f"{tuple(input_shape)}"
        )
    if not input_shape:
        raise ValueError(f"inputs: {layer} expects at least 1 tensor, got an empty list")
    return [tuple(shape) for shape in input_shape]


def _check_ranks(shapes, layer: str) -> None:
    for index, shape in enumerate(shapes[1:], start=1):
        if len(shape) != len(shapes[0]):
            raise ValueError(
                f"inputs[{index}]: {layer} expects rank {len(shapes[0])} like "
                f"inputs[0] {tuple(shapes[0])}, got shape {tuple(shape)}"
            )


_INCOMPATIBLE = object()


def _broadcast_size(a, b):
    """Keras's element-wise rule for one axis: equal, or one side is 1; ``None`` is unknown."""
    if a == 1:
        return b
    if b == 1 or a == b:
        return a
    if a is None or b is None:
        return b if a is None else a
    return _INCOMPATIBLE


class _ElementwiseMerge(Layer):
    """Base of the element-wise merges: subclasses give ``merge(tensors)``."""

    supports_masking = True
    input_count: int | None = None

    def build(self, input_shape) -> None:
        self.compute_output_shape(_check_shape_list(input_shape, type(self).__name__))

    def call(self, inputs, mask=None, training=None):
        tensors = _as_tensor_list(inputs, type(self).__name__, self.input_count)
        self.compute_output_shape([tuple(t.shape) for t in tensors])
        return self.merge(tensors)

    def merge(self, tensors: list[torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def compute_output_shape(self, input_shape):
        shapes = [tuple(shape) for shape in input_shape]
        _check_ranks(shapes, type(self).__name__)
        output = shapes[0]
        for index, shape in enumerate(shapes[1:], start=1):
            merged = tuple(_broadcast_size(a, b) for a, b in zip(output, shape, strict=True))
            if any(size is _INCOMPATIBLE for size in merged):
                raise ValueError(
                    f"inputs[{index}]: {type(self).__name__} expects a shape "
                    f"compatible with {output} (equal sizes or 1 per axis), "
                    f"got {shape}"
                )
            output = merged
        return output

    def compute_mask(self, inputs, mask=None):
        if mask is None:
            return None
        masks = _check_mask_list(inputs, mask)
        if any(m is None for m in masks):
            return None
        return functools.reduce(torch.logical_or, [m.bool() for m in masks])


def _check_mask_list(inputs, mask) -> list:
    if not isinstance(mask, (list, tuple)) or len(mask) != len(inputs):
        got = f"{len(mask)} masks" if isinstance(mask, (list, tuple)) else type(mask).__name__
        raise ValueError(
            f"mask: expected a list of {len(inputs)} masks (one per input, or None), got {got}"
        )
    return [None if m is None else _checks.as_tensor(m, "mask") for m in mask]


class Add(_ElementwiseMerge):
    """Sum of the inputs."""

    def merge(self, tensors):
        return functools.reduce(torch.add, tensors)


class Subtract(_ElementwiseMerge):
    """``inputs[0] - inputs[1]``."""

    input_count = 2

    def merge(self, tensors):
        return tensors[0] - tensors[1]


class Multiply(_ElementwiseMerge):
    """Element-wise product of the inputs."""

    def merge(self, tensors):
        return functools.reduce(torch.mul, tensors)


class Average(_ElementwiseMerge):
    """Element-wise mean of the inputs."""

    def merge(self, tensors):
        return functools.reduce(torch.add, tensors) / len(tensors)


class Maximum(_ElementwiseMerge):
    """Element-wise maximum of the inputs."""

    def merge(self, tensors):
        return functools.reduce(torch.maximum, tensors)


class Minimum(_ElementwiseMerge):
    """Element-wise minimum of the inputs."""

    def merge(self, tensors):
        return functools.reduce(torch.minimum, tensors)


class Concatenate(Layer):
    """Join the inputs along ``axis`` (default the last, features)."""

    supports_masking = True

    def __init__(self, axis: int = -1, **kwargs) -> None:
        super().__init__(**kwargs)
        if isinstance(axis, bool) or not isinstance(axis, int):
            raise TypeError(f"axis: expected an int, got {type(axis).__name__}")
        self.axis = axis

    def build(self, input_shape) -> None:
        self.compute_output_shape(_check_shape_list(input_shape, "Concatenate"))

    def call(self, inputs, mask=None, training=None):
        tensors = _as_tensor_list(inputs, "Concatenate")
        self.compute_output_shape([tuple(t.shape) for t in tensors])
        return torch.cat(tensors, dim=self.axis)

    def _axis_for(self, rank: int) -> int:
        if not -rank <= self.axis < rank or self.axis in (0, -rank):
            raise ValueError(
                f"axis: expected a non-batch axis of a rank-{rank} input, got {self.axis}"
            )
        return self.axis % rank

    def compute_output_shape(self, input_shape):
        shapes = [tuple(shape) for shape in input_shape]
        _check_ranks(shapes, "Concatenate")
        axis = self._axis_for(len(shapes[0]))
        for index, shape in enumerate(shapes[1:], start=1):
            pairs = enumerate(zip(shapes[0], shape, strict=True))
            others = [(a, b) for i, (a, b) in pairs if i != axis]
            if any(a is not None and b is not None and a != b for a, b in others):
                raise ValueError(
                    f"inputs[{index}]: Concatenate expects the sizes of "
                    f"inputs[0] {shapes[0]} on every axis but {self.axis}, "
                    f"got {shape}"
                )
        sizes = [shape[axis] for shape in shapes]
        joined = None if None in sizes else sum(sizes)
        return (*shapes[0][:axis], joined, *shapes[0][axis + 1 :])

    def compute_mask(self, inputs, mask=None):
        if mask is None:
            return None
        masks = _check_mask_list(inputs, mask)
        if all(m is None for m in masks):
            return None
        tensors = [_checks.as_tensor(x, "inputs") for x in inputs]
        # Spread each mask over its input's feature axis, join, and keep a step if any is kept.
        spread = []
        for tensor, m in zip(tensors, masks, strict=True):
            if m is None:
                spread.append(torch.ones(tensor.shape, dtype=torch.bool, device=tensor.device))
            elif m.dim() < tensor.dim():
                spread.append(m.bool().unsqueeze(-1).expand(tensor.shape))
            else:
                spread.append(m.bool())
        return torch.cat(spread, dim=self.axis).any(dim=-1)

    def get_config(self) -> dict:
        config = super().get_config()
        config["axis"] = self.axis
        return config


def _functional(cls):
    def helper(inputs, **kwargs):
        return cls(**kwargs)(inputs)

    helper.__name__ = cls.__name__.lower()
    helper.__doc__ = f"``{cls.__name__}(**kwargs)(inputs)``, Keras's functional form."
    return helper


def concatenate(inputs, axis: int = -1, **kwargs):
    """``Concatenate(axis, **kwargs)(inputs)``, Keras's functional form."""
    return Concatenate(axis=axis, **kwargs)(inputs)


add = _functional(Add)
subtract = _functional(Subtract)
multiply = _functional(Multiply)
average = _functional(Average)
maximum = _functional(Maximum)
minimum = _functional(Minimum)
