"""Symbolic tensors: what ``Input`` returns and what a layer returns when called on one.

Calling a layer on symbolic tensors (``layers.base.Layer.forward`` hands such calls to
:func:`call_symbolic`) builds the layer from the symbolic shapes, records a :class:`Node` — the
layer with its call arguments, in which symbolic tensors stand for the values to come — and returns
symbolic outputs of the same structure as the real call would (a list for ``return_state``).
Every symbolic tensor knows the node that made it, so a functional ``Model(inputs, outputs)``
finds its graph by walking back from its outputs. Nothing is stored on the layers, so one layer may
be called in several graphs.

Output shapes come from the layer's ``compute_output_shape`` when its class defines one, and
otherwise from two dry runs on zeros with the unknown sizes set to 2 and then 3: the sizes that
differ between the runs are unknown (``None``).

Example:
    >>> tokens = Input(shape=(None,), dtype="int64")       # (B, T)
    >>> vectors = Embedding(100, 8, mask_zero=True)(tokens)
    >>> vectors.shape
    (None, None, 8)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from rnnkit.layers.base import Layer
from rnnkit.models import _nest

_DTYPES = {name: getattr(torch, name) for name in (
    "float16", "bfloat16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8",
    "bool")}
_TRACE_FILLS = (2, 3)


def to_dtype(dtype, name: str = "dtype") -> torch.dtype:
    """A torch dtype from a torch dtype, a NumPy dtype or a name (``None`` is torch's default)."""
    if dtype is None:
        return torch.get_default_dtype()
    if isinstance(dtype, torch.dtype):
        return dtype
    key = dtype if isinstance(dtype, str) else getattr(np.dtype(dtype), "name", None)
    if key not in _DTYPES:
        raise ValueError(f"{name}: expected one of {sorted(_DTYPES)} or a torch.dtype, "
                         f"got {dtype!r}")
    return _DTYPES[key]


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


class SymbolicTensor:
    """A placeholder for a batch-first tensor in a functional graph.

    ``shape`` is a tuple with ``None`` for sizes unknown until run time (always the batch, unless
    ``Input`` was given ``batch_size``); ``node`` is the call that produces it and ``index`` its
    position among that call's flattened outputs.
    """

    _rnnkit_symbolic = True  # what layers.base looks for to route a call here
    __slots__ = ("shape", "dtype", "node", "index")

    def __init__(self, shape: Sequence, dtype: torch.dtype, node: Node, index: int) -> None:
        self.shape = tuple(shape)
        self.dtype = dtype
        self.node = node
        self.index = index

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def name(self) -> str:
        outputs = len(self.node.output_tensors)
        return self.node.layer.name if outputs == 1 else f"{self.node.layer.name}:{self.index}"

    def __repr__(self) -> str:
        return (f"<SymbolicTensor {self.name!r} shape={self.shape} "
                f"dtype={dtype_name(self.dtype)}>")


class Node:
    """One call of ``layer`` in a graph: ``layer(inputs, *args, **kwargs)``.

    Symbolic tensors stand in the arguments for the values they will carry. ``input_tensors``
    lists them in Keras's order (first argument, other positional arguments, then keyword
    arguments by name); ``output_tensors`` lists the flattened outputs.
    """

    __slots__ = ("layer", "inputs", "args", "kwargs", "outputs", "input_tensors",
                 "output_tensors")

    def __init__(self, layer: Layer, inputs, args: tuple, kwargs: dict) -> None:
        self.layer = layer
        self.inputs = inputs
        self.args = tuple(args)
        self.kwargs = dict(kwargs)
        self.input_tensors = [leaf for leaf in _nest.flatten((inputs, self.args, self.kwargs))
                              if isinstance(leaf, SymbolicTensor)]
        self.outputs = None
        self.output_tensors: list[SymbolicTensor] = []

    @property
    def is_input(self) -> bool:
        return isinstance(self.layer, InputLayer)

    def attach_outputs(self, specs) -> None:
        """Create the symbolic outputs from a structure of :class:`TensorSpec`."""
        flat = _nest.flatten(specs)
        self.output_tensors = [SymbolicTensor(spec.shape, spec.dtype, self, index)
                               for index, spec in enumerate(flat)]
        self.outputs = _nest.pack_like(specs, self.output_tensors)


class TensorSpec:
    """Shape and dtype of one output (a leaf, unlike a tuple, in nested structures)."""

    __slots__ = ("shape", "dtype")

    def __init__(self, shape: Sequence, dtype: torch.dtype) -> None:
        self.shape = tuple(None if size is None else int(size) for size in shape)
        self.dtype = dtype


class InputLayer(Layer):
    """The source of a graph: holds the symbolic tensor that :func:`Input` returns.

    ``batch_shape`` includes the batch axis, e.g. ``(None, None, 8)`` for ``(B, T, 8)``.
    """

    def __init__(self, shape: Sequence | None = None, batch_size: int | None = None,
                 dtype=None, name: str | None = None, batch_shape: Sequence | None = None
                 ) -> None:
        super().__init__(name=name)
        if (shape is None) == (batch_shape is None):
            raise ValueError(f"shape, batch_shape: give exactly one of them, got shape={shape!r} "
                             f"and batch_shape={batch_shape!r}")
        if batch_shape is None:
            batch_shape = (batch_size, *_check_shape(shape, "shape"))
        self.batch_shape = tuple(_check_shape(batch_shape, "batch_shape"))
        self.input_dtype = to_dtype(dtype)
        self.built = True
        node = Node(self, None, (), {})
        node.attach_outputs(TensorSpec(self.batch_shape, self.input_dtype))
        self.output = node.outputs

    def call(self, inputs, mask=None, training=None):
        return inputs

    def compute_output_shape(self, input_shape):
        return self.batch_shape

    def get_config(self) -> dict:
        return {"name": self.name, "batch_shape": list(self.batch_shape),
                "dtype": dtype_name(self.input_dtype)}

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)


