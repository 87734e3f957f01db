"""``Functional``: the model ``Model(inputs, outputs)`` returns, a graph of layer calls.

Build it by calling layers on the symbolic tensors of :func:`rnnkit.layers.Input`; call it on
arrays or tensors in the same structure as ``inputs`` (a list for several inputs, or a dict keyed
by input names). Masks travel with the values: each layer gets the masks of its first argument
and its ``compute_mask`` gives the masks of its outputs, so ``Embedding(mask_zero=True)`` feeding
an ``LSTM`` masks padding as in Keras. Tensors given as other arguments (``initial_state=[h, c]``)
are wired in like any input.

Example (seed 003's encoder-decoder):
    >>> source, target = Input((None,), name="source"), Input((None,), name="target")
    >>> _, h, c = LSTM(32, return_state=True)(Embedding(100, 16)(source))
    >>> decoded = LSTM(32, return_sequences=True)(Embedding(90, 16)(target), initial_state=[h, c])
    >>> model = Model([source, target], Dense(90, activation="softmax")(decoded))
"""

from __future__ import annotations

import torch
from torch import nn

from rnnkit.models import _nest
from rnnkit.models.graph import Graph, map_graph
from rnnkit.models.model import Model
from rnnkit.models.symbolic import InputLayer, Node, SymbolicTensor

_TENSOR = "__tensor__"  # key marking a tensor reference in a saved config


class Functional(Model):
    """A model defined by its symbolic ``inputs`` and ``outputs`` (single or lists of tensors)."""

    def __init__(self, inputs, outputs, name: str | None = None, trainable: bool = True) -> None:
        super().__init__(name=name, trainable=trainable)
        self._inputs_structure = _check_tensors(inputs, "inputs")
        self._outputs_structure = _check_tensors(outputs, "outputs")
        self.inputs: list[SymbolicTensor] = _nest.flatten(self._inputs_structure)
        self.outputs: list[SymbolicTensor] = _nest.flatten(self._outputs_structure)
        for index, tensor in enumerate(self.inputs):
            if not tensor.node.is_input:
                raise ValueError(f"inputs[{index}]: expected a tensor made by Input(), got the "
                                 f"output of layer {tensor.node.layer.name!r}")
        self._graph: Graph = map_graph(self.inputs, self.outputs)
        self._graph_layers = nn.ModuleList(self._graph.layers)
        self.built = True

    @property
    def layers(self) -> list[nn.Module]:
        return list(self._graph.layers)

    @property
    def input_names(self) -> list[str]:
        return [tensor.node.layer.name for tensor in self.inputs]

    @property
    def input_shape(self):
        """Keras's ``input_shape``: one shape, or a list with one per input."""
        shapes = [tuple(tensor.shape) for tensor in self.inputs]
        return shapes[0] if len(shapes) == 1 else shapes

    @property
    def output_names(self) -> list[str]:
        """The names of the layers that make the outputs (Keras keys per-output losses by them)."""
        return [tensor.node.layer.name for tensor in self.outputs]

    # -- run ----------------------------------------------------------------------------------
    def call(self, inputs, mask=None, training=None):
        values: dict[int, tuple] = {}
        feeds = self._match(inputs, "inputs")
        masks = [None] * len(feeds) if mask is None else self._match(mask, "mask")
        for index, (tensor, value, input_mask) in enumerate(
                zip(self.inputs, feeds, masks, strict=True)):
            _check_input_shape(tensor, value, index)
            values[id(tensor)] = (value, input_mask)
        for node in self._graph.nodes:
            if not node.is_input:
                _run_node(node, values, training)
        return _nest.map_structure(lambda tensor: values[id(tensor)][0], self._outputs_structure)

    def _match(self, inputs, name: str) -> list:
        """The values for ``self.inputs``, in order, from a tensor, a list or a dict."""
        expected = self.input_names
        if isinstance(inputs, dict):
            missing = [key for key in expected if key not in inputs]
            if missing:
                raise ValueError(f"{name}: expected a dict with keys {expected}, got "
                                 f"{sorted(inputs)} (missing {missing})")
            return [inputs[key] for key in expected]
        if isinstance(inputs, (list, tuple)):
            if len(inputs) != len(expected):
                raise ValueError(f"{name}: expected {len(expected)} arrays for the inputs "
                                 f"{expected}, got a list of {len(inputs)}")
            return list(inputs)
        if len(expected) != 1:
            raise ValueError(f"{name}: expected a list of {len(expected)} arrays for the inputs "
                             f"{expected}, got a single {type(inputs).__name__}")
        return [inputs]

    # -- description ----------------------------------------------------------------------------
    def _summary_rows(self):
        from rnnkit.models.summary import describe_outputs

        graph = self._graph
        by_layer: dict[int, list[Node]] = {}
        for node in graph.nodes:
            by_layer.setdefault(id(node.layer), []).append(node)
        sequential_like = len(self.inputs) == 1 and len(self.outputs) == 1 and all(
            len(nodes) == 1 and len(nodes[0].input_tensors) <= 1 for nodes in by_layer.values())
        rows = []
        for layer in graph.layers:
            nodes = by_layer[id(layer)]
            shape = describe_outputs(nodes[0].outputs) if len(nodes) == 1 else "multiple"
            inbound = [f"{name}[{node_index}][{tensor_index}]" for node in nodes
                       for name, node_index, tensor_index
                       in map(graph.reference, node.input_tensors)]
            rows.append((layer, shape, None if sequential_like else inbound))
        return rows

    # -- config -------------------------------------------------------------------------------
    def get_config(self) -> dict:
        from rnnkit.models.registry import serialize_layer

        def encode(value, where: str):
            return _encode(value, self._graph, where)

        nodes = [{"layer": node.layer.name,
                  "inputs": encode(node.inputs, node.layer.name),
                  "args": encode(list(node.args), node.layer.name),
                  "kwargs": encode(node.kwargs, node.layer.name)}
                 for node in self._graph.nodes if not node.is_input]
        return {"name": self.name, "trainable": self.trainable,
                "layers": [serialize_layer(layer) for layer in self._graph.layers],
                "nodes": nodes,
                "inputs": encode(self._inputs_structure, "inputs"),
                "outputs": encode(self._outputs_structure, "outputs")}

    @classmethod
    def from_config(cls, config: dict, custom_objects: dict | None = None):
        """Rebuild the layers, then replay the recorded calls in order on new Input tensors."""
        from rnnkit.models.registry import deserialize_layer

        layers = {}
        for spec in config["layers"]:
            layer = deserialize_layer(spec, custom_objects)
            layers[layer.name] = layer
        produced: dict[tuple[str, int], list[SymbolicTensor]] = {
            (name, 0): [layer.output] for name, layer in layers.items()
            if isinstance(layer, InputLayer)}

        def lookup(name: str, node_index: int, tensor_index: int) -> SymbolicTensor:
            try:
                return produced[(name, node_index)][tensor_index]
            except (KeyError, IndexError):
                raise ValueError(f"config: a call refers to output {tensor_index} of call "
                                 f"{node_index} of layer {name!r}, which no earlier call "
                                 "made") from None

        for node in config["nodes"]:
            if node["layer"] not in layers:
                raise ValueError(f"config: a call uses layer {node['layer']!r}, which is not "
                                 f"among the model's layers {sorted(layers)}")
            name = node["layer"]
            outputs = layers[name](_decode(node["inputs"], lookup),
                                   *_decode(node["args"], lookup),
                                   **_decode(node["kwargs"], lookup))
            index = sum(1 for key in produced if key[0] == name)
            produced[(name, index)] = _nest.flatten(outputs)
        return cls(inputs=_decode(config["inputs"], lookup),
                   outputs=_decode(config["outputs"], lookup),
                   name=config.get("name"), trainable=config.get("trainable", True))


