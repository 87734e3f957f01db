"""Seed 003, "One-to-Many RNN Architecture": an image captioner. Image features, repeated over
the caption's length (RepeatVector), are concatenated with the embedded caption so far and read
by LSTM(256); Dense(softmax) predicts each next word. Two Inputs, one functional Model.

The seed's program with its Keras imports changed to rnnkit's. The seed extracts the features
with VGG16, whose ImageNet weights are a download; given feature vectors stand in for its
output. The sizes and data are left undefined by the seed (its own note says so); a synthetic
set defined at the top stands in: 10 kinds of "image", each a fixed random 4096-d prototype plus
noise, each with its own 5-word caption. The first word can only come from the image, so
``first_word_accuracy`` shows the image features are used (a caption-only model scores 0.1).
Other edits are marked ``# EDIT:``. ``main(epochs=None)`` runs the program and returns the
validation accuracy over all words and over first words.
"""

import numpy as np
from _example_settings import epochs as example_epochs  # EDIT: epoch cut for CI

from rnnkit.layers import LSTM, Dense, Embedding, Input, RepeatVector, concatenate
from rnnkit.models import Model

# EDIT: the seed leaves these undefined (see the docstring). Word 0 pads, 1 starts a caption,
# 2 ends it; captions are "<start> w1 .. w5" in, "w1 .. w5 <end>" out.
vocab_size, embedding_dim, max_sequence_length = 40, 32, 6
_rng = np.random.default_rng(0)
_prototypes = _rng.normal(0, 1, (10, 4096)).astype("float32")  # one per kind of image
_captions = _rng.integers(3, vocab_size, (10, 5))  # (kinds, words)


def _captioned_images(count):
    kinds = _rng.integers(0, 10, count)
    features = _prototypes[kinds] + _rng.normal(0, 1, (count, 4096)).astype("float32")
    words = _captions[kinds]  # (count, 5)
    captions = np.concatenate([np.ones((count, 1), "int64"), words], axis=1)  # (count, 6)
    next_words = np.concatenate([words, np.full((count, 1), 2)], axis=1)  # (count, 6)
    return features, captions, np.eye(vocab_size, dtype="float32")[next_words]


train_image_features, train_captions, train_labels = _captioned_images(1000)
val_image_features, val_captions, val_labels = _captioned_images(200)


# EDIT: the program sits in main() so tests can run it and read its results.
def main(epochs: int | None = None) -> dict:
    # EDIT: the seed's VGG16 feature extractor (cnn_model, cnn_input, cnn_output,
    # feature_extractor) is left out: its weights are a download, and the given feature
    # vectors above stand in for its output.

    # Define the RNN for captioning
    image_features_input = Input(shape=(4096,))
    image_features = RepeatVector(max_sequence_length)(image_features_input)
    caption_input = Input(shape=(max_sequence_length,))
    caption_embedding = Embedding(input_dim=vocab_size, output_dim=embedding_dim)(caption_input)
    # EDIT: was tf.keras.layers.concatenate, which is rnnkit.layers.concatenate
    rnn_input = concatenate([image_features, caption_embedding], axis=-1)
    # LSTM layer to generate the sequence
    rnn_output = LSTM(256, return_sequences=True)(rnn_input)
    output = Dense(vocab_size, activation='softmax')(rnn_output)
    # Create the model
    model = Model(inputs=[image_features_input, caption_input], outputs=output)
    # Compile the model
    model.compile(optimizer='adam', loss='categorical_crossentropy', metrics=['accuracy'])
    # Train the model
    # Note: 'train_image_features', 'train_captions', 'train_labels' should be your dataset and
    # labels
    # EDIT: epochs=10 may be cut (main(epochs=...), RNNKIT_EXAMPLE_EPOCHS); history kept.
    history = model.fit([train_image_features, train_captions], train_labels,
                        epochs=example_epochs(10, epochs), batch_size=32,
                        validation_data=([val_image_features, val_captions], val_labels))

    # EDIT: return the results for tests.
    predicted = np.asarray(model.predict([val_image_features, val_captions], verbose=0))
    first_word_right = predicted[:, 0].argmax(-1) == val_labels[:, 0].argmax(-1)
    return {"val_accuracy": history.history["val_accuracy"][-1],
            "first_word_accuracy": float(first_word_right.mean())}


if __name__ == "__main__":
    main()
