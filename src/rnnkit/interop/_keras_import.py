"""Keras model configs (Keras 3, and Keras 2's legacy form) to rnnkit layers and models.

Each supported Keras class maps to the rnnkit class of the same name. A layer's config is
consumed key by key: a key is passed to rnnkit's constructor, translated (activations,
initializers, dtype policies), dropped because it cannot change the numbers (``seed``,
``implementation``...), or refused with a ``ValueError`` naming the layer and the key when it
would (a regularizer, ``time_major=True``, a mixed-precision policy, an unknown option).
Initializers rnnkit does not have fall back to the layer's default with a logged warning: the
loaded weights replace them anyway.

Functional models are rebuilt by replaying each layer's recorded calls on rnnkit's symbolic
tensors, in dependency order, as Keras does.
"""

from __future__ import annotations

import logging

from rnnkit import activations, initializers
from rnnkit.interop._keras_files import snake_case
from rnnkit.layers import (
    GRU,
    LSTM,
    RNN,
    Activation,
    Add,
    Average,
    Bidirectional,
    Concatenate,
    Dense,
    Dropout,
    Embedding,
    Flatten,
    Masking,
    Maximum,
    Minimum,
    Multiply,
    RepeatVector,
    Reshape,
    SimpleRNN,
    Subtract,
    TimeDistributed,
)
from rnnkit.models import Input, Model, Sequential

logger = logging.getLogger(__name__)

_VALUE, _ACTIVATION, _INITIALIZER = "value", "activation", "initializer"
_RECURRENT = {"units": _VALUE, "activation": _ACTIVATION, "use_bias": _VALUE,
              "kernel_initializer": _INITIALIZER, "recurrent_initializer": _INITIALIZER,
              "bias_initializer": _INITIALIZER, "dropout": _VALUE, "recurrent_dropout": _VALUE,
              "return_sequences": _VALUE, "return_state": _VALUE, "go_backwards": _VALUE,
              "stateful": _VALUE, "unroll": _VALUE, "zero_output_for_mask": _VALUE}
_MERGES = {cls.__name__: (cls, {}) for cls in (Add, Subtract, Multiply, Average, Maximum, Minimum)}

# Keras class -> (rnnkit class, {Keras key: how to translate it}).
LAYERS: dict[str, tuple[type, dict[str, str]]] = {
    "Dense": (Dense, {"units": _VALUE, "activation": _ACTIVATION, "use_bias": _VALUE,
                      "kernel_initializer": _INITIALIZER, "bias_initializer": _INITIALIZER}),
    "LSTM": (LSTM, {**_RECURRENT, "recurrent_activation": _ACTIVATION,
                    "unit_forget_bias": _VALUE}),
    "GRU": (GRU, {**_RECURRENT, "recurrent_activation": _ACTIVATION, "reset_after": _VALUE}),
    "SimpleRNN": (SimpleRNN, _RECURRENT),
    "Embedding": (Embedding, {"input_dim": _VALUE, "output_dim": _VALUE, "mask_zero": _VALUE,
                              "embeddings_initializer": _INITIALIZER, "input_length": _VALUE}),
    "Dropout": (Dropout, {"rate": _VALUE, "noise_shape": _VALUE, "seed": _VALUE}),
    "Masking": (Masking, {"mask_value": _VALUE}),
    "Flatten": (Flatten, {"data_format": _VALUE}),
    "Activation": (Activation, {"activation": _ACTIVATION}),
    "RepeatVector": (RepeatVector, {"n": _VALUE}),
    "Reshape": (Reshape, {"target_shape": _VALUE}),
    "Concatenate": (Concatenate, {"axis": _VALUE}),
    **_MERGES,
}
WRAPPERS = ("Bidirectional", "TimeDistributed")
MODELS = ("Sequential", "Functional", "Model")
SUPPORTED = sorted([*LAYERS, *WRAPPERS, *MODELS, "InputLayer"])

# Keys that cannot change a loaded model's outputs.
_IGNORED = ("seed", "implementation", "use_cudnn", "build_config", "compile_config",
            "registered_name", "module", "shared_object_id")
