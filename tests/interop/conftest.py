"""Fixtures for the interop tests: the Keras and onnxruntime peers, and comparison helpers.

Tests that need TensorFlow-Keras or onnxruntime skip when the peer cannot be imported; the rest
(torch conversions, file damage) run everywhere.
"""

from __future__ import annotations

import numpy as np
import pytest

from _peer_helpers import ATOL, as_numpy, assert_close  # noqa: F401


@pytest.fixture(scope="session")
def ort():
    return pytest.importorskip("onnxruntime")


def run_onnx(ort, path, feeds: dict) -> list[np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def randomize(model, seed: int = 0) -> None:
    """Give every weight (biases included) a distinct random value, so layouts cannot hide."""
    draw = np.random.default_rng(seed)
    model.set_weights([draw.uniform(-0.5, 0.5, np.shape(w)).astype("float32")
                       for w in model.get_weights()])
