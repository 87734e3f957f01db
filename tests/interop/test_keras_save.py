"""save_keras: .keras files written by rnnkit load in TF-Keras with rnnkit's outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interop.conftest import assert_close, randomize
from rnnkit import layers
from rnnkit.interop import from_torch, save_keras
from rnnkit.layers import (
    GRU,
    LSTM,
    Bidirectional,
    Dense,
    Embedding,
    Input,
    Lambda,
    Masking,
    SimpleRNN,
    TimeDistributed,
)
from rnnkit.models import Model, Sequential

pytestmark = pytest.mark.peer


def _stacked_lstm(rng):
    model = Sequential([LSTM(6, input_shape=(None, 3), return_sequences=True), LSTM(4),
                        Dense(2, activation="tanh")])
    return model, rng.normal(size=(3, 5, 3)).astype("float32")


def _masked_tagger(rng):
    model = Sequential([Embedding(20, 4, mask_zero=True, input_shape=(None,)),
                        Bidirectional(GRU(3, reset_after=False, return_sequences=True)),
                        Bidirectional(LSTM(2, return_sequences=True), merge_mode="ave"),
                        TimeDistributed(Dense(3, activation="softmax"))])
    tokens = rng.integers(1, 20, (3, 6))
    tokens[0, 4:] = 0
    tokens[2, :2] = 0
    return model, tokens


def _encoder_decoder(rng):
    source, context = Input((None, 3), name="source"), Input((2,), name="context")
    masked = Masking(0.0)(source)
    _, h, c = LSTM(4, return_state=True, name="encoder")(masked)
    decoded = LSTM(4, return_sequences=True, name="decoder")(masked, initial_state=[h, c])
    summary = SimpleRNN(3, activation="relu")(GRU(3, return_sequences=True)(decoded))
    joined = layers.concatenate([summary, Dense(2)(context)])
    model = Model([source, context], [Dense(1, name="head")(joined), summary])
    series = rng.normal(size=(2, 5, 3)).astype("float32")
    series[1, 3:] = 0.0
    return model, [series, rng.normal(size=(2, 2)).astype("float32")]


def _nested(rng):
    inner_input = Input((None, 3))
    inner = Model(inner_input, GRU(4, return_sequences=True)(inner_input), name="inner")
    head = Sequential([LSTM(2, input_shape=(None, 4))], name="head")
    source = Input((None, 3))
    model = Model(source, Dense(1)(head(inner(source))), name="outer")
    return model, rng.normal(size=(2, 4, 3)).astype("float32")


CASES = {"stacked_lstm": _stacked_lstm, "masked_tagger": _masked_tagger,
         "encoder_decoder": _encoder_decoder, "nested": _nested}


@pytest.mark.parametrize("name", sorted(CASES))
def test_rnnkit_keras_files_load_in_keras_with_the_same_outputs(keras, tmp_path, name):
    model, inputs = CASES[name](np.random.default_rng(0))
    randomize(model)
    path = tmp_path / f"{name}.keras"
    save_keras(model, path)
    theirs = keras.models.load_model(path)
    expected = theirs(inputs)
    if isinstance(expected, (list, tuple)):
        expected = [np.asarray(output) for output in expected]
    assert_close(model(inputs), expected)
    assert [w.shape for w in model.get_weights()] == [tuple(w.shape) for w in
                                                      theirs.get_weights()]


def test_a_folded_torch_lstm_reaches_keras_with_torch_outputs(keras, tmp_path):
    torch_lstm = torch.nn.LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True)
    stack = from_torch(torch_lstm, face="keras", fold_biases=True)
    path = tmp_path / "from_torch.keras"
    save_keras(stack, path)
    x = torch.randn(2, 5, 3)
    expected, _ = torch_lstm(x)
    assert_close(np.asarray(keras.models.load_model(path)(x.numpy())), expected)


@pytest.mark.parametrize("layer, option", [
    (LSTM(3, peephole=True), "peephole"), (LSTM(3, layer_norm=True), "layer_norm"),
    (LSTM(3, proj_size=2), "proj_size"), (GRU(3, activation=torch.sin), "sin"),
    (Lambda(lambda x: x), "Lambda")])
def test_options_keras_lacks_are_refused_by_name(tmp_path, layer, option):
    model = Sequential([layer])
    model.build((None, None, 2))
    with pytest.raises(ValueError, match=option):
        save_keras(model, tmp_path / "refused.keras")
    assert not (tmp_path / "refused.keras").exists()


def test_an_unfolded_torch_bias_is_refused(tmp_path):
    stack = Sequential([from_torch(torch.nn.LSTM(2, 3, batch_first=True), face="keras")])
    stack.build((None, None, 2))
    with pytest.raises(ValueError, match="second .recurrent. bias"):
        save_keras(stack, tmp_path / "refused.keras")


def test_save_keras_checks_its_arguments(tmp_path):
    model = Sequential([Dense(2, input_shape=(3,))])
    with pytest.raises(ValueError, match="'.keras'"):
        save_keras(model, tmp_path / "model.h5")
    with pytest.raises(TypeError, match="model"):
        save_keras(Dense(2), tmp_path / "model.keras")
    with pytest.raises(ValueError, match="not built"):
        save_keras(Sequential([Dense(2)]), tmp_path / "model.keras")

    class Custom(Model):
        def __init__(self):
            super().__init__()
            self.dense = Dense(2)

        def call(self, inputs):
            return self.dense(inputs)

    with pytest.raises(ValueError, match="subclassed"):
        save_keras(Custom(), tmp_path / "model.keras")
