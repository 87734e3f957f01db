"""``export_onnx``: rnnkit models as portable ONNX graphs on ONNX's recurrent operators.

The graph is built node by node with ``onnx.helper`` rather than by tracing a torch equivalent
through ``torch.onnx``. Building it directly lets every recurrent layer become exactly one ONNX
``LSTM``, ``GRU`` or ``RNN`` node, with the gate reordering, bias layout,
``linear_before_reset`` and ``sequence_lens`` wiring written out where they can be read and
tested, and no tracer decides how rnnkit's Python loop or masks come out. Any runtime that
implements the standard operators (onnxruntime, TensorRT, OpenVINO...) can run the result.

What is exported:

- Keras-face ``Sequential`` and functional models (nested ones too), and single Keras-face
  layers; see ``_onnx_layers`` for the layers. Batch and time are dynamic axes.
- The ``rnnkit.nn`` drop-ins (``LSTM``, ``GRU``, ``RNN``), any ``num_layers``, bidirectional,
  in their ``batch_first`` layout: outputs ``output``, ``h_n`` (and ``c_n``).

Weights and float tensors are float32, the type runtimes implement the recurrent operators for
(onnxruntime has no float64 GRU), whatever the model's dtype.

Masks become ``sequence_lens``: ``Embedding(mask_zero=True)`` and ``Masking`` compute lengths
inside the graph, and ``lengths=True`` adds an int64 graph input ``lengths (B,)`` (the
``lengths=`` of rnnkit's layers and drop-ins). Lengths assume right-padded batches.

Not exported (``ValueError`` naming the layer and the option): LSTM projection and layer norm,
custom activations, subclassed models, attention layers, ``Lambda``.
"""

from __future__ import annotations

import os

import numpy as np
import onnx
import torch

import rnnkit.nn
from rnnkit.cells.base import CellSpec, CellWeights
from rnnkit.interop._onnx_graph import GraphBuilder, Value
from rnnkit.interop._onnx_layers import KerasFaceEmitter
from rnnkit.interop._onnx_recurrent import recurrent_op
from rnnkit.layers.base import Layer
from rnnkit.models import Model
from rnnkit.models.functional import Functional
from rnnkit.models.saving import atomic_write

_DROP_INS = {rnnkit.nn.LSTM: "lstm", rnnkit.nn.GRU: "gru", rnnkit.nn.RNN: "rnn"}


def export_onnx(model, path: str | os.PathLike, example_input, *, lengths: bool = False,
                input_names: list[str] | None = None,
                output_names: list[str] | None = None) -> onnx.ModelProto:
    """Export ``model`` to an ONNX file at ``path`` and return the ``ModelProto``.

    Args:
        model: a Keras-face ``Sequential``, functional ``Model`` or layer, or an ``rnnkit.nn``
            ``LSTM``/``GRU``/``RNN``.
        path: where to write the ``.onnx`` file (atomically).
        example_input: an array or tensor (a list of them for several inputs) shaped like real
            input; it fixes each input's rank, dtype and feature sizes, and builds a lazily
            built model. Batch and time stay dynamic.
        lengths: add an int64 input ``lengths (B,)``, the number of real (leading) steps of
            each sequence, fed to the recurrent operators as ``sequence_lens``.
        input_names, output_names: graph names (defaults: the Input layers' names or
            ``"input"``; ``"output"``/``"output_<i>"``, or ``output, h_n, c_n`` for drop-ins).

    Returns:
        The checked ``onnx.ModelProto`` (opset 17), also written to ``path``.
    """
    examples = _examples(example_input)
    if type(model) in _DROP_INS:
        builder = _export_drop_in(model, examples, lengths, input_names, output_names)
    elif isinstance(model, Layer):
        builder = _export_keras_face(model, examples, lengths, input_names, output_names)
    else:
        raise TypeError(f"model: expected an rnnkit Keras-face model or layer, or an rnnkit.nn "
                        f"LSTM/GRU/RNN, got {type(model).__name__}")
    proto = builder.model(getattr(model, "name", type(model).__name__.lower()))
    data = proto.SerializeToString()
    atomic_write(path, lambda stream: stream.write(data), overwrite=True)
    return proto


def _examples(example_input) -> list[np.ndarray]:
    items = list(example_input) if isinstance(example_input, (list, tuple)) else [example_input]
    arrays = []
    for index, item in enumerate(items):
        if isinstance(item, torch.Tensor):
            item = item.detach().cpu().numpy()
        array = np.asarray(item)
        if array.dtype == object or array.ndim < 2:
            raise ValueError(f"example_input[{index}]: expected a numeric array with a batch "
                             f"axis and at least one more, got shape {array.shape}")
        arrays.append(array)
    return arrays


def _names(given: list[str] | None, defaults: list[str], what: str) -> list[str]:
    if given is None:
        return defaults
    if len(given) != len(defaults):
        raise ValueError(f"{what}: expected {len(defaults)} names, got {len(given)} ({given})")
    return list(given)


