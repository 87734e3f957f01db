"""Masks from Embedding(mask_zero=True) and Masking through recurrent layers, against Keras.

Each pipeline is built twice, layer by layer, with identical weights; the mask is handed on with
``compute_mask`` exactly as a Keras model does.
"""

from __future__ import annotations

import numpy as np
import pytest

from rnnkit import layers

pytestmark = pytest.mark.peer

VOCAB, EMBED, UNITS = 12, 3, 4
RIGHT_PADDED = np.array([[3, 5, 7, 2, 0, 0], [4, 0, 0, 0, 0, 0], [1, 2, 3, 4, 5, 6]])
LEFT_PADDED = np.array([[0, 0, 3, 5, 7, 2], [0, 0, 0, 0, 0, 4], [1, 2, 3, 4, 5, 6]])
PADDINGS = pytest.mark.parametrize("ids", [RIGHT_PADDED, LEFT_PADDED], ids=["right", "left"])


def _run_pipeline(stack, inputs):
    """Call each layer with the mask the previous one computed; return the output and mask."""
    mask = None
    for layer in stack:
        outputs = layer(inputs) if mask is None else layer(inputs, mask=mask)
        mask = layer.compute_mask(inputs, mask)
        inputs = outputs
    return inputs, mask


def _copy_weights(ours, theirs, inputs) -> None:
    """Build both stacks on ``inputs`` and copy Keras's weights layer by layer."""
    _run_pipeline(theirs, inputs)
    _run_pipeline(ours, inputs)
    for mine, peer in zip(ours, theirs, strict=True):
        mine.set_weights(peer.get_weights())
        assert mine.count_params() == peer.count_params()


def _embedding_pair(keras):
    return (
        layers.Embedding(VOCAB, EMBED, mask_zero=True),
        keras.layers.Embedding(VOCAB, EMBED, mask_zero=True),
    )


@PADDINGS
@pytest.mark.parametrize(
    ("name", "options"),
    [("LSTM", {}), ("GRU", {}), ("GRU", {"reset_after": False}), ("SimpleRNN", {})],
    ids=["lstm", "gru", "gru-reset-before", "simple"],
)
@pytest.mark.parametrize("return_sequences", [False, True], ids=["last", "sequences"])
def test_embedding_mask_through_rnn(keras, same_outputs, ids, name, options, return_sequences):
    ours_embed, theirs_embed = _embedding_pair(keras)
    kwargs = dict(return_sequences=return_sequences, return_state=True, **options)
    ours = [ours_embed, getattr(layers, name)(UNITS, **kwargs)]
    theirs = [theirs_embed, getattr(keras.layers, name)(UNITS, **kwargs)]
    _copy_weights(ours, theirs, ids)
    ours_out, _ = _run_pipeline(ours, ids)
    theirs_out, _ = _run_pipeline(theirs, ids)
    same_outputs(ours_out, theirs_out)


@PADDINGS
@pytest.mark.parametrize("merge_mode", ["concat", "mul"])
def test_embedding_mask_through_bidirectional(keras, same_outputs, ids, merge_mode):
    """Masked steps of a Bidirectional sequence output are zeros in both libraries."""
    ours_embed, theirs_embed = _embedding_pair(keras)
    ours = [
        ours_embed,
        layers.Bidirectional(layers.LSTM(UNITS, return_sequences=True), merge_mode=merge_mode),
    ]
    theirs = [
        theirs_embed,
        keras.layers.Bidirectional(
            keras.layers.LSTM(UNITS, return_sequences=True), merge_mode=merge_mode
        ),
    ]
    _copy_weights(ours, theirs, ids)
    ours_out, ours_mask = _run_pipeline(ours, ids)
    theirs_out, _ = _run_pipeline(theirs, ids)
    same_outputs(ours_out, theirs_out)
    assert ours_mask.tolist() == (ids != 0).tolist()


