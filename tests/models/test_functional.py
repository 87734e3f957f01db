"""The functional API: symbolic inputs, recorded graphs, masks, wiring, errors and config."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.conftest import assert_close, summary_of, summary_table
from rnnkit.layers import LSTM, Dense, Dropout, Embedding, Input, Layer, add
from rnnkit.models import Functional, Model


class _RepeatFeatures(Layer):
    """No compute_output_shape: the graph must find ``(B, T, 2F)`` by a dry run."""

    def call(self, inputs, mask=None, training=None):
        return torch.cat([inputs, inputs], dim=-1)


class _DoubleTime(Layer):
    def call(self, inputs, mask=None, training=None):
        return torch.cat([inputs, inputs], dim=1)


def _tokens(rng, lengths, steps, vocab=20):
    ids = np.zeros((len(lengths), steps), dtype="int64")
    for row, length in enumerate(lengths):
        ids[row, :length] = rng.integers(1, vocab, size=length)
    return ids


# -- symbolic tensors ----------------------------------------------------------------------------
def test_input_gives_a_symbolic_tensor_with_a_batch_axis():
    series = Input(shape=(None, 3), name="series")
    assert series.shape == (None, None, 3)
    assert series.dtype == torch.float32
    assert Input(shape=(5,), batch_size=4).shape == (4, 5)
    assert Input(shape=(7,), dtype="int64").dtype == torch.int64


@pytest.mark.parametrize(("kwargs", "error"), [
    ({"shape": (0, 3)}, ValueError), ({"shape": "abc"}, TypeError),
    ({"shape": (3,), "dtype": "complex"}, ValueError), ({"shape": (2.5,)}, ValueError)])
def test_input_validates_its_arguments(kwargs, error):
    with pytest.raises(error, match="shape|dtype"):
        Input(**kwargs)


def test_calling_layers_on_symbolic_tensors_gives_shapes_and_state_lists():
    series = Input(shape=(None, 3))
    sequence, h, c = LSTM(5, return_sequences=True, return_state=True)(series)
    assert (sequence.shape, h.shape, c.shape) == ((None, None, 5), (None, 5), (None, 5))
    assert Dense(2)(sequence).shape == (None, None, 2)
    assert Embedding(10, 4)(Input(shape=(6,))).shape == (None, 6, 4)


def test_layers_without_compute_output_shape_are_traced():
    assert _RepeatFeatures()(Input(shape=(None, 3))).shape == (None, None, 6)
    assert _DoubleTime()(Input(shape=(4, 3))).shape == (None, 8, 3)
    assert _DoubleTime()(Input(shape=(None, 3))).shape == (None, None, 3)


# -- graph errors -------------------------------------------------------------------------------
def test_outputs_depending_on_an_undeclared_input_raise():
    first, second = Input(shape=(3,)), Input(shape=(3,))
    joined = add([Dense(2)(first), Dense(2)(second)])
    with pytest.raises(ValueError, match="not among the model's inputs"):
        Model(first, joined)


def test_inputs_must_come_from_input():
    source = Input(shape=(3,))
    hidden = Dense(4)(source)
    with pytest.raises(ValueError, match=r"inputs\[0\].*Input\(\)"):
        Model(hidden, Dense(1)(hidden))
    with pytest.raises(TypeError, match="outputs: expected symbolic tensors"):
        Model(source, torch.zeros(2))


def test_duplicate_layer_names_raise():
    source = Input(shape=(3,))
    with pytest.raises(ValueError, match="'twin' is used by more than one layer"):
        Model(source, Dense(2, name="twin")(Dense(2, name="twin")(source)))


def test_calls_validate_the_number_and_shapes_of_inputs():
    first, second = Input(shape=(None, 3), name="a"), Input(shape=(4,), name="b")
    model = Model([first, second], add([LSTM(4)(first), Dense(4)(second)]))
    series, vector = np.zeros((2, 5, 3), "float32"), np.zeros((2, 4), "float32")
    assert model([series, vector]).shape == (2, 4)
    with pytest.raises(ValueError, match=r"expected 2 arrays.*\['a', 'b'\]"):
        model([series])
    with pytest.raises(ValueError, match=r"inputs\[1\] \(b\): expected shape \(None, 4\)"):
        model([series, np.zeros((2, 5), "float32")])
    assert_close(model({"b": vector, "a": series}), model([series, vector]))


# -- running the graph ----------------------------------------------------------------------------
def test_mask_from_embedding_reaches_the_lstm_through_the_graph():
    rng = np.random.default_rng(0)
    tokens = Input(shape=(None,))
    model = Model(tokens, LSTM(6)(Embedding(20, 4, mask_zero=True)(tokens)))
    padded = _tokens(rng, [5, 2, 3], steps=5)
    outputs = model(padded)
    for row, length in enumerate([5, 2, 3]):
        assert_close(outputs[row:row + 1], model(padded[row:row + 1, :length]))


def test_initial_state_tensors_are_wired_as_graph_inputs():
    rng = np.random.default_rng(1)
    source, target = Input(shape=(None, 3)), Input(shape=(None, 2))
    encoder = LSTM(4, return_state=True)
    decoder = LSTM(4, return_sequences=True)
    _, h, c = encoder(source)
    model = Model([source, target], decoder(target, initial_state=[h, c]))
    xs = [rng.standard_normal((2, 5, 3)).astype("float32"),
          rng.standard_normal((2, 3, 2)).astype("float32")]
    _, h_value, c_value = encoder(xs[0])
    assert_close(model(xs), decoder(xs[1], initial_state=[h_value, c_value]))
    assert len(model.layers) == 4 and len(model.get_weights()) == 6


def test_a_shared_layer_is_run_twice_but_weighed_once():
    first, second = Input(shape=(None, 3)), Input(shape=(None, 3))
    shared = LSTM(4, name="shared")
    model = Model([first, second], add([shared(first), shared(second)]))
    rng = np.random.default_rng(2)
    xs = [rng.standard_normal((2, 5, 3)).astype("float32") for _ in range(2)]
    assert_close(model(xs), shared(xs[0]) + shared(xs[1]))
    assert len(model.get_weights()) == 3
    rows = {name: shape for name, shape, _ in summary_table(summary_of(model))}
    assert rows["shared"] == "multiple"


def test_a_model_is_a_layer_of_another_model():
    inner_input = Input(shape=(4,))
    inner = Model(inner_input, Dense(3, name="inner_dense")(inner_input), name="inner")
    outer_input = Input(shape=(4,))
    head = Dense(1, name="head")
    outer = Model(outer_input, head(inner(outer_input)))
    x = np.random.default_rng(3).standard_normal((5, 4)).astype("float32")
    assert_close(outer(x), head(inner(x)))
    assert len(outer.get_weights()) == 4
    assert ("inner", "(None, 3)", 15) in summary_table(summary_of(outer))


def test_models_start_in_inference_mode_and_pass_training_to_layers():
    source = Input(shape=(200,))
    model = Model(source, Dropout(0.5)(source))
    x = np.ones((2, 200), "float32")
    assert_close(model(x), x)
    dropped = model(x, training=True).numpy()
    assert 0.3 < (dropped == 0).mean() < 0.7
    model.train()
    assert (model(x).numpy() == 0).any()


def test_several_outputs_come_back_as_a_list():
    source = Input(shape=(3,))
    model = Model(source, [Dense(2)(source), Dense(5)(source)])
    outputs = model(np.zeros((4, 3), "float32"))
    assert isinstance(outputs, list) and [o.shape[-1] for o in outputs] == [2, 5]


def test_layers_follow_keras_order_and_get_layer_finds_them():
    source = Input(shape=(None, 3), name="source")
    hidden = LSTM(4, return_sequences=True, name="hidden")(source)
    model = Model(source, Dense(1, name="out")(hidden), name="net")
    assert [layer.name for layer in model.layers] == ["source", "hidden", "out"]
    assert model.get_layer("hidden") is model.layers[1]
    assert model.get_layer(index=-1).name == "out"
    with pytest.raises(ValueError, match="no layer named 'missing'.*'hidden'"):
        model.get_layer("missing")


def test_config_round_trip_rebuilds_an_equal_model():
    source, target = Input(shape=(None,), name="src"), Input(shape=(None, 2), name="tgt")
    _, h, c = LSTM(4, return_state=True, name="enc")(Embedding(9, 3, name="emb")(source))
    model = Model([source, target], Dense(2, name="out")(
        LSTM(4, return_sequences=True, name="dec")(target, initial_state=[h, c])), name="s2s")
    rebuilt = Functional.from_config(model.get_config())
    assert rebuilt.get_config() == model.get_config()
    rebuilt.set_weights(model.get_weights())
    rng = np.random.default_rng(4)
    xs = [rng.integers(0, 9, (2, 5)), rng.standard_normal((2, 3, 2)).astype("float32")]
    assert_close(rebuilt(xs), model(xs))
