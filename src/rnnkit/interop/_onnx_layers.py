"""Keras-face layers and models as ONNX nodes.

:class:`KerasFaceEmitter` walks a Sequential or functional model (nested ones included) and
writes each layer with ONNX operators; tensors stay batch-first, ``(B, T, F)``, and the recurrent
layers transpose to and from ONNX's time-major layout around their operator.

Masks travel as lengths. ``Embedding(mask_zero=True)`` and ``Masking`` count each sequence's
unmasked steps, and a graph input ``lengths`` can stand for a model's input mask; the recurrent
operators receive them as ``sequence_lens``. Lengths describe right-padded batches (real steps
first), the layout torch's packed sequences and ``pad_sequences(padding="post")`` give: a
left-padded batch or a mask with holes is not represented.
"""

from __future__ import annotations

import numpy as np

from rnnkit import activations
from rnnkit.interop._onnx_graph import GraphBuilder, Value, activation, onnx_type
from rnnkit.interop._onnx_recurrent import recurrent_op
from rnnkit.layers import (
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
    Subtract,
    TimeDistributed,
)
from rnnkit.layers.recurrent import _BuiltinRNN
from rnnkit.models import Sequential
from rnnkit.models.functional import Functional
from rnnkit.models.graph import map_graph
from rnnkit.models.symbolic import SymbolicTensor

_VARIADIC = {Add: "Sum", Maximum: "Max", Minimum: "Min", Average: "Mean"}
_PER_STEP = (Dense, Activation, Dropout)  # layers TimeDistributed can apply to (B, T, ...) as is
_INT64_MIN = np.iinfo(np.int64).min


