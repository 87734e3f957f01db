"""Shared machinery of the kernel tests: random problems, both backends, and the comparison.

A *problem* is a cell with random parameters plus random inputs, initial state, masks and upstream
gradients. :func:`run_backend` returns everything the fused kernel must reproduce: outputs, final
state and the gradients of inputs, initial state and every parameter.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
from dataclasses import dataclass
from unittest import mock

import torch
from hypothesis import assume, currently_in_test_context
from hypothesis import strategies as st

from rnnkit.cells import CELL_CLASSES, BuiltinCell
from rnnkit.cells.base import BoundCell, CellWeights
from rnnkit.kernels import _common, _mkl, run_sequence

ACTIVATIONS = ("tanh", "sigmoid", "hard_sigmoid", "relu", "linear")
MASK_KINDS = ("none", "random", "left_padded", "right_padded")
TOLERANCE = {torch.float32: 1e-5, torch.float64: 1e-10}
ROUNDING_SPREAD = 10  # see assert_backends_agree
BOUND = 1e4  # draws whose reference results exceed this are discarded


@dataclass
class Problem:
    """A cell and one call's arguments, with the upstream gradients of its results."""

    cell: BuiltinCell
    inputs: torch.Tensor  # (B, T, I)
    state: tuple[torch.Tensor, ...]  # (B, s) each
    mask: torch.Tensor | None  # (B, T) bool
    recurrent_mask: torch.Tensor | None  # (B, H_rec)
    zero_output_for_mask: bool
    d_outputs: torch.Tensor  # (B, T, O)
    d_state: tuple[torch.Tensor, ...]


def randomise(cell: BuiltinCell, generator: torch.Generator) -> BuiltinCell:
    """Redraw every parameter: default zero biases and unit gains would hide wrong gradients."""
    with torch.no_grad():
        for param in cell.parameters():
            param.copy_(0.6 * torch.randn(param.shape, generator=generator, dtype=param.dtype))
    return cell


def make_mask(kind: str, batch: int, steps: int, generator: torch.Generator):
    """A ``(B, T)`` bool mask of ``kind``; some rows may be entirely masked."""
    if kind == "none":
        return None
    if kind == "random":
        mask = torch.rand(batch, steps, generator=generator) > 0.35
        dead_rows = torch.rand(batch, 1, generator=generator) < 0.2
        return mask & ~dead_rows
    lengths = torch.randint(0, steps + 1, (batch, 1), generator=generator)
    positions = torch.arange(steps)[None]  # (1, T)
    if kind == "right_padded":
        return positions < lengths
    return positions >= steps - lengths


def make_problem(
    cell: BuiltinCell,
    batch: int,
    steps: int,
    mask_kind: str,
    recurrent: bool,
    zero_output: bool,
    seed: int,
) -> Problem:
    """Random inputs, state, masks and upstream gradients for ``cell`` (already built)."""
    generator = torch.Generator().manual_seed(seed)
    dtype = cell.param_dtype

    def randn(*shape):
        return torch.randn(*shape, generator=generator, dtype=dtype)

    randomise(cell, generator)
    state = tuple(0.5 * randn(batch, size) for size in cell.state_size)
    recurrent_mask = None
    if recurrent:
        keep = torch.rand(batch, cell.state_size[0], generator=generator) > 0.25
        recurrent_mask = keep.to(dtype) / 0.75
    return Problem(
        cell=cell,
        inputs=randn(batch, steps, cell.input_size),
        state=state,
        mask=make_mask(mask_kind, batch, steps, generator),
        recurrent_mask=recurrent_mask,
        zero_output_for_mask=zero_output,
        d_outputs=randn(batch, steps, cell.output_size),
        d_state=tuple(randn(*s.shape) for s in state),
    )


