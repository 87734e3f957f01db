"""Losses against TF-Keras's on the same arrays, with sample weights and from_logits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnkit import losses

rng = np.random.default_rng(7)
BATCH, CLASSES, STEPS = 6, 4, 5


def _probabilities(*shape):
    logits = rng.normal(size=shape).astype("float32")
    exp = np.exp(logits - logits.max(-1, keepdims=True))
    return exp / exp.sum(-1, keepdims=True)


def _regression(*shape):
    return rng.uniform(0.1, 2.0, shape).astype("float32"), rng.normal(size=shape).astype("float32")


def _cases():
    """(keras name, y_true, y_pred, kwargs)."""
    y_reg, p_reg = _regression(BATCH, 3)
    labels = rng.integers(0, CLASSES, BATCH)
    one_hot = np.eye(CLASSES, dtype="float32")[labels]
    binary = rng.integers(0, 2, (BATCH, 1)).astype("float32")
    probs = _probabilities(BATCH, CLASSES)
    logits = rng.normal(size=(BATCH, CLASSES)).astype("float32") * 3
    sigmoid = 1 / (1 + np.exp(-logits[:, :1]))
    sigmoid[0] = 1.0  # exercises the 1e-7 clipping
    return [
        ("mean_squared_error", y_reg, p_reg, {}),
        ("mean_absolute_error", y_reg, p_reg, {}),
        ("mean_absolute_percentage_error", y_reg, p_reg, {}),
        ("mean_squared_logarithmic_error", y_reg, np.abs(p_reg), {}),
        ("huber", y_reg, p_reg, {"delta": 0.7}),
        ("log_cosh", y_reg, p_reg, {}),
        ("binary_crossentropy", binary, sigmoid, {}),
        ("binary_crossentropy", binary, logits[:, :1], {"from_logits": True}),
        ("binary_crossentropy", binary, sigmoid, {"label_smoothing": 0.1}),
        ("categorical_crossentropy", one_hot, probs, {}),
        ("categorical_crossentropy", one_hot, logits, {"from_logits": True}),
        ("categorical_crossentropy", one_hot, probs, {"label_smoothing": 0.2}),
        ("sparse_categorical_crossentropy", labels, probs, {}),
        ("sparse_categorical_crossentropy", labels[:, None], logits, {"from_logits": True}),
        ("kl_divergence", probs, _probabilities(BATCH, CLASSES), {}),
        ("hinge", binary, logits[:, :1], {}),
        ("poisson", y_reg, np.abs(p_reg), {}),
        ("cosine_similarity", y_reg, p_reg, {}),
    ]


CASES = _cases()
IDS = [f"{name}-{'-'.join(kw) or 'plain'}" for name, _, _, kw in CASES]


@pytest.mark.peer
@pytest.mark.parametrize(("name", "y_true", "y_pred", "kwargs"), CASES, ids=IDS)
def test_loss_function_matches_keras(keras, name, y_true, y_pred, kwargs):
    ours = getattr(losses, name)(y_true, torch.from_numpy(y_pred), **kwargs)
    theirs = np.asarray(getattr(keras.losses, name)(y_true, y_pred, **kwargs))
    np.testing.assert_allclose(ours.numpy(), theirs, rtol=2e-5, atol=2e-6)


_CLASS_OF = {"mean_squared_error": "MeanSquaredError", "mean_absolute_error": "MeanAbsoluteError",
             "mean_absolute_percentage_error": "MeanAbsolutePercentageError",
             "mean_squared_logarithmic_error": "MeanSquaredLogarithmicError", "huber": "Huber",
             "log_cosh": "LogCosh", "binary_crossentropy": "BinaryCrossentropy",
             "categorical_crossentropy": "CategoricalCrossentropy",
             "sparse_categorical_crossentropy": "SparseCategoricalCrossentropy",
             "kl_divergence": "KLDivergence", "hinge": "Hinge", "poisson": "Poisson",
             "cosine_similarity": "CosineSimilarity"}


@pytest.mark.peer
@pytest.mark.parametrize(("name", "y_true", "y_pred", "kwargs"), CASES, ids=IDS)
def test_loss_class_with_sample_weight_matches_keras(keras, name, y_true, y_pred, kwargs):
    weights = rng.uniform(0, 2, BATCH).astype("float32")
    weights[1] = 0.0
    ours = getattr(losses, _CLASS_OF[name])(**kwargs)(y_true, torch.from_numpy(y_pred), weights)
    theirs = getattr(keras.losses, _CLASS_OF[name])(**kwargs)(y_true, y_pred, weights)
    np.testing.assert_allclose(float(ours), float(theirs), rtol=2e-5, atol=2e-6)


@pytest.mark.peer
@pytest.mark.parametrize("reduction", ["sum", "none", "mean_with_sample_weight"])
def test_reductions_match_keras(keras, reduction):
    y_true, y_pred = _regression(BATCH, 3)
    weights = rng.uniform(0, 2, BATCH).astype("float32")
    ours = losses.MeanSquaredError(reduction=reduction)(y_true, torch.from_numpy(y_pred), weights)
    theirs = keras.losses.MeanSquaredError(reduction=reduction)(y_true, y_pred, weights)
    np.testing.assert_allclose(ours.numpy(), np.asarray(theirs), rtol=1e-5)


@pytest.mark.peer
def test_sequence_targets_with_per_timestep_weights_match_keras(keras):
    y_true, y_pred = _regression(BATCH, STEPS, 2)
    weights = rng.uniform(0, 1, (BATCH, STEPS)).astype("float32")
    ours = losses.MeanSquaredError()(y_true, torch.from_numpy(y_pred), weights)
    theirs = keras.losses.MeanSquaredError()(y_true, y_pred, weights)
    np.testing.assert_allclose(float(ours), float(theirs), rtol=1e-5)


@pytest.mark.peer
def test_per_sample_weights_broadcast_over_timesteps(keras):
    """Keras refuses (B,) weights on (B, T) losses; rnnkit repeats each weight over time."""
    y_true, y_pred = _regression(BATCH, STEPS, 2)
    weights = rng.uniform(0, 1, BATCH).astype("float32")
    ours = losses.MeanSquaredError()(y_true, torch.from_numpy(y_pred), weights)
    expected = keras.losses.MeanSquaredError()(y_true, y_pred,
                                               np.repeat(weights[:, None], STEPS, 1))
    np.testing.assert_allclose(float(ours), float(expected), rtol=1e-5)


def test_rank_one_targets_are_aligned_not_broadcast():
    """(B,) targets against (B, 1) predictions are aligned, not broadcast to (B, B)."""
    y_true = np.array([0.0, 1.0, 2.0], "float32")
    y_pred = torch.tensor([[0.0], [1.0], [4.0]])
    assert float(losses.MeanSquaredError()(y_true, y_pred)) == pytest.approx(4.0 / 3.0)


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown name 'msqe'.*'mean_squared_error'"):
        losses.get("msqe")


def test_torch_loss_module_is_called_with_prediction_first():
    loss = losses.get(torch.nn.BCELoss())
    y_true = torch.tensor([[1.0], [0.0]])
    y_pred = torch.tensor([[0.9], [0.2]])
    expected = -(np.log(0.9) + np.log(0.8)) / 2
    assert float(loss(y_true, y_pred)) == pytest.approx(expected, rel=1e-6)
