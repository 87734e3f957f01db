"""Fixtures for the interop tests: the Keras and onnxruntime peers, and comparison helpers.

Tests that need TensorFlow-Keras or onnxruntime skip when the peer cannot be imported; the rest
(torch conversions, file damage) run everywhere.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # keep TF's plain float path
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

ATOL = 1e-5


@pytest.fixture(scope="session")
def keras():
    """Keras 3 on TensorFlow, single-threaded."""
    tf = pytest.importorskip("tensorflow")
    keras = pytest.importorskip("keras")
    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # already initialised elsewhere in the session
        pass
    return keras


@pytest.fixture(scope="session")
def ort():
    return pytest.importorskip("onnxruntime")


def run_onnx(ort, path, feeds: dict) -> list[np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def as_numpy(value):
    if isinstance(value, (list, tuple)):
        return [as_numpy(item) for item in value]
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def assert_close(ours, theirs, atol: float = ATOL) -> None:
    """Same structure, shapes and values within ``atol``."""
    ours, theirs = as_numpy(ours), as_numpy(theirs)
    if isinstance(theirs, list):
        assert isinstance(ours, list) and len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            assert_close(a, b, atol)
        return
    assert ours.shape == theirs.shape, f"shape {ours.shape} != expected {theirs.shape}"
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=atol)


def randomize(model, seed: int = 0) -> None:
    """Give every weight (biases included) a distinct random value, so layouts cannot hide."""
    draw = np.random.default_rng(seed)
    model.set_weights([draw.uniform(-0.5, 0.5, np.shape(w)).astype("float32")
                       for w in model.get_weights()])
