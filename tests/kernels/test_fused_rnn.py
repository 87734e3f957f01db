"""The fused SimpleRNN kernel against the reference loop, and gradcheck through it."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnkit.cells import SimpleRNNCell

from ._harness import (
    ACTIVATIONS,
    assert_backends_agree,
    build_problem,
    gradcheck_fused,
    make_problem,
    sequence_settings,
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
