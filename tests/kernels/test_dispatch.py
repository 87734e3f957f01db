"""Which calls the fused kernels take, which they leave to the reference loop, and edge cases."""

from __future__ import annotations

import pytest
import torch

from rnnkit.cells import CELL_CLASSES, GRUCell, LSTMCell, SimpleRNNCell
from rnnkit.cells.base import BoundCell
from rnnkit.kernels import run_sequence
from rnnkit.kernels.dispatch import fused_runner

from ._harness import assert_backends_agree, make_problem, randomise, run_backend

FAMILIES = sorted(CELL_CLASSES)


def make_cell(family: str, dtype=torch.float64, **options):
    cell = CELL_CLASSES[family](3, input_size=2, dtype=dtype, **options)
    return randomise(cell, torch.Generator().manual_seed(0))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("family", FAMILIES)
def test_builtin_cells_get_a_kernel(family, dtype):
    cell = make_cell(family, dtype)
    assert fused_runner(cell, torch.zeros(2, 4, 2, dtype=dtype)) is not None
    bound = BoundCell(type(cell), cell.spec, cell.weights())
    assert fused_runner(bound, torch.zeros(2, 4, 2, dtype=dtype)) is not None


def _own_tanh(x):
    return torch.tanh(x)


class _OverriddenLSTM(LSTMCell):
    @staticmethod
    def step_with_gates(spec, weights, inputs, state, recurrent_mask=None):
        output, new_state, gates = LSTMCell.step_with_gates(
            spec, weights, inputs, state, recurrent_mask
        )
        return 2 * output, new_state, gates


@pytest.mark.parametrize(
    "make, inputs",
    [
        (lambda: make_cell("rnn", activation=_own_tanh), torch.zeros(2, 4, 2, dtype=torch.float64)),
        (
            lambda: make_cell("gru", activation="softsign"),
            torch.zeros(2, 4, 2, dtype=torch.float64),
        ),
        (lambda: make_cell("lstm"), torch.zeros(2, 4, 2, dtype=torch.float32)),
        (lambda: make_cell("lstm", torch.float16), torch.zeros(2, 4, 2, dtype=torch.float16)),
        (lambda: LSTMCell(3), torch.zeros(2, 4, 2)),
        (lambda: _OverriddenLSTM(3, input_size=2), torch.zeros(2, 4, 2)),
        (lambda: torch.nn.RNNCell(2, 3), torch.zeros(2, 4, 2)),
        (lambda: make_cell("rnn"), torch.zeros(2, 0, 2, dtype=torch.float64)),
        (lambda: make_cell("rnn"), torch.zeros(2, 4, 5, dtype=torch.float64)),
    ],
    ids=[
        "user_callable",
        "softsign",
        "dtype_mismatch",
        "float16",
        "unbuilt",
        "overridden_step",
        "foreign_cell",
        "no_steps",
        "wrong_feature_size",
    ],
)
def test_declines(make, inputs):
    assert fused_runner(make(), inputs) is None


def test_declined_cell_runs_the_reference_on_auto():
    cell = make_cell("rnn", activation=_own_tanh)
    inputs = torch.randn(2, 4, 2, dtype=torch.float64)
    state = (torch.randn(2, 3, dtype=torch.float64),)
    auto = run_sequence(cell, inputs, state, backend="auto")
    reference = run_sequence(cell, inputs, state, backend="reference")
    torch.testing.assert_close(auto[0], reference[0], rtol=0, atol=0)
    with pytest.raises(ValueError, match="backend"):
        run_sequence(cell, inputs, state, backend="fused")


def test_library_callables_count_as_named_activations():
    cell = make_cell("gru", activation=torch.tanh, recurrent_activation=torch.sigmoid)
    assert fused_runner(cell, torch.zeros(1, 1, 2, dtype=torch.float64)) is not None


