"""torch.nn's ``LSTM``, ``GRU`` and ``RNN`` to rnnkit's two faces, and back.

Every face stores a cell's tensors in PyTorch's layout (``weight_ih (G*H, I)``, ``weight_hh``,
``bias_ih``, ``bias_hh``, ``weight_hr``), so converting copies tensors and never reorders them:
weights survive a round trip bit for bit.

===========================================  ==============================================
torch.nn / rnnkit.nn (flags)                 Keras face (composition)
===========================================  ==============================================
``LSTM(I, H)``                               ``LSTM(H, return_sequences=True)``
``GRU(I, H)``                                ``GRU(H, reset_after=True, ...)``
``RNN(I, H, nonlinearity="relu")``           ``SimpleRNN(H, activation="relu", ...)``
``bidirectional=True``                       ``Bidirectional(fwd, backward_layer=bwd)``
``num_layers=L, dropout=p``                  ``Sequential([layer_0, Dropout(p), ..., layer_L-1])``
``proj_size=P`` (LSTM)                       ``LSTM(H, proj_size=P)`` (an rnnkit extension)
``bias_hh`` of LSTM and RNN                  the cell's ``recurrent_bias`` (an rnnkit extension)
===========================================  ==============================================

Keras's LSTM and SimpleRNN have one bias where torch has two. By default the Keras-face layer
keeps both (rnnkit's ``recurrent_bias``), so its outputs are torch's exactly; such a layer cannot
be saved to ``.keras``. ``fold_biases=True`` sums them into Keras's single bias instead: the layer
is then plain Keras, and its outputs differ from torch's by float rounding only.

The Keras face is always batch-first: the layers take ``(B, T, I)`` whatever ``batch_first``
the torch module had, and return the output sequence ``(B, T, D*H_out)``.
"""

from __future__ import annotations

import torch
from torch import nn

import rnnkit.nn
from rnnkit import layers as keras_layers
from rnnkit.cells.base import WEIGHT_NAMES
from rnnkit.interop._torch_stack import describe_stack
from rnnkit.models import Sequential

_TORCH = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}
_RNNKIT_NN = {"lstm": rnnkit.nn.LSTM, "gru": rnnkit.nn.GRU, "rnn": rnnkit.nn.RNN}
_KERAS = {"lstm": keras_layers.LSTM, "gru": keras_layers.GRU, "rnn": keras_layers.SimpleRNN}
FACES = ("nn", "keras")


def _family(module) -> str | None:
    for family, classes in (("lstm", (nn.LSTM, rnnkit.nn.LSTM)), ("gru", (nn.GRU, rnnkit.nn.GRU)),
                            ("rnn", (nn.RNN, rnnkit.nn.RNN))):
        if isinstance(module, classes):
            return family
    return None


def _options(module, family: str) -> dict:
    """The constructor arguments torch.nn and rnnkit.nn share."""
    options = {"input_size": module.input_size, "hidden_size": module.hidden_size,
               "num_layers": module.num_layers, "bias": module.bias,
               "batch_first": module.batch_first, "dropout": float(module.dropout),
               "bidirectional": module.bidirectional}
    if family == "lstm":
        options["proj_size"] = module.proj_size
    if family == "rnn":
        options["nonlinearity"] = module.nonlinearity
    return options


def _factory(module) -> dict:
    weight = module.weight_ih_l0
    return {"dtype": weight.dtype, "device": weight.device}


def _suffix(layer: int, direction: int) -> str:
    return f"_l{layer}" + ("_reverse" if direction else "")


# -- torch.nn / rnnkit.nn -> rnnkit -----------------------------------------------------------
def from_torch(module: nn.Module, face: str = "nn", *, fold_biases: bool = False):
    """Convert a ``torch.nn.LSTM``/``GRU``/``RNN`` to rnnkit.

    Args:
        module: a torch.nn recurrent module; with ``face="keras"`` an ``rnnkit.nn`` drop-in is
            accepted too.
        face: ``"nn"`` for the ``rnnkit.nn`` drop-in (same arguments and ``state_dict``) or
            ``"keras"`` for Keras-face layers (see the module docstring for the mapping).
        fold_biases: Keras face only: sum LSTM's and RNN's two biases into Keras's one.

    Returns:
        An ``rnnkit.nn`` module, or a Keras-face layer (one layer), ``Bidirectional`` or
        ``Sequential`` (``num_layers > 1``), built for inputs ``(B, T, input_size)``.

    Example:
        >>> layer = from_torch(torch.nn.LSTM(3, 8, bidirectional=True), face="keras")
        >>> layer(torch.zeros(2, 5, 3)).shape
        torch.Size([2, 5, 16])
    """
    if face not in FACES:
        raise ValueError(f"face: expected one of {FACES}, got {face!r}")
    family = _family(module)
    if family is None:
        raise TypeError(f"module: expected torch.nn.LSTM, GRU or RNN (or an rnnkit.nn drop-in), "
                        f"got {type(module).__name__}")
    if face == "nn":
        if type(module) is not _TORCH[family]:
            raise TypeError(f"module: face='nn' converts torch.nn modules; got "
                            f"{type(module).__module__}.{type(module).__name__}")
        converted = _RNNKIT_NN[family](**_options(module, family), **_factory(module))
        converted.load_state_dict(module.state_dict())
        return converted.train(module.training)
    return _to_keras_face(module, family, fold_biases)