# Keys rnnkit has no counterpart for: accepted only when unset.
_UNSET_ONLY = ("kernel_regularizer", "recurrent_regularizer", "bias_regularizer",
               "activity_regularizer", "embeddings_regularizer", "kernel_constraint",
               "recurrent_constraint", "bias_constraint", "embeddings_constraint",
               "quantization_config", "lora_rank", "lora_alpha", "lora_enabled", "time_major",
               "sparse", "ragged", "optional")
_MISSING = object()


class _Config:
    """One Keras config being consumed; whatever is left at :meth:`done` is refused by name."""

    def __init__(self, class_name: str, config, where: str) -> None:
        if not isinstance(config, dict):
            raise ValueError(f"config: {where} ({class_name}) has no config dict, got "
                             f"{type(config).__name__}")
        self.class_name = class_name
        self.where = where
        self._values = dict(config)

    def pop(self, key: str, default=_MISSING):
        if key in self._values:
            return self._values.pop(key)
        if default is _MISSING:
            raise ValueError(f"config: {self.where} ({self.class_name}) lacks the required "
                             f"key {key!r}")
        return default

    def has(self, key: str) -> bool:
        return key in self._values

    def done(self) -> None:
        for key in _IGNORED:
            self._values.pop(key, None)
        for key in _UNSET_ONLY:
            value = self._values.pop(key, None)
            if value not in (None, False, 0, {}, []):
                raise ValueError(f"config: {self.where} ({self.class_name}) sets {key}="
                                 f"{value!r}, which rnnkit does not support")
        if self._values:
            raise ValueError(f"config: {self.where} ({self.class_name}) has option(s) "
                             f"{sorted(self._values)} that rnnkit does not support")


def entry_parts(entry, where: str) -> tuple[str, dict]:
    """``(class_name, config)`` of a serialized Keras object ``{"class_name", "config", ...}``."""
    if not isinstance(entry, dict) or "class_name" not in entry:
        raise ValueError(f"config: {where}: expected a dict with 'class_name' and 'config', got "
                         f"{str(entry)[:80]!r}")
    return entry["class_name"], entry.get("config", {})


def dtype_name(policy, where: str) -> str | None:
    """The dtype of a Keras dtype policy (a name, or ``{"class_name": ..., "config": {...}}``)."""
    if policy is None:
        return None
    name = policy
    if isinstance(policy, dict):
        name = policy.get("config", {}).get("name")
    if not isinstance(name, str) or name.startswith("mixed_"):
        raise ValueError(f"config: {where} uses dtype policy {name!r}; rnnkit loads float "
                         "policies only (float32, float64, float16, bfloat16)")
    return name