def run_backend(problem: Problem, backend: str) -> dict[str, torch.Tensor]:
    """Outputs, final state and all gradients of ``problem`` on ``backend``, by name."""
    inputs = problem.inputs.clone().requires_grad_()
    state = tuple(s.clone().requires_grad_() for s in problem.state)
    outputs, final = run_sequence(
        problem.cell,
        inputs,
        state,
        mask=problem.mask,
        recurrent_mask=problem.recurrent_mask,
        zero_output_for_mask=problem.zero_output_for_mask,
        backend=backend,
    )
    loss = (outputs * problem.d_outputs).sum()
    loss = loss + sum((f * d).sum() for f, d in zip(final, problem.d_state))
    names, params = zip(*problem.cell.named_parameters())
    grads = torch.autograd.grad(loss, (inputs, *state, *params))
    results = {"outputs": outputs, **{f"final_state[{k}]": f for k, f in enumerate(final)}}
    grad_names = ("inputs", *(f"state[{k}]" for k in range(len(state))), *names)
    results.update({f"grad {name}": grad for name, grad in zip(grad_names, grads)})
    return results


def _max_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return (actual.double() - expected.double()).abs().max().item() if expected.numel() else 0.0


def _scale(expected: torch.Tensor) -> float:
    return max(1.0, expected.abs().max().item()) if expected.numel() else 1.0


def in_float64(problem: Problem) -> Problem:
    """The same problem (same values, fp32 ones exactly representable) in float64."""

    def cast(tensor):
        return tensor if tensor is None or tensor.dtype == torch.bool else tensor.double()

    cell = copy.deepcopy(problem.cell).double()
    return Problem(
        cell,
        cast(problem.inputs),
        tuple(map(cast, problem.state)),
        problem.mask,
        cast(problem.recurrent_mask),
        problem.zero_output_for_mask,
        cast(problem.d_outputs),
        tuple(map(cast, problem.d_state)),
    )


def _rounding_sensitivity(problem: Problem, truth: dict) -> dict[str, float]:
    """How far each float64 result moves when every input, state and weight of ``problem``
    moves by up to one float32 rounding (relative 2^-24, two random draws, the larger): how
    much float32 rounding this problem amplifies."""
    generator = torch.Generator().manual_seed(0)

    def nudge(tensor):
        if tensor is None or tensor.dtype == torch.bool:
            return tensor
        noise = 2 * torch.rand(tensor.shape, generator=generator, dtype=tensor.dtype) - 1
        return tensor * (1 + 2.0**-24 * noise)

    moved = dict.fromkeys(truth, 0.0)
    for _ in range(2):
        exact = in_float64(problem)
        with torch.no_grad():
            for param in exact.cell.parameters():
                param.copy_(nudge(param))
        nudged = dataclasses.replace(exact, inputs=nudge(exact.inputs),
                                     state=tuple(map(nudge, exact.state)))
        for name, value in run_backend(nudged, "reference").items():
            moved[name] = max(moved[name], _max_error(value, truth[name]))
    return moved


def assert_backends_agree(problem: Problem) -> None:
    """Fused and reference results agree to ``TOLERANCE`` relative to each tensor's scale.

    The bound is ``tol * max(1, max |reference|)``: fp32 rounding of a gradient summed over many
    steps scales with the gradient's size. A few fp32 draws are ill-conditioned (layer norm of a
    near-constant row divides by ~sqrt(var + eps); gates of a tanh that let gradients grow step
    after step) and the two fp32 results then differ by more than 1e-5 though each is within
    rounding of the truth. There the fused result must instead be within that bound of the
    float64 truth, or at most ``ROUNDING_SPREAD`` times as far from it as the larger of: the fp32
    reference, and the truth itself moves when the problem's values move by one fp32 rounding
    (:func:`_rounding_sensitivity`; a reference that happened to land near the truth is no
    measure of fp32's spread). A wrong formula errs by orders of magnitude more.
    """
    reference = run_backend(problem, "reference")
    bounded = all(bool((value.abs() <= BOUND).all()) for value in reference.values())
    if currently_in_test_context():
        # Unbounded activations (linear, relu gates) can blow up, squaring values every step; such
        # draws compare rounding noise amplified without limit (or inf with inf).
        assume(bounded)
    assert bounded, f"the reference exceeds {BOUND:g}: choose a problem that stays bounded"
    fused = run_backend(problem, "fused")
    assert fused.keys() == reference.keys()
    tol, truth, sensitivity = TOLERANCE[problem.inputs.dtype], None, None
    for name, expected in reference.items():
        actual = fused[name]
        assert actual.shape == expected.shape, name
        assert actual.dtype == expected.dtype, name
        error = _max_error(actual, expected)
        if error <= tol * _scale(expected):
            continue
        assert problem.inputs.dtype == torch.float32, (
            f"{name}: max |fused - reference| = {error:.3g}"
        )
        truth = truth or run_backend(in_float64(problem), "reference")
        fused_error, reference_error = (
            _max_error(r[name], truth[name]) for r in (fused, reference)
        )
        if fused_error <= max(tol * _scale(expected), ROUNDING_SPREAD * reference_error):
            continue
        sensitivity = sensitivity or _rounding_sensitivity(problem, truth)
        assert fused_error <= ROUNDING_SPREAD * sensitivity[name], (
            f"{name}: max |fused - reference| = {error:.3g}; from the float64 truth, fused is "
            f"{fused_error:.3g} away, reference {reference_error:.3g}, and the truth moves "
            f"{sensitivity[name]:.3g} with the problem's values moved by one float32 rounding"
        )


