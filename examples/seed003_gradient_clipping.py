"""Seed 003, "Vanishing and Exploding Gradients", solutions 1 and 2: an ``Adam(clipvalue=1.0)``
optimizer and an LSTM(64) + Dense(1) model, put together.

The seed gives two fragments: the clipped optimizer (``tf.keras.optimizers.Adam``) and the model.
This script is those fragments with their Keras imports changed to rnnkit's, joined by the
``compile``/``fit`` the seed's other programs use (marked ``# EDIT:``). ``timesteps``,
``input_dim`` and the data are left undefined by the seed; the synthetic task of
``seed003_simple_rnn_regressor.py`` stands in. ``main(epochs=None)`` returns the validation
MSE.
"""

from _example_settings import epochs as example_epochs  # EDIT: epoch cut for CI
from _example_settings import sine_windows  # EDIT: data for the seed's undefined names

from rnnkit.layers import LSTM, Dense
from rnnkit.models import Sequential
from rnnkit.optimizers import Adam

# EDIT: the seed leaves these undefined (see the docstring).
timesteps, input_dim = 20, 2
(train_data, train_labels), (val_data, val_labels) = sine_windows(timesteps, input_dim)


# EDIT: the program sits in main() so tests can run it and read its results.
def main(epochs: int | None = None) -> dict:
    optimizer = Adam(clipvalue=1.0)  # EDIT: was tf.keras.optimizers.Adam(clipvalue=1.0)

    model = Sequential([
        LSTM(64, input_shape=(timesteps, input_dim)),
        Dense(1)
    ])

    # EDIT: the seed stops at the model; compiled with the clipped optimizer and trained like
    # the seed's other regressors (epochs=20, batch_size=32).
    model.compile(optimizer=optimizer, loss='mean_squared_error')
    history = model.fit(train_data, train_labels, epochs=example_epochs(20, epochs),
                        batch_size=32, validation_data=(val_data, val_labels))

    # EDIT: return the result for tests.
    return {"val_loss": history.history["val_loss"][-1]}

if __name__ == "__main__":
    main()
