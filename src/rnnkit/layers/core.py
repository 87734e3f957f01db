"""Keras's core layers: ``Dense``, ``Dropout``, ``Activation`` and ``Lambda``.

``Dense`` stores its kernel in Keras's orientation ``(in, units)``, so ``get_weights()`` returns
``[kernel (in, units), bias (units,)]`` exactly as Keras does, and applies to the last axis of an
input of any rank: ``(B, F) -> (B, units)`` and ``(B, T, F) -> (B, T, units)``.

Example:
    >>> dense = Dense(4, activation="relu")
    >>> dense(np.ones((2, 5, 3), "float32")).shape
    torch.Size([2, 5, 4])
    >>> [w.shape for w in dense.get_weights()]
    [(3, 4), (4,)]
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence

import torch
from torch import nn

from rnnkit import _checks, activations, initializers
from rnnkit.layers.base import Layer

_UNSUPPORTED = (
    "kernel_regularizer",
    "bias_regularizer",
    "activity_regularizer",
    "kernel_constraint",
    "bias_constraint",
)


def refuse_unsupported(kwargs: dict, names: Sequence[str]) -> None:
    """Remove Keras options rnnkit does not implement; raise if one was actually set."""
    for name in names:
        if kwargs.pop(name, None) is not None:
            raise ValueError(
                f"{name}: not supported by rnnkit; add a penalty to the loss or "
                "clip weights in a callback instead"
            )


def check_positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    return value


def float_inputs(inputs, dtype: torch.dtype) -> torch.Tensor:
    """Numeric ``inputs`` as a floating tensor of ``dtype`` (Keras casts integers too)."""
    tensor = _checks.as_tensor(inputs, "inputs")
    if tensor.is_complex():
        raise TypeError(f"inputs: expected a real-valued tensor, got dtype {tensor.dtype}")
    return tensor.to(dtype)


class Dense(Layer):
    """``activation(inputs @ kernel + bias)`` on the last axis.

    Inputs ``(B, ..., F)``; outputs ``(B, ..., units)``. Passes a mask through unchanged.
    """

    supports_masking = True

    def __init__(
        self,
        units: int,
        activation=None,
        use_bias: bool = True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ) -> None:
        refuse_unsupported(kwargs, _UNSUPPORTED)
        super().__init__(**kwargs)
        self.units = check_positive_int(units, "units")
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self._initializer_names = (
            initializers.name_of(kernel_initializer),
            initializers.name_of(bias_initializer),
        )
        if self.batch_input_shape is not None:
            self.build(self.batch_input_shape)
            self.built = True

    def build(self, input_shape) -> None:
        if len(input_shape) < 2:
            raise ValueError(
                f"inputs: expected a tensor of rank >= 2 (batch, ..., features), "
                f"got shape {tuple(input_shape)}"
            )
        features = input_shape[-1]
        if features is None:
            raise ValueError(
                f"inputs: Dense needs a known last axis, got shape {tuple(input_shape)}"
            )
        dtype = self.param_dtype
        self.kernel = nn.Parameter(self.kernel_initializer((int(features), self.units), dtype))
        self.bias = (
            nn.Parameter(self.bias_initializer((self.units,), dtype)) if self.use_bias else None
        )

    def call(self, inputs, mask=None, training=None):
        inputs = float_inputs(inputs, self.kernel.dtype)
        if inputs.dim() < 2:
            raise ValueError(
                f"inputs: expected a tensor of rank >= 2 (batch, ..., features), "
                f"got shape {tuple(inputs.shape)}"
            )
        _checks.check_size(inputs.shape[-1], self.kernel.shape[0], "inputs", "features (last axis)")
        outputs = inputs @ self.kernel  # (B, ..., units)
        if self.bias is not None:
            outputs = outputs + self.bias
        return self.activation(outputs)

    def compute_output_shape(self, input_shape):
        return (*tuple(input_shape)[:-1], self.units)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            units=self.units,
            activation=activations.name_of(self.activation),
            use_bias=self.use_bias,
            kernel_initializer=self._initializer_names[0],
            bias_initializer=self._initializer_names[1],
        )
        return config


class Dropout(Layer):
    """Zero each entry with probability ``rate`` while training and scale the rest by 1/(1-rate).

    ``noise_shape`` shares one draw along axes of size 1 (``None`` entries follow the input), as
    in Keras; ``seed`` makes the draws reproducible. Outside training the input is returned as is.
    """

    supports_masking = True

    def __init__(
        self,
        rate: float,
        noise_shape: Sequence[int | None] | None = None,
        seed: int | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
            raise ValueError(f"rate: expected a number in [0, 1], got {rate!r}")
        self.rate = float(rate)
        self.noise_shape = None if noise_shape is None else tuple(noise_shape)
        self.seed = seed
        self._generator = None
        if seed is not None:
            self._generator = torch.Generator().manual_seed(int(seed))

    def call(self, inputs, mask=None, training=None):
        inputs = _checks.as_float_tensor(inputs, "inputs")
        if not training or self.rate == 0:
            return inputs
        if self.rate == 1:
            return torch.zeros_like(inputs)
        shape = self._draw_shape(tuple(inputs.shape))
        keep = torch.empty(shape, dtype=inputs.dtype).bernoulli_(
            1 - self.rate, generator=self._generator
        )
        return inputs * keep.to(inputs.device) / (1 - self.rate)

    def _draw_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        if self.noise_shape is None:
            return shape
        if len(self.noise_shape) != len(shape):
            raise ValueError(
                f"noise_shape: expected {len(shape)} entries (the input's rank), "
                f"got {self.noise_shape} for input shape {shape}"
            )
        resolved = tuple(
            size if noise is None else noise
            for noise, size in zip(self.noise_shape, shape, strict=True)
        )
        for noise, size in zip(resolved, shape, strict=True):
            if noise not in (1, size):
                raise ValueError(
                    f"noise_shape: expected each entry to be 1, None or the input's "
                    f"size, got {self.noise_shape} for input shape {shape}"
                )
        return resolved

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(rate=self.rate, noise_shape=self.noise_shape, seed=self.seed)
        return config


class Activation(Layer):
    """Apply an activation by Keras name (``"relu"``, ``"softmax"``...) or a callable."""

    supports_masking = True

    def __init__(self, activation, **kwargs) -> None:
        super().__init__(**kwargs)
        self.activation = activations.get(activation)

    def call(self, inputs, mask=None, training=None):
        return self.activation(_checks.as_float_tensor(inputs, "inputs"))

    def get_config(self) -> dict:
        config = super().get_config()
        config["activation"] = activations.name_of(self.activation)
        return config


class Lambda(Layer):
    """Wrap ``function(inputs, **arguments)`` as a layer.

    ``output_shape`` (a shape without the batch axis, or a function of the input shape) is used
    by ``compute_output_shape``; without it the shape is found by running ``function`` on zeros.
    ``mask`` is a fixed output mask or a function ``mask(inputs, mask)``. The function itself is
    kept in the config as an object, so ``from_config`` works within one process only.
    """

    def __init__(
        self,
        function: Callable,
        output_shape=None,
        mask=None,
        arguments: dict | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if not callable(function):
            raise TypeError(f"function: expected a callable, got {type(function).__name__}")
        self.function = function
        self.output_shape = output_shape
        self.mask = mask
        self.arguments = dict(arguments or {})
        self.supports_masking = mask is not None
        parameters = _parameter_names(function)
        self._passes_mask = "mask" in parameters
        self._passes_training = "training" in parameters

    def call(self, inputs, mask=None, training=None):
        extra = dict(self.arguments)
        if self._passes_mask:
            extra["mask"] = mask
        if self._passes_training:
            extra["training"] = training
        return self.function(inputs, **extra)

    def compute_mask(self, inputs, mask=None):
        if callable(self.mask):
            return self.mask(inputs, mask)
        return self.mask

    def compute_output_shape(self, input_shape):
        if callable(self.output_shape):
            return self.output_shape(input_shape)
        if self.output_shape is not None:
            return (input_shape[0], *tuple(self.output_shape))
        return self._probe_output_shape(tuple(input_shape))

    def _probe_output_shape(self, input_shape: tuple):
        """Run on zeros twice, with unknown dims set to 2 then 3; dims that differ are unknown."""
        shapes = []
        for fill in (2, 3):
            probe = torch.zeros([fill if size is None else size for size in input_shape])
            with torch.no_grad():
                shapes.append(tuple(self.function(probe, **self.arguments).shape))
        return tuple(a if a == b else None for a, b in zip(*shapes, strict=True))

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            function=self.function,
            output_shape=self.output_shape,
            mask=self.mask,
            arguments=self.arguments,
        )
        return config


def _parameter_names(function: Callable) -> set[str]:
    try:
        return set(inspect.signature(function).parameters)
    except (TypeError, ValueError):
        return set()
