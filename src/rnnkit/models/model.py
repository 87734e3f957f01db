"""``Model``: Keras's model API on a ``torch.nn.Module``, shared by the three kinds of model.

- Subclassed: define the layers in ``__init__`` and the computation in
  ``call(self, inputs, training=None)``; weights are created on the first call.
- Functional: ``Model(inputs, outputs)`` over tensors from :func:`rnnkit.layers.Input` (this
  returns a :class:`rnnkit.models.functional.Functional`).
- :class:`rnnkit.models.Sequential`: a stack of single-output layers.

All three are layers themselves (a model can be called inside another model) and share
``summary()``, ``count_params()``, ``get_weights()``/``set_weights()`` (Keras's order: layer by
layer), ``get_layer()``, ``save()``/``save_weights()``/``load_weights()`` and the training methods,
which hand over to :mod:`rnnkit.training.loop`.

A model starts in inference mode, as in Keras: ``model(x)`` does not apply dropout unless called
with ``training=True`` or after ``model.train()`` (``fit`` switches modes itself).

Example:
    >>> class Tagger(Model):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.encoder = LSTM(16, return_sequences=True)
    ...         self.head = Dense(5, activation="softmax")
    ...     def call(self, inputs, training=None):
    ...         return self.head(self.encoder(inputs, training=training))
    >>> Tagger()(np.zeros((2, 7, 3), "float32")).shape
    torch.Size([2, 7, 5])
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from rnnkit.layers.base import Layer, _any_symbolic
from rnnkit.models.symbolic import _is_shape, call_symbolic, dtype_name, to_dtype

_CONTAINERS = (nn.ModuleList, nn.ModuleDict, nn.Sequential)
_BASE_ARGUMENTS = frozenset({"name", "trainable", "dtype"})


class Model(Layer):
    """Base class of rnnkit models; see the module docstring.

    ``Model(inputs, outputs, name=None)`` builds a functional model. Subclasses call
    ``super().__init__(name=None, trainable=True, dtype=None)`` and define ``call``.
    """

    def __new__(cls, *args, **kwargs):
        if cls is Model and (args or "inputs" in kwargs or "outputs" in kwargs):
            from rnnkit.models.functional import Functional

            return super().__new__(Functional)
        return super().__new__(cls)

    def __init__(self, *args, name: str | None = None, trainable: bool = True, dtype=None,
                 **kwargs) -> None:
        if args or "inputs" in kwargs or "outputs" in kwargs:
            raise TypeError(f"{type(self).__name__}: a subclassed Model takes no inputs/outputs; "
                            "build a functional model with Model(inputs, outputs) instead")
        super().__init__(name=name, trainable=trainable, dtype=dtype, **kwargs)
        self.stop_training = False
        self.train(False)

    def __setattr__(self, name: str, value) -> None:
        if (isinstance(value, (list, tuple)) and value
                and all(isinstance(item, nn.Module) for item in value)):
            value = nn.ModuleList(value)  # Keras tracks layers kept in lists; torch needs this
        if isinstance(value, nn.Module) and "training" in self.__dict__:
            value.train(self.training)
        super().__setattr__(name, value)

    # -- call ---------------------------------------------------------------------------------
    def forward(self, inputs, *args, mask=None, training=None, **kwargs):
        if _any_symbolic((inputs, args, mask, kwargs)):
            return call_symbolic(self, inputs, args, mask=mask, training=training, **kwargs)
        inputs = self._convert_inputs(inputs)
        if not self.built:
            self._build_config = _describe_inputs(inputs)
        training = self.training if training is None else bool(training)
        outputs = self.call(inputs, *args, **self._call_options(mask, training), **kwargs)
        self.built = True
        return outputs

    def _convert_inputs(self, inputs):
        if isinstance(inputs, dict):
            return {key: self._convert_inputs(value) for key, value in inputs.items()}
        return super()._convert_inputs(inputs)

    def _call_options(self, mask, training: bool) -> dict:
        accepted = _call_parameters(type(self))
        options = {"training": training} if "training" in accepted else {}
        if mask is not None:
            if "mask" not in accepted:
                raise TypeError(f"mask: {type(self).__name__}.call takes no mask argument")
            options["mask"] = mask
        return options

    def build(self, input_shape) -> None:
        """Create the weights by calling the model once on zeros (unknown sizes become 1)."""
        shapes = [input_shape] if _is_shape(input_shape) else list(input_shape)
        zeros = [torch.zeros([1 if size is None else size for size in shape],
                             dtype=self.param_dtype) for shape in shapes]
        self.build_from_batch(zeros[0] if _is_shape(input_shape) else zeros)

    def build_from_batch(self, x) -> None:
        """Create lazily built weights by running ``x`` once, without gradients or training.

        ``fit`` calls this before it creates the optimizer. Stateful layers keep their state.
        """
        if self.built:
            return
        stateful = [m for m in self.modules() if getattr(m, "stateful", False)]
        saved = [m.states for m in stateful]
        with torch.no_grad():
            self(x, training=False)
        for module, states in zip(stateful, saved, strict=True):
            module.states = states

    def get_build_config(self) -> dict | None:
        """What the first call received (per-sample shapes and dtypes), for ``load_model``."""
        return getattr(self, "_build_config", None)

    def build_from_config(self, config: dict) -> None:
        """Build the way the first call did, from :meth:`get_build_config`'s description."""
        zeros = [torch.zeros([1, *shape], dtype=to_dtype(dtype))
                 for shape, dtype in config["specs"]]
        if config["kind"] == "dict":
            self.build_from_batch(dict(zip(config["keys"], zeros, strict=True)))
        else:
            self.build_from_batch(zeros[0] if config["kind"] == "single" else zeros)

    def reset_states(self) -> None:
        """Forget the carried state of every stateful layer."""
        for module in self.modules():
            if module is not self and getattr(module, "stateful", False):
                module.reset_states()

    # -- layers -------------------------------------------------------------------------------
    @property
    def layers(self) -> list[nn.Module]:
        """The model's layers in Keras's order (for a subclassed model: assignment order)."""
        return _tracked_layers(self)

    def get_layer(self, name: str | None = None, index: int | None = None) -> nn.Module:
        """The layer called ``name``, or at position ``index`` of :attr:`layers`."""
        layers = self.layers
        if (name is None) == (index is None):
            raise ValueError("name, index: give exactly one of them")
        if index is not None:
            if not -len(layers) <= index < len(layers):
                raise ValueError(f"index: expected an index into the model's {len(layers)} "
                                 f"layers, got {index}")
            return layers[index]
        for layer in layers:
            if getattr(layer, "name", None) == name:
                return layer
        names = [getattr(layer, "name", type(layer).__name__) for layer in layers]
        raise ValueError(f"name: no layer named {name!r} in model {self.name!r}; "
                         f"its layers are {names}")

    # -- weights ------------------------------------------------------------------------------
    def _weight_owners(self) -> list:
        """Whatever owns weights, in Keras's order: the model's own variables, then each layer."""
        owners = [_DirectParameters(self)] if _direct_parameters(self) else []
        seen: set[int] = set()
        for layer in self.layers:
            if id(layer) not in seen:
                seen.add(id(layer))
                owners.append(layer)
        return owners

    def get_weights(self) -> list[np.ndarray]:
        """All weights as NumPy arrays, layer by layer, each layer in Keras's layout."""
        return [array for owner in self._weight_owners() for array in weights_of(owner)]

    def set_weights(self, weights: Sequence) -> None:
        """Load a list like :meth:`get_weights` returns (for instance a Keras model's)."""
        weights = list(weights)
        owners = self._weight_owners()
        counts = [len(weights_of(owner)) for owner in owners]
        if sum(counts) != len(weights):
            hint = "" if self.built else (" (the model is not built yet: call it on data or "
                                          "build() it first)")
            per_layer = ", ".join(f"{owner.name}: {count}" for owner, count
                                  in zip(owners, counts, strict=True) if count)
            raise ValueError(f"{self.name}: set_weights expected {sum(counts)} arrays "
                             f"({per_layer}), got {len(weights)}{hint}")
        start = 0
        for owner, count in zip(owners, counts, strict=True):
            set_weights_of(owner, weights[start:start + count])
            start += count

    def count_params(self) -> int:
        if not self.built:
            raise ValueError(f"{self.name}: count_params() needs a built model; call it on data, "
                             "call build(input_shape) or give the first layer input_shape")
        return sum(int(np.prod(array.shape)) for array in self.get_weights())

    # -- description and saving -----------------------------------------------------------------
    def summary(self, print_fn: Callable[[str], None] | None = None,
                line_length: int | None = None) -> None:
        """Print Keras's table: layer (type), output shape, parameter count; then the totals."""
        from rnnkit.models.summary import print_summary

        print_summary(self, print_fn=print_fn, line_length=line_length)

    def _summary_rows(self) -> list[tuple[nn.Module, str, list[str] | None]]:
        """``(layer, output shape text, inbound tensors or None)`` for each row of the summary."""
        return [(layer, "?", None) for layer in self.layers]

    def get_config(self) -> dict:
        """``name`` and ``trainable``; a subclass whose ``__init__`` takes more must override this
        (calling ``super().get_config()``) so that ``from_config``/``load_model`` can rebuild it."""
        extra = _init_arguments(type(self)) - _BASE_ARGUMENTS
        if extra and type(self).get_config is Model.get_config:
            raise NotImplementedError(
                f"{type(self).__name__}.get_config: the model takes constructor arguments "
                f"{sorted(extra)}; override get_config() to return them so it can be saved")
        return {"name": self.name, "trainable": self.trainable}

    @classmethod
    def from_config(cls, config: dict, custom_objects: dict | None = None):
        return cls(**config)

    def save(self, path, overwrite: bool = True) -> None:
        """Save architecture (JSON) and weights (safetensors) to one file; see load_model."""
        from rnnkit.models.saving import save_model

        save_model(self, path, overwrite=overwrite)

    def save_weights(self, path, overwrite: bool = True) -> None:
        """Write the weights to a safetensors file, in :meth:`get_weights` order."""
        from rnnkit.models.saving import save_weights

        save_weights(self, path, overwrite=overwrite)

    def load_weights(self, path) -> None:
        """Read weights written by :meth:`save_weights` (or the weights of a saved model)."""
        from rnnkit.models.saving import load_weights

        load_weights(self, path)

    # -- training (implemented in rnnkit.training.loop) -----------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, metrics=None, loss_weights=None, **kwargs):
        from rnnkit.training import loop

        return loop.compile_model(self, optimizer, loss, metrics, loss_weights, **kwargs)

    @property
    def metrics_names(self) -> list[str]:
        """Keras's ``metrics_names``: ``["loss", *compiled metric names]``."""
        from rnnkit.training import loop

        return loop.metrics_names(self)

    def reset_metrics(self) -> None:
        from rnnkit.training import loop

        loop.reset_metrics(self)

    def fit(self, x=None, y=None, **kwargs):
        from rnnkit.training import loop

        return loop.fit(self, x, y, **kwargs)

    def evaluate(self, x=None, y=None, **kwargs):
        from rnnkit.training import loop

        return loop.evaluate(self, x, y, **kwargs)

    def predict(self, x, **kwargs):
        from rnnkit.training import loop

        return loop.predict(self, x, **kwargs)

    def train_on_batch(self, x, y=None, **kwargs):
        from rnnkit.training import loop

        return loop.train_on_batch(self, x, y, **kwargs)

    def test_on_batch(self, x, y=None, **kwargs):
        from rnnkit.training import loop

        return loop.test_on_batch(self, x, y, **kwargs)

    def predict_on_batch(self, x, **kwargs):
        from rnnkit.training import loop

        return loop.predict_on_batch(self, x, **kwargs)


