"""Seed 002, "Example with Stacked LSTM and Dropout": LSTM(50) -> Dropout(0.2) -> LSTM(50) ->
Dense(1) on seed 002's sine-wave windows, trained at ``batch_size=1``.

The seed's program with its Keras imports changed to rnnkit's. The seed writes only the model
and says "compile, train, and evaluate the model (same as before)": the data preparation is the
first program's (``seed002_sine_lstm.py``), copied unchanged. Other edits are marked
``# EDIT:``. ``main(epochs=None)`` runs the program and returns its test loss; the seed prints
``Test Loss: 3.92e-05`` after 50 epochs.
"""

import numpy as np
from _example_settings import epochs as example_epochs
from sklearn.preprocessing import MinMaxScaler

from rnnkit.layers import LSTM, Dense, Dropout
from rnnkit.models import Sequential


# EDIT: the program sits in main() so tests can run it and read its test loss.
def main(epochs: int | None = None) -> dict:
    # EDIT: the data preparation of seed 002's first program, which this one reuses.
    # Generate synthetic sequential data
    data = np.sin(np.linspace(0, 100, 1000))

    # Prepare the dataset
    def create_dataset(data, time_step=1):
        X, y = [], []
        for i in range(len(data) - time_step - 1):
            a = data[i:(i + time_step)]
            X.append(a)
            y.append(data[i + time_step])
        return np.array(X), np.array(y)

    # Scale the data
    scaler = MinMaxScaler(feature_range=(0, 1))
    data = scaler.fit_transform(data.reshape(-1, 1))

    # Create the dataset with time steps
    time_step = 10
    X, y = create_dataset(data, time_step)
    X = X.reshape(X.shape[0], X.shape[1], 1)

    # Split the data into train and test sets
    train_size = int(len(X) * 0.8)
    X_train, X_test = X[:train_size], X[train_size:]
    y_train, y_test = y[:train_size], y[train_size:]

    # Create the stacked LSTM model
    model = Sequential([
        LSTM(50, return_sequences=True, input_shape=(time_step, 1)),
        Dropout(0.2),
        LSTM(50),
        Dense(1)
    ])

    # Compile, train, and evaluate the model (same as before)
    model.compile(optimizer='adam', loss='mean_squared_error')
    # EDIT: epochs=50 can be cut by main(epochs=...) or RNNKIT_EXAMPLE_EPOCHS.
    model.fit(X_train, y_train, epochs=example_epochs(50, epochs), batch_size=1, verbose=1)
    loss = model.evaluate(X_test, y_test, verbose=0)
    print(f"Test Loss: {loss}")

    # EDIT: return the result for tests.
    return {"test_loss": float(loss)}


if __name__ == "__main__":
    main()