class KerasFaceEmitter:
    """Writes Keras-face layers into ``builder``; each method returns the output Value(s)."""

    def __init__(self, builder: GraphBuilder) -> None:
        self.builder = builder

    # -- models -------------------------------------------------------------------------------
    def model(self, model, inputs: list[Value]) -> list[Value]:
        """The flattened outputs of ``model`` applied to ``inputs``."""
        if type(model) is Sequential:
            if len(inputs) != 1:
                raise ValueError(f"inputs: Sequential {model.name!r} takes one input, got "
                                 f"{len(inputs)}")
            value = inputs[0]
            for layer in model.layers:
                value = self.layer(layer, value, {})
                if isinstance(value, list):
                    raise ValueError(f"{layer.name}: a layer inside a Sequential must return "
                                     "one tensor")
            return [value]
        if isinstance(model, Functional):
            return self._functional(model, inputs)
        raise ValueError(f"model: export_onnx handles Sequential and functional models, got a "
                         f"subclassed {type(model).__name__} (its call() is Python code)")

    def _functional(self, model: Functional, inputs: list[Value]) -> list[Value]:
        values = {id(tensor): value for tensor, value in zip(model.inputs, inputs)}

        def resolve(leaf):
            if isinstance(leaf, SymbolicTensor):
                return values[id(leaf)]
            if isinstance(leaf, (list, tuple)):
                return [resolve(item) for item in leaf]
            if isinstance(leaf, dict):
                return {key: resolve(item) for key, item in leaf.items()}
            return leaf

        for node in map_graph(model.inputs, model.outputs).nodes:
            if node.is_input:
                continue
            if node.args:
                raise ValueError(f"{node.layer.name}: extra positional call arguments cannot "
                                 "be exported")
            result = self.layer(node.layer, resolve(node.inputs), resolve(node.kwargs))
            flat = result if isinstance(result, list) else [result]
            for tensor, value in zip(node.output_tensors, flat):
                values[id(tensor)] = value
        return [values[id(tensor)] for tensor in model.outputs]

    # -- layers -------------------------------------------------------------------------------
    def layer(self, layer, inputs, kwargs: dict):
        kwargs = {key: value for key, value in kwargs.items() if key != "training"}
        initial_state = kwargs.pop("initial_state", None)
        if kwargs:
            raise ValueError(f"{layer.name}: call arguments {sorted(kwargs)} cannot be exported "
                             "(masks are taken from Embedding, Masking or the lengths input)")
        if initial_state is not None and not isinstance(layer, (_BuiltinRNN, Bidirectional)):
            raise ValueError(f"{layer.name}: initial_state is only for recurrent layers")
        if isinstance(layer, (Sequential, Functional)):
            outputs = self.model(layer, inputs if isinstance(inputs, list) else [inputs])
            return outputs[0] if len(outputs) == 1 else outputs
        if isinstance(layer, _BuiltinRNN):
            return self._recurrent(layer, inputs, initial_state)
        if isinstance(layer, Bidirectional):
            return self._bidirectional(layer, inputs, initial_state)
        if isinstance(layer, (Concatenate, Subtract, Multiply, *_VARIADIC)):
            return self._merge(layer, inputs)
        if isinstance(layer, TimeDistributed):
            if not isinstance(layer.layer, _PER_STEP):
                raise ValueError(f"{layer.name}: TimeDistributed is exported for "
                                 f"{[cls.__name__ for cls in _PER_STEP]}, got "
                                 f"{type(layer.layer).__name__}")
            return self.layer(layer.layer, inputs, {})
        return self._simple(layer, inputs)

    def _simple(self, layer, x: Value) -> Value:
        builder, hint = self.builder, layer.name
        if isinstance(layer, Dense):
            out = builder.op("MatMul", [x.name, builder.constant(_array(layer.kernel),
                                                                 f"{hint}/kernel")], hint)
            if layer.bias is not None:
                out = builder.op("Add", [out, builder.constant(_array(layer.bias),
                                                               f"{hint}/bias")], hint)
            return Value(activation(builder, _activation_name(layer), out, hint), x.lengths)
        if isinstance(layer, Activation):
            return Value(activation(builder, _activation_name(layer), x.name, hint), x.lengths)
        if isinstance(layer, Dropout):  # inference: the identity
            return x
        if isinstance(layer, Embedding):
            return self._embedding(layer, x)
        if isinstance(layer, Masking):
            return self._masking(layer, x)
        if isinstance(layer, Flatten):
            return Value(builder.op("Flatten", [x.name], hint, axis=1))
        if isinstance(layer, Reshape):
            return Value(builder.reshape(x.name, [0, *layer.target_shape], hint))
        if isinstance(layer, RepeatVector):
            expanded = builder.unsqueeze(x.name, [1], hint)  # (B, 1, F)
            return Value(builder.op("Tile", [expanded, builder.ints([1, layer.n, 1],
                                                                    f"{hint}/repeats")], hint))
        raise ValueError(f"{layer.name}: export_onnx cannot write a {type(layer).__name__} "
                         "layer")

    def _embedding(self, layer: Embedding, ids: Value) -> Value:
        builder, hint = self.builder, layer.name
        indices = builder.op("Cast", [ids.name], hint, to=7)  # int64
        table = builder.constant(_array(layer.embeddings), f"{hint}/embeddings")
        out = builder.op("Gather", [table, indices], hint, axis=0)  # (B, T, E)
        lengths = None
        if layer.mask_zero:
            zero = builder.constant(0, f"{hint}/zero", np.int64)
            real = builder.op("Not", [builder.op("Equal", [indices, zero], hint)], hint)
            lengths = _count_steps(builder, real, hint)
        return Value(out, lengths)

    def _masking(self, layer: Masking, x: Value) -> Value:
        builder, hint = self.builder, layer.name
        value = builder.constant(layer.mask_value, f"{hint}/mask_value")
        differs = builder.op("Not", [builder.op("Equal", [x.name, value], hint)], hint)
        as_float = builder.op("Cast", [differs], hint, to=_float_code(builder))
        keep = builder.op("ReduceMax", [as_float], hint, axes=[-1], keepdims=1)  # (B, T, 1)
        out = builder.op("Mul", [x.name, keep], hint)
        return Value(out, _count_steps(builder, builder.squeeze(keep, [2], hint), hint))

    def _merge(self, layer, inputs: list[Value]) -> Value:
        builder, hint = self.builder, layer.name
        names = [value.name for value in inputs]
        lengths = [value.lengths for value in inputs]
        if isinstance(layer, Concatenate):
            out = builder.op("Concat", names, hint, axis=layer.axis)
            if any(lengths) and layer.axis != -1:
                raise ValueError(f"{hint}: masked inputs can be exported when concatenated on "
                                 f"the last axis only, got axis={layer.axis}")
            merged = None if not all(lengths) else _max_lengths(builder, lengths, hint)
            return Value(out, merged)
        if isinstance(layer, Subtract):
            out = builder.op("Sub", names, hint)
        elif isinstance(layer, Multiply):
            out = names[0]
            for name in names[1:]:
                out = builder.op("Mul", [out, name], hint)
        else:
            out = builder.op(_VARIADIC[type(layer)], names, hint)
        merged = None if not all(lengths) else _max_lengths(builder, lengths, hint)
        return Value(out, merged)

    # -- recurrent layers -------------------------------------------------------------------------
    def _recurrent(self, layer, x: Value, initial_state):
        builder, hint = self.builder, layer.name
        if layer.go_backwards and layer.return_sequences and x.lengths:
            raise ValueError(f"{hint}: a masked go_backwards layer returning sequences gives a "
                             "left-padded mask, which ONNX's sequence_lens cannot describe")
        initial = None
        if initial_state is not None:
            initial = [builder.unsqueeze(state.name, [0], hint) for state in initial_state]
        cell = layer.cell
        ops = recurrent_op(builder, [(cell.spec, cell.weights())], _time_major(builder, x, hint),
                           hint, reverse=layer.go_backwards, lengths=x.lengths,
                           initial_state=initial)
        if layer.return_sequences:
            sequence = builder.transpose(builder.squeeze(ops.sequence, [1], hint), [1, 0, 2],
                                         hint)  # (B, T, H)
            if layer.go_backwards:  # Keras returns a backward layer's outputs in reading order
                sequence = _reverse_time(builder, sequence, hint)
            elif x.lengths and not layer.zero_output_for_mask:
                sequence = _repeat_last_output(builder, sequence, x.lengths, hint)
            output = Value(sequence, None if layer.go_backwards else x.lengths)
        else:
            output = Value(builder.squeeze(ops.last_h, [0], hint))
        if not layer.return_state:
            return output
        states = [ops.last_h] + ([ops.last_c] if ops.last_c else [])
        return [output] + [Value(builder.squeeze(state, [0], hint)) for state in states]

    def _bidirectional(self, layer: Bidirectional, x: Value, initial_state):
        builder, hint = self.builder, layer.name
        forward, backward = layer.forward_layer, layer.backward_layer
        if forward.go_backwards or not isinstance(forward, _BuiltinRNN) or not isinstance(
                backward, _BuiltinRNN):
            raise ValueError(f"{hint}: export needs a forward LSTM/GRU/SimpleRNN and its "
                             "go_backwards twin")
        initial = None
        if initial_state is not None:
            half = len(initial_state) // 2
            initial = [builder.op("Concat", [builder.unsqueeze(state.name, [0], hint)
                                             for state in (front, back)], hint, axis=0)
                       for front, back in zip(initial_state[:half], initial_state[half:])]
        cells = [(sub.cell.spec, sub.cell.weights()) for sub in (forward, backward)]
        ops = recurrent_op(builder, cells, _time_major(builder, x, hint), hint,
                           lengths=x.lengths, initial_state=initial)
        if layer.return_sequences:
            both = builder.transpose(ops.sequence, [2, 0, 1, 3], hint)  # (B, T, 2, H)
            output = self._merge_directions(layer.merge_mode, both, 2, hint, x.lengths)
        else:
            both = builder.transpose(ops.last_h, [1, 0, 2], hint)  # (B, 2, H)
            output = self._merge_directions(layer.merge_mode, both, 1, hint, None)
        if not layer.return_state:
            return output
        outputs = output if isinstance(output, list) else [output]
        states = []
        for state in [ops.last_h] + ([ops.last_c] if ops.last_c else []):
            states.append([Value(name) for name in _split(builder, state, 0, hint)])
        ordered = [pair[0] for pair in states] + [pair[1] for pair in states]
        return outputs + ordered

    def _merge_directions(self, mode, both: str, axis: int, hint: str, lengths):
        """Merge the direction axis ``axis`` of ``both`` as Bidirectional's ``merge_mode``."""
        builder = self.builder
        if mode == "concat":
            shape = [0, 0, -1] if axis == 2 else [0, -1]
            return Value(builder.reshape(both, shape, hint), lengths)
        forward, backward = _split(builder, both, axis, hint)
        if mode is None:
            return [Value(forward, lengths), Value(backward, lengths)]
        if mode == "sum":
            return Value(builder.op("Add", [forward, backward], hint), lengths)
        if mode == "mul":
            return Value(builder.op("Mul", [forward, backward], hint), lengths)
        total = builder.op("Add", [forward, backward], hint)
        return Value(builder.op("Div", [total, builder.constant(2.0, f"{hint}/two")], hint),
                     lengths)