def _check_shape(shape, name: str) -> tuple:
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, (tuple, list, torch.Size)):
        raise TypeError(f"{name}: expected a tuple of sizes (int or None), "
                        f"got {type(shape).__name__}")
    for size in shape:
        if size is not None and (isinstance(size, bool) or not isinstance(size, (int, np.integer))
                                 or size < 1):
            raise ValueError(f"{name}: expected positive ints or None, got {tuple(shape)}")
    return tuple(None if size is None else int(size) for size in shape)


def Input(shape: Sequence, batch_size: int | None = None, name: str | None = None,
          dtype=None) -> SymbolicTensor:
    """A symbolic input ``(batch_size, *shape)`` to start a functional model (Keras's ``Input``).

    ``shape`` excludes the batch axis; ``None`` marks a size known only at run time, e.g.
    ``Input(shape=(None, 8))`` for sequences of any length. ``dtype`` defaults to float32.
    """
    return InputLayer(shape=shape, batch_size=batch_size, dtype=dtype, name=name).output


# -- recording a call -----------------------------------------------------------------------------
def call_symbolic(layer: Layer, inputs, args: tuple, *, mask=None, training=None, **kwargs):
    """Record ``layer(inputs, *args, **kwargs)`` as a node and return its symbolic outputs."""
    if isinstance(layer, InputLayer):
        raise TypeError(f"{layer.name}: an InputLayer starts a graph and cannot be called on "
                        "symbolic tensors")
    if mask is not None:
        kwargs["mask"] = mask
    if training is not None:
        kwargs["training"] = training
    input_shapes = _nest.map_structure(_shape_of, inputs)
    if not layer.built:
        layer.build(input_shapes)
        layer.built = True
    node = Node(layer, inputs, args, kwargs)
    node.attach_outputs(_output_specs(node, input_shapes))
    return node.outputs


def _shape_of(value) -> tuple:
    if isinstance(value, SymbolicTensor):
        return value.shape
    return tuple(np.shape(value))


def _output_specs(node: Node, input_shapes):
    layer = node.layer
    # compute_output_shape sees only input shapes; call options (return_attention_scores=True,
    # say) can change what a call returns, so such calls are traced instead.
    options = {k for k, v in node.kwargs.items() if v is not None} - {"mask", "training"}
    if not options and type(layer).compute_output_shape is not Layer.compute_output_shape:
        try:
            shapes = layer.compute_output_shape(input_shapes)
        except NotImplementedError:
            shapes = None
        if shapes is not None:
            return _specs_from_shapes(shapes, _result_dtype(node))
    return _traced_specs(node)


def _is_shape(value) -> bool:
    return isinstance(value, (tuple, list, torch.Size)) and all(
        size is None or (isinstance(size, (int, np.integer)) and not isinstance(size, bool))
        for size in value)


def _specs_from_shapes(shapes, dtype: torch.dtype):
    if _is_shape(shapes):
        return TensorSpec(shapes, dtype)
    if isinstance(shapes, (list, tuple)):
        return type(shapes)(_specs_from_shapes(item, dtype) for item in shapes)
    raise TypeError(f"compute_output_shape: expected a shape tuple or a list of them, "
                    f"got {shapes!r}")


def _result_dtype(node: Node) -> torch.dtype:
    """Layers with weights compute in their weights' dtype; others keep a floating input's."""
    first = node.input_tensors[0] if node.input_tensors else None
    if first is not None and first.dtype.is_floating_point and not any(
            True for _ in node.layer.parameters()):
        return first.dtype
    return getattr(node.layer, "param_dtype", torch.get_default_dtype())


def _traced_specs(node: Node):
    """Run the layer twice on zeros with unknown sizes 2 then 3; differing sizes are unknown."""
    runs = []
    for fill in _TRACE_FILLS:
        inputs, args, kwargs = _nest.map_structure(
            lambda value, fill=fill: _dummy(value, fill), (node.inputs, node.args, node.kwargs))
        kwargs.setdefault("training", False)
        with torch.no_grad():
            runs.append(node.layer(inputs, *args, **kwargs))
    first, second = (_nest.flatten(run) for run in runs)
    specs = []
    for a, b in zip(first, second, strict=True):
        if not isinstance(a, torch.Tensor):
            raise TypeError(f"{node.layer.name}: a layer in a functional graph must return "
                            f"tensors (or lists of them), got {type(a).__name__}")
        shape = [x if x == y else None for x, y in zip(a.shape, b.shape, strict=True)]
        specs.append(TensorSpec(shape, a.dtype))
    return _nest.pack_like(runs[0], specs)


def _dummy(value, fill: int):
    if not isinstance(value, SymbolicTensor):
        return value
    shape = [fill if size is None else size for size in value.shape]
    if value.dtype == torch.bool:
        return torch.ones(shape, dtype=torch.bool)
    return torch.zeros(shape, dtype=value.dtype)
