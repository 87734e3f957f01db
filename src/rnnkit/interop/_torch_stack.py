"""Reading a Keras-face recurrent layer, ``Bidirectional`` or ``Sequential`` as torch.nn's flags.

:func:`describe_stack` checks that the composition is one torch.nn module can express (same cell
kind and size on every layer, ``concat`` merging, dropout only between layers, torch's
activations) and returns the flags and the cell of each ``(layer, direction)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rnnkit import activations
from rnnkit import layers as keras_layers
from rnnkit.cells.base import BuiltinCell
from rnnkit.models import Sequential

_KERAS = {keras_layers.LSTM: "lstm", keras_layers.GRU: "gru", keras_layers.SimpleRNN: "rnn"}


@dataclass
class TorchStack:
    family: str
    options: dict  # torch.nn constructor arguments, batch_first excepted
    factory: dict  # dtype and device
    training: bool
    cells: dict[tuple[int, int], BuiltinCell] = field(default_factory=dict)


def describe_stack(obj) -> TorchStack:
    """torch.nn's description of ``obj``; raises ``ValueError`` naming what torch.nn lacks."""
    items = list(obj.layers) if isinstance(obj, Sequential) else [obj]
    recurrent, rates = _split_dropout(items)
    layers = [_directions(item) for item in recurrent]
    first = layers[0][0]
    family = _KERAS[type(first)]
    for directions in layers:
        for layer in directions:
            _check_layer(layer, first, family)
    cell = first.cell
    if not cell.built:
        raise ValueError(f"layer_or_module: {first.name!r} is not built; call it once or give "
                         "input_shape")
    options = {"input_size": cell.input_size, "hidden_size": cell.units,
               "num_layers": len(layers), "bias": cell.use_bias,
               "dropout": rates[0] if rates else 0.0, "bidirectional": len(layers[0]) == 2}
    if family == "lstm":
        options["proj_size"] = cell.proj_size
    if family == "rnn":
        options["nonlinearity"] = activations.name_of(cell.activation)
    weight = cell.weight_ih
    stack = TorchStack(family, options, {"dtype": weight.dtype, "device": weight.device},
                       obj.training)
    for index, directions in enumerate(layers):
        if len(directions) != len(layers[0]):
            raise ValueError("layer_or_module: every layer must be bidirectional, or none; "
                             f"layer {index} differs from layer 0")
        for direction, layer in enumerate(directions):
            stack.cells[(index, direction)] = layer.cell
    return stack


def _split_dropout(items: list) -> tuple[list, list[float]]:
    """The recurrent layers, and the rates of the Dropout layers between them."""
    recurrent, rates = [], []
    for index, item in enumerate(items):
        if isinstance(item, keras_layers.Dropout):
            between = 0 < index < len(items) - 1 and not isinstance(items[index - 1],
                                                                    keras_layers.Dropout)
            if not between or item.noise_shape is not None:
                raise ValueError(f"layer_or_module: Dropout {item.name!r} must sit between two "
                                 "recurrent layers without noise_shape, as torch.nn's dropout")
            rates.append(item.rate)
        else:
            recurrent.append(item)
    if not recurrent:
        raise ValueError("layer_or_module: expected at least one recurrent layer, got none")
    if len(set(rates)) > 1:
        raise ValueError(f"layer_or_module: torch.nn uses one dropout rate between layers, got "
                         f"{rates}")
    return recurrent, rates


def _directions(item) -> list:
    """``[forward]`` or ``[forward, backward]`` for one recurrent layer of the stack."""
    if isinstance(item, keras_layers.Bidirectional):
        if item.merge_mode != "concat":
            raise ValueError(f"layer_or_module: {item.name!r} merges with {item.merge_mode!r}; "
                             "torch.nn concatenates the two directions (merge_mode='concat')")
        forward, backward = item.forward_layer, item.backward_layer
        if forward.go_backwards:
            raise ValueError(f"layer_or_module: {item.name!r} has a forward layer with "
                             "go_backwards=True, which torch.nn cannot express")
        directions = [forward, backward]
    elif type(item) in _KERAS:
        if item.go_backwards:
            raise ValueError(f"layer_or_module: {item.name!r} has go_backwards=True; torch.nn "
                             "reads a single direction forwards")
        directions = [item]
    else:
        raise ValueError(f"layer_or_module: expected LSTM, GRU or SimpleRNN layers, "
                         f"Bidirectional or Dropout, got {type(item).__name__}")
    return directions


def _check_layer(layer, first, family: str) -> None:
    cell, reference = layer.cell, first.cell
    if type(layer) is not type(first):
        raise ValueError(f"layer_or_module: {layer.name!r} is a {type(layer).__name__}, but the "
                         f"stack starts with a {type(first).__name__}; torch.nn uses one kind")
    for option in ("units", "use_bias", "proj_size", "activation"):
        if getattr(cell, option, None) != getattr(reference, option, None):
            raise ValueError(f"layer_or_module: {layer.name!r} has {option}="
                             f"{getattr(cell, option)!r}, layer {first.name!r} "
                             f"{getattr(reference, option)!r}; torch.nn uses one for all")
    for option in ("dropout", "recurrent_dropout"):
        if getattr(cell, option):
            raise ValueError(f"layer_or_module: {layer.name!r} has {option}="
                             f"{getattr(cell, option)}, which torch.nn's {family.upper()} lacks")
    for option in ("peephole", "layer_norm"):
        if getattr(cell, option, False):
            raise ValueError(f"layer_or_module: {layer.name!r} uses {option}=True, which "
                             "torch.nn lacks (rnnkit.nn.LSTM has it)")
    if family == "gru" and not cell.reset_after:
        raise ValueError(f"layer_or_module: {layer.name!r} has reset_after=False; torch.nn.GRU "
                         "applies the reset gate after the recurrent product (reset_after=True)")
    _check_activations(layer, family)


def _check_activations(layer, family: str) -> None:
    cell = layer.cell
    activation = activations.name_of(cell.activation)
    allowed = ("tanh", "relu") if family == "rnn" else ("tanh",)
    if activation not in allowed:
        raise ValueError(f"layer_or_module: {layer.name!r} has activation={activation!r}; "
                         f"torch.nn supports {allowed}")
    if family != "rnn" and activations.name_of(cell.recurrent_activation) != "sigmoid":
        raise ValueError(f"layer_or_module: {layer.name!r} has recurrent_activation="
                         f"{activations.name_of(cell.recurrent_activation)!r}; torch.nn uses "
                         "'sigmoid'")