class KerasConfigReader:
    """Rebuilds rnnkit layers and models from Keras configs. ``keras_version`` is the file's."""

    def __init__(self, keras_version: str) -> None:
        self.legacy_activations = keras_version.split(".")[0] in ("1", "2")

    # -- layers -------------------------------------------------------------------------------
    def layer(self, entry, where: str = "model"):
        class_name, raw = entry_parts(entry, where)
        where = f"layer {raw.get('name', where)!r}" if isinstance(raw, dict) else where
        config = _Config(class_name, raw, where)
        if class_name in MODELS:
            return self._sequential(config) if class_name == "Sequential" else self._functional(
                config)
        if class_name == "Bidirectional":
            return self._bidirectional(config)
        if class_name == "TimeDistributed":
            layer = self.layer(config.pop("layer"), f"{where}.layer")
            return TimeDistributed(layer, **self._base(config))
        if class_name not in LAYERS:
            raise ValueError(f"layer: {where} is a Keras {class_name}, which rnnkit cannot load; "
                             f"supported layers are {SUPPORTED}")
        cls, keys = LAYERS[class_name]
        kwargs = {}
        for key, kind in keys.items():
            if config.has(key):
                value = self._translate(config.pop(key), kind, f"{where}: {key}")
                if value is not _MISSING:
                    kwargs[key] = value
        return cls(**kwargs, **self._base(config))

    def _base(self, config: _Config) -> dict:
        """Name, trainable, dtype and Keras 2's input shape; then checks nothing is left."""
        kwargs = {"name": config.pop("name", None), "trainable": config.pop("trainable", True)}
        dtype = dtype_name(config.pop("dtype", None), config.where)
        if dtype is not None:
            kwargs["dtype"] = dtype
        batch_input_shape = config.pop("batch_input_shape", None)
        if batch_input_shape is not None:
            kwargs["input_shape"] = tuple(batch_input_shape[1:])
            kwargs["batch_size"] = batch_input_shape[0]
        config.done()
        return kwargs

    def _translate(self, value, kind: str, where: str):
        if kind == _ACTIVATION:
            return self._activation(value, where)
        if kind == _INITIALIZER:
            return _initializer(value, where)
        return value

    def _activation(self, value, where: str):
        if isinstance(value, dict):  # Keras 3 serializes some functions as objects
            value = value.get("config") if value.get("class_name") == "function" else value.get(
                "class_name")
        if value == "hard_sigmoid" and self.legacy_activations:
            raise ValueError(f"config: {where}: 'hard_sigmoid' means 0.2x + 0.5 in Keras 2, "
                             "but rnnkit follows Keras 3 (relu6(x + 3) / 6); the outputs "
                             "would differ")
        try:
            activations.get(value)
        except ValueError:
            raise ValueError(f"config: {where}: unknown activation {value!r}; expected one of "
                             f"rnnkit's Keras names") from None
        return value

    def _bidirectional(self, config: _Config) -> Bidirectional:
        where = config.where
        forward = self.layer(config.pop("layer"), f"{where}.layer")
        backward_entry = config.pop("backward_layer", None)
        backward = None if backward_entry is None else self.layer(backward_entry,
                                                                  f"{where}.backward_layer")
        merge_mode = config.pop("merge_mode", "concat")
        return Bidirectional(forward, merge_mode=merge_mode, backward_layer=backward,
                             **self._base(config))

    # -- models -------------------------------------------------------------------------------
    def input_tensor(self, entry, where: str):
        """An rnnkit ``Input`` from a Keras ``InputLayer`` entry."""
        _, raw = entry_parts(entry, where)
        config = _Config("InputLayer", raw, where)
        shape = config.pop("batch_shape", None)
        if shape is None:
            shape = config.pop("batch_input_shape")
        name = config.pop("name", None)
        dtype = config.pop("dtype", None)
        dtype = dtype_name(dtype, where) if isinstance(dtype, dict) else dtype
        config.done()
        return Input(shape=tuple(shape[1:]), batch_size=shape[0], name=name, dtype=dtype)

    def _sequential(self, config: _Config) -> Sequential:
        entries = config.pop("layers")
        build_input_shape = config.pop("build_input_shape", None)
        model = Sequential(name=config.pop("name", None), trainable=config.pop("trainable", True))
        config.pop("dtype", None)
        config.done()
        for index, entry in enumerate(entries):
            where = f"{model.name}.layers[{index}]"
            if entry_parts(entry, where)[0] == "InputLayer":
                model.add(self.input_tensor(entry, where))
            else:
                model.add(self.layer(entry, where))
        if not model.built and build_input_shape:
            model.build(tuple(build_input_shape))
        return model

    def _functional(self, config: _Config) -> Model:
        entries = config.pop("layers")
        inputs_spec, outputs_spec = config.pop("input_layers"), config.pop("output_layers")
        name, trainable = config.pop("name", None), config.pop("trainable", True)
        config.pop("dtype", None)
        config.done()
        graph = _Replay(self, name or "model")
        for index, entry in enumerate(entries):
            graph.add(entry, f"{name}.layers[{index}]")
        graph.run()
        inputs = graph.structure(inputs_spec, "input_layers")
        if isinstance(inputs, list) and len(inputs) == 1:
            inputs = inputs[0]
        outputs = graph.structure(outputs_spec, "output_layers")
        return Model(inputs, outputs, name=name, trainable=trainable)


class _NotReady(Exception):
    """A call refers to a tensor that no call has produced yet."""


