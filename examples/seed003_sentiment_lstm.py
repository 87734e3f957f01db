"""Seed 003, "Many-to-One RNN Architecture": Embedding + LSTM(50) + Dense(1, sigmoid) for
sentiment analysis.

The seed's program with its Keras imports changed to rnnkit's (``import tensorflow as tf`` is
dropped: the program never uses it). The seed leaves the sizes and data undefined; rnnkit's
offline ``tweet_sentiment`` set stands in (positive vs negative tweets, 30 % positive; the
test half is the validation data), with sizes defined at the top. Other edits are marked
``# EDIT:``. ``main(epochs=None)`` runs the program and returns the validation loss and
accuracy, and the rate a constant guess would score.
"""

from _example_settings import epochs as example_epochs  # EDIT: epoch cut for CI
from _example_settings import load_tweet_sentiment  # EDIT: data for the seed's undefined names

from rnnkit.data import pad_sequences
from rnnkit.layers import LSTM, Dense, Embedding
from rnnkit.models import Sequential

# EDIT: the seed leaves these undefined; tweets are short, so 40 words keep almost all of each.
vocab_size, embedding_dim, max_sequence_length = 10000, 64, 40
(train_texts, train_labels), (val_texts, val_labels) = load_tweet_sentiment(vocab_size)
train_data = pad_sequences(train_texts, maxlen=max_sequence_length)
val_data = pad_sequences(val_texts, maxlen=max_sequence_length)


# EDIT: the program sits in main() so tests can run it and read its results.
def main(epochs: int | None = None) -> dict:
    # Define the model
    model = Sequential([
        Embedding(input_dim=vocab_size, output_dim=embedding_dim, input_length=max_sequence_length),
        LSTM(50),
        Dense(1, activation='sigmoid')  # Binary classification (positive/negative sentiment)
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