def _input_shape(example: np.ndarray) -> list:
    """Batch and time dynamic; feature sizes as in the example."""
    shape: list = ["batch", *example.shape[1:]]
    sequence = example.ndim >= 3 or not np.issubdtype(example.dtype, np.floating)
    if sequence:
        shape[1] = "time"
    return shape


def _add_lengths(builder: GraphBuilder, hint: str = "lengths") -> str:
    builder.add_input(hint, np.int64, ["batch"])
    return builder.op("Cast", [hint], hint, to=6)  # sequence_lens is int32


# -- Keras face -----------------------------------------------------------------------------------
def _export_keras_face(model: Layer, examples, lengths: bool, input_names, output_names):
    with torch.no_grad():  # builds a lazily built model, and gives the outputs' ranks
        reference = _flatten(model(examples[0] if len(examples) == 1 else examples))
    expected = len(model.inputs) if isinstance(model, Functional) else 1
    if len(examples) != expected:
        raise ValueError(f"example_input: {model.name} takes {expected} input(s), got "
                         f"{len(examples)}")
    if lengths and expected != 1:
        raise ValueError("lengths: a lengths input is supported for single-input models only")
    builder = GraphBuilder()
    defaults = ([tensor.node.layer.name for tensor in model.inputs]
                if isinstance(model, Functional) else ["input"])
    values = []
    for name, example in zip(_names(input_names, defaults, "input_names"), examples):
        dtype = builder.float_dtype if np.issubdtype(example.dtype, np.floating) else example.dtype
        builder.add_input(name, dtype, _input_shape(example))
        values.append(Value(name))
    if lengths:
        values[0].lengths = _add_lengths(builder)
    emitter = KerasFaceEmitter(builder)
    if isinstance(model, Model):
        outputs = emitter.model(model, values)
    else:
        result = emitter.layer(model, values[0], {})
        outputs = result if isinstance(result, list) else [result]
    defaults = ["output"] if len(outputs) == 1 else [f"output_{i}" for i in range(len(outputs))]
    names = _names(output_names, defaults, "output_names")
    for value, name, tensor in zip(outputs, names, reference):
        builder.add_output(value.name, name, builder.float_dtype, tensor.dim())
    return builder


def _flatten(value) -> list:
    if isinstance(value, (list, tuple)):
        return [leaf for item in value for leaf in _flatten(item)]
    return [value]


# -- rnnkit.nn drop-ins ---------------------------------------------------------------------------
def _drop_in_cell(module, family: str, layer: int, direction: int):
    """``(spec, weights)`` of one layer/direction, read from the module's torch.nn names."""
    suffix = f"_l{layer}" + ("_reverse" if direction else "")
    directions = 2 if module.bidirectional else 1
    width = module.proj_size or module.hidden_size
    spec = CellSpec(family=family,
                    input_size=module.input_size if layer == 0 else directions * width,
                    hidden_size=module.hidden_size,
                    activation=getattr(module, "nonlinearity", "tanh"),
                    proj_size=module.proj_size, peephole=module.peephole,
                    layer_norm=module.layer_norm, reset_after=True)
    fields = {field: getattr(module, f"{field}{suffix}", None) for field in CellWeights._fields}
    return spec, CellWeights(**fields)


def _export_drop_in(module, examples, lengths: bool, input_names, output_names):
    family = _DROP_INS[type(module)]
    if len(examples) != 1 or examples[0].ndim != 3:
        raise ValueError("example_input: expected one batched 3-D input for an rnnkit.nn "
                         f"module, got shapes {[e.shape for e in examples]}")
    builder = GraphBuilder()
    (input_name,) = _names(input_names, ["input"], "input_names")
    layout = ["batch", "time"] if module.batch_first else ["time", "batch"]
    builder.add_input(input_name, builder.float_dtype, [*layout, module.input_size])
    sequence_lens = _add_lengths(builder) if lengths else None
    x = builder.transpose(input_name, [1, 0, 2], "input") if module.batch_first else input_name
    directions = 2 if module.bidirectional else 1
    finals: list[list[str]] = [[], []]
    for layer in range(module.num_layers):
        cells = [_drop_in_cell(module, family, layer, d) for d in range(directions)]
        ops = recurrent_op(builder, cells, x, f"{family}_l{layer}", lengths=sequence_lens)
        both = builder.transpose(ops.sequence, [0, 2, 1, 3], f"layer{layer}")  # (T, B, D, H)
        x = builder.reshape(both, [0, 0, -1], f"layer{layer}")  # (T, B, D*H)
        finals[0].append(ops.last_h)
        if ops.last_c:
            finals[1].append(ops.last_c)
    output = builder.transpose(x, [1, 0, 2], "output") if module.batch_first else x
    results = [output] + [builder.op("Concat", states, "final", axis=0) if len(states) > 1
                          else states[0] for states in finals if states]
    defaults = ["output", "h_n", "c_n"][:len(results)]
    for value, name in zip(results, _names(output_names, defaults, "output_names")):
        builder.add_output(value, name, builder.float_dtype, 3)
    return builder
