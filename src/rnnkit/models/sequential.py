"""``Sequential``: a stack of layers, each feeding the next, with masks carried between them.

Give ``input_shape`` to the first layer (or ``add(Input(...))`` first) and the model is built at
once: weights exist and ``summary()`` knows every output shape. Otherwise the layers build on the
first call. Between layers the mask follows Keras's rule ``mask = layer.compute_mask(x, mask)``,
so ``Embedding(mask_zero=True)`` followed by an ``LSTM`` skips padding.

Example (seed 001):
    >>> model = Sequential([LSTM(64, input_shape=(None, 1), return_sequences=True),
    ...                     LSTM(32), Dense(1)])
    >>> model.count_params()
    29345
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from rnnkit.layers.base import Layer
from rnnkit.models import _nest
from rnnkit.models.model import Model
from rnnkit.models.symbolic import InputLayer, SymbolicTensor, dtype_name, to_dtype


class Sequential(Model):
    """Layers run in order on one input; ``add``, ``pop``, ``layers`` and ``model[i]`` edit and
    read the stack."""

    def __init__(self, layers: Sequence[Layer] | None = None, name: str | None = None,
                 trainable: bool = True) -> None:
        super().__init__(name=name, trainable=trainable)
        self._stack = nn.ModuleList()
        self._input_spec: tuple[tuple, torch.dtype] | None = None  # (batch shape, dtype)
        self._symbolic_outputs: list[SymbolicTensor] = []
        if layers is not None and not isinstance(layers, (list, tuple)):
            raise TypeError(f"layers: expected a list of layers, got {type(layers).__name__}")
        for layer in layers or []:
            self.add(layer)

    # -- editing ------------------------------------------------------------------------------
    def add(self, layer) -> None:
        """Append ``layer`` (or set the input with ``add(Input(shape))`` before any layer)."""
        if isinstance(layer, SymbolicTensor) and layer.node.is_input:
            if self._stack:
                raise ValueError("layer: an Input can only be added to an empty Sequential")
            self._input_spec = (layer.shape, layer.dtype)
            return
        if not isinstance(layer, Layer):
            raise TypeError(f"layer: expected an rnnkit layer or model, got "
                            f"{type(layer).__name__}")
        if any(existing.name == layer.name for existing in self._stack):
            raise ValueError(f"layer: the name {layer.name!r} is already used in "
                             f"{self.name!r}; layer names must be unique")
        layer.train(self.training)
        self._stack.append(layer)
        if len(self._stack) == 1 and self._input_spec is None:
            shape = getattr(layer, "batch_input_shape", None)
            if shape is not None:
                self._input_spec = (tuple(shape), torch.get_default_dtype())
        self._infer_shapes()

    def pop(self) -> Layer:
        """Remove and return the last layer."""
        if not self._stack:
            raise TypeError(f"{self.name}: there are no layers to pop")
        layer = self._stack[-1]
        del self._stack[-1]
        self._infer_shapes()
        return layer

    @property
    def layers(self) -> list[Layer]:
        return list(self._stack)

    @property
    def output_names(self) -> list[str]:
        return [self._stack[-1].name] if self._stack else []

    @property
    def input_shape(self) -> tuple | None:
        """Keras's ``input_shape``: the batch-first input shape, None where unknown."""
        return None if self._input_spec is None else tuple(self._input_spec[0])

    def __getitem__(self, index):
        if isinstance(index, slice):
            return list(self._stack)[index]
        return self._stack[index]

    # -- building -----------------------------------------------------------------------------
    def build(self, input_shape=None) -> None:
        """Build every layer for inputs of ``input_shape`` (batch axis included, may be None)."""
        if input_shape is not None:
            self._input_spec = (tuple(input_shape), torch.get_default_dtype())
        if self._input_spec is None:
            raise ValueError(f"input_shape: {self.name} needs an input shape to build, got None")
        self._infer_shapes()

    def _infer_shapes(self) -> None:
        """Run the stack on a symbolic input: builds the layers and records each output."""
        self._symbolic_outputs = []
        if self._input_spec is None or not self._stack:
            self.built = False
            return
        shape, dtype = self._input_spec
        x = InputLayer(batch_shape=shape, dtype=dtype, name=f"{self.name}_input").output
        for layer in self._stack:
            x = layer(x)
            if not isinstance(x, SymbolicTensor):
                raise ValueError(f"{layer.name}: every layer of a Sequential model must return "
                                 f"one tensor, got {len(_nest.flatten(x))}; use the functional "
                                 "API (Model(inputs, outputs)) for several outputs")
            self._symbolic_outputs.append(x)
        self.built = True

    # -- run ----------------------------------------------------------------------------------
    def call(self, inputs, mask=None, training=None):
        if not self._stack:
            raise ValueError(f"{self.name}: the model has no layers; add() some first")
        x = inputs
        for layer in self._stack:
            options = {"training": training} if mask is None else {"training": training,
                                                                   "mask": mask}
            outputs = layer(x, **options)
            mask = layer.compute_mask(x, mask)
            x = outputs
        if self._input_spec is None and isinstance(inputs, torch.Tensor):
            self._input_spec = ((None, *inputs.shape[1:]), inputs.dtype)
        return x

    def _summary_rows(self):
        from rnnkit.models.summary import describe_outputs

        if self.built and not self._symbolic_outputs:
            self._infer_shapes()
        if not self._symbolic_outputs:
            raise ValueError(f"{self.name}: the model is not built yet; call it on data, call "
                             "build(input_shape) or give the first layer input_shape")
        return [(layer, describe_outputs(output), None)
                for layer, output in zip(self._stack, self._symbolic_outputs, strict=True)]

    # -- config -------------------------------------------------------------------------------
    def get_config(self) -> dict:
        from rnnkit.models.registry import serialize_layer

        config = {"name": self.name, "trainable": self.trainable,
                  "layers": [serialize_layer(layer) for layer in self._stack]}
        if self._input_spec is not None:
            shape, dtype = self._input_spec
            config["build_input_shape"] = list(shape)
            config["input_dtype"] = dtype_name(dtype)
        return config

    @classmethod
    def from_config(cls, config: dict, custom_objects: dict | None = None):
        from rnnkit.models.registry import deserialize_layer

        model = cls(name=config.get("name"), trainable=config.get("trainable", True))
        for spec in config.get("layers", []):
            model.add(deserialize_layer(spec, custom_objects))
        if config.get("build_input_shape") is not None and not model.built:
            model._input_spec = (tuple(config["build_input_shape"]),
                                 to_dtype(config.get("input_dtype")))
            model._infer_shapes()
        return model
