"""Building the arrays a fuzzed call passes: values in every form and memory layout, and the
malformed stand-ins for each argument.

Values come from a NumPy generator seeded by hypothesis, so shrinking works on shapes and choices
while the numbers stay reproducible.
"""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import strategies as st

# form -> (library, dtype); every form is a valid floating input for the Keras face.
FLOAT_FORMS = {
    "np32": ("numpy", np.float32),
    "np64": ("numpy", np.float64),
    "np16": ("numpy", np.float16),
    "t32": ("torch", torch.float32),
    "t64": ("torch", torch.float64),
    "t16": ("torch", torch.float16),
    "tbf16": ("torch", torch.bfloat16),
}
LAYOUTS = ("contiguous", "transposed", "strided", "expanded")
NON_FLOAT_FORMS = (
    "np-int64",
    "np-int32",
    "np-uint8",
    "np-bool",
    "t-int64",
    "t-int32",
    "t-bool",
    "t-complex64",
    "np-complex128",
)
INTEGER_DTYPES = ("int64", "int32", "int16", "int8", "uint8", "uint16", "uint32", "uint64")
NOT_ARRAYS = ("none", "string", "dict", "object-array", "ragged-list")


def floats(
    rng: np.random.Generator,
    shape,
    form: str = "np32",
    layout: str = "contiguous",
    requires_grad: bool = False,
    low: float = -3.0,
    high: float = 3.0,
):
    """Uniform values of ``shape`` in ``form``; ``layout`` (rank 3 only) makes a strided view."""
    values = rng.uniform(low, high, size=shape)
    library, dtype = FLOAT_FORMS[form]
    if len(shape) != 3 or layout == "contiguous":
        return _to(values, library, dtype, requires_grad)
    if layout == "expanded":  # one sample repeated along the batch axis with stride 0
        row = _to(values[:1], library, dtype, requires_grad)
        return np.broadcast_to(row, shape) if library == "numpy" else row.expand(*shape)
    if layout == "transposed":  # stored time-major, viewed batch-major
        stored = _to(np.ascontiguousarray(values.transpose(1, 0, 2)), library, dtype, requires_grad)
        return stored.transpose(1, 0, 2) if library == "numpy" else stored.transpose(0, 1)
    padded = np.zeros((shape[0], 2 * shape[1], shape[2]))  # "strided": every other step
    padded[:, ::2] = values
    return _to(padded, library, dtype, requires_grad)[:, ::2]


def _to(values: np.ndarray, library: str, dtype, requires_grad: bool):
    if library == "numpy":
        return values.astype(dtype)
    tensor = torch.from_numpy(np.asarray(values, dtype=np.float32)).to(dtype)
    return tensor.requires_grad_(requires_grad)


def contiguous_copy(value):
    if isinstance(value, torch.Tensor):
        return value.detach().contiguous()
    return np.ascontiguousarray(value)


def non_float(rng: np.random.Generator, shape, form: str):
    """Numbers of ``shape`` in a non-floating dtype (refused where floats are expected)."""
    library, dtype = form.split("-")
    values = rng.integers(0, 2, size=shape)
    if library == "np":
        return values.astype(dtype)
    return torch.from_numpy(values).to(getattr(torch, dtype))


def not_an_array(kind: str, shape=(2, 3, 1)):
    """Things that are not arrays at all, or not numeric/rectangular ones."""
    if kind == "none":
        return None
    if kind == "string":
        return "not an array"
    if kind == "dict":
        return {"x": 1.0}
    if kind == "object-array":
        return np.array([object()] * int(np.prod(shape)), dtype=object).reshape(shape)
    return [[[1.0]], [[1.0], [2.0]]]  # ragged nested list


def integers(values, dtype: str):
    """``values`` as a NumPy array of the integer ``dtype``."""
    return np.asarray(values).astype(dtype)


def on_meta(shape, dtype=torch.float32) -> torch.Tensor:
    return torch.empty(shape, dtype=dtype, device="meta")


def overflowing(rng: np.random.Generator, shape, torch_tensor: bool):
    """float64 values with one entry above float32's range (inf once cast to float32)."""
    values = rng.uniform(-3.0, 3.0, size=shape)
    values.flat[int(rng.integers(values.size))] = 1e300
    return torch.from_numpy(values) if torch_tensor else values


seeds = st.integers(0, 2**31 - 1)
