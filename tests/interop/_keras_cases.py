"""Keras models for the file tests: each builder returns ``(keras model, inputs)``.

Between them they cover LSTM, GRU in both reset modes, SimpleRNN, Bidirectional (every merge
mode used by a case), Embedding with mask_zero, Masking, stacked layers, Dense heads,
TimeDistributed, Dropout, Activation, Flatten, RepeatVector, Concatenate, functional models with
several inputs and an initial_state, and nested models.
"""

from __future__ import annotations

import numpy as np

from interop.conftest import randomize


def _tokens(rng, batch: int, steps: int, vocabulary: int) -> np.ndarray:
    """Token ids with right padding, plus one left-padded row (masks are not lengths in Keras)."""
    ids = rng.integers(1, vocabulary, (batch, steps))
    ids[0, steps - 2:] = 0
    ids[1, :2] = 0
    return ids.astype("int32")


def masked_lstm_stack(keras, rng):
    layers = keras.layers
    model = keras.Sequential([keras.Input((None, 3)), layers.Masking(0.0),
                              layers.LSTM(6, return_sequences=True), layers.LSTM(4),
                              layers.Dense(2)])
    x = rng.normal(size=(3, 5, 3)).astype("float32")
    x[1, 3:] = 0.0
    return model, x


def gru_both_reset_modes(keras, rng):
    layers = keras.layers
    model = keras.Sequential([keras.Input((None, 2)),
                              layers.GRU(5, return_sequences=True, reset_after=True),
                              layers.GRU(3, return_sequences=True, reset_after=False),
                              layers.SimpleRNN(2, activation="relu"),
                              layers.Dense(3, activation="softmax")])
    return model, rng.normal(size=(2, 6, 2)).astype("float32")


def embedding_bidirectional(keras, rng):
    layers = keras.layers
    model = keras.Sequential([keras.Input((None,), dtype="int32"),
                              layers.Embedding(20, 4, mask_zero=True),
                              layers.Bidirectional(layers.LSTM(4, return_sequences=True)),
                              layers.Bidirectional(layers.GRU(3, reset_after=False),
                                                   merge_mode="sum"),
                              layers.Dense(2, activation="tanh")])
    return model, _tokens(rng, 3, 6, 20)


def masked_tagger(keras, rng):
    layers = keras.layers
    model = keras.Sequential([keras.Input((None,), dtype="int32"),
                              layers.Embedding(15, 4, mask_zero=True),
                              layers.Bidirectional(layers.GRU(3, return_sequences=True),
                                                   merge_mode="ave"),
                              layers.Dropout(0.3),
                              layers.TimeDistributed(layers.Dense(3, activation="softmax"))])
    return model, _tokens(rng, 3, 5, 15)


def encoder_decoder(keras, rng):
    layers = keras.layers
    series, context = keras.Input((None, 3), name="series"), keras.Input((4,), name="context")
    encoded, h, c = layers.LSTM(5, return_sequences=True, return_state=True, name="enc")(series)
    decoded = layers.LSTM(5, return_sequences=True)(encoded, initial_state=[h, c])
    per_step = layers.TimeDistributed(layers.Dense(2))(decoded)
    summary = layers.SimpleRNN(4)(per_step)
    joined = layers.concatenate([summary, layers.Activation("relu")(context)])
    outputs = layers.Dense(1, name="head")(joined)
    model = keras.Model([series, context], outputs)
    return model, [rng.normal(size=(2, 6, 3)).astype("float32"),
                   rng.normal(size=(2, 4)).astype("float32")]


def shapes_and_nesting(keras, rng):
    layers = keras.layers
    inner_input = keras.Input((None, 2))
    inner = keras.Model(inner_input, layers.GRU(3, return_sequences=True)(inner_input),
                        name="inner")
    head = keras.Sequential([keras.Input((None, 3)), layers.LSTM(2)], name="head")
    source = keras.Input((4, 2))
    vector = layers.Dense(6, activation="relu")(layers.Flatten()(source))
    repeated = layers.Reshape((3, 2))(vector)
    merged = layers.Bidirectional(layers.SimpleRNN(2, return_sequences=True, go_backwards=False),
                                  merge_mode="mul")(layers.RepeatVector(3)(
                                      layers.Dense(2)(layers.Flatten()(repeated))))
    outputs = head(inner(merged))
    model = keras.Model(source, outputs)
    return model, rng.normal(size=(2, 4, 2)).astype("float32")


CASES = {builder.__name__: builder for builder in (
    masked_lstm_stack, gru_both_reset_modes, embedding_bidirectional, masked_tagger,
    encoder_decoder, shapes_and_nesting)}


def build(name: str, keras, seed: int = 0):
    """The case's model with random weights, its inputs, and Keras's outputs on them."""
    rng = np.random.default_rng(seed)
    model, inputs = CASES[name](keras, rng)
    randomize(model, seed)
    return model, inputs, np.asarray(model(inputs))
