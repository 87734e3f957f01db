"""Seed 003, "Training Process of Recurrent Neural Networks": Embedding(10000, 128) +
SimpleRNN(64) + Dense(1, sigmoid) text classification.

The seed's program with its Keras imports changed to rnnkit's (``import tensorflow as tf`` is
dropped: the program never uses it). The seed's data are placeholders (``train_data = ...``);
rnnkit's offline ``tweet_sentiment`` set stands in (positive vs negative tweets, 30 % positive;
the test half is the validation data). Other edits are marked ``# EDIT:``.
``main(epochs=None)`` runs the program and returns the validation loss and accuracy, and the
rate a constant guess would score.
"""

from _example_settings import epochs as example_epochs  # EDIT: epoch cut for CI
from _example_settings import load_tweet_sentiment  # EDIT: data for the seed's placeholders

from rnnkit.data import pad_sequences
from rnnkit.layers import Dense, Embedding, SimpleRNN
from rnnkit.models import Sequential


# EDIT: the program sits in main() so tests can run it and read its results.
def main(epochs: int | None = None) -> dict:
    # Data preparation (dummy example)
    vocab_size = 10000
    max_sequence_length = 100
    # EDIT: the four "= ..." placeholders below are filled from tweet_sentiment.
    (train_texts, train_labels), (val_texts, val_labels) = load_tweet_sentiment(vocab_size)
    # Preprocessed training sequences
    train_data = pad_sequences(train_texts, maxlen=max_sequence_length)
    # Preprocessed validation sequences
    val_data = pad_sequences(val_texts, maxlen=max_sequence_length)
    # Build the model
    model = Sequential([
        Embedding(input_dim=vocab_size, output_dim=128, input_length=max_sequence_length),
        SimpleRNN(64),
        Dense(1, activation='sigmoid')  # Binary classification
    ])
    # Compile the model
    model.compile(optimizer='adam', loss='binary_crossentropy', metrics=['accuracy'])
    # Train the model
    # EDIT: epochs=10 may be cut (main(epochs=...), RNNKIT_EXAMPLE_EPOCHS); history kept.
    history = model.fit(train_data, train_labels, epochs=example_epochs(10, epochs),
                        batch_size=32, validation_data=(val_data, val_labels))

    # EDIT: return the results for tests.
    positive_rate = float(val_labels.mean())
    return {"val_loss": history.history["val_loss"][-1],
            "val_accuracy": history.history["val_accuracy"][-1],
            "majority_rate": max(positive_rate, 1 - positive_rate)}


if __name__ == "__main__":
    main()
