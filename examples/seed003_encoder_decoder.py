"""Seed 003, "Encoder-Decoder Architecture": an LSTM(256) encoder whose final ``[h, c]`` start an
LSTM(256) decoder (``return_state`` / ``initial_state``), trained with teacher forcing.

The seed's program with its Keras imports changed to rnnkit's (``import tensorflow as tf`` is
dropped: the program never uses it). The seed leaves the sizes and data undefined; rnnkit's
date-translation task stands in (``rnnkit.seq2seq.dates``), in its two all-digit formats so
that it learns in minutes: "03/04/2021" (month first) or "04.03.2021" (day first) to
"2021-03-04", character by character; the decoder reads the target shifted right behind a start
token. Other edits are marked ``# EDIT:``. ``main(epochs=None)`` runs the program and
returns the last validation loss and per-character accuracy, and what answering each position's
most frequent training character would score.
"""

import numpy as np
from _example_settings import epochs as example_epochs  # EDIT: epoch cut for CI

from rnnkit.layers import LSTM, Dense, Embedding, Input
from rnnkit.models import Model
from rnnkit.seq2seq.dates import make_dates  # EDIT: data for the seed's undefined names

# EDIT: the seed leaves these undefined (see the docstring).
dates = make_dates(5000, seed=0, formats=["mm/dd/yyyy", "dd.mm.yyyy"])
source_vocab_size, target_vocab_size = len(dates.source_vocab), len(dates.target_vocab)
embedding_dim = 32
encoder_input_data, decoder_input_data = dates.src, dates.tgt_in
decoder_target_data = np.eye(target_vocab_size, dtype="float32")[dates.tgt_out]  # (N, T, V)


# EDIT: the program sits in main() so tests can run it and read its results.
def main(epochs: int | None = None) -> dict:
    # Define the encoder
    encoder_input = Input(shape=(None,), name='encoder_input')
    encoder_embedding = Embedding(input_dim=source_vocab_size, output_dim=embedding_dim,
                                  name='encoder_embedding')(encoder_input)
    encoder_lstm = LSTM(256, return_state=True, name='encoder_lstm')
    encoder_output, state_h, state_c = encoder_lstm(encoder_embedding)
    encoder_states = [state_h, state_c]

    # Define the decoder
    decoder_input = Input(shape=(None,), name='decoder_input')
    decoder_embedding = Embedding(input_dim=target_vocab_size, output_dim=embedding_dim,
                                  name='decoder_embedding')(decoder_input)
    decoder_lstm = LSTM(256, return_sequences=True, return_state=True, name='decoder_lstm')
    decoder_output, _, _ = decoder_lstm(decoder_embedding, initial_state=encoder_states)
    decoder_dense = Dense(target_vocab_size, activation='softmax', name='decoder_dense')
    decoder_output = decoder_dense(decoder_output)

    # Create the model
    model = Model([encoder_input, decoder_input], decoder_output)

    # Compile the model
    model.compile(optimizer='adam', loss='categorical_crossentropy', metrics=['accuracy'])

    # Train the model
    # EDIT: epochs=10 may be cut (main(epochs=...), RNNKIT_EXAMPLE_EPOCHS); history kept.
    history = model.fit([encoder_input_data, decoder_input_data], decoder_target_data,
                        epochs=example_epochs(10, epochs), batch_size=64, validation_split=0.2)

    # EDIT: return the results for tests; validation_split holds out the last 20 %.
    split = int(0.8 * len(decoder_target_data))
    modes = decoder_target_data[:split].sum(axis=0).argmax(-1)  # (T,)
    val_targets = decoder_target_data[split:].argmax(-1)
    return {"val_loss": history.history["val_loss"][-1],
            "val_accuracy": history.history["val_accuracy"][-1],
            "position_mode_accuracy": float((val_targets == modes).mean())}


if __name__ == "__main__":
    main()
