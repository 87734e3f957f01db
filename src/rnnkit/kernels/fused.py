"""Which fused kernel, if any, runs a cell: the checks behind ``dispatch.fused_runner``.

A kernel applies to a built-in cell (or a :class:`~rnnkit.cells.base.BoundCell` of one) whose step
is the library's own, on CPU float32/float64 tensors, with activations the kernels know. Anything
else (user cells or callables, CUDA, other dtypes, mismatched shapes) is left to the reference
loop, which runs it or raises the precise error.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch

from rnnkit.cells import CELL_CLASSES
from rnnkit.cells.base import GATES, BoundCell, BuiltinCell
from rnnkit.kernels import gru, lstm, rnn
from rnnkit.kernels._common import (
    NUMPY_DTYPES,
    blas_available,
    codes_of,
    plan_of,
    run_inputs_fit,
    tensors_fit,
)
from rnnkit.kernels.reference import run_reference

KERNELS = {
    "rnn": (rnn.supports, rnn.run_simple_rnn),
    "lstm": (lstm.supports, lstm.run_lstm),
    "gru": (gru.supports, gru.run_gru),
}


STEP_METHODS = ("step", "step_with_gates")


def _same_step(cls: type, reference: type) -> bool:
    """True when ``cls`` inherits ``reference``'s step functions unchanged."""

    def function(owner, name):
        attribute = getattr(owner, name, None)
        return getattr(attribute, "__func__", attribute)  # unwrap classmethods

    return all(function(cls, name) is function(reference, name) for name in STEP_METHODS)


def _is_builtin_step(cell) -> bool:
    """True when ``cell`` computes exactly its family's reference step (no user override)."""
    reference = CELL_CLASSES.get(getattr(cell, "family", None))
    if reference is None:
        return False
    if isinstance(cell, BoundCell):
        return _same_step(cell.cell_class, reference) and (
            type(cell).__call__ is BoundCell.__call__
        )
    if isinstance(cell, BuiltinCell):
        return (
            cell.built
            and _same_step(type(cell), reference)
            and (type(cell).forward is BuiltinCell.forward)
        )
    return False


def _expected_shapes(spec, features: int) -> dict[str, tuple[int, ...]]:
    """The shape each weight of ``spec``'s cell must have, when present."""
    width, hidden = GATES[spec.family] * spec.hidden_size, spec.hidden_size
    shapes = {
        "weight_ih": (width, features),
        "weight_hh": (width, spec.recurrent_size),
        "bias_ih": (width,),
        "bias_hh": (width,),
    }
    if spec.family == "lstm":
        shapes.update(
            weight_hr=(spec.proj_size, hidden),
            weight_peephole=(3, hidden),
            ln_ih_weight=(width,),
            ln_ih_bias=(width,),
            ln_hh_weight=(width,),
            ln_hh_bias=(width,),
            ln_c_weight=(hidden,),
            ln_c_bias=(hidden,),
        )
    return shapes


def _weights_fit(spec, weights, inputs: torch.Tensor) -> bool:
    """Every weight on CPU in the inputs' dtype, with the shape the spec and inputs imply.

    The compiled loops do not check bounds, so a mismatch must be caught here (the reference loop
    then raises torch's error).
    """
    shapes = _expected_shapes(spec, inputs.shape[-1])
    return tensors_fit(weights, inputs.dtype) and all(
        tensor is None or tuple(tensor.shape) == shapes.get(name)
        for name, tensor in weights._asdict().items()
    )


def select(cell, inputs: torch.Tensor) -> Callable | None:
    """The runner for ``cell`` on ``inputs (B, T, I)``, or ``None`` when no kernel applies."""
    if not isinstance(inputs, torch.Tensor) or inputs.dim() != 3 or 0 in inputs.shape:
        return None
    if inputs.device.type != "cpu" or inputs.dtype not in NUMPY_DTYPES or not blas_available():
        return None
    if not _is_builtin_step(cell):
        return None
    spec, weights = cell.spec, cell.weights()
    supports, kernel = KERNELS[cell.family]
    codes = codes_of(spec)
    if codes is None or not _weights_fit(spec, weights, inputs) or not supports(spec, weights):
        return None
    return partial(_run_fused, kernel, codes)


def _run_fused(kernel, codes, cell, inputs, state, mask, recurrent_mask, zero_output_for_mask):
    """Run ``kernel``; arguments it cannot take (e.g. a state of another dtype) go to the loop."""
    state = (state,) if isinstance(state, torch.Tensor) else tuple(state)
    if not run_inputs_fit(inputs, state, cell.state_size, mask, recurrent_mask):
        return run_reference(cell, inputs, state, mask, recurrent_mask, zero_output_for_mask)
    plan = plan_of(cell, inputs, mask, recurrent_mask, zero_output_for_mask, codes)
    return kernel(cell, inputs, state, plan)
