"""The fused SimpleRNN kernel against the reference loop, and gradcheck through it."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnkit.cells import SimpleRNNCell
from rnnkit.kernels import _common

from ._harness import (
    ACTIVATIONS,
    assert_backends_agree,
    build_problem,
    gradcheck_fused,
    make_problem,
    sequence_settings,
    two_core_pipeline,
)

OPTIONS = st.fixed_dictionaries(
    {
        "activation": st.sampled_from(ACTIVATIONS),
        "use_bias": st.booleans(),
        "recurrent_bias": st.booleans(),
    }
)


@settings(max_examples=40, deadline=None)
@given(units=st.integers(1, 6), options=OPTIONS, sequence=sequence_settings())
def test_fused_matches_reference(units, options, sequence):
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
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("activation", ["tanh", "sigmoid"])
@pytest.mark.parametrize("mask_kind", ["none", "random"])
def test_fused_matches_reference_wide(activation, mask_kind, dtype):
    cell = SimpleRNNCell(37, input_size=5, dtype=dtype, activation=activation,
                         recurrent_bias=True)
    problem = make_problem(
        cell, batch=3, steps=5, mask_kind=mask_kind, recurrent=True, zero_output=False, seed=11
    )
    with torch.no_grad():  # a contracting recurrence, so that the gradients stay moderate
        for param in cell.parameters():
            param.mul_(37**-0.5)
    assert_backends_agree(problem)
