"""rnnkit models to Keras 3's config and weight layout: the inverse of ``_keras_import``.

:class:`KerasConfigWriter` walks a Sequential or functional model, writes each layer's config in
Keras 3's serialization format (``{"module", "class_name", "config", "registered_name"}``), and
records the weights each layer owns under the path Keras's loader will look for (see
``_keras_files``). rnnkit options Keras has no counterpart for (peepholes, layer norm, LSTM
projection, a second recurrent bias, custom activations) raise a ``ValueError`` naming the layer
and the option rather than being dropped.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from rnnkit import activations, initializers
from rnnkit.interop._keras_files import RECURRENT_CLASSES, container_paths, snake_case
from rnnkit.interop._keras_import import LAYERS
from rnnkit.layers import Bidirectional, TimeDistributed
from rnnkit.models import Model, Sequential
from rnnkit.models.functional import _TENSOR, Functional
from rnnkit.models.graph import map_graph
from rnnkit.models.symbolic import InputLayer, SymbolicTensor, dtype_name

logger = logging.getLogger(__name__)

_KERAS_INITIALIZERS = ("zeros", "ones", "glorot_uniform", "glorot_normal", "he_uniform",
                       "he_normal", "lecun_uniform", "random_normal", "random_uniform",
                       "orthogonal")
_LSTM_EXTENSIONS = ("peephole", "layer_norm", "proj_size")


def _policy(dtype: torch.dtype) -> dict:
    return {"module": "keras", "class_name": "DTypePolicy",
            "config": {"name": dtype_name(dtype)}, "registered_name": None}


def _entry(class_name: str, config: dict, module: str = "keras.layers") -> dict:
    return {"module": module, "class_name": class_name, "config": config,
            "registered_name": None}


class KerasConfigWriter:
    """Collects ``groups`` (weight path -> ``(owner name, arrays)``) while writing configs."""

    def __init__(self) -> None:
        self.groups: dict[str, tuple[str, list[np.ndarray]]] = {}

    # -- models -------------------------------------------------------------------------------
    def model_entry(self, model, path: str = "") -> dict:
        self.groups[path] = (model.name, [])
        if type(model) is Sequential:
            return self._sequential(model, path)
        if isinstance(model, Functional):
            return self._functional(model, path)
        raise ValueError(f"model: save_keras writes Sequential and functional models, got a "
                         f"subclassed {type(model).__name__}; Keras could not rebuild its call()")

    def _sequential(self, model: Sequential, path: str) -> dict:
        config = model.get_config()
        shape = config.get("build_input_shape")
        if shape is None:
            raise ValueError(f"model: {model.name} is not built; give the first layer "
                             "input_shape, add an Input, or call the model once before saving")
        input_entry = _entry("InputLayer", {"batch_shape": list(shape),
                                            "dtype": config.get("input_dtype", "float32"),
                                            "sparse": False, "name": f"{model.name}_input"})
        layers = model.layers
        paths = container_paths([_class_name(layer) for layer in layers], _join(path, "layers"))
        entries = [self.layer_entry(layer, child) for layer, child in zip(layers, paths)]
        body = {"name": model.name, "trainable": model.trainable, "dtype": _policy(
            model.param_dtype), "layers": [input_entry, *entries], "build_input_shape": shape}
        return _entry("Sequential", body, module="keras")

    def _functional(self, model: Functional, path: str) -> dict:
        graph = map_graph(model.inputs, model.outputs)
        encode = _TensorEncoder(graph)
        calls: dict[int, list[dict]] = {}
        for node in graph.nodes:
            if node.is_input:
                continue
            calls.setdefault(id(node.layer), []).append(
                {"args": encode([node.inputs, *node.args]), "kwargs": encode(node.kwargs)})
        class_names = ["InputLayer" if isinstance(layer, InputLayer) else _class_name(layer)
                       for layer in graph.layers]
        paths = container_paths(class_names, _join(path, "layers"))
        layers = []
        for layer, child in zip(graph.layers, paths):
            if isinstance(layer, InputLayer):
                entry = _entry("InputLayer", {"batch_shape": list(layer.batch_shape),
                                              "dtype": dtype_name(layer.input_dtype),
                                              "sparse": False, "name": layer.name})
            else:
                entry = self.layer_entry(layer, child)
            entry.update(name=layer.name, inbound_nodes=calls.get(id(layer), []))
            layers.append(entry)
        config = model.get_config()
        body = {"name": model.name, "trainable": model.trainable, "layers": layers,
                "input_layers": _references(config["inputs"], graph.layers),
                "output_layers": _references(config["outputs"], graph.layers)}
        entry = _entry("Functional", body, module="keras.src.models.functional")
        entry["registered_name"] = "Functional"
        return entry

    # -- layers -------------------------------------------------------------------------------
    def layer_entry(self, layer, path: str) -> dict:
        """The Keras entry for ``layer``; records its weights under ``path``."""
        if isinstance(layer, Model):
            return self.model_entry(layer, path)
        class_name = _class_name(layer)
        self.groups[path] = (layer.name, [])
        config = {"name": layer.name, "trainable": layer.trainable,
                  "dtype": _policy(layer.param_dtype)}
        if isinstance(layer, Bidirectional):
            config.update(merge_mode=layer.merge_mode,
                          layer=self.layer_entry(layer.forward_layer, f"{path}/forward_layer"),
                          backward_layer=self.layer_entry(layer.backward_layer,
                                                          f"{path}/backward_layer"))
        elif isinstance(layer, TimeDistributed):
            config["layer"] = self.layer_entry(layer.layer, f"{path}/layer")
        elif class_name in RECURRENT_CLASSES:
            config.update(_recurrent_config(layer))
            cell_name = f"{snake_case(class_name)}_cell"
            self.groups[f"{path}/cell"] = (cell_name, layer.get_weights())
        else:
            config.update(_plain_config(layer, class_name))
            self.groups[path] = (layer.name, layer.get_weights())
        return _entry(class_name, config)


def _class_name(layer) -> str:
    if isinstance(layer, Functional):
        return "Functional"
    class_name = type(layer).__name__
    if type(layer) is Sequential:
        return class_name
    known = LAYERS.get(class_name, (None,))[0]
    if type(layer) is not known and not isinstance(layer, (Bidirectional, TimeDistributed)):
        raise ValueError(f"layer: {getattr(layer, 'name', class_name)!r} is a {class_name}, "
                         "which has no Keras counterpart save_keras can write; supported: "
                         f"{sorted([*LAYERS, 'Bidirectional', 'TimeDistributed'])}")
    return class_name


def _join(path: str, name: str) -> str:
    return f"{path}/{name}" if path else name


def _keras_activation(layer, value, option: str) -> str:
    name = activations.name_of(value)
    try:
        known = activations.get(name) is activations.get(value)
    except ValueError:
        known = False
    if not known:
        raise ValueError(f"layer: {layer.name!r} uses a custom {option} {name!r}, which Keras "
                         "could not load; use one of rnnkit's Keras activation names")
    return name


def _keras_initializer(layer, value, default: str) -> str:
    name = initializers.name_of(value)
    if name in _KERAS_INITIALIZERS:
        return name
    logger.warning("%s: initializer %r has no Keras name; writing %r (the saved weights are "
                   "exact either way)", layer.name, name, default)
    return default


def _recurrent_config(layer) -> dict:
    cell = layer.cell
    for option in _LSTM_EXTENSIONS:
        if getattr(cell, option, False):
            raise ValueError(f"layer: {layer.name!r} uses rnnkit's {option}="
                             f"{getattr(cell, option)!r}, which Keras's LSTM does not have")
    if getattr(cell, "recurrent_bias", False):
        raise ValueError(f"layer: {layer.name!r} has a second (recurrent) bias, which Keras's "
                         f"{type(layer).__name__} does not have; fold it into the input bias "
                         "first (rnnkit.interop.from_torch(..., fold_biases=True) does)")
    config = {key: getattr(layer, key) for key in (
        "return_sequences", "return_state", "go_backwards", "stateful", "unroll",
        "zero_output_for_mask")}
    config.update(
        units=cell.units, activation=_keras_activation(layer, cell.activation, "activation"),
        use_bias=cell.use_bias,
        kernel_initializer=_keras_initializer(layer, cell.kernel_initializer, "glorot_uniform"),
        recurrent_initializer=_keras_initializer(layer, cell.recurrent_initializer,
                                                 "orthogonal"),
        bias_initializer=_keras_initializer(layer, cell.bias_initializer, "zeros"),
        dropout=cell.dropout, recurrent_dropout=cell.recurrent_dropout)
    if cell.family != "rnn":
        config["recurrent_activation"] = _keras_activation(
            layer, cell.recurrent_activation, "recurrent_activation")
    if cell.family == "lstm":
        config["unit_forget_bias"] = cell.unit_forget_bias
    if cell.family == "gru":
        config["reset_after"] = cell.reset_after
    return config


def _plain_config(layer, class_name: str) -> dict:
    """The Keras options of a layer without sublayers, from its rnnkit config."""
    own = layer.get_config()
    keys = [key for key in LAYERS[class_name][1] if key != "input_length"]
    config = {key: own[key] for key in keys if key in own}
    for key in ("activation",):
        if key in config:
            config[key] = _keras_activation(layer, getattr(layer, key), key)
    for key, default in (("kernel_initializer", "glorot_uniform"), ("bias_initializer", "zeros"),
                         ("embeddings_initializer", "random_uniform")):
        if key in config:
            config[key] = _keras_initializer(layer, config[key], default)
    for key in ("noise_shape", "target_shape"):
        if config.get(key) is not None:
            config[key] = list(config[key])
    return config


class _TensorEncoder:
    """Symbolic tensors in a call's arguments become Keras's ``__keras_tensor__`` objects."""

    def __init__(self, graph) -> None:
        self.graph = graph

    def __call__(self, value):
        if isinstance(value, SymbolicTensor):
            name, node_index, tensor_index = self.graph.reference(value)
            return {"class_name": "__keras_tensor__",
                    "config": {"shape": list(value.shape), "dtype": dtype_name(value.dtype),
                               "keras_history": [name, node_index, tensor_index]}}
        if isinstance(value, (list, tuple)):
            return [self(item) for item in value]
        if isinstance(value, dict):
            return {key: self(item) for key, item in value.items()}
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        raise ValueError(f"model: a call argument of type {type(value).__name__} cannot be "
                         "written to a Keras config")


def _keras_node_offset(layer) -> int:
    """In input_layers/output_layers (not in the recorded calls), Keras counts a nested
    functional model's own construction as its node 0."""
    return 1 if isinstance(layer, Functional) else 0


def _references(encoded, layers: list):
    """rnnkit's ``{"__tensor__": [layer, node, tensor]}`` references as Keras's triples."""
    if isinstance(encoded, dict) and set(encoded) == {_TENSOR}:
        name, node_index, tensor_index = encoded[_TENSOR]
        layer = next(layer for layer in layers if layer.name == name)
        return [name, node_index + _keras_node_offset(layer), tensor_index]
    return [_references(item, layers) for item in encoded]