# -- helpers --------------------------------------------------------------------------------------
@functools.cache
def _call_parameters(cls: type) -> frozenset[str]:
    parameters = inspect.signature(cls.call).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return frozenset({"mask", "training"})
    return frozenset(p.name for p in parameters)


def _describe_inputs(inputs) -> dict | None:
    if isinstance(inputs, dict):
        kind, keys, values = "dict", sorted(inputs), [inputs[key] for key in sorted(inputs)]
    elif isinstance(inputs, (list, tuple)):
        kind, keys, values = "list", [], list(inputs)
    else:
        kind, keys, values = "single", [], [inputs]
    if not all(isinstance(value, torch.Tensor) and value.dim() for value in values):
        return None
    specs = [[list(value.shape[1:]), dtype_name(value.dtype)] for value in values]
    return {"kind": kind, "keys": keys, "specs": specs}


def _init_arguments(cls: type) -> set[str]:
    positional = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    parameters = list(inspect.signature(cls.__init__).parameters.values())[1:]
    return {p.name for p in parameters if p.kind not in positional}


def _tracked_layers(module: nn.Module) -> list[nn.Module]:
    """Child layers in assignment order, looking inside torch containers; plain torch modules
    count only when they hold parameters (a loss module kept as an attribute is not a layer)."""
    layers = []
    for child in module.children():
        if isinstance(child, Layer):
            layers.append(child)
        elif isinstance(child, _CONTAINERS):
            layers.extend(_tracked_layers(child))
        elif any(True for _ in child.parameters()):
            layers.append(child)
    return layers


