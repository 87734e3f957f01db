"""The Keras-style ``Layer``: a ``torch.nn.Module`` that builds lazily and speaks Keras's protocol.

A layer is called as ``layer(inputs, mask=None, training=None, **kwargs)``. It accepts NumPy arrays
or tensors (batch first), builds its weights on the first call from the input shape, and returns
tensors. The protocol, shared with :class:`rnnkit.models.Sequential` and the functional API:

- ``build(input_shape)`` creates weights; ``built`` tells whether it has run.
- ``call(inputs, mask=None, training=None, **kwargs)`` is the computation (subclasses define it).
- ``compute_mask(inputs, mask)`` returns the mask for the next layer (passes it through by default
  when ``supports_masking``, drops it otherwise).
- ``compute_output_shape(input_shape)`` gives the output shape, ``None`` for unknown dims.
- ``get_weights()``/``set_weights()`` use Keras's layout and order; ``count_params()`` counts as
  Keras does.
- ``get_config()``/``from_config()`` round-trip the constructor arguments.

``training=None`` means "follow ``self.training``" (``model.train()``/``model.eval()``).
"""

from __future__ import annotations

import collections
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from rnnkit._checks import as_tensor, cast_float

_name_counts: collections.Counter = collections.Counter()


def unique_name(base: str) -> str:
    """Keras's automatic names: ``lstm``, then ``lstm_1``, ``lstm_2``... counted per base name."""
    count = _name_counts[base]
    _name_counts[base] += 1
    return base if count == 0 else f"{base}_{count}"


def _snake(name: str) -> str:
    out = [name[0].lower()]
    for prev, char in zip(name, name[1:]):
        out.append("_" + char.lower() if char.isupper() and prev.islower() else char.lower())
    return "".join(out)


