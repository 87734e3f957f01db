"""A small ONNX graph builder, and Keras activations written as ONNX operators.

Values are referred to by name. ``GraphBuilder.op`` adds a node and returns its output name(s);
``constant`` adds an initializer. Names are made unique from a hint, so a graph reads like the
model it came from (``lstm_1/Y``, ``dense/MatMul``...).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8  # what opset 17 needs; older runtimes read it too

_ONNX_TYPES = {np.dtype("float32"): TensorProto.FLOAT, np.dtype("int64"): TensorProto.INT64,
               np.dtype("int32"): TensorProto.INT32}


def onnx_type(dtype) -> int:
    dtype = np.dtype(dtype)
    if dtype not in _ONNX_TYPES:
        raise ValueError(f"dtype: ONNX export supports {sorted(map(str, _ONNX_TYPES))}, "
                         f"got {dtype}")
    return _ONNX_TYPES[dtype]


@dataclass
class Value:
    """A tensor of the graph being built. ``lengths`` is its mask as ``(B,)`` int32 lengths."""

    name: str
    lengths: str | None = None


class GraphBuilder:
    """Collects nodes, initializers, inputs and outputs; tensors are float32."""

    def __init__(self) -> None:
        self.float_dtype = np.dtype(np.float32)
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.outputs: list[onnx.ValueInfoProto] = []
        self._used: dict[str, int] = {}

    def unique(self, hint: str) -> str:
        count = self._used.get(hint, 0)
        self._used[hint] = count + 1
        return hint if count == 0 else f"{hint}_{count}"

    def constant(self, array, hint: str, dtype=None) -> str:
        array = np.asarray(array, dtype=dtype or self.float_dtype)
        name = self.unique(hint)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def ints(self, values, hint: str) -> str:
        return self.constant(np.asarray(values, dtype=np.int64), hint, np.int64)

    def op(self, op_type: str, inputs: list[str], hint: str, outputs: int = 1, **attributes):
        """Add ``op_type(inputs)``; returns the output name, or a list when ``outputs > 1``."""
        names = [self.unique(f"{hint}/{op_type}" + (f":{i}" if outputs > 1 else ""))
                 for i in range(outputs)]
        self.nodes.append(helper.make_node(op_type, inputs, names, name=self.unique(hint),
                                           **attributes))
        return names[0] if outputs == 1 else names

    def add_input(self, name: str, dtype, shape: list) -> None:
        self.inputs.append(helper.make_tensor_value_info(name, onnx_type(dtype), shape))

    def add_output(self, value: str, name: str, dtype, rank: int | None = None) -> None:
        """Expose ``value`` as graph output ``name`` (through Identity when names differ)."""
        if value != name:
            self.nodes.append(helper.make_node("Identity", [value], [name], name=f"{name}/out"))
        shape = None if rank is None else [None] * rank
        self.outputs.append(helper.make_tensor_value_info(name, onnx_type(dtype), shape))

    def model(self, graph_name: str, doc: str = "") -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, graph_name, self.inputs, self.outputs,
                                  self.initializers, doc_string=doc)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                  producer_name="rnnkit", ir_version=IR_VERSION)
        onnx.checker.check_model(model, full_check=True)
        return model

    # -- common shapes -------------------------------------------------------------------------
    def transpose(self, value: str, perm: list[int], hint: str) -> str:
        return self.op("Transpose", [value], hint, perm=perm)

    def squeeze(self, value: str, axes: list[int], hint: str) -> str:
        return self.op("Squeeze", [value, self.ints(axes, f"{hint}/axes")], hint)

    def unsqueeze(self, value: str, axes: list[int], hint: str) -> str:
        return self.op("Unsqueeze", [value, self.ints(axes, f"{hint}/axes")], hint)

    def reshape(self, value: str, shape: list[int], hint: str) -> str:
        """``Reshape`` where 0 copies the input's size on that axis and -1 is inferred."""
        return self.op("Reshape", [value, self.ints(shape, f"{hint}/shape")], hint)


# -- activations ----------------------------------------------------------------------------------
_UNARY = {"relu": "Relu", "tanh": "Tanh", "sigmoid": "Sigmoid", "elu": "Elu", "selu": "Selu",
          "softplus": "Softplus", "softsign": "Softsign", "exponential": "Exp"}


def activation(builder: GraphBuilder, name: str, value: str, hint: str) -> str:
    """Keras activation ``name`` applied to ``value`` (the rnnkit definitions, op for op)."""
    if name == "linear":
        return value
    if name in _UNARY:
        return builder.op(_UNARY[name], [value], hint)
    if name == "softmax":
        return builder.op("Softmax", [value], hint, axis=-1)
    if name == "log_softmax":
        return builder.op("LogSoftmax", [value], hint, axis=-1)
    if name == "hard_sigmoid":  # Keras 3: relu6(x + 3) / 6 = clip(x / 6 + 1/2, 0, 1)
        return builder.op("HardSigmoid", [value], hint, alpha=1.0 / 6.0, beta=0.5)
    if name == "relu6":
        low, high = builder.constant(0.0, f"{hint}/min"), builder.constant(6.0, f"{hint}/max")
        return builder.op("Clip", [value, low, high], hint)
    if name in ("swish", "silu"):
        return builder.op("Mul", [value, builder.op("Sigmoid", [value], hint)], hint)
    if name == "gelu":  # the exact form, 0.5 x (1 + erf(x / sqrt(2))), as torch's default
        scaled = builder.op("Div", [value, builder.constant(np.sqrt(2.0), f"{hint}/sqrt2")],
                            hint)
        erf_plus_one = builder.op("Add", [builder.op("Erf", [scaled], hint),
                                          builder.constant(1.0, f"{hint}/one")], hint)
        half_x = builder.op("Mul", [value, builder.constant(0.5, f"{hint}/half")], hint)
        return builder.op("Mul", [half_x, erf_plus_one], hint)
    raise ValueError(f"activation: {name!r} has no ONNX form in rnnkit's exporter")


# Activations ONNX's recurrent operators take by name: (operator name, alpha, beta).
RECURRENT_ACTIVATIONS = {"tanh": ("Tanh", None, None), "sigmoid": ("Sigmoid", None, None),
                         "relu": ("Relu", None, None), "softsign": ("Softsign", None, None),
                         "softplus": ("Softplus", None, None),
                         "hard_sigmoid": ("HardSigmoid", 1.0 / 6.0, 0.5),
                         "linear": ("Affine", 1.0, 0.0)}