@st.composite
def sequence_settings(draw):
    """Shapes, dtype, masks and seed of one problem (the cell's options are drawn apart)."""
    return {
        "batch": draw(st.integers(1, 4)),
        "steps": draw(st.integers(1, 6)),
        "input_size": draw(st.integers(1, 5)),
        "dtype": draw(st.sampled_from([torch.float32, torch.float64])),
        "mask_kind": draw(st.sampled_from(MASK_KINDS)),
        "recurrent": draw(st.booleans()),
        "zero_output": draw(st.booleans()),
        "seed": draw(st.integers(0, 2**31 - 1)),
    }


def build_problem(family: str, units: int, options: dict, settings: dict) -> Problem:
    """The cell of ``family`` with ``options`` and a random problem from ``settings``."""
    cell = CELL_CLASSES[family](
        units, input_size=settings["input_size"], dtype=settings["dtype"], **options
    )
    return make_problem(
        cell,
        settings["batch"],
        settings["steps"],
        settings["mask_kind"],
        settings["recurrent"],
        settings["zero_output"],
        settings["seed"],
    )


def gradcheck_fused(problem: Problem) -> bool:
    """``torch.autograd.gradcheck`` of the fused path w.r.t. inputs, state and every weight.

    The weights go in as plain tensors through a :class:`BoundCell`, as the ``rnnkit.nn`` face does.
    """
    cell = problem.cell
    names, params = zip(*cell.named_parameters())
    n_state = len(problem.state)

    def run(inputs, *tensors):
        weights = CellWeights(**dict(zip(names, tensors[n_state:])))
        bound = BoundCell(type(cell), cell.spec, weights)
        outputs, final = run_sequence(
            bound,
            inputs,
            tensors[:n_state],
            mask=problem.mask,
            recurrent_mask=problem.recurrent_mask,
            zero_output_for_mask=problem.zero_output_for_mask,
            backend="fused",
        )
        return (outputs, *final)

    leaves = (problem.inputs, *problem.state, *(p.detach() for p in params))
    leaves = tuple(t.clone().requires_grad_() for t in leaves)
    return torch.autograd.gradcheck(run, leaves, eps=1e-6, atol=1e-6, rtol=1e-4)


@contextlib.contextmanager
def two_core_pipeline():
    """Two torch threads and every call of two steps or more of a family with companions
    pipelined, a step per chunk: the GEMMs over all steps on the second core (see
    rnnkit.kernels._sync)."""
    saved = (_common.PIPELINE_MIN_MACS, _common.PIPELINE_MIN_ROWS, torch.get_num_threads())
    _common.PIPELINE_MIN_MACS = dict.fromkeys(saved[0], 0)
    _common.PIPELINE_MIN_ROWS = 1
    torch.set_num_threads(2)
    try:
        yield
    finally:
        _common.PIPELINE_MIN_MACS, _common.PIPELINE_MIN_ROWS = saved[:2]
        torch.set_num_threads(saved[2])


@contextlib.contextmanager
def step_gemm_packing(kernels, on: bool):
    """The step GEMMs of the family module ``kernels`` on their weights packed once per call
    (float32 at B > 1, the default where MKL is found: asserted, so that the path is never
    skipped silently), or with ``on`` false on OpenBLAS everywhere (see rnnkit.kernels._mkl)."""
    if on:
        assert _mkl.available(), "MKL's packed GEMM was not found (see rnnkit.kernels._mkl)"
        yield
    else:
        with mock.patch.object(kernels, "packing", lambda *sizes: False):
            yield