def _to_keras_face(module, family: str, fold_biases: bool):
    stack = []
    directions = 2 if module.bidirectional else 1
    for layer in range(module.num_layers):
        if layer and module.dropout > 0:
            stack.append(keras_layers.Dropout(module.dropout, name=f"dropout_l{layer}"))
        cells = [_keras_layer(module, family, layer, direction, fold_biases)
                 for direction in range(directions)]
        if directions == 1:
            stack.append(cells[0])
        else:
            stack.append(keras_layers.Bidirectional(cells[0], backward_layer=cells[1],
                                                    name=f"bidirectional_l{layer}"))
    if len(stack) == 1:
        return stack[0]
    model = Sequential(stack, name=f"{family}_stack")
    model.build((None, None, module.input_size))
    return model


def _keras_layer(module, family: str, layer: int, direction: int, fold_biases: bool):
    """Layer ``layer``, direction ``direction`` of ``module`` as a built Keras-face layer."""
    suffix = _suffix(layer, direction)
    options = {"return_sequences": True, "go_backwards": bool(direction), "use_bias": module.bias,
               "name": f"{family}{suffix}", "dtype": module.weight_ih_l0.dtype}
    if family == "rnn":
        options["activation"] = module.nonlinearity
    if family == "gru":
        options["reset_after"] = True
    if family == "lstm":
        options.update(proj_size=module.proj_size, peephole=getattr(module, "peephole", False),
                       layer_norm=getattr(module, "layer_norm", False))
    if family != "gru" and module.bias and not fold_biases:
        options["recurrent_bias"] = True  # keep torch's bias_hh (an rnnkit extension)
    converted = _KERAS[family](module.hidden_size, **options)
    cell = converted.cell
    input_size = getattr(module, f"weight_ih{suffix}").shape[1]
    converted.build((None, None, input_size))
    converted.built = True
    with torch.no_grad():
        for field in WEIGHT_NAMES:
            source = getattr(module, f"{field}{suffix}", None)
            if source is None:
                continue
            target = getattr(cell, field, None)
            if target is None and field == "bias_hh":  # fold_biases: Keras's single bias
                cell.bias_ih.add_(source)
                continue
            target.copy_(source)
    return converted


# -- rnnkit -> torch.nn ---------------------------------------------------------------------------
def to_torch(layer_or_module, *, batch_first: bool | None = None) -> nn.Module:
    """Convert an rnnkit recurrent layer, stack or drop-in to ``torch.nn.LSTM``/``GRU``/``RNN``.

    Args:
        layer_or_module: an ``rnnkit.nn`` drop-in; or a built Keras-face ``LSTM``/``GRU``/
            ``SimpleRNN``, a ``Bidirectional`` of one (``merge_mode="concat"``), or a
            ``Sequential`` of those, optionally with ``Dropout`` between them (one rate).
        batch_first: the torch module's layout; defaults to the drop-in's, and to ``True``
            for the Keras face (which is batch-first).

    Raises:
        ValueError: the layer uses something torch.nn lacks (peepholes, layer norm,
            ``reset_after=False``, other activations, input or recurrent dropout, a reversed
            single layer, mixed sizes or kinds of layers); the message names it.
    """
    family = _family(layer_or_module)
    if family is not None:
        if type(layer_or_module) is not _RNNKIT_NN[family]:
            raise TypeError(f"layer_or_module: {type(layer_or_module).__name__} is already a "
                            "torch.nn module")
        return _drop_in_to_torch(layer_or_module, family, batch_first)
    stack = describe_stack(layer_or_module)
    options = stack.options
    options["batch_first"] = True if batch_first is None else bool(batch_first)
    converted = _TORCH[stack.family](**options, **stack.factory)
    with torch.no_grad():
        for (layer, direction), cell in stack.cells.items():
            suffix = _suffix(layer, direction)
            for field in ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr"):
                target = getattr(converted, f"{field}{suffix}", None)
                if target is not None:
                    source = getattr(cell, field, None)
                    target.copy_(source if source is not None else torch.zeros_like(target))
    return converted.train(stack.training)


def _drop_in_to_torch(module, family: str, batch_first: bool | None) -> nn.Module:
    for option in ("peephole", "layer_norm"):
        if getattr(module, option, False):
            raise ValueError(f"layer_or_module: {option}=True has no torch.nn counterpart")
    options = _options(module, family)
    if batch_first is not None:
        options["batch_first"] = bool(batch_first)
    converted = _TORCH[family](**options, **_factory(module))
    converted.load_state_dict(module.state_dict())
    return converted.train(module.training)
