"""The fused GRU kernel (both reset forms) against the reference loop, and gradcheck through it."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnkit.cells import GRUCell

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
        "recurrent_activation": st.sampled_from(ACTIVATIONS),
        "use_bias": st.booleans(),
        "reset_after": st.booleans(),
    }
)


@settings(max_examples=50, deadline=None)
@given(units=st.integers(1, 6), options=OPTIONS, sequence=sequence_settings())
def test_fused_matches_reference(units, options, sequence):
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
