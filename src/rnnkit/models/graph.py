"""The graph behind a functional model: its nodes in run order and its layers in Keras's order.

Keras orders a functional model's layers — and so its ``get_weights()`` list — by depth: the
number of calls between a layer and the outputs, deepest (nearest the inputs) first, with ties
broken by the order in which a depth-first walk back from the outputs first meets each layer.
:func:`map_graph` reproduces that order so that ``set_weights(keras_model.get_weights())`` lines
up, and checks that every output can be computed from the declared inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

from rnnkit.layers.base import Layer
from rnnkit.models.symbolic import Node, SymbolicTensor


@dataclass
class Graph:
    """``nodes`` in an order that runs (inputs first); ``layers`` in Keras's order."""

    nodes: list[Node]
    layers: list[Layer]
    node_index: dict[int, int]  # id(node) -> index of the node among its layer's nodes

    def reference(self, tensor: SymbolicTensor) -> tuple[str, int, int]:
        """``(layer name, node index, tensor index)``: Keras's "keras_history" of a tensor."""
        return tensor.node.layer.name, self.node_index[id(tensor.node)], tensor.index


def map_graph(inputs: list[SymbolicTensor], outputs: list[SymbolicTensor]) -> Graph:
    nodes, first_seen = _walk_back(outputs)
    _check_inputs(inputs, nodes)
    layer_depth = _layer_depths(nodes)
    for tensor in inputs:  # an input no output depends on still belongs to the model
        layer = tensor.node.layer
        if id(layer) not in layer_depth:
            layer_depth[id(layer)] = 0
            first_seen[id(layer)] = (-1, layer)
            nodes.insert(0, tensor.node)
    layers = [layer for _, layer in sorted(first_seen.values(), key=lambda item: item[0])]
    layers.sort(key=lambda layer: -layer_depth[id(layer)])  # stable: ties keep walk order
    _check_unique_names(layers)
    counts: dict[int, int] = {}
    node_index = {}
    for node in nodes:
        node_index[id(node)] = counts.get(id(node.layer), 0)
        counts[id(node.layer)] = node_index[id(node)] + 1
    return Graph(nodes, layers, node_index)


def _walk_back(outputs: list[SymbolicTensor]):
    """Depth-first walk from the outputs: nodes in post-order (a valid run order) and, for each
    layer, the position at which the walk first met it."""
    finished: set[int] = set()
    in_progress: set[int] = set()
    ordered: list[Node] = []
    first_seen: dict[int, tuple[int, Layer]] = {}

    def visit(node: Node) -> None:
        if id(node) in finished:
            return
        if id(node) in in_progress:
            raise ValueError(f"outputs: the graph has a cycle through layer {node.layer.name!r}")
        first_seen.setdefault(id(node.layer), (len(first_seen), node.layer))
        in_progress.add(id(node))
        for tensor in node.input_tensors:
            visit(tensor.node)
        in_progress.discard(id(node))
        finished.add(id(node))
        ordered.append(node)

    for tensor in outputs:
        visit(tensor.node)
    return ordered, first_seen


def _layer_depths(nodes: list[Node]) -> dict[int, int]:
    """Depth of each layer: the largest number of calls between one of its nodes and an output."""
    node_depth: dict[int, int] = {}
    layer_depth: dict[int, int] = {}
    for node in reversed(nodes):
        depth = max(node_depth.setdefault(id(node), 0), layer_depth.get(id(node.layer), 0))
        node_depth[id(node)] = layer_depth[id(node.layer)] = depth
        for tensor in node.input_tensors:
            parent = id(tensor.node)
            node_depth[parent] = max(depth + 1, node_depth.get(parent, 0))
    return layer_depth


def _check_inputs(inputs: list[SymbolicTensor], nodes: list[Node]) -> None:
    declared = {id(tensor.node) for tensor in inputs}
    for node in nodes:
        if node.is_input and id(node) not in declared:
            raise ValueError(f"inputs: the outputs depend on Input {node.layer.name!r}, which is "
                             "not among the model's inputs (graph disconnected)")


def _check_unique_names(layers: list[Layer]) -> None:
    seen: set[str] = set()
    for layer in layers:
        if layer.name in seen:
            raise ValueError(f"layers: the name {layer.name!r} is used by more than one layer in "
                             "the model; names must be unique")
        seen.add(layer.name)