# -- helpers --------------------------------------------------------------------------------------
def _check_tensors(structure, name: str):
    if isinstance(structure, dict):
        raise TypeError(f"{name}: expected a symbolic tensor or a list of them, got a dict")
    for leaf in _nest.flatten(structure):
        if not isinstance(leaf, SymbolicTensor):
            raise TypeError(f"{name}: expected symbolic tensors (from rnnkit.layers.Input and "
                            f"layers called on them), got {type(leaf).__name__}")
    if not _nest.flatten(structure):
        raise ValueError(f"{name}: expected at least one tensor, got none")
    return list(structure) if isinstance(structure, tuple) else structure


def _check_input_shape(tensor: SymbolicTensor, value, index: int) -> None:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"inputs[{index}] ({tensor.node.layer.name}): expected an array or a "
                        f"tensor, got {type(value).__name__}")
    expected = tensor.shape
    if value.dim() != len(expected) or any(
            size is not None and size != actual
            for size, actual in zip(expected, value.shape, strict=True)):
        raise ValueError(f"inputs[{index}] ({tensor.node.layer.name}): expected shape "
                         f"{expected}, got {tuple(value.shape)}")


def _run_node(node: Node, values: dict, training: bool) -> None:
    def value_of(leaf):
        return values[id(leaf)][0] if isinstance(leaf, SymbolicTensor) else leaf

    inputs = _nest.map_structure(value_of, node.inputs)
    args = _nest.map_structure(value_of, node.args)
    kwargs = _nest.map_structure(value_of, node.kwargs)
    if "mask" in node.kwargs:
        mask = kwargs["mask"]
    else:
        mask = _nest.map_structure(
            lambda leaf: values[id(leaf)][1] if isinstance(leaf, SymbolicTensor) else None,
            node.inputs)
        if all(m is None for m in _nest.flatten(mask)):
            mask = None
        if mask is not None:
            kwargs["mask"] = mask
    kwargs.setdefault("training", training)
    outputs = _nest.flatten(node.layer(inputs, *args, **kwargs))
    if len(outputs) != len(node.output_tensors):
        raise RuntimeError(f"{node.layer.name}: returned {len(outputs)} tensors, but "
                           f"{len(node.output_tensors)} when the graph was built")
    masks = _spread_masks(node.layer.compute_mask(inputs, mask), len(outputs))
    for tensor, value, output_mask in zip(node.output_tensors, outputs, masks, strict=True):
        values[id(tensor)] = (value, output_mask)


def _spread_masks(masks, count: int) -> list:
    if isinstance(masks, (list, tuple)):
        return list(masks) if len(masks) == count else [None] * count
    return [masks] * count


def _encode(value, graph: Graph, where: str):
    if isinstance(value, SymbolicTensor):
        return {_TENSOR: list(graph.reference(value))}
    if isinstance(value, (list, tuple)):
        return [_encode(item, graph, where) for item in value]
    if isinstance(value, dict):
        return {str(key): _encode(item, graph, where) for key, item in value.items()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise ValueError(f"{where}: a call argument of type {type(value).__name__} cannot be saved "
                     "in a config; pass only symbolic tensors and plain values to layers")


def _decode(value, lookup):
    if isinstance(value, dict):
        if set(value) == {_TENSOR}:
            return lookup(*value[_TENSOR])
        return {key: _decode(item, lookup) for key, item in value.items()}
    if isinstance(value, list):
        return [_decode(item, lookup) for item in value]
    return value