@PADDINGS
def test_mask_through_stacked_lstm_and_time_distributed_dense(keras, same_outputs, ids):
    """Embedding -> LSTM -> LSTM -> TimeDistributed(Dense): the mask flows through all four."""
    ours_embed, theirs_embed = _embedding_pair(keras)
    ours = [
        ours_embed,
        layers.LSTM(UNITS, return_sequences=True),
        layers.LSTM(UNITS, return_sequences=True),
        layers.TimeDistributed(layers.Dense(2, activation="softmax")),
    ]
    theirs = [
        theirs_embed,
        keras.layers.LSTM(UNITS, return_sequences=True),
        keras.layers.LSTM(UNITS, return_sequences=True),
        keras.layers.TimeDistributed(keras.layers.Dense(2, activation="softmax")),
    ]
    _copy_weights(ours, theirs, ids)
    ours_out, ours_mask = _run_pipeline(ours, ids)
    theirs_out, theirs_mask = _run_pipeline(theirs, ids)
    same_outputs(ours_out, theirs_out)
    np.testing.assert_array_equal(ours_mask.numpy(), np.asarray(theirs_mask))


def test_masking_layer_through_lstm(keras, same_outputs, rng):
    """Masking skips all-zero steps, including one in the middle of a sequence."""
    inputs = rng.normal(size=(3, 6, 2)).astype("float32")
    inputs[0, 4:] = 0.0
    inputs[1, :2] = 0.0
    inputs[2, 3] = 0.0
    ours = [layers.Masking(0.0), layers.LSTM(UNITS, return_sequences=True)]
    theirs = [keras.layers.Masking(0.0), keras.layers.LSTM(UNITS, return_sequences=True)]
    _copy_weights(ours, theirs, inputs)
    ours_out, ours_mask = _run_pipeline(ours, inputs)
    theirs_out, theirs_mask = _run_pipeline(theirs, inputs)
    same_outputs(ours_out, theirs_out)
    np.testing.assert_array_equal(ours_mask.numpy(), np.asarray(theirs_mask))


def test_masking_with_nonzero_value_matches_keras(keras, same_outputs, rng):
    inputs = rng.normal(size=(2, 4, 3)).astype("float32")
    inputs[0, 1] = -1.0
    inputs[1, 2, 0] = -1.0  # one feature equal to mask_value does not mask the step
    ours, theirs = layers.Masking(-1.0), keras.layers.Masking(-1.0)
    same_outputs(ours(inputs), theirs(inputs))
    np.testing.assert_array_equal(
        ours.compute_mask(inputs).numpy(), np.asarray(theirs.compute_mask(inputs))
    )
    assert ours.compute_mask(inputs).tolist() == [[True, False, True, True]] + [[True] * 4]


# A fully padded row, right padding, left padding and a hole in the middle.
EXPLICIT_MASK = np.array([[0, 0, 0, 0, 0], [1, 1, 1, 0, 0], [0, 0, 1, 1, 1], [1, 0, 1, 1, 1]], bool)


@pytest.mark.parametrize(
    "make",
    [
        lambda lib: lib.LSTM(UNITS, return_sequences=True, return_state=True, go_backwards=True),
        lambda lib: lib.GRU(UNITS, reset_after=False, return_state=True, go_backwards=True),
        lambda lib: lib.SimpleRNN(UNITS, activation="relu", return_sequences=True),
        lambda lib: lib.LSTM(UNITS, return_sequences=True, zero_output_for_mask=True),
        lambda lib: lib.Bidirectional(lib.LSTM(UNITS, return_sequences=True, return_state=True)),
        lambda lib: lib.Bidirectional(lib.GRU(UNITS, return_sequences=True), merge_mode=None),
        lambda lib: lib.Bidirectional(lib.GRU(UNITS), merge_mode="ave"),
    ],
    ids=[
        "lstm-backwards",
        "gru-reset-before-backwards",
        "simple-relu",
        "lstm-zero-output",
        "bi-lstm-states",
        "bi-gru-none",
        "bi-gru-last",
    ],
)
def test_explicit_mask_matches_keras(keras, parity, rng, make):
    inputs = rng.normal(size=(4, 5, 2)).astype("float32")
    parity(make(layers), make(keras.layers), inputs, mask=EXPLICIT_MASK)
