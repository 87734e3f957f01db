"""Stateful metrics against TF-Keras's, accumulated over several batches, with sample weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnkit import metrics
from rnnkit.training.compile_state import CompileState

rng = np.random.default_rng(3)
CLASSES = 5


def _batches(kind: str, sizes=(7, 4, 9)):
    """(y_true, y_pred, sample_weight) batches of uneven sizes."""
    out = []
    for size in sizes:
        weights = rng.uniform(0, 2, size).astype("float32")
        if kind == "binary":
            y_true = rng.integers(0, 2, (size, 1)).astype("float32")
            y_pred = rng.uniform(0, 1, (size, 1)).astype("float32")
        elif kind in ("categorical", "sparse"):
            labels = rng.integers(0, CLASSES, size)
            y_pred = rng.uniform(0, 1, (size, CLASSES)).astype("float32")
            y_true = labels if kind == "sparse" else np.eye(CLASSES, dtype="float32")[labels]
        else:
            y_true = rng.uniform(0.5, 2, (size, 3)).astype("float32")
            y_pred = rng.normal(size=(size, 3)).astype("float32")
        out.append((y_true, y_pred, weights))
    return out


CASES = [
    ("BinaryAccuracy", "binary", {}), ("BinaryAccuracy", "binary", {"threshold": 0.3}),
    ("CategoricalAccuracy", "categorical", {}), ("SparseCategoricalAccuracy", "sparse", {}),
    ("TopKCategoricalAccuracy", "categorical", {"k": 2}),
    ("SparseTopKCategoricalAccuracy", "sparse", {"k": 3}),
    ("MeanAbsoluteError", "regression", {}), ("MeanSquaredError", "regression", {}),
    ("RootMeanSquaredError", "regression", {}), ("MeanAbsolutePercentageError", "regression", {}),
    ("MeanSquaredLogarithmicError", "regression", {}), ("AUC", "binary", {}),
]


@pytest.mark.peer
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize(("name", "kind", "kwargs"), CASES,
                         ids=[f"{n}-{'-'.join(map(str, k.values())) or 'default'}"
                              for n, _, k in CASES])
def test_metric_accumulates_like_keras(keras, name, kind, kwargs, weighted):
    ours = getattr(metrics, name)(**kwargs)
    theirs = getattr(keras.metrics, name)(**kwargs)
    for y_true, y_pred, weights in _batches(kind):
        weights = weights if weighted else None
        ours.update_state(y_true, torch.from_numpy(y_pred), weights)
        theirs.update_state(y_true, y_pred, sample_weight=weights)
    np.testing.assert_allclose(float(ours.result()), float(theirs.result()), rtol=1e-5,
                               atol=1e-6)
    ours.reset_state()
    assert float(ours.result()) == 0.0


def test_accuracy_is_the_fraction_over_all_samples_not_a_mean_of_batch_means():
    metric = metrics.BinaryAccuracy()
    metric.update_state(np.array([[1.0]]), torch.tensor([[0.9]]))  # batch 1: 1/1
    metric.update_state(np.zeros((3, 1)), torch.tensor([[0.9], [0.9], [0.1]]))  # batch 2: 1/3
    assert float(metric.result()) == pytest.approx(2 / 4)


@pytest.mark.parametrize(("y_true", "y_pred", "loss", "expected"), [
    (np.zeros((4, 1)), np.zeros((4, 1)), "mse", "BinaryAccuracy"),
    (np.zeros((4, 3)), np.zeros((4, 3)), "binary_crossentropy", "BinaryAccuracy"),
    (np.zeros(4), np.zeros((4, 3)), "sparse_categorical_crossentropy",
     "SparseCategoricalAccuracy"),
    (np.zeros((4, 1)), np.zeros((4, 3)), "mse", "SparseCategoricalAccuracy"),
    (np.zeros((4, 3)), np.zeros((4, 3)), "sparse_categorical_crossentropy",
     "SparseCategoricalAccuracy"),
    (np.zeros((4, 3)), np.zeros((4, 3)), "categorical_crossentropy", "CategoricalAccuracy"),
])
def test_accuracy_is_chosen_from_loss_and_shapes(y_true, y_pred, loss, expected):
    state = CompileState("sgd", loss, metrics=["accuracy"])
    state.build([torch.tensor(y_true)], [torch.tensor(y_pred, dtype=torch.float32)], None)
    (_, metric, _), = state.metrics
    assert type(metric).__name__ == expected
    assert metric.name == "accuracy"


def test_metric_names_follow_the_identifier():
    state = CompileState("sgd", "mse", metrics=["mae", "acc", metrics.RootMeanSquaredError(),
                                                "mean_squared_error"])
    state.build([torch.zeros(2, 1)], [torch.zeros(2, 1)], None)
    assert state.metric_names == ["loss", "mae", "acc", "root_mean_squared_error",
                                  "mean_squared_error"]


def test_unknown_metric_lists_the_valid_names():
    with pytest.raises(ValueError, match=r"unknown name 'acuracy'.*'accuracy'"):
        metrics.get("acuracy")
