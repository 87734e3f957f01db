"""Seed 003, "Many-to-Many (Unequal Length)": Embedding + LSTM(50) + RepeatVector +
LSTM(50, return_sequences=True) + TimeDistributed(Dense(softmax)), the seed's translator.

The seed's program with its Keras imports changed to rnnkit's (it reuses the previous block's
``Sequential``, ``Embedding`` and ``TimeDistributed``). The seed leaves the sizes and data
undefined; rnnkit's date-translation task stands in (``rnnkit.seq2seq.dates``), in its two
all-digit formats so that it learns in minutes: "03/04/2021" (month first) or "04.03.2021"
(day first) to "2021-03-04" plus an end token, character by character. Other edits are marked
``# EDIT:``. ``main(epochs=None)`` runs the program and returns the validation loss and
per-character accuracy, and what answering each position's most frequent training character
would score.
"""

import numpy as np
from _example_settings import epochs as example_epochs  # EDIT: epoch cut for CI

from rnnkit.layers import LSTM, Dense, Embedding, RepeatVector, TimeDistributed
from rnnkit.models import Sequential
from rnnkit.seq2seq.dates import make_dates  # EDIT: data for the seed's undefined names

# EDIT: the seed leaves these undefined (see the docstring).
dates = make_dates(5000, seed=0, formats=["mm/dd/yyyy", "dd.mm.yyyy"])
vocab_size, target_vocab_size = len(dates.source_vocab), len(dates.target_vocab)
max_sequence_length, target_sequence_length = dates.src.shape[1], dates.tgt_out.shape[1]
embedding_dim = 32
one_hot = np.eye(target_vocab_size, dtype="float32")[dates.tgt_out]  # (N, T, target vocab)
train_data, train_labels = dates.src[:4000], one_hot[:4000]
val_data, val_labels = dates.src[4000:], one_hot[4000:]


# EDIT: the program sits in main() so tests can run it and read its results.
def main(epochs: int | None = None) -> dict:
    # Define the model
    model = Sequential([
        Embedding(input_dim=vocab_size, output_dim=embedding_dim, input_length=max_sequence_length),
        LSTM(50, return_sequences=False),
        RepeatVector(target_sequence_length),
        LSTM(50, return_sequences=True),
        TimeDistributed(Dense(target_vocab_size, activation='softmax'))
    ])

    # Compile the model
    model.compile(optimizer='adam', loss='categorical_crossentropy', metrics=['accuracy'])

    # Train the model
    # EDIT: epochs=10 may be cut (main(epochs=...), RNNKIT_EXAMPLE_EPOCHS); history kept.
    history = model.fit(train_data, train_labels, epochs=example_epochs(10, epochs),
                        batch_size=32, validation_data=(val_data, val_labels))

    # EDIT: return the results for tests.
    modes = train_labels.sum(axis=0).argmax(-1)  # (T,) most frequent character per position
    return {"val_loss": history.history["val_loss"][-1],
            "val_accuracy": history.history["val_accuracy"][-1],
            "position_mode_accuracy": float((val_labels.argmax(-1) == modes).mean())}


if __name__ == "__main__":
    main()
