"""The fused SimpleRNN kernel against the reference loop, and gradcheck through it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnkit.cells import SimpleRNNCell
from rnnkit.kernels import _common, _mkl
from rnnkit.kernels import rnn as rnn_kernels

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
        "use_bias": st.booleans(),
        "recurrent_bias": st.booleans(),
    }
)


# In float32 at B > 1 the step GEMMs run on the weights packed (MKL), else on OpenBLAS: both paths.
PACKING = pytest.mark.parametrize("packing", [True, False], ids=["packed", "openblas"])


@PACKING
@settings(max_examples=40, deadline=None)
@given(units=st.integers(1, 6), options=OPTIONS, sequence=sequence_settings())
def test_fused_matches_reference(packing, units, options, sequence):
    with step_gemm_packing(rnn_kernels, packing):
        assert_backends_agree(build_problem("rnn", units, options, sequence))


@settings(max_examples=40, deadline=None)
@given(units=st.integers(1, 6), options=OPTIONS, sequence=sequence_settings())
def test_the_two_core_pipeline_matches_reference(units, options, sequence):
    """As above, with the input projection and the weight and input gradients computed chunk by
    chunk next to the recurrence."""
    with two_core_pipeline():
        assert _common.pipeline_chunk("rnn", 2, 2, 1, 1, 1) == 1
        assert_backends_agree(build_problem("rnn", units, options, sequence))


@pytest.mark.parametrize(
    "options",
    [
        {"activation": "tanh"},
        {"activation": "sigmoid", "recurrent_bias": True},
        {"activation": "linear", "use_bias": False},
    ],
    ids=["tanh", "sigmoid-recurrent_bias", "linear-no_bias"],
)
@pytest.mark.parametrize("mask_kind", ["none", "random"])
def test_gradcheck(options, mask_kind):
    cell = SimpleRNNCell(3, input_size=2, dtype=torch.float64, **options)
    problem = make_problem(
        cell, batch=2, steps=4, mask_kind=mask_kind, recurrent=True, zero_output=False, seed=3
    )
    assert gradcheck_fused(problem)
    with two_core_pipeline():
        assert gradcheck_fused(problem)


# The hypothesis draws keep units <= 6, under one vector of the row loops: 37 = 2 * 16 + 5 runs
# their vector bodies and remainders (tanh has its own inlined loop, the others go through
# ``activate``).
@pytest.mark.parametrize(("dtype", "packing"), [(torch.float32, True), (torch.float32, False),
                                                (torch.float64, False)],
                         ids=["float32-packed", "float32", "float64"])
@pytest.mark.parametrize("activation", ["tanh", "sigmoid"])
@pytest.mark.parametrize("mask_kind", ["none", "random"])
def test_fused_matches_reference_wide(activation, mask_kind, dtype, packing):
    cell = SimpleRNNCell(37, input_size=5, dtype=dtype, activation=activation,
                         recurrent_bias=True)
    problem = make_problem(
        cell, batch=3, steps=5, mask_kind=mask_kind, recurrent=True, zero_output=False, seed=11
    )
    with torch.no_grad():  # a contracting recurrence, so that the gradients stay moderate
        for param in cell.parameters():
            param.mul_(37**-0.5)
    with step_gemm_packing(rnn_kernels, packing):
        assert_backends_agree(problem)


def test_packing_in_float32_at_more_than_one_row():
    """U is packed in float32 at B > 1 up to the size limit, with room for it in the saved
    arrays; float64, B=1 and larger sizes run on OpenBLAS and save no room."""
    assert rnn_kernels.packing(np.float32, 3, 37)
    assert not rnn_kernels.packing(np.float64, 3, 37)
    assert not rnn_kernels.packing(np.float32, 1, 37)
    assert not rnn_kernels.packing(np.float32, 64, 1024)
    room = _mkl.packed_size(3, 37, 37)
    assert room >= 37 * 37
    assert rnn_kernels.saved_shapes(3, 5, 4, 37, False, True)[-1] == (1, room)
    assert rnn_kernels.saved_shapes(3, 5, 4, 37, False, False)[-1] == (1, 0)
