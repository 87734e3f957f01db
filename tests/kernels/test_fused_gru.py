"""The fused GRU kernel (both reset forms) against the reference loop, and gradcheck through it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnkit.cells import GRUCell
from rnnkit.kernels import _common, _mkl
from rnnkit.kernels import gru as gru_kernels
from rnnkit.kernels._rows import column_blocks

from ._harness import (
    ACTIVATIONS,
    assert_backends_agree,
    build_problem,
    gradcheck_fused,
    make_problem,
    sequence_settings,
    step_gemm_packing,
    two_core_pipeline,
)

OPTIONS = st.fixed_dictionaries(
    {
        "activation": st.sampled_from(ACTIVATIONS),
        "recurrent_activation": st.sampled_from(ACTIVATIONS),
        "use_bias": st.booleans(),
        "reset_after": st.booleans(),
    }
)


# In float32 at B > 1 the step GEMMs run on the weights packed (MKL), else on OpenBLAS: both paths.
PACKING = pytest.mark.parametrize("packing", [True, False], ids=["packed", "openblas"])


@PACKING
@settings(max_examples=50, deadline=None)
@given(units=st.integers(1, 6), options=OPTIONS, sequence=sequence_settings())
def test_fused_matches_reference(packing, units, options, sequence):
    with step_gemm_packing(gru_kernels, packing):
        assert_backends_agree(build_problem("gru", units, options, sequence))


@settings(max_examples=50, deadline=None)
@given(units=st.integers(1, 6), options=OPTIONS, sequence=sequence_settings())
def test_the_two_core_pipeline_matches_reference(units, options, sequence):
    """As above, with the input projection and the weight and input gradients computed chunk by
    chunk next to the recurrence."""
    with two_core_pipeline():
        assert _common.pipeline_chunk("gru", 2, 2, 1, 3, 1) == 1
        assert_backends_agree(build_problem("gru", units, options, sequence))


@pytest.mark.parametrize(
    "options",
    [
        {"reset_after": True},
        {"reset_after": False},
        {"reset_after": True, "use_bias": False},
        {"reset_after": False, "recurrent_activation": "hard_sigmoid"},
    ],
    ids=["reset_after", "reset_before", "reset_after-no_bias", "reset_before-hard_sigmoid"],
)
@pytest.mark.parametrize("zero_output", [False, True])
def test_gradcheck(options, zero_output):
    cell = GRUCell(3, input_size=2, dtype=torch.float64, **options)
    problem = make_problem(
        cell, batch=2, steps=4, mask_kind="random", recurrent=True, zero_output=zero_output, seed=5
    )
    assert gradcheck_fused(problem)
    with two_core_pipeline():
        assert gradcheck_fused(problem)


# The hypothesis draws keep units <= 6, under one vector of the row loops: these sizes run their
# vector bodies and remainders (37 = 2 * 16 + 5), and at B=32, H=128 the step GEMMs of both
# passes run in column blocks.
@pytest.mark.parametrize(("dtype", "packing"), [(torch.float32, True), (torch.float32, False),
                                                (torch.float64, False)],
                         ids=["float32-packed", "float32", "float64"])
@pytest.mark.parametrize(
    "options",
    [{"reset_after": True}, {"reset_after": False}, {"activation": "relu", "use_bias": False}],
    ids=["reset_after", "reset_before", "relu-no_bias"],
)
@pytest.mark.parametrize(
    ("batch", "units", "mask_kind"), [(3, 37, "random"), (32, 128, "none")], ids=["H37", "B32-H128"]
)
def test_fused_matches_reference_wide(batch, units, mask_kind, options, dtype, packing):
    cell = GRUCell(units, input_size=5, dtype=dtype, **options)
    problem = make_problem(
        cell, batch=batch, steps=3, mask_kind=mask_kind, recurrent=False, zero_output=False, seed=7
    )
    with torch.no_grad():  # gates off saturation: every path's gradient matters
        for param in cell.parameters():
            param.mul_(units**-0.5)
    with step_gemm_packing(gru_kernels, packing):
        assert_backends_agree(problem)


@pytest.mark.parametrize("reset_after", [True, False])
def test_packing_in_float32_at_more_than_one_row(reset_after):
    """The recurrent weights are packed in float32 at B > 1 up to the size limit (the wide
    test's sizes included), with a row of room per step GEMM in the saved arrays; float64, B=1
    and larger sizes run on OpenBLAS and save no room."""
    for batch, units in ((3, 37), (32, 128)):
        assert gru_kernels.packing(np.float32, batch, units)
    assert not gru_kernels.packing(np.float64, 3, 37)
    assert not gru_kernels.packing(np.float32, 1, 37)
    assert not gru_kernels.packing(np.float32, 64, 512)
    width = 3 * 37 if reset_after else 2 * 37
    rows, room = gru_kernels.saved_shapes(3, 5, 4, 37, False, reset_after, True)[-1]
    assert rows == (1 if reset_after else 2)
    assert room >= max(_mkl.packed_size(3, width, 37), _mkl.packed_size(3, 37, width)) > 0
    assert gru_kernels.saved_shapes(3, 5, 4, 37, False, reset_after, False)[-1][1] == 0


def test_step_gemms_split_at_b32_h128():
    """B=32, H=128 in the wide test runs the column-block GEMMs of both passes and both forms
    (if the block limit moves, that test needs another size) when not packed."""
    assert column_blocks(32, 128, 3 * 128) > 1  # forward, reset-after: h (B, H) @ U^T (H, 3H)
    assert column_blocks(32, 128, 2 * 128) > 1  # forward, reset-before: U_rz^T (H, 2H)
    assert column_blocks(32, 3 * 128, 128) > 1  # backward: d_proj (B, 3H) @ U (3H, H)


def test_backward_work_arrays_reused_across_sizes():
    """The backward's work arrays are kept between calls: a smaller call after a larger one (in
    a slice of the larger buffer) and the larger one again still match the reference."""
    for units, batch, steps in ((24, 5, 6), (7, 2, 3), (24, 5, 6)):
        cell = GRUCell(units, input_size=4, dtype=torch.float64)
        problem = make_problem(
            cell, batch=batch, steps=steps, mask_kind="random", recurrent=True,
            zero_output=False, seed=units,
        )
        assert_backends_agree(problem)
