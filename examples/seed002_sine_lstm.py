"""Seed 002, "Hour 21: LSTM": LSTM(50) + Dense(1) forecasting a sine wave at ``batch_size=1``.

The seed's program with its Keras imports changed to rnnkit's. Other edits are marked
``# EDIT:`` with the reason. ``main(epochs=None)`` runs the program and returns its test loss;
the seed prints ``Test Loss: 2.57e-06`` after 50 epochs.
"""

import numpy as np
from _example_settings import epochs as example_epochs
from sklearn.preprocessing import MinMaxScaler

from rnnkit.layers import LSTM, Dense
from rnnkit.models import Sequential


# EDIT: the program sits in main() so tests can run it and read its test loss.
def main(epochs: int | None = None) -> dict:
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

    # Create the LSTM model

    model = Sequential([
        LSTM(50, input_shape=(time_step, 1)),
        Dense(1)
    ])

    # Compile the model
    model.compile(optimizer='adam', loss='mean_squared_error')

    # Train the model
    # EDIT: epochs=50 can be cut by main(epochs=...) or RNNKIT_EXAMPLE_EPOCHS.
    model.fit(X_train, y_train, epochs=example_epochs(50, epochs), batch_size=1, verbose=1)

    # Evaluate the model
    loss = model.evaluate(X_test, y_test, verbose=0)

    print(f"Test Loss: {loss}")

    # Predict the next value in the sequence
    last_sequence = X_test[-1].reshape(1, time_step, 1)
    predicted_value = model.predict(last_sequence)
    predicted_value = scaler.inverse_transform(predicted_value)
    print(f"Predicted Value: {predicted_value[0][0]}")

    # EDIT: return the results for tests (the true next value, sin(99.9), is -0.590).
    return {"test_loss": float(loss), "predicted_value": float(predicted_value[0][0])}


if __name__ == "__main__":
    main()
