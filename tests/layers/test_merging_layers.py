"""Concatenate and the element-wise merges against Keras: values, shapes and masks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnkit import layers

pytestmark = pytest.mark.peer

ELEMENTWISE = ["Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"]


@pytest.fixture
def pair(rng):
    return [rng.normal(size=(2, 4, 3)).astype("float32") for _ in range(2)]


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_elementwise_merges_match_keras(keras, same_outputs, pair, name):
    ours, theirs = getattr(layers, name)(), getattr(keras.layers, name)()
    same_outputs(ours(pair), theirs(pair))
    shapes = [(None, 4, 3), (None, 4, 3)]
    assert ours.compute_output_shape(shapes) == tuple(theirs.compute_output_shape(shapes))
    helper = getattr(layers, name.lower())
    same_outputs(helper(pair), theirs(pair))


def test_three_way_merges_and_size_one_broadcast_match_keras(keras, same_outputs, rng):
    triple = [rng.normal(size=(2, 3)).astype("float32") for _ in range(3)]
    for name in ["Add", "Multiply", "Average", "Maximum"]:
        same_outputs(getattr(layers, name)()(triple), getattr(keras.layers, name)()(triple))
    column, matrix = triple[0][:, :1], triple[1]
    same_outputs(layers.Add()([column, matrix]), keras.layers.Add()([column, matrix]))


@pytest.mark.parametrize("axis", [-1, 1, 2])
def test_concatenate_matches_keras(keras, same_outputs, rng, axis):
    first = rng.normal(size=(2, 4, 3)).astype("float32")
    second = rng.normal(size=(2, 4, 3)).astype("float32")
    ours, theirs = layers.Concatenate(axis=axis), keras.layers.Concatenate(axis=axis)
    same_outputs(ours([first, second]), theirs([first, second]))
    same_outputs(layers.concatenate([first, second], axis=axis), theirs([first, second]))
    shapes = [(None, 4, 3), (None, 4, 3)]
    assert ours.compute_output_shape(shapes) == tuple(theirs.compute_output_shape(shapes))


def test_concatenate_features_of_different_widths(keras, same_outputs, rng):
    image, caption = rng.normal(size=(2, 5, 6)), rng.normal(size=(2, 5, 2))
    image, caption = image.astype("float32"), caption.astype("float32")
    same_outputs(
        layers.concatenate([image, caption]), keras.layers.concatenate([image, caption], axis=-1)
    )
    assert layers.Concatenate().compute_output_shape([(None, None, 6), (None, None, 2)]) == (
        None,
        None,
        8,
    )


MASK_A = np.array([[1, 1, 0, 0], [1, 0, 0, 0]], bool)
MASK_B = np.array([[1, 0, 0, 0], [1, 1, 1, 0]], bool)


@pytest.mark.parametrize(
    "masks", [[MASK_A, MASK_B], [MASK_A, None], [None, None]], ids=["both", "one", "none"]
)
@pytest.mark.parametrize(
    "make",
    [
        lambda lib: lib.Concatenate(),
        lambda lib: lib.Concatenate(1),
        lambda lib: lib.Add(),
        lambda lib: lib.Multiply(),
    ],
    ids=["concat-features", "concat-time", "add", "multiply"],
)
def test_merged_masks_match_keras(keras, pair, masks, make):
    ours, theirs = make(layers), make(keras.layers)
    torch_masks = [None if m is None else torch.from_numpy(m) for m in masks]
    got = ours.compute_mask(pair, torch_masks)
    expected = theirs.compute_mask(pair, masks)
    if expected is None:
        assert got is None
    else:
        np.testing.assert_array_equal(got.numpy(), np.asarray(expected))