def _direct_parameters(model: nn.Module) -> list[nn.Parameter]:
    return [p for p in model._parameters.values() if p is not None]


class _DirectParameters:
    """The variables a subclassed model holds itself; Keras lists them before its layers'."""

    def __init__(self, model: Model) -> None:
        self.model = model
        self.name = model.name

    def parameters(self):
        return iter(_direct_parameters(self.model))


def weights_of(owner) -> list[np.ndarray]:
    """Keras-layout weights of a layer; plain torch modules give their parameters as they are."""
    if isinstance(owner, Layer):
        return owner.get_weights()
    return [p.detach().cpu().numpy().copy() for p in owner.parameters()]


def set_weights_of(owner, arrays: list) -> None:
    if isinstance(owner, Layer):
        owner.set_weights(arrays)
        return
    params = list(owner.parameters())
    name = getattr(owner, "name", type(owner).__name__)
    for index, (param, array) in enumerate(zip(params, arrays, strict=True)):
        if tuple(np.shape(array)) != tuple(param.shape):
            raise ValueError(f"{name}: weights[{index}] expected shape {tuple(param.shape)}, "
                             f"got {tuple(np.shape(array))}")
    with torch.no_grad():
        for param, array in zip(params, arrays, strict=True):
            param.copy_(torch.as_tensor(np.asarray(array), dtype=param.dtype))

