"""LSTM, GRU and SimpleRNN against Keras: options, stacking, state, and weight round trips."""

from __future__ import annotations

import numpy as np
import pytest

from rnnkit import layers

pytestmark = pytest.mark.peer

# (rnnkit/Keras class name, constructor arguments): every built-in cell variant.
CELLS = [
    ("LSTM", {}),
    ("GRU", {"reset_after": True}),
    ("GRU", {"reset_after": False}),
    ("SimpleRNN", {"activation": "tanh"}),
    ("SimpleRNN", {"activation": "relu"}),
]
CELL_IDS = ["lstm", "gru-reset-after", "gru-reset-before", "simple-tanh", "simple-relu"]
UNITS = 5


def _pair(keras, name: str, **kwargs):
    return getattr(layers, name)(UNITS, **kwargs), getattr(keras.layers, name)(UNITS, **kwargs)


@pytest.fixture
def sequence(rng):
    return rng.normal(size=(3, 6, 4)).astype("float32")  # (B, T, F)


@pytest.mark.parametrize(("name", "options"), CELLS, ids=CELL_IDS)
@pytest.mark.parametrize("go_backwards", [False, True], ids=["forward", "backwards"])
@pytest.mark.parametrize(
    ("return_sequences", "return_state"),
    [(False, False), (True, False), (False, True), (True, True)],
    ids=["last", "sequences", "last+state", "sequences+state"],
)
def test_matches_keras(
    keras, parity, sequence, name, options, go_backwards, return_sequences, return_state
):
    ours, theirs = _pair(
        keras,
        name,
        go_backwards=go_backwards,
        return_sequences=return_sequences,
        return_state=return_state,
        **options,
    )
    got = parity(ours, theirs, sequence)
    if return_state:
        assert len(got) == 1 + len(ours.state_size)
    expected_shape = ours.compute_output_shape((None, 6, 4))
    shapes = [tuple(t.shape) for t in (got if return_state else [got])]
    wanted = expected_shape if return_state else [expected_shape]
    assert [tuple(3 if d is None else d for d in s) for s in wanted] == shapes


@pytest.mark.parametrize(("name", "options"), CELLS, ids=CELL_IDS)
def test_initial_state_matches_keras(keras, parity, sequence, rng, name, options):
    ours, theirs = _pair(keras, name, return_sequences=True, return_state=True, **options)
    states = [rng.normal(size=(3, UNITS)).astype("float32") for _ in ours.state_size]
    parity(ours, theirs, sequence, initial_state=states)


def test_stacked_layers_match_keras(keras, same_outputs, sequence):
    """LSTM -> GRU -> SimpleRNN, each layer's weights copied; the stack's output compared."""
    specs = [
        ("LSTM", {"return_sequences": True}),
        ("GRU", {"return_sequences": True}),
        ("SimpleRNN", {}),
    ]
    ours_stack, theirs_stack = zip(*(_pair(keras, n, **o) for n, o in specs), strict=True)
    ours_hidden, theirs_hidden = sequence, sequence
    for ours, theirs in zip(ours_stack, theirs_stack, strict=True):
        theirs_hidden = theirs(theirs_hidden)
        ours(ours_hidden)
        ours.set_weights(theirs.get_weights())
        ours_hidden = ours(ours_hidden)
    same_outputs(ours_hidden, theirs_hidden)


@pytest.mark.parametrize("name", ["LSTM", "GRU"])
def test_stateful_carries_state_and_resets_like_keras(keras, same_outputs, sequence, name):
    """Two consecutive calls continue the state; reset_states() starts again from zeros."""
    ours, theirs = _pair(keras, name, stateful=True, return_sequences=True)
    first, second = sequence[:, :3], sequence[:, 3:]
    theirs(first)
    ours(first)
    ours.set_weights(theirs.get_weights())
    ours.reset_states()
    theirs.reset_states()
    for chunk in (first, second):
        same_outputs(ours(chunk), theirs(chunk))
    continued = ours(first)
    ours.reset_states()
    theirs.reset_states()
    fresh = ours(first)
    same_outputs(fresh, theirs(first))
    assert not np.allclose(continued.detach().numpy(), fresh.detach().numpy(), atol=1e-3)


@pytest.mark.parametrize(("name", "options"), CELLS, ids=CELL_IDS)
def test_keras_weight_layout_round_trip(keras, name, options, sequence):
    """rnnkit's get_weights has Keras's shapes and order and survives set_weights both ways."""
    ours, theirs = _pair(keras, name, **options)
    theirs(sequence)
    ours(sequence)
    keras_weights = theirs.get_weights()
    assert [w.shape for w in ours.get_weights()] == [w.shape for w in keras_weights]
    ours.set_weights(keras_weights)
    for mine, original in zip(ours.get_weights(), keras_weights, strict=True):
        np.testing.assert_array_equal(mine, original)


@pytest.mark.parametrize(("name", "options"), CELLS, ids=CELL_IDS)
def test_config_round_trip(name, options):
    layer = getattr(layers, name)(UNITS, return_sequences=True, go_backwards=True, **options)
    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()


def test_lengths_equal_right_padded_mask_in_keras(keras, parity, sequence):
    """rnnkit's lengths= is Keras's right-padded mask."""
    lengths = np.array([6, 2, 4])
    mask = np.arange(6)[None, :] < lengths[:, None]
    ours, theirs = _pair(keras, "LSTM", return_sequences=True, return_state=True)
    parity(ours, theirs, sequence, lengths=lengths, keras_kwargs={"mask": mask})