@pytest.mark.parametrize("family", FAMILIES)
def test_bound_cell_matches_reference(family):
    cell = make_cell(family)
    problem = make_problem(
        cell, batch=3, steps=5, mask_kind="random", recurrent=True, zero_output=False, seed=11
    )
    fused = run_sequence(
        BoundCell(type(cell), cell.spec, cell.weights()),
        problem.inputs,
        problem.state,
        problem.mask,
        problem.recurrent_mask,
        backend="fused",
    )
    reference = run_sequence(
        cell,
        problem.inputs,
        problem.state,
        problem.mask,
        problem.recurrent_mask,
        backend="reference",
    )
    torch.testing.assert_close(fused, reference, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("zero_output", [False, True])
@pytest.mark.parametrize("family", FAMILIES)
def test_fully_masked_sequence_carries_the_state(family, zero_output):
    cell = make_cell(family, proj_size=2) if family == "lstm" else make_cell(family)
    problem = make_problem(
        cell, batch=2, steps=3, mask_kind="none", recurrent=False, zero_output=zero_output, seed=2
    )
    problem.mask = torch.zeros(2, 3, dtype=torch.bool)
    results = run_backend(problem, "fused")
    assert torch.equal(results["outputs"], torch.zeros_like(results["outputs"]))
    for k, (initial, d_final) in enumerate(zip(problem.state, problem.d_state)):
        assert torch.equal(results[f"final_state[{k}]"], initial)
        assert torch.equal(results[f"grad state[{k}]"], d_final)
    assert torch.equal(results["grad weight_hh"], torch.zeros_like(results["grad weight_hh"]))


@pytest.mark.parametrize("family", FAMILIES)
def test_non_contiguous_inputs_and_broadcast_recurrent_mask(family):
    cell = make_cell(family)
    problem = make_problem(
        cell, batch=3, steps=4, mask_kind="left_padded", recurrent=False, zero_output=False, seed=4
    )
    problem.inputs = torch.randn(4, 3, 2, dtype=torch.float64).transpose(0, 1)  # (B, T, I)
    problem.recurrent_mask = torch.tensor([[1.25, 0.0, 1.25]], dtype=torch.float64)  # (1, H)
    assert_backends_agree(problem)


def test_no_grad_matches_reference():
    cell = make_cell("lstm", peephole=True, layer_norm=True)
    inputs = torch.randn(2, 5, 2, dtype=torch.float64)
    state = (torch.zeros(2, 3, dtype=torch.float64),) * 2
    with torch.no_grad():
        fused = run_sequence(cell, inputs, state, backend="fused")
        reference = run_sequence(cell, inputs, state, backend="reference")
    torch.testing.assert_close(fused, reference, rtol=1e-10, atol=1e-10)


def test_recurrent_mask_that_needs_grad_gets_its_gradient():
    cell = SimpleRNNCell(3, input_size=2, dtype=torch.float64)
    inputs = torch.randn(2, 4, 2, dtype=torch.float64)
    state = (torch.randn(2, 3, dtype=torch.float64),)
    grads = []
    for backend in ("auto", "reference"):
        recurrent_mask = torch.full((2, 3), 0.5, dtype=torch.float64, requires_grad=True)
        outputs, _ = run_sequence(
            cell, inputs, state, recurrent_mask=recurrent_mask, backend=backend
        )
        grads.append(torch.autograd.grad(outputs.sum(), recurrent_mask)[0])
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-12, atol=1e-12)
    assert grads[0].abs().sum() > 0


@pytest.mark.parametrize("family", FAMILIES)
def test_create_graph_gives_first_order_gradients_and_refuses_a_second(family):
    """A backward that builds a graph still gets the kernels' gradients; differentiating them
    again raises instead of returning silently wrong second derivatives."""
    cell = make_cell(family)
    inputs = torch.randn(2, 4, 2, dtype=torch.float64, requires_grad=True)
    first = {}
    for backend in ("fused", "reference"):
        outputs, _ = run_sequence(cell, inputs, None, backend=backend)
        first[backend] = torch.autograd.grad(outputs.square().sum(), inputs, create_graph=True)[0]
    torch.testing.assert_close(first["fused"], first["reference"], rtol=1e-10, atol=1e-10)
    assert first["reference"].requires_grad
    with pytest.raises(RuntimeError, match="once_differentiable"):
        first["fused"].sum().backward()


def test_gru_keeps_its_output_dtype_and_shape():
    cell = GRUCell(4, input_size=2, reset_after=False)
    outputs, (h,) = run_sequence(cell, torch.randn(3, 5, 2), (torch.zeros(3, 4),), backend="fused")
    assert outputs.shape == (3, 5, 4) and outputs.dtype == torch.float32
    assert torch.equal(outputs[:, -1], h)


@pytest.mark.parametrize("family", FAMILIES)
def test_call_arguments_the_kernel_cannot_take_run_the_reference(family):
    cell = make_cell(family)
    inputs = torch.randn(2, 4, 2, dtype=torch.float64)
    state = tuple(torch.randn(1, size, dtype=torch.float64) for size in cell.state_size)  # (1, s)
    fused = run_sequence(cell, inputs, state, backend="fused")
    reference = run_sequence(cell, inputs, state, backend="reference")
    torch.testing.assert_close(fused, reference, rtol=0, atol=0)
