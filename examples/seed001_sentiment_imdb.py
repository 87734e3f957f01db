"""Seed 001, "Real-life Example: Sentiment Analysis": Embedding(10000, 128) + LSTM(64) with
dropout and recurrent dropout, classifying texts as positive or negative.

The seed's program with its Keras imports changed to rnnkit's (``import tensorflow as tf`` is
dropped: the program never uses it). Other edits are marked ``# EDIT:``; the one that matters:
IMDB needs a download, so rnnkit's offline ``tweet_sentiment`` set stands in (positive and
negative tweets, split in half, tokenized like ``imdb.load_data``; 30 % are positive).
``main(epochs=None)`` runs the program and returns the test loss and accuracy.
"""

from _example_settings import epochs as example_epochs  # EDIT: epoch cut for CI
from _example_settings import load_tweet_sentiment  # EDIT: offline stand-in for IMDB

from rnnkit.data import pad_sequences
from rnnkit.layers import LSTM, Dense, Embedding
from rnnkit.models import Sequential


# EDIT: the program sits in main() so tests can run it and read its results.
def main(epochs: int | None = None) -> dict:
    # Load the IMDB dataset
    vocab_size = 10000
    max_length = 200
    # EDIT: was imdb.load_data(num_words=vocab_size), which downloads IMDB.
    (X_train, y_train), (X_test, y_test) = load_tweet_sentiment(num_words=vocab_size)
    # Pad sequences to ensure uniform length
    X_train = pad_sequences(X_train, maxlen=max_length)
    X_test = pad_sequences(X_test, maxlen=max_length)
    # Build the model
    model = Sequential([
        Embedding(vocab_size, 128, input_length=max_length),
        LSTM(64, dropout=0.2, recurrent_dropout=0.2),
        Dense(1, activation='sigmoid')
    ])
    model.compile(optimizer='adam', loss='binary_crossentropy', metrics=['accuracy'])
    # Train the model
    # EDIT: epochs=5 may be cut (main(epochs=...), RNNKIT_EXAMPLE_EPOCHS).
    history = model.fit(X_train, y_train, epochs=example_epochs(5, epochs), batch_size=32,  # noqa: F841
                        validation_split=0.2, verbose=1)
    # Evaluate the model
    test_loss, test_acc = model.evaluate(X_test, y_test, verbose=0)
    print(f"Test accuracy: {test_acc:.4f}")
    # Make predictions
    sample_review = X_test[0]
    prediction = model.predict(sample_review.reshape(1, -1))[0][0]
    print(f"Prediction: {'Positive' if prediction > 0.5 else 'Negative'} "
          f"(confidence: {prediction:.2f})")

    # EDIT: return the results for tests, with the rate a constant guess would score.
    majority_rate = max(y_test.mean(), 1 - y_test.mean())
    return {"test_loss": test_loss, "test_accuracy": test_acc,
            "majority_rate": float(majority_rate)}


if __name__ == "__main__":
    main()
