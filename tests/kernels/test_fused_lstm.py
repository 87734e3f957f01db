"""The fused LSTM kernel (peepholes, layer norm, projection) against the reference loop, and
gradcheck through it."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnkit.cells import LSTMCell
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
        "recurrent_activation": st.sampled_from(ACTIVATIONS),
        "use_bias": st.booleans(),
        "recurrent_bias": st.booleans(),
        "peephole": st.booleans(),
        "layer_norm": st.booleans(),
    }
)


@st.composite
def units_and_projection(draw):
    units = draw(st.integers(1, 6))
    proj_size = draw(st.integers(0, units - 1)) if units > 1 else 0
    return units, proj_size


@settings(max_examples=60, deadline=None)
@given(shape=units_and_projection(), options=OPTIONS, sequence=sequence_settings())
def test_fused_matches_reference(shape, options, sequence):
    units, proj_size = shape
    # Layer norm over one unit is degenerate (its output is the bias): torch's fp32 backward then
    # returns rounding noise amplified by 1/sqrt(eps), where the kernel returns the exact zero.
    options = {**options, "proj_size": proj_size, "layer_norm": options["layer_norm"] and units > 1}
    assert_backends_agree(build_problem("lstm", units, options, sequence))


@settings(max_examples=60, deadline=None)
@given(shape=units_and_projection(), options=OPTIONS, sequence=sequence_settings())
def test_the_two_core_pipeline_matches_reference(shape, options, sequence):
    """As above, with the input projection and the weight and input gradients computed chunk by
    chunk next to the recurrence."""
    units, proj_size = shape
    options = {**options, "proj_size": proj_size, "layer_norm": options["layer_norm"] and units > 1}
    with two_core_pipeline():
        assert _common.pipeline_chunk("lstm", 2, 2, 1, 4, 1) == 1
        assert_backends_agree(build_problem("lstm", units, options, sequence))


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"peephole": True},
        {"layer_norm": True},
        {"proj_size": 2},
        {"peephole": True, "layer_norm": True, "proj_size": 2, "recurrent_bias": True},
        {"use_bias": False, "recurrent_activation": "hard_sigmoid"},
    ],
    ids=["plain", "peephole", "layer_norm", "proj", "all_options", "no_bias-hard_sigmoid"],
)
def test_gradcheck(options):
    cell = LSTMCell(3, input_size=2, dtype=torch.float64, **options)
    problem = make_problem(
        cell, batch=2, steps=4, mask_kind="random", recurrent=True, zero_output=False, seed=7
    )
    assert gradcheck_fused(problem)
    with two_core_pipeline():
        assert gradcheck_fused(problem)
