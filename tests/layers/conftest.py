"""Shared fixtures for the Keras-face layer tests: the Keras peer and a parity harness.

Parity tests build a Keras layer and the rnnkit layer with the same arguments, copy Keras's
weights into rnnkit with ``set_weights(keras_layer.get_weights())`` and require float32 outputs to
agree within 1e-5, and ``count_params()`` to agree exactly.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from _peer_helpers import ATOL, as_numpy, assert_close  # noqa: F401


def assert_same_outputs(ours, theirs, atol: float = ATOL) -> None:
    """Outputs (one tensor or a list) agree in structure, shape and values within ``atol``."""
    ours, theirs = as_numpy(ours), as_numpy(theirs)
    if isinstance(theirs, list):
        assert isinstance(ours, list), f"expected a list of {len(theirs)} outputs, got one tensor"
        assert len(ours) == len(theirs)
        for index, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            assert a.shape == b.shape, f"output {index}: shape {a.shape} != Keras {b.shape}"
            np.testing.assert_allclose(a, b, rtol=0, atol=atol, err_msg=f"output {index}")
        return
    assert not isinstance(ours, list), "expected one tensor, got a list"
    assert ours.shape == theirs.shape, f"shape {ours.shape} != Keras {theirs.shape}"
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=atol)


def check_parity(
    ours, theirs, inputs, *, keras_kwargs=None, round_trip: bool = True, **call_kwargs
):
    """Copy Keras's weights into ``ours``, compare outputs and counts, then the reverse direction.

    ``inputs`` and ``call_kwargs`` go to both layers (``keras_kwargs`` replaces the latter for
    Keras). The reverse direction draws new weights in rnnkit, loads ``ours.get_weights()`` into
    Keras and compares again. Returns rnnkit's output.
    """
    keras_kwargs = call_kwargs if keras_kwargs is None else keras_kwargs
    expected = theirs(inputs, **keras_kwargs)
    ours(inputs, **call_kwargs)  # builds
    ours.set_weights(theirs.get_weights())
    assert ours.count_params() == theirs.count_params()
    got = ours(inputs, **call_kwargs)
    assert_same_outputs(got, expected)
    if round_trip and ours.get_weights():
        rng = np.random.default_rng(1)
        ours.set_weights(
            [rng.uniform(-0.5, 0.5, w.shape).astype(w.dtype) for w in ours.get_weights()]
        )
        theirs.set_weights(ours.get_weights())
        assert_same_outputs(ours(inputs, **call_kwargs), theirs(inputs, **keras_kwargs))
    return got


@pytest.fixture
def parity():
    return check_parity


@pytest.fixture
def same_outputs():
    return assert_same_outputs


def assert_error_names(error: Exception, argument: str, *values) -> None:
    """``error``'s message names ``argument`` and contains each of ``values`` as its own token."""
    message = str(error)
    assert argument in message, f"{argument!r} not named in: {message}"
    for value in values:
        pattern = rf"(?<![\w.]){re.escape(str(value))}(?![\w.])"
        assert re.search(pattern, message), f"{value!r} missing from: {message}"


@pytest.fixture
def error_names():
    return assert_error_names
