"""Dense, Dropout, Embedding, Activation, the shape layers and TimeDistributed, against Keras."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnkit import layers


@pytest.fixture
def sequence(rng):
    return rng.normal(size=(2, 5, 3)).astype("float32")  # (B, T, F)


# -- Dense -----------------------------------------------------------------------------------
@pytest.mark.peer
@pytest.mark.parametrize(
    ("shape", "options"),
    [
        ((4, 3), {}),
        ((2, 5, 3), {}),
        ((2, 5, 3), {"activation": "softmax"}),
        ((2, 2, 5, 3), {"activation": "tanh", "use_bias": False}),
    ],
    ids=["2d", "3d", "3d-softmax", "4d-tanh-no-bias"],
)
def test_dense_matches_keras(keras, parity, rng, shape, options):
    inputs = rng.normal(size=shape).astype("float32")
    ours, theirs = layers.Dense(6, **options), keras.layers.Dense(6, **options)
    parity(ours, theirs, inputs)
    assert [w.shape for w in ours.get_weights()] == [(3, 6)] + ([(6,)] * options.get("use_bias", 1))
    none_batch = (None, *shape[1:])
    assert ours.compute_output_shape(none_batch) == tuple(theirs.compute_output_shape(none_batch))


def test_dense_passes_mask_and_builds_from_input_shape(sequence):
    mask = torch.tensor([[True, True, False, False, False]] * 2)
    dense = layers.Dense(2, input_shape=(5, 3))
    assert dense.built and dense.count_params() == 3 * 2 + 2
    assert dense.compute_mask(sequence, mask) is mask
    assert layers.Dense(2, input_dim=7).count_params() == 16


# -- Dropout ----------------------------------------------------------------------------------
def test_dropout_is_identity_outside_training(sequence):
    """``training=None`` follows the module's mode (rnnkit's protocol): train() by default."""
    dropout = layers.Dropout(0.5)
    np.testing.assert_array_equal(dropout(sequence, training=False).numpy(), sequence)
    np.testing.assert_array_equal(dropout.eval()(sequence).numpy(), sequence)
    assert (dropout.train()(sequence).numpy() == 0).any()


def test_dropout_zeroes_at_rate_and_rescales_the_rest():
    inputs = np.ones((200, 50), "float32")
    outputs = layers.Dropout(0.3, seed=1)(inputs, training=True).numpy()
    kept = outputs != 0
    assert abs(1 - kept.mean() - 0.3) < 0.02
    np.testing.assert_allclose(outputs[kept], 1 / 0.7, rtol=1e-6)


def test_dropout_noise_shape_shares_draws_and_seed_repeats():
    inputs = np.ones((4, 6, 8), "float32")
    first = layers.Dropout(0.5, noise_shape=(None, 1, 8), seed=3)(inputs, training=True).numpy()
    assert (first == first[:, :1, :]).all(), "one draw per (batch, feature), shared over time"
    again = layers.Dropout(0.5, noise_shape=(None, 1, 8), seed=3)(inputs, training=True).numpy()
    np.testing.assert_array_equal(first, again)


def test_dropout_rate_edges():
    inputs = np.ones((10, 10), "float32")
    assert (layers.Dropout(1.0)(inputs, training=True).numpy() == 0).all()
    np.testing.assert_array_equal(layers.Dropout(0.0)(inputs, training=True).numpy(), inputs)


# -- Embedding --------------------------------------------------------------------------------
@pytest.mark.peer
def test_embedding_matches_keras(keras, parity):
    ids = np.array([[1, 2, 0, 9], [9, 8, 7, 0]])
    ours = layers.Embedding(10, 4, mask_zero=True)
    theirs = keras.layers.Embedding(10, 4, mask_zero=True)
    parity(ours, theirs, ids)
    np.testing.assert_array_equal(
        ours.compute_mask(ids).numpy(), np.asarray(theirs.compute_mask(ids))
    )
    assert ours.compute_output_shape((None, 4)) == tuple(theirs.compute_output_shape((None, 4)))
    assert layers.Embedding(10, 4).compute_mask(ids) is None


def test_embedding_defaults_and_keras2_arguments():
    embed = layers.Embedding(1000, 16, input_length=7)
    weights = embed.get_weights()[0]
    assert weights.shape == (1000, 16)
    assert np.abs(weights).max() <= 0.05 and weights.std() > 0.02  # U(-0.05, 0.05)
    assert embed.batch_input_shape == (None, 7)
    assert embed.compute_output_shape((None, 7)) == (None, 7, 16)
    whole_floats = np.array([[1.0, 2.0, 0.0, 3.0, 4.0, 5.0, 6.0]])
    np.testing.assert_array_equal(
        embed(whole_floats).detach().numpy(), weights[[1, 2, 0, 3, 4, 5, 6]][None]
    )


# -- Activation and shape layers --------------------------------------------------------------
@pytest.mark.peer
@pytest.mark.parametrize("name", ["relu", "tanh", "sigmoid", "softmax", "linear"])
def test_activation_matches_keras(keras, same_outputs, sequence, name):
    same_outputs(layers.Activation(name)(sequence), keras.layers.Activation(name)(sequence))


@pytest.mark.peer
@pytest.mark.parametrize(
    ("make", "shape"),
    [
        (lambda lib: lib.Flatten(), (2, 5, 3)),
        (lambda lib: lib.Reshape((3, 5)), (2, 5, 3)),
        (lambda lib: lib.Reshape((-1, 5)), (2, 5, 3)),
        (lambda lib: lib.RepeatVector(4), (2, 3)),
    ],
    ids=["flatten", "reshape", "reshape-inferred", "repeat-vector"],
)
def test_shape_layers_match_keras(keras, same_outputs, rng, make, shape):
    inputs = rng.normal(size=shape).astype("float32")
    ours, theirs = make(layers), make(keras.layers)
    same_outputs(ours(inputs), theirs(inputs))
    for batch_shape in [(None, *shape[1:]), shape]:
        assert ours.compute_output_shape(batch_shape) == tuple(
            theirs.compute_output_shape(batch_shape)
        )


def test_shape_layers_keep_unknown_dims_unknown():
    assert layers.Flatten().compute_output_shape((None, None, 3)) == (None, None)
    assert layers.Reshape((-1, 3)).compute_output_shape((None, None, 6)) == (None, None, 3)
    assert layers.RepeatVector(2).compute_output_shape((None, None)) == (None, 2, None)


def test_lambda_applies_its_function_and_infers_shape(sequence):
    last = layers.Lambda(lambda x, offset: x[:, -1] + offset, arguments={"offset": 1.0})
    np.testing.assert_allclose(last(sequence).numpy(), sequence[:, -1] + 1.0)
    assert last.compute_output_shape((None, None, 3)) == (None, 3)
    assert layers.Lambda(torch.tanh, output_shape=(5, 3)).compute_output_shape((None, 5, 3)) == (
        None,
        5,
        3,
    )


# -- TimeDistributed --------------------------------------------------------------------------
@pytest.mark.peer
def test_time_distributed_dense_matches_keras(keras, parity, sequence):
    ours = layers.TimeDistributed(layers.Dense(4, activation="softmax"))
    theirs = keras.layers.TimeDistributed(keras.layers.Dense(4, activation="softmax"))
    got = parity(ours, theirs, sequence)
    assert got.shape == (2, 5, 4)
    assert ours.compute_output_shape((None, 5, 3)) == tuple(
        theirs.compute_output_shape((None, 5, 3))
    )


def test_time_distributed_passes_the_mask_and_shares_weights(sequence):
    wrapped = layers.TimeDistributed(layers.Dense(2))
    mask = torch.tensor([[True] * 5, [True, True, False, False, False]])
    outputs = wrapped(sequence, mask=mask)
    assert wrapped.compute_mask(sequence, mask) is mask
    kernel, bias = wrapped.get_weights()
    np.testing.assert_allclose(outputs.detach().numpy(), sequence @ kernel + bias, atol=1e-6)
    assert wrapped.count_params() == 3 * 2 + 2


# -- config ----------------------------------------------------------------------------------
CONFIGURED = [
    lambda: layers.Dense(3, activation="relu", use_bias=False, kernel_initializer="he_normal"),
    lambda: layers.Dropout(0.25, noise_shape=(None, 1, 4), seed=2),
    lambda: layers.Embedding(50, 8, mask_zero=True, input_length=10),
    lambda: layers.Masking(-1.0),
    lambda: layers.Activation("softmax"),
    lambda: layers.Flatten(),
    lambda: layers.Reshape((-1, 2)),
    lambda: layers.RepeatVector(5),
    lambda: layers.TimeDistributed(layers.Dense(7, activation="tanh")),
    lambda: layers.Concatenate(axis=1),
    lambda: layers.Add(),
    lambda: layers.Average(),
]


@pytest.mark.parametrize("make", CONFIGURED, ids=lambda make: type(make()).__name__)
def test_config_round_trip(make):
    layer = make()
    clone = type(layer).from_config(layer.get_config())
    assert type(clone) is type(layer)
    assert clone.get_config() == layer.get_config()


def test_keras_initializer_and_activation_names_are_kept():
    config = layers.Dense(3, activation="relu", kernel_initializer="he_normal").get_config()
    assert (config["activation"], config["kernel_initializer"]) == ("relu", "he_normal")
    assert layers.Dense(3).get_config()["activation"] == "linear"
