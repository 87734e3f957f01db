"""Seed 003, "Simple RNN" (and, word for word, "Backpropagation Through Time"): a ReLU
SimpleRNN(50) + Dense(1) regressor.

The seed's program with its Keras imports changed to rnnkit's (``import tensorflow as tf`` is
dropped: the program never uses it). The seed leaves ``timesteps``, ``input_dim`` and the data
undefined; a synthetic task defined at the top stands in: predict the next value of a noisy
sine from 20 steps of two sines (``_example_settings.sine_windows``: predicting 0 scores MSE
0.5, repeating the last input about 0.05). Other edits are marked ``# EDIT:``.
``main(epochs=None)`` runs the program and returns the validation MSE.
"""

from _example_settings import epochs as example_epochs  # EDIT: epoch cut for CI
from _example_settings import sine_windows  # EDIT: data for the seed's undefined names

from rnnkit.layers import Dense, SimpleRNN
from rnnkit.models import Sequential

# EDIT: the seed leaves these undefined (see the docstring).
timesteps, input_dim = 20, 2
(train_data, train_labels), (val_data, val_labels) = sine_windows(timesteps, input_dim)


# EDIT: the program sits in main() so tests can run it and read its results.
def main(epochs: int | None = None) -> dict:
    # Define the model
    model = Sequential([
        SimpleRNN(50, input_shape=(timesteps, input_dim), activation='relu'),
        Dense(1)  # Output layer for regression
    ])

    # Compile the model
    model.compile(optimizer='adam', loss='mean_squared_error')

    # Train the model
    # EDIT: epochs=20 may be cut (main(epochs=...), RNNKIT_EXAMPLE_EPOCHS); history kept.
    history = model.fit(train_data, train_labels, epochs=example_epochs(20, epochs),
                        batch_size=32, validation_data=(val_data, val_labels))

    # EDIT: return the result for tests.
    return {"val_loss": history.history["val_loss"][-1]}


if __name__ == "__main__":
    main()
