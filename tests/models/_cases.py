"""The seeds' models, built the same way in rnnkit and in Keras.

Every builder takes the ``keras`` module and returns ``(ours, theirs, inputs)``. Sizes are the
seeds' where they are small and reduced where they would only slow the suite (seed 003's 256
units become 16); the architecture — layers, options, wiring — is the seed's.
"""

from __future__ import annotations

import numpy as np

from rnnkit import layers
from rnnkit.models import Model, Sequential

CASES = {}


def case(function):
    CASES[function.__name__] = function
    return function


def _series(rng, batch=4, steps=9):
    return rng.standard_normal((batch, steps, 1)).astype("float32")


def _padded_tokens(rng, vocab, lengths, steps):
    """Token ids in [1, vocab) right-padded with 0 to ``steps``; one row is left-padded."""
    ids = np.zeros((len(lengths), steps), dtype="int64")
    for row, length in enumerate(lengths):
        tokens = rng.integers(1, vocab, size=length)
        if row == len(lengths) - 1:
            ids[row, steps - length:] = tokens
        else:
            ids[row, :length] = tokens
    return ids


def _stacked(keras, rng, rnn_name: str, bidirectional: bool = False):
    """Seed 001: two recurrent layers (64 then 32 units) and Dense(1) on series (None, 1)."""
    ours_rnn, theirs_rnn = getattr(layers, rnn_name), getattr(keras.layers, rnn_name)
    if bidirectional:
        ours_layers = [layers.Bidirectional(ours_rnn(64, return_sequences=True),
                                            input_shape=(None, 1)),
                       layers.Bidirectional(ours_rnn(32))]
        theirs_layers = [keras.layers.Bidirectional(theirs_rnn(64, return_sequences=True)),
                         keras.layers.Bidirectional(theirs_rnn(32))]
    else:
        ours_layers = [ours_rnn(64, return_sequences=True, input_shape=(None, 1)), ours_rnn(32)]
        theirs_layers = [theirs_rnn(64, return_sequences=True), theirs_rnn(32)]
    ours = Sequential([*ours_layers, layers.Dense(1)])
    theirs = keras.Sequential([keras.Input((None, 1)), *theirs_layers, keras.layers.Dense(1)])
    return ours, theirs, _series(rng)


@case
def stacked_lstm(keras, rng):
    return _stacked(keras, rng, "LSTM")


@case
def stacked_gru(keras, rng):
    return _stacked(keras, rng, "GRU")


@case
def bidirectional_lstm(keras, rng):
    return _stacked(keras, rng, "LSTM", bidirectional=True)


@case
def bidirectional_gru(keras, rng):
    return _stacked(keras, rng, "GRU", bidirectional=True)


@case
def embedding_mask_lstm(keras, rng):
    """Embedding(mask_zero) -> LSTM -> Dense(softmax) on padded token ids."""
    ours = Sequential([layers.Embedding(30, 8, mask_zero=True, input_shape=(None,)),
                       layers.LSTM(16), layers.Dense(3, activation="softmax")])
    theirs = keras.Sequential([keras.Input((None,), dtype="int32"),
                               keras.layers.Embedding(30, 8, mask_zero=True),
                               keras.layers.LSTM(16),
                               keras.layers.Dense(3, activation="softmax")])
    return ours, theirs, _padded_tokens(rng, 30, [7, 3, 5, 4], steps=7)


@case
def masked_tagger(keras, rng):
    """Seed 003's tagger with padding: Embedding(mask_zero) -> BiLSTM -> TimeDistributed(Dense)."""
    ours = Sequential([layers.Embedding(30, 8, mask_zero=True, input_shape=(None,)),
                       layers.Bidirectional(layers.LSTM(12, return_sequences=True)),
                       layers.TimeDistributed(layers.Dense(5, activation="softmax"))])
    theirs = keras.Sequential([
        keras.Input((None,), dtype="int32"),
        keras.layers.Embedding(30, 8, mask_zero=True),
        keras.layers.Bidirectional(keras.layers.LSTM(12, return_sequences=True)),
        keras.layers.TimeDistributed(keras.layers.Dense(5, activation="softmax"))])
    return ours, theirs, _padded_tokens(rng, 30, [6, 2, 4], steps=6)


def _encoder_decoder(api, Input, Model_):
    """Seed 003's translator: the encoder's final [h, c] starts the decoder."""
    encoder_input = Input(shape=(None,), name="encoder_input")
    encoder_embedding = api.Embedding(20, 8, name="encoder_embedding")(encoder_input)
    encoder_lstm = api.LSTM(16, return_state=True, name="encoder_lstm")
    _, state_h, state_c = encoder_lstm(encoder_embedding)
    decoder_input = Input(shape=(None,), name="decoder_input")
    decoder_embedding = api.Embedding(18, 8, name="decoder_embedding")(decoder_input)
    decoder_lstm = api.LSTM(16, return_sequences=True, return_state=True, name="decoder_lstm")
    decoder_output, _, _ = decoder_lstm(decoder_embedding, initial_state=[state_h, state_c])
    decoder_output = api.Dense(18, activation="softmax", name="decoder_dense")(decoder_output)
    return Model_([encoder_input, decoder_input], decoder_output)


@case
def encoder_decoder(keras, rng):
    ours = _encoder_decoder(layers, layers.Input, Model)
    theirs = _encoder_decoder(keras.layers, keras.Input, keras.Model)
    inputs = [rng.integers(0, 20, size=(3, 7)), rng.integers(0, 18, size=(3, 5))]
    return ours, theirs, inputs


def _captioning(api, Input, Model_, concatenate):
    """Seed 003's captioner: image features repeated along the caption, joined to its words."""
    steps = 6
    image_features_input = Input(shape=(12,), name="image_features")
    image_features = api.RepeatVector(steps, name="repeat")(image_features_input)
    caption_input = Input(shape=(steps,), name="caption")
    caption_embedding = api.Embedding(25, 8, name="caption_embedding")(caption_input)
    rnn_input = concatenate([image_features, caption_embedding], axis=-1, name="join")
    rnn_output = api.LSTM(16, return_sequences=True, name="caption_lstm")(rnn_input)
    output = api.Dense(25, activation="softmax", name="word")(rnn_output)
    return Model_(inputs=[image_features_input, caption_input], outputs=output)


@case
def captioning(keras, rng):
    ours = _captioning(layers, layers.Input, Model, layers.concatenate)
    theirs = _captioning(keras.layers, keras.Input, keras.Model, keras.layers.concatenate)
    inputs = [rng.standard_normal((3, 12)).astype("float32"), rng.integers(0, 25, size=(3, 6))]
    return ours, theirs, inputs


def _masked_stack(api, Input, Model_):
    """Functional Embedding(mask_zero) -> LSTM(sequences) -> LSTM -> Dense: the mask must reach
    both recurrent layers through the graph."""
    tokens = Input(shape=(None,), name="tokens")
    vectors = api.Embedding(30, 8, mask_zero=True, name="vectors")(tokens)
    sequence = api.LSTM(12, return_sequences=True, name="lower")(vectors)
    summary = api.GRU(10, name="upper")(sequence)
    return Model_(tokens, api.Dense(2, name="score")(summary))


@case
def functional_masked(keras, rng):
    ours = _masked_stack(layers, layers.Input, Model)
    theirs = _masked_stack(keras.layers, keras.Input, keras.Model)
    return ours, theirs, _padded_tokens(rng, 30, [8, 3, 5, 1], steps=8)
