"""Sequential: eager and lazy building, editing the stack, masks between layers, errors."""

from __future__ import annotations

import numpy as np
import pytest

from models.conftest import assert_close, summary_of, summary_table
from rnnkit.layers import GRU, LSTM, Dense, Embedding, Input
from rnnkit.models import Sequential


def _series(batch=3, steps=6, features=2, seed=0):
    return np.random.default_rng(seed).standard_normal((batch, steps, features)).astype("float32")


def test_input_shape_on_the_first_layer_builds_everything_at_once():
    model = Sequential([LSTM(8, input_shape=(None, 2), return_sequences=True), GRU(4),
                        Dense(1)])
    assert model.built and all(layer.built for layer in model.layers)
    assert model.count_params() == 4 * 8 * (2 + 8 + 1) + 3 * 4 * (8 + 4 + 2) + 5
    shapes = [shape for _, shape, _ in summary_table(summary_of(model))]
    assert shapes == ["(None, None, 8)", "(None, 4)", "(None, 1)"]


def test_without_input_shape_the_model_builds_on_its_first_call():
    model = Sequential([LSTM(8), Dense(1)])
    assert not model.built
    with pytest.raises(ValueError, match="count_params.*built"):
        model.count_params()
    with pytest.raises(ValueError, match="not built"):
        model.summary()
    x = _series()
    assert model(x).shape == (3, 1)
    assert model.built and model.count_params() == 4 * 8 * (2 + 8 + 1) + 9
    assert [shape for _, shape, _ in summary_table(summary_of(model))] == [
        "(None, 8)", "(None, 1)"]


def test_outputs_equal_the_layers_run_by_hand():
    first, second, head = LSTM(5, return_sequences=True), LSTM(3), Dense(2)
    model = Sequential([first, second, head])
    x = _series(seed=1)
    assert_close(model(x), head(second(first(x))))


def test_add_input_then_layers_and_build():
    model = Sequential()
    model.add(Input(shape=(None, 2)))
    model.add(LSTM(4))
    assert model.built and model.count_params() == 4 * 4 * (2 + 4 + 1)
    lazy = Sequential([Dense(3)])
    lazy.build((None, 5))
    assert lazy.count_params() == 18


def test_add_pop_and_indexing_edit_the_stack():
    lstm, dense, extra = LSTM(4, input_shape=(None, 2)), Dense(2), Dense(7)
    model = Sequential([lstm, dense])
    model.add(extra)
    assert model[0] is lstm and model[-1] is extra and model[0:2] == [lstm, dense]
    assert model(_series()).shape == (3, 7)
    assert model.pop() is extra
    assert model.layers == [lstm, dense] and model(_series()).shape == (3, 2)
    assert summary_table(summary_of(model))[-1][1] == "(None, 2)"
    model.pop()
    model.pop()
    with pytest.raises(TypeError, match="no layers to pop"):
        model.pop()


def test_add_rejects_non_layers_duplicate_names_and_multi_output_layers():
    model = Sequential([Dense(2, name="head", input_shape=(3,))])
    with pytest.raises(TypeError, match="layer: expected an rnnkit layer"):
        model.add(np.zeros(3))
    with pytest.raises(ValueError, match="'head' is already used"):
        model.add(Dense(2, name="head"))
    with pytest.raises(ValueError, match="one tensor"):
        Sequential([LSTM(4, return_state=True, input_shape=(None, 2))])


def test_mask_from_embedding_is_carried_to_the_lstm():
    model = Sequential([Embedding(20, 4, mask_zero=True), LSTM(6), Dense(2)])
    padded = np.array([[3, 5, 7, 0, 0], [4, 0, 0, 0, 0], [9, 9, 9, 9, 9]])
    outputs = model(padded)
    for row, length in enumerate([3, 1, 5]):
        assert_close(outputs[row:row + 1], model(padded[row:row + 1, :length]))


def test_set_weights_checks_the_count_and_names_the_layers():
    model = Sequential([LSTM(4, input_shape=(None, 2)), Dense(1)])
    weights = model.get_weights()
    with pytest.raises(ValueError, match=r"expected 5 arrays.*got 4"):
        model.set_weights(weights[:4])
    bad = [*weights[:3], np.zeros((5, 1), "float32"), weights[4]]
    with pytest.raises(ValueError, match=r"weights\[0\] expected shape \(4, 1\)"):
        model.set_weights(bad)


def test_config_round_trip_keeps_the_stack_and_build_shape():
    model = Sequential([LSTM(4, return_sequences=True), LSTM(3), Dense(2)], name="stack")
    model(_series())
    rebuilt = Sequential.from_config(model.get_config())
    assert rebuilt.built and rebuilt.get_config() == model.get_config()
    rebuilt.set_weights(model.get_weights())
    assert_close(rebuilt(_series(seed=5)), model(_series(seed=5)))