class _Replay:
    """Replays a functional config's calls on rnnkit's symbolic tensors, as Keras does."""

    def __init__(self, reader: KerasConfigReader, model_name: str) -> None:
        self.reader = reader
        self.model_name = model_name
        self.layers: dict[str, object] = {}
        self.outputs: dict[str, list[list]] = {}  # layer name -> flattened outputs per call
        # In input_layers/output_layers, Keras counts a nested functional model's own
        # construction as its node 0; in the recorded calls it does not.
        self.offsets: dict[str, int] = {}
        self.pending: dict[str, list] = {}

    def add(self, entry, where: str) -> None:
        class_name, raw = entry_parts(entry, where)
        name = entry.get("name") or (raw or {}).get("name")
        if class_name == "InputLayer":
            self.outputs[name] = [[self.reader.input_tensor(entry, where)]]
            return
        self.layers[name] = self.reader.layer({"class_name": class_name, "config": raw}, where)
        self.outputs[name] = []
        self.offsets[name] = 1 if class_name in ("Functional", "Model") else 0
        self.pending[name] = list(entry.get("inbound_nodes", []))

    def run(self) -> None:
        while any(self.pending.values()):
            progressed = False
            for name, nodes in self.pending.items():
                while nodes:
                    try:
                        self._call(name, nodes[0])
                    except _NotReady:
                        break
                    nodes.pop(0)
                    progressed = True
            if not progressed:
                stuck = sorted(name for name, nodes in self.pending.items() if nodes)
                raise ValueError(f"config: the calls of layers {stuck} in {self.model_name!r} "
                                 "refer to tensors no call produces (a cycle or a missing layer)")

    def _call(self, name: str, node) -> None:
        if isinstance(node, list):  # Keras 2: [[layer, node index, tensor index, kwargs], ...]
            refs = [self.tensor(item[:3]) for item in node]
            kwargs = self.decode(node[0][3]) if node and len(node[0]) > 3 else {}
            args = [refs[0] if len(refs) == 1 else refs]
            if len(refs) > 1 and isinstance(self.layers[name], (RNN, Bidirectional)):
                # Keras 2 listed a recurrent layer's initial states after its input.
                args, kwargs["initial_state"] = [refs[0]], refs[1:]
        else:
            args = self.decode(node.get("args", []))
            kwargs = self.decode(node.get("kwargs", {}))
        kwargs.pop("training", None)
        if kwargs.get("mask", True) is None:
            kwargs.pop("mask")
        if not args:
            raise ValueError(f"config: a call of layer {name!r} has no inputs")
        result = self.layers[name](*args, **kwargs)
        self.outputs[name].append(_flatten(result))

    def tensor(self, reference, offset: bool = False):
        layer, node_index, tensor_index = reference
        if layer not in self.outputs:
            raise ValueError(f"config: a call refers to layer {layer!r}, which is not among the "
                             f"layers of {self.model_name!r}")
        calls = self.outputs[layer]
        if offset:
            node_index -= self.offsets.get(layer, 0)
        if node_index < 0:
            raise ValueError(f"config: a reference to layer {layer!r} has node index "
                             f"{reference[1]}, which names no call")
        if node_index >= len(calls):
            raise _NotReady
        try:
            return calls[node_index][tensor_index]
        except IndexError:
            raise ValueError(f"config: a call refers to output {tensor_index} of layer "
                             f"{layer!r}, which has {len(calls[node_index])}") from None

    def decode(self, value):
        if isinstance(value, dict):
            if value.get("class_name") == "__keras_tensor__":
                return self.tensor(value["config"]["keras_history"])
            return {key: self.decode(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.decode(item) for item in value]
        return value

    def structure(self, spec, where: str):
        if isinstance(spec, list) and len(spec) == 3 and isinstance(spec[0], str):
            return self._ready(spec, where)
        if isinstance(spec, list):
            return [self.structure(item, where) for item in spec]
        raise ValueError(f"config: {where} of {self.model_name!r} must be a list of "
                         f"[layer, node, tensor] references, got {str(spec)[:80]!r}")

    def _ready(self, reference, where: str):
        try:
            return self.tensor(reference, offset=True)
        except _NotReady:
            raise ValueError(f"config: {where} of {self.model_name!r} refers to {reference}, "
                             "which no call produces") from None


def _flatten(value) -> list:
    if isinstance(value, (list, tuple)):
        return [leaf for item in value for leaf in _flatten(item)]
    return [value]


def _initializer(value, where: str):
    """rnnkit's name for a Keras initializer, or ``_MISSING`` to keep the layer's default."""
    name = value
    if isinstance(value, dict):
        name = snake_case(value.get("class_name", ""))
    name = {"uniform": "random_uniform", "normal": "random_normal"}.get(name, name)
    try:
        initializers.get(name)
    except ValueError:
        logger.warning("%s: initializer %r has no rnnkit counterpart; the layer's default is "
                       "used (it matters only if the weights are re-initialised)", where, value)
        return _MISSING
    return name