# -- helpers --------------------------------------------------------------------------------------
def _array(parameter) -> np.ndarray:
    return parameter.detach().cpu().numpy()


def _activation_name(layer) -> str:
    name = activations.name_of(layer.activation)
    try:
        known = activations.get(name) is layer.activation
    except ValueError:
        known = False
    if not known:
        raise ValueError(f"{layer.name}: custom activation {name!r} cannot be exported")
    return name


def _float_code(builder: GraphBuilder) -> int:
    return onnx_type(builder.float_dtype)


def _time_major(builder: GraphBuilder, x: Value, hint: str) -> str:
    return builder.transpose(x.name, [1, 0, 2], hint)  # (T, B, F)


def _split(builder: GraphBuilder, value: str, axis: int, hint: str) -> list[str]:
    """The two halves of ``value`` along ``axis`` (of size 2), that axis removed."""
    halves = builder.op("Split", [value], hint, outputs=2, axis=axis)
    return [builder.squeeze(half, [axis], hint) for half in halves]


def _count_steps(builder: GraphBuilder, real: str, hint: str) -> str:
    """Lengths ``(B,)`` int32 from a ``(B, T)`` mask of real steps."""
    as_int = builder.op("Cast", [real], hint, to=6)  # int32
    return builder.op("ReduceSum", [as_int, builder.ints([1], f"{hint}/time_axis")], hint,
                      keepdims=0)


