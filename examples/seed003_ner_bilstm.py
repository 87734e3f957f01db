"""Seed 003, "Bidirectional Recurrent Neural Networks": Embedding +
Bidirectional(LSTM(64, return_sequences=True)) + Dense(num_tags, softmax) for named entity
recognition.

The seed's program with its Keras imports changed to rnnkit's (``import tensorflow as tf`` is
dropped: the program never uses it). The seed leaves the sizes and data undefined; rnnkit's
offline WNUT-16 tweets stand in (``_example_settings.load_wnut16``). Other edits are marked
``# EDIT:``. ``main(epochs=None)`` runs the program and returns the training and validation
loss, the validation accuracy (padding included, as Keras counts them) and the scores of
``_example_settings.tagging_scores``.
"""

from _example_settings import epochs as example_epochs  # EDIT: epoch cut for CI
from _example_settings import load_wnut16, tagging_scores  # EDIT: data for undefined names

from rnnkit.layers import LSTM, Bidirectional, Dense, Embedding
from rnnkit.models import Sequential

# EDIT: the seed leaves these undefined (see the docstring); 40 words cover 99 % of the tweets.
max_sequence_length, embedding_dim = 40, 64
corpus = load_wnut16(max_sequence_length)
vocab_size, num_tags = corpus["vocab_size"], corpus["num_tags"]
train_data, train_labels = corpus["train_data"], corpus["train_labels"]
val_data, val_labels = corpus["val_data"], corpus["val_labels"]


# EDIT: the program sits in main() so tests can run it and read its results.
def main(epochs: int | None = None) -> dict:
    # Define the model
    model = Sequential([
        Embedding(input_dim=vocab_size, output_dim=embedding_dim, input_length=max_sequence_length),
        Bidirectional(LSTM(64, return_sequences=True)),
        Dense(num_tags, activation='softmax')  # Output layer for NER tags
    ])

    # Compile the model
    model.compile(optimizer='adam', loss='categorical_crossentropy', metrics=['accuracy'])

    # Train the model
    # EDIT: epochs=10 may be cut (main(epochs=...), RNNKIT_EXAMPLE_EPOCHS); history kept.
    history = model.fit(train_data, train_labels, epochs=example_epochs(10, epochs),
                        batch_size=32, validation_data=(val_data, val_labels))

    # EDIT: return the results for tests.
    return {"loss": history.history["loss"][-1], "val_loss": history.history["val_loss"][-1],
            "val_accuracy": history.history["val_accuracy"][-1], **tagging_scores(model, corpus)}


if __name__ == "__main__":
    main()