class Layer(nn.Module):
    """Base class of every Keras-face layer. See the module docstring for the protocol."""

    supports_masking = False

    def __init__(self, *, name: str | None = None, input_shape: Sequence | None = None,
                 input_dim: int | None = None, batch_size: int | None = None,
                 trainable: bool = True, dtype=None, **unknown) -> None:
        super().__init__()
        if unknown:
            raise TypeError(
                f"{type(self).__name__}: unexpected keyword argument(s) {sorted(unknown)}"
            )
        self.name = name or unique_name(_snake(type(self).__name__))
        if input_shape is None and input_dim is not None:
            input_shape = (input_dim,)
        self.batch_input_shape = (
            None if input_shape is None else (batch_size, *tuple(input_shape))
        )
        self.trainable = trainable
        self.param_dtype = _torch_dtype(dtype)
        self.built = False
        # Keras semantics: a layer called outside fit() runs in inference mode. fit() and
        # model.train() switch training on; training=True in a call does too.
        self.train(False)

    # -- call -------------------------------------------------------------------------------
    def forward(self, inputs, *args, mask=None, training=None, **kwargs):
        if _any_symbolic((inputs, args, mask, kwargs)):
            # A functional-API call on rnnkit.layers.Input tensors: record a graph node instead.
            from rnnkit.models.symbolic import call_symbolic

            return call_symbolic(self, inputs, args, mask=mask, training=training, **kwargs)
        if inputs is None:
            raise TypeError(f"inputs: expected a tensor or a NumPy array for {self.name}, got None")
        inputs = self._convert_inputs(inputs)
        if not self.built:
            self.build(_shape_of(inputs))
            self.built = True
        if training is None:
            training = self.training
        return self.call(inputs, *args, mask=mask, training=training, **kwargs)

    def _convert_inputs(self, inputs):
        """NumPy becomes a tensor; floating NumPy input is cast to the layer's dtype (as Keras)."""
        if isinstance(inputs, (list, tuple)):
            return type(inputs)(self._convert_inputs(x) for x in inputs)
        if isinstance(inputs, torch.Tensor) or inputs is None:
            return inputs
        tensor = as_tensor(inputs, "inputs")
        if tensor.is_floating_point():
            tensor = cast_float(tensor, self.param_dtype, "inputs")
        return tensor

    def build(self, input_shape) -> None:
        """Create weights for ``input_shape``; layers without weights keep this default."""

    def call(self, inputs, mask=None, training=None, **kwargs):
        raise NotImplementedError

    def compute_mask(self, inputs, mask=None):
        return mask if self.supports_masking else None

    def compute_output_shape(self, input_shape):
        return input_shape

    # -- weights ------------------------------------------------------------------------------
    def get_weights(self) -> list[np.ndarray]:
        """Weights as NumPy arrays in Keras's layout and order."""
        return [p.detach().cpu().numpy().copy() for p in self.parameters()]

    def set_weights(self, weights: Sequence) -> None:
        """Load arrays in Keras's layout and order (the layer must be built)."""
        params = list(self.parameters())
        _check_weight_list(self, weights, [tuple(p.shape) for p in params])
        with torch.no_grad():
            for param, value in zip(params, weights):
                param.copy_(torch.as_tensor(np.asarray(value), dtype=param.dtype))

    def count_params(self) -> int:
        if not self.built:
            raise ValueError(f"{self.name}: count_params() needs a built layer; call it on data "
                             "or give input_shape first")
        return sum(int(np.prod(w.shape)) for w in self.get_weights())

    @property
    def weights(self) -> list[torch.Tensor]:
        return list(self.parameters())

    # -- config --------------------------------------------------------------------------------
    def get_config(self) -> dict:
        config = {"name": self.name, "trainable": self.trainable}
        if self.batch_input_shape is not None:
            config["batch_input_shape"] = list(self.batch_input_shape)
        if self.param_dtype is not None:
            config["dtype"] = str(self.param_dtype).removeprefix("torch.")
        return config

    @classmethod
    def from_config(cls, config: dict):
        config = dict(config)
        batch_input_shape = config.pop("batch_input_shape", None)
        if batch_input_shape is not None:
            config["input_shape"] = tuple(batch_input_shape[1:])
            config["batch_size"] = batch_input_shape[0]
        return cls(**config)

    def __setattr__(self, name, value):
        if name == "trainable" and "_parameters" in self.__dict__:
            for param in self.parameters():
                param.requires_grad_(bool(value))
        super().__setattr__(name, value)

    def extra_repr(self) -> str:
        return f"name={self.name!r}"


def _torch_dtype(dtype) -> torch.dtype:
    if dtype is None:
        return torch.get_default_dtype()
    names = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16,
             "bfloat16": torch.bfloat16}
    if isinstance(dtype, torch.dtype):
        if not dtype.is_floating_point:
            raise ValueError(f"dtype: expected a floating-point dtype (weights are trained), "
                             f"got {dtype}")
        return dtype
    if dtype in names:
        return names[dtype]
    raise ValueError(f"dtype: expected one of {sorted(names)} or a torch.dtype, got {dtype!r}")


def _any_symbolic(value) -> bool:
    """Whether ``value`` (possibly nested in lists, tuples and dicts) holds a symbolic tensor."""
    if isinstance(value, torch.Tensor) or value is None:
        return False
    if isinstance(value, (list, tuple)):
        return any(_any_symbolic(item) for item in value)
    if isinstance(value, dict):
        return any(_any_symbolic(item) for item in value.values())
    return getattr(value, "_rnnkit_symbolic", False)


def _shape_of(inputs):
    if isinstance(inputs, (list, tuple)):
        return [_shape_of(x) for x in inputs]
    return tuple(inputs.shape)


def _check_weight_list(layer, weights, shapes) -> None:
    weights = list(weights)
    if len(weights) != len(shapes):
        raise ValueError(
            f"{layer.name}: set_weights expected {len(shapes)} arrays with shapes {shapes}, "
            f"got {len(weights)}"
        )
    for index, (value, shape) in enumerate(zip(weights, shapes)):
        if tuple(np.shape(value)) != tuple(shape):
            raise ValueError(
                f"{layer.name}: weights[{index}] expected shape {tuple(shape)}, "
                f"got {tuple(np.shape(value))}"
            )
