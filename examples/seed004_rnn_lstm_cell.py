"""Seed 004 (lecture 11, "LSTMCell as an argument"): the same model as
``seed004_lstm_time_distributed.py`` with each layer written ``RNN(LSTMCell(20))``.

The seed's model with ``keras`` bound to rnnkit (``import rnnkit as keras``), so that
``keras.models.Sequential`` and ``keras.layers.X`` are rnnkit's. The slide shows only the model;
it comes from Géron's Hands-On ML (ch. 15), whose data (``generate_time_series``, 10 steps ahead
at every step) and training (MSE, Adam, 20 epochs) are added here, marked ``# EDIT:``.
``main(epochs=None)`` returns the validation MSE and the MSE of repeating the last value.
"""

from _example_settings import epochs as example_epochs  # EDIT: epoch cut for CI
from _example_settings import ten_steps_ahead  # EDIT: the data the slide leaves out

import rnnkit as keras  # was: from tensorflow import keras
import rnnkit.layers  # noqa: F401  (binds keras.layers)
import rnnkit.models  # noqa: F401  (binds keras.models)

# EDIT: Géron's data: 7,000 training and 2,000 validation series of 50 steps.
X, Y, naive_mse = ten_steps_ahead(9000)
X_train, Y_train, X_valid, Y_valid = X[:7000], Y[:7000], X[7000:], Y[7000:]


# EDIT: the program sits in main() so tests can run it and read its results.
def main(epochs: int | None = None) -> dict:
    model = keras.models.Sequential([
        keras.layers.RNN(keras.layers.LSTMCell(20),
                         return_sequences=True,
                         input_shape=[None, 1]),
        keras.layers.RNN(keras.layers.LSTMCell(20),
                         return_sequences=True),
        keras.layers.TimeDistributed(keras.layers.Dense(10))
    ])

    # EDIT: the slide stops at the model; trained as in Géron's chapter.
    model.compile(loss="mse", optimizer="adam")
    history = model.fit(X_train, Y_train, epochs=example_epochs(20, epochs),
                        validation_data=(X_valid, Y_valid))
    return {"val_loss": history.history["val_loss"][-1], "naive_mse": naive_mse}


if __name__ == "__main__":
    main()
