"""Bidirectional against Keras: every merge mode, with and without states, and its bookkeeping."""

from __future__ import annotations

import numpy as np
import pytest

from rnnkit import layers

pytestmark = pytest.mark.peer

MERGE_MODES = ["concat", "sum", "mul", "ave", None]
UNITS = 4


@pytest.fixture
def sequence(rng):
    return rng.normal(size=(2, 5, 3)).astype("float32")  # (B, T, F)


def _pair(keras, name="LSTM", merge_mode="concat", **kwargs):
    ours = layers.Bidirectional(getattr(layers, name)(UNITS, **kwargs), merge_mode=merge_mode)
    theirs = keras.layers.Bidirectional(
        getattr(keras.layers, name)(UNITS, **kwargs), merge_mode=merge_mode
    )
    return ours, theirs


@pytest.mark.parametrize("merge_mode", MERGE_MODES, ids=str)
@pytest.mark.parametrize("return_state", [False, True], ids=["output", "output+state"])
def test_merge_modes_match_keras(keras, parity, sequence, merge_mode, return_state):
    ours, theirs = _pair(
        keras, merge_mode=merge_mode, return_sequences=True, return_state=return_state
    )
    got = parity(ours, theirs, sequence)
    shapes = ours.compute_output_shape((2, 5, 3))
    outputs = got if isinstance(got, list) else [got]
    shapes = shapes if isinstance(shapes, list) else [shapes]
    assert [tuple(t.shape) for t in outputs] == [tuple(s) for s in shapes]


@pytest.mark.parametrize("merge_mode", ["concat", None], ids=str)
def test_last_output_with_states_matches_keras(keras, parity, sequence, merge_mode):
    ours, theirs = _pair(keras, merge_mode=merge_mode, return_state=True)
    parity(ours, theirs, sequence)


@pytest.mark.parametrize(
    ("name", "options"),
    [("GRU", {"reset_after": False}), ("GRU", {}), ("SimpleRNN", {})],
    ids=["gru-reset-before", "gru", "simple"],
)
def test_other_cells_match_keras(keras, parity, sequence, name, options):
    ours, theirs = _pair(keras, name, merge_mode="sum", return_sequences=True, **options)
    parity(ours, theirs, sequence)


def test_initial_state_matches_keras(keras, parity, sequence, rng):
    ours, theirs = _pair(keras, return_sequences=True)
    states = [rng.normal(size=(2, UNITS)).astype("float32") for _ in range(4)]  # fh fc bh bc
    parity(ours, theirs, sequence, initial_state=states)


def test_stacked_bidirectional_matches_keras(keras, same_outputs, sequence):
    ours = [
        layers.Bidirectional(layers.LSTM(UNITS, return_sequences=True)),
        layers.Bidirectional(layers.GRU(UNITS), merge_mode="ave"),
    ]
    theirs = [
        keras.layers.Bidirectional(keras.layers.LSTM(UNITS, return_sequences=True)),
        keras.layers.Bidirectional(keras.layers.GRU(UNITS), merge_mode="ave"),
    ]
    ours_hidden, theirs_hidden = sequence, sequence
    for mine, peer in zip(ours, theirs, strict=True):
        theirs_hidden = peer(theirs_hidden)
        mine(ours_hidden)
        mine.set_weights(peer.get_weights())
        assert mine.count_params() == peer.count_params()
        ours_hidden = mine(ours_hidden)
    same_outputs(ours_hidden, theirs_hidden)


def test_weights_are_forward_then_backward(sequence):
    bi = layers.Bidirectional(layers.LSTM(UNITS))
    bi(sequence)
    weights = bi.get_weights()
    assert len(weights) == 6
    forward, backward = bi.forward_layer.get_weights(), bi.backward_layer.get_weights()
    for got, want in zip(weights, forward + backward, strict=True):
        np.testing.assert_array_equal(got, want)
    assert bi.backward_layer.go_backwards and not bi.forward_layer.go_backwards


def test_config_round_trip():
    bi = layers.Bidirectional(layers.GRU(UNITS, return_sequences=True), merge_mode="sum")
    clone = layers.Bidirectional.from_config(bi.get_config())
    assert clone.get_config() == bi.get_config()
