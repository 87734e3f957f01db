"""The core, embedding, shape and merging layers refuse bad input with a ValueError/TypeError
that names the argument, the expected value and the value it got."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnkit import layers

UNITS = 4
SEQUENCE = np.zeros((2, 5, 3), "float32")  # (B, T, F)


def _dense_built():
    dense = layers.Dense(UNITS)
    dense(SEQUENCE)
    return dense


# id: (call, error type, argument, expected, actual)
# fmt: off
CORE_CASES = {
    "dense-rank-1": (lambda: layers.Dense(UNITS)(np.zeros(3, "float32")),
                     ValueError, "inputs", "rank >= 2", "(3,)"),
    "dense-features": (lambda: _dense_built()(np.zeros((2, 5, 7), "float32")),
                       ValueError, "inputs", 3, 7),
    "dense-units": (lambda: layers.Dense(0), ValueError, "units", "positive integer", 0),
    "dense-regularizer": (lambda: layers.Dense(2, kernel_regularizer="l2"),
                          ValueError, "kernel_regularizer", "not supported", "rnnkit"),
    "dense-unknown-argument": (lambda: layers.Dense(2, kernel_size=3),
                               TypeError, "Dense", "unexpected", "['kernel_size']"),
    "embedding-fractional-ids": (lambda: layers.Embedding(10, 2)(np.array([[1.5, 2.0]])),
                                 TypeError, "inputs", "integer", "torch.float32"),
    "embedding-bool-ids": (lambda: layers.Embedding(10, 2)(np.ones((2, 3), bool)),
                           TypeError, "inputs", "integer", "torch.bool"),
    "embedding-id-too-large": (lambda: layers.Embedding(10, 2)(np.array([[1, 12, 3]])),
                               ValueError, "inputs", "input_dim", "max 12"),
    "embedding-negative-id": (lambda: layers.Embedding(10, 2)(np.array([[-1, 2]])),
                              ValueError, "inputs", "[0, 10)", "min -1"),
    "embedding-mask-bad-ids": (
        lambda: layers.Embedding(10, 2, mask_zero=True).compute_mask(np.array([[0, 10]])),
        ValueError, "inputs", "[0, 10)", "max 10"),
    "embedding-input-length": (
        lambda: layers.Embedding(10, 2, input_length=7)(np.ones((2, 5), "int64")),
        ValueError, "input_length", 7, "(2, 5)"),
    "embedding-input-dim": (lambda: layers.Embedding(0, 2),
                            ValueError, "input_dim", "positive integer", 0),
    "masking-rank-1": (lambda: layers.Masking()(np.zeros(4, "float32")),
                       ValueError, "inputs", "rank >= 2", "(4,)"),
    "masking-value": (lambda: layers.Masking("pad"), TypeError, "mask_value", "number", "str"),
    "dropout-rate": (lambda: layers.Dropout(1.5), ValueError, "rate", "[0, 1]", 1.5),
    "dropout-noise-shape": (
        lambda: layers.Dropout(0.5, noise_shape=(2, 3))(SEQUENCE, training=True),
        ValueError, "noise_shape", "(2, 3)", "(2, 5, 3)"),
    "dropout-integer-input": (lambda: layers.Dropout(0.5)(np.ones((2, 3), "int64")),
                              TypeError, "inputs", "floating-point", "torch.int64"),
    "activation-name": (lambda: layers.Activation("nope"),
                        ValueError, "activation", "'nope'", "'relu'"),
    "repeat-vector-rank": (lambda: layers.RepeatVector(3)(SEQUENCE),
                           ValueError, "inputs", "rank-2", "(2, 5, 3)"),
    "repeat-vector-n": (lambda: layers.RepeatVector(0), ValueError, "n", "positive integer", 0),
    "reshape-size": (lambda: layers.Reshape((4, 4))(SEQUENCE),
                     ValueError, "inputs", "(4, 4)", 15),
    "reshape-target": (lambda: layers.Reshape((-1, -1)),
                       ValueError, "target_shape", "at most one -1", "(-1, -1)"),
    "flatten-data-format": (lambda: layers.Flatten("channels_first"),
                            ValueError, "data_format", "'channels_last'", "'channels_first'"),
    "time-distributed-rank": (
        lambda: layers.TimeDistributed(layers.Dense(2))(np.zeros((2, 3), "float32")),
        ValueError, "inputs", "rank >= 3", "(2, 3)"),
    "time-distributed-layer": (lambda: layers.TimeDistributed(torch.nn.Linear(2, 2)),
                               TypeError, "layer", "Layer", "Linear"),
    "concatenate-sizes": (
        lambda: layers.concatenate([SEQUENCE, np.zeros((2, 4, 3), "float32")]),
        ValueError, "inputs[1]", "(2, 5, 3)", "(2, 4, 3)"),
    "concatenate-ranks": (
        lambda: layers.concatenate([SEQUENCE, np.zeros((2, 5), "float32")]),
        ValueError, "inputs[1]", "rank 3", "(2, 5)"),
    "concatenate-not-a-list": (lambda: layers.Concatenate()(SEQUENCE),
                               TypeError, "inputs", "list", "(2, 5, 3)"),
    "concatenate-batch-axis": (lambda: layers.Concatenate(axis=0)([SEQUENCE, SEQUENCE]),
                               ValueError, "axis", "non-batch axis", 0),
    "add-shapes": (lambda: layers.add([np.zeros((2, 3)), np.zeros((2, 5))]),
                   ValueError, "inputs[1]", "(2, 3)", "(2, 5)"),
    "subtract-count": (lambda: layers.Subtract()([SEQUENCE] * 3),
                       ValueError, "inputs", "exactly 2", 3),
    "merge-mask-count": (lambda: layers.Add().compute_mask([SEQUENCE, SEQUENCE], [None]),
                         ValueError, "mask", 2, "1 masks"),
}
# fmt: on


@pytest.mark.parametrize(
    ("trigger", "error", "argument", "expected", "actual"),
    CORE_CASES.values(),
    ids=CORE_CASES.keys(),
)
def test_core_layers_refuse(trigger, error, argument, expected, actual, error_names):
    with pytest.raises(error) as caught:
        trigger()
    error_names(caught.value, argument, expected, actual)
