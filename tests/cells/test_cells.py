"""The shared harness: every cell family and option through the same numeric checks.

- gradcheck (float64) of one step w.r.t. input, states and every parameter;
- gradcheck of a short masked sequence (left and right padding, fixed recurrent-dropout mask)
  through ``run_sequence(..., backend="reference")``;
- agreement with the NumPy transcription of the docstring equations;
- the meaning of the sequence mask and of the recurrent-dropout mask.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnkit.cells.base import WEIGHT_NAMES, BoundCell, CellWeights
from rnnkit.kernels import run_sequence

from . import _numpy_cells
from ._cases import BATCH, CASES, make_cell, random_inputs, random_state

STEPS = 3
# Row 0 is left-padded, row 1 right-padded.
MASK = torch.tensor([[False, True, True], [True, True, False]])


@pytest.fixture(params=CASES, ids=[case.id for case in CASES])
def case(request):
    return request.param


def _parameter_names(cell) -> list[str]:
    weights = cell.weights()
    return [name for name in WEIGHT_NAMES if getattr(weights, name) is not None]


def _leaves(cell, *tensors):
    """Fresh float64 leaves requiring grad: the given tensors, then every parameter."""
    params = [getattr(cell, name) for name in _parameter_names(cell)]
    return [t.detach().clone().requires_grad_(True) for t in (*tensors, *params)]


def _recurrent_mask(cell) -> torch.Tensor:
    """A fixed dropout mask at rate 0.5 (kept units scaled by 2), different in each row."""
    width = cell.state_size[0]
    keep = (torch.arange(BATCH * width).reshape(BATCH, width) % 3) != 1
    return keep.to(cell.param_dtype) * 2.0


def test_cell_owns_exactly_the_expected_parameters(case):
    cell = make_cell(case)
    assert tuple(sorted(_parameter_names(cell))) == tuple(sorted(case.weights))


def test_step_gradcheck(case):
    cell = make_cell(case)
    x = random_inputs(cell, BATCH)
    state = random_state(cell)
    names = _parameter_names(cell)
    leaves = _leaves(cell, x, *state)
    n_state = len(state)

    def one_step(x_t, *rest):
        weights = CellWeights(**dict(zip(names, rest[n_state:], strict=True)))
        output, new_state = type(cell).step(cell.spec, weights, x_t, tuple(rest[:n_state]))
        return (output, *new_state)

    assert torch.autograd.gradcheck(one_step, tuple(leaves), eps=1e-6, atol=1e-7)


def test_sequence_gradcheck_with_masks(case):
    cell = make_cell(case)
    inputs = random_inputs(cell, BATCH, STEPS)
    state = random_state(cell)
    recurrent_mask = _recurrent_mask(cell)
    names = _parameter_names(cell)
    leaves = _leaves(cell, inputs, *state)
    n_state = len(state)

    def sequence(x, *rest):
        bound = BoundCell(
            type(cell), cell.spec, CellWeights(**dict(zip(names, rest[n_state:], strict=True)))
        )
        outputs, final = run_sequence(
            bound,
            x,
            tuple(rest[:n_state]),
            mask=MASK,
            recurrent_mask=recurrent_mask,
            backend="reference",
        )
        return (outputs, *final)

    assert torch.autograd.gradcheck(sequence, tuple(leaves), eps=1e-6, atol=1e-7)


def test_step_matches_numpy_equations(case):
    cell = make_cell(case)
    x = random_inputs(cell, BATCH)
    state = random_state(cell)
    with torch.no_grad():
        output, new_state = cell(x, state)
    expected_output, expected_state = _numpy_cells.step(
        cell, x.numpy(), tuple(s.numpy() for s in state)
    )
    np.testing.assert_allclose(output.numpy(), expected_output, rtol=0, atol=1e-12)
    for got, expected in zip(new_state, expected_state, strict=True):
        np.testing.assert_allclose(got.numpy(), expected, rtol=0, atol=1e-12)


@torch.no_grad()
def test_mask_skips_padded_steps(case):
    cell = make_cell(case)
    inputs = random_inputs(cell, BATCH, STEPS)
    state = random_state(cell)
    outputs, final = run_sequence(cell, inputs, state, mask=MASK, backend="reference")

    def unpadded(row: int, steps: slice):
        row_state = tuple(s[row : row + 1] for s in state)
        return run_sequence(cell, inputs[row : row + 1, steps], row_state, backend="reference")

    left_outputs, left_final = unpadded(0, slice(1, STEPS))
    torch.testing.assert_close(outputs[0, 0], torch.zeros_like(outputs[0, 0]), rtol=0, atol=0)
    torch.testing.assert_close(outputs[0, 1:], left_outputs[0], rtol=0, atol=1e-14)
    right_outputs, right_final = unpadded(1, slice(0, STEPS - 1))
    torch.testing.assert_close(outputs[1, :2], right_outputs[0], rtol=0, atol=1e-14)
    torch.testing.assert_close(outputs[1, 2], outputs[1, 1], rtol=0, atol=0)
    for got, left, right in zip(final, left_final, right_final, strict=True):
        torch.testing.assert_close(got[0], left[0], rtol=0, atol=1e-14)
        torch.testing.assert_close(got[1], right[0], rtol=0, atol=1e-14)


@torch.no_grad()
def test_zero_output_for_mask(case):
    cell = make_cell(case)
    inputs = random_inputs(cell, BATCH, STEPS)
    state = random_state(cell)
    outputs, _ = run_sequence(
        cell, inputs, state, mask=MASK, zero_output_for_mask=True, backend="reference"
    )
    assert torch.count_nonzero(outputs[~MASK]) == 0
    assert bool((outputs[MASK] != 0).any())


@torch.no_grad()
def test_recurrent_mask_acts_on_the_recurrent_input_only(case):
    """Dropping every recurrent unit equals zeroing ``weight_hh``; keeping all equals no mask."""
    cell = make_cell(case)
    inputs = random_inputs(cell, BATCH, STEPS)
    state = random_state(cell)
    width = cell.state_size[0]
    ones = torch.ones(BATCH, width, dtype=cell.param_dtype)
    unmasked, _ = run_sequence(cell, inputs, state, backend="reference")
    kept, _ = run_sequence(cell, inputs, state, recurrent_mask=ones, backend="reference")
    torch.testing.assert_close(kept, unmasked, rtol=0, atol=0)

    dropped, dropped_final = run_sequence(
        cell, inputs, state, recurrent_mask=0 * ones, backend="reference"
    )
    cell.weight_hh.zero_()
    no_recurrence, no_recurrence_final = run_sequence(cell, inputs, state, backend="reference")
    torch.testing.assert_close(dropped, no_recurrence, rtol=0, atol=1e-14)
    for got, expected in zip(dropped_final, no_recurrence_final, strict=True):
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-14)
    assert not torch.allclose(dropped, unmasked)
