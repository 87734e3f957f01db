"""Seed 000, "LSTM Example": two stacked ReLU LSTM(50) layers forecasting a noisy sine wave,
with ``EarlyStopping``.

The seed's program with its Keras imports changed to rnnkit's. Other edits are marked
``# EDIT:`` with the reason. The one that matters: the seed's 100 points leave 20 test points,
fewer than its 30-step window, so ``X_test`` comes out empty and the reshape raises
``IndexError`` (in Keras too); 500 points give 70 test windows. ``main(epochs=None)`` runs the
program and returns the test MSE on the [0, 1]-scaled series.
"""

# Import necessary libraries
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd  # noqa: F401  (imported by the seed, unused)
from _example_settings import epochs as example_epochs  # EDIT: epoch cut for CI
from _example_settings import figure_path  # EDIT: figures are saved (headless)
from sklearn.model_selection import train_test_split  # noqa: F401  (imported by the seed)
from sklearn.preprocessing import MinMaxScaler

from rnnkit.callbacks import EarlyStopping
from rnnkit.layers import LSTM, Dense, Dropout
from rnnkit.models import Sequential


# EDIT: the program sits in main() so tests can run it and read its results.
def main(epochs: int | None = None) -> dict:
    # Generate sample dataset (time series data)
    np.random.seed(0)
    time_steps = 500  # EDIT: was 100, which leaves no test window (see the docstring)
    future_pred = 30
    data = np.sin(np.linspace(0, 10 * np.pi, time_steps)) + 0.2 * np.random.normal(0, 1, time_steps)

    # Plot original data
    plt.figure(figsize=(10, 6))
    plt.plot(data)
    plt.title('Original Data')
    plt.savefig(figure_path(__file__, "data"))  # EDIT: save instead of plt.show()

    # Scale data
    scaler = MinMaxScaler()
    data_scaled = scaler.fit_transform(data.reshape(-1, 1))

    # Split data into training and testing sets
    train_size = int(0.8 * len(data_scaled))
    train_data, test_data = data_scaled[0:train_size], data_scaled[train_size:]

    # Split data into X (input) and y (output)
    def split_data(data, future_pred):
        X, y = [], []
        for i in range(len(data) - future_pred):
            X.append(data[i:i + future_pred])
            y.append(data[i + future_pred])
        return np.array(X), np.array(y)

    X_train, y_train = split_data(train_data, future_pred)
    X_test, y_test = split_data(test_data, future_pred)

    # Reshape data for LSTM input
    X_train = np.reshape(X_train, (X_train.shape[0], X_train.shape[1], 1))
    X_test = np.reshape(X_test, (X_test.shape[0], X_test.shape[1], 1))

    # Build LSTM model
    model = Sequential()
    model.add(LSTM(50, activation='relu', return_sequences=True, input_shape=(future_pred, 1)))
    model.add(LSTM(50, activation='relu'))
    model.add(Dropout(0.2))
    model.add(Dense(1))

    # Compile model
    model.compile(optimizer='adam', loss='mean_squared_error')

    # Early stopping callback
    early_stopping = EarlyStopping(patience=5, min_delta=0.001)

    # Train model
    # EDIT: epochs=50 may be cut (main(epochs=...), RNNKIT_EXAMPLE_EPOCHS); the history is kept.
    history = model.fit(X_train, y_train, epochs=example_epochs(50, epochs), batch_size=32,
                        validation_data=(X_test, y_test), callbacks=[early_stopping])

    # Make predictions
    predictions = model.predict(X_test)

    # Plot predictions
    plt.figure(figsize=(10, 6))
    plt.plot(y_test, label='Actual')
    plt.plot(predictions, label='Predicted')
    plt.legend()
    plt.title('Predictions')
    plt.savefig(figure_path(__file__, "predictions"))  # EDIT: save instead of plt.show()

    # EDIT: return the results for tests.
    test_loss = float(np.mean((np.ravel(predictions) - np.ravel(y_test)) ** 2))
    return {"test_loss": test_loss, "epochs_run": len(history.history["loss"])}


if __name__ == "__main__":
    main()
