"""Fixtures for the model tests: the Keras peer, and the seeds' models built on both sides.

Each builder in ``keras_cases`` returns ``(rnnkit model, keras model, inputs)`` for one of the
seeds' programs, with the same layers and names on both sides; the parity tests copy Keras's
weights with model-level ``set_weights(keras_model.get_weights())``.
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
    """Keras 3 on TensorFlow; tests using it skip when it cannot be imported."""
    tf = pytest.importorskip("tensorflow")
    keras = pytest.importorskip("keras")
    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # already initialised elsewhere in the session
        pass
    return keras


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def as_numpy(value):
    if isinstance(value, (list, tuple)):
        return [as_numpy(item) for item in value]
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def assert_close(ours, theirs, atol: float = ATOL) -> None:
    """Same structure, shapes and values (within ``atol``)."""
    ours, theirs = as_numpy(ours), as_numpy(theirs)
    if isinstance(theirs, list):
        assert isinstance(ours, list) and len(ours) == len(theirs)
        for a, b in zip(ours, theirs, strict=True):
            assert_close(a, b, atol)
        return
    assert ours.shape == theirs.shape, f"shape {ours.shape} != expected {theirs.shape}"
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=atol)


def summary_of(model) -> list[str]:
    lines: list[str] = []
    model.summary(print_fn=lines.append)
    return lines


def summary_table(lines: list[str]) -> list[tuple[str, str, int]]:
    """``(layer name, output shape text, param count)`` from the rows of a summary."""
    rows = []
    for line in lines:
        cells = [cell.strip() for cell in line.strip("│").split("│")]
        if line.startswith("│") and cells[0]:
            rows.append((cells[0].split(" (")[0], cells[1], int(cells[2].replace(",", ""))))
    return rows


def summary_total(lines: list[str], label: str = "Total") -> int:
    for line in lines:
        if line.strip().startswith(f"{label} params:"):
            return int(line.split(":")[1].split("(")[0].strip().replace(",", ""))
    raise AssertionError(f"no '{label} params' line in the summary")