def _max_lengths(builder: GraphBuilder, lengths: list[str], hint: str) -> str:
    """The lengths of OR-ed right-padded masks."""
    return lengths[0] if len(set(lengths)) == 1 else builder.op("Max", lengths, hint)


def _reverse_time(builder: GraphBuilder, value: str, hint: str) -> str:
    return builder.op("Slice", [value, builder.ints([-1], f"{hint}/start"),
                                builder.ints([_INT64_MIN], f"{hint}/end"),
                                builder.ints([1], f"{hint}/axis"),
                                builder.ints([-1], f"{hint}/step")], hint)


def _repeat_last_output(builder: GraphBuilder, sequence: str, lengths: str, hint: str) -> str:
    """Keras's masked outputs: a padded step repeats the last real step's output."""
    steps = builder.squeeze(builder.op("Shape", [sequence], hint, start=1, end=2), [0], hint)
    zero = builder.constant(0, f"{hint}/zero", np.int64)
    one = builder.constant(1, f"{hint}/one", np.int64)
    positions = builder.unsqueeze(builder.op("Range", [zero, steps, one], hint), [0], hint)
    last = builder.op("Sub", [builder.op("Cast", [lengths], hint, to=7), one], hint)  # (B,)
    last = builder.unsqueeze(builder.op("Max", [last, zero], hint), [1], hint)  # (B, 1)
    index = builder.op("Min", [positions, last], hint)  # (B, T)
    index = builder.op("Expand", [builder.unsqueeze(index, [2], hint),
                                  builder.op("Shape", [sequence], hint)], hint)  # (B, T, H)
    return builder.op("GatherElements", [sequence, index], hint, axis=1)
