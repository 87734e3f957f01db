"""Seed 001, "Real-life Example: Time Series Forecasting": GRU(50) + Dense(1) predicting the next
value of a noisy sine wave from the previous 50.

The seed's program with its Keras imports changed to rnnkit's. Other edits are marked
``# EDIT:``. ``main(epochs=None)`` runs the program and returns the test MSE (the noise alone
has variance 0.01, the series about 0.5).
"""

import matplotlib.pyplot as plt
import numpy as np
from _example_settings import epochs as example_epochs  # EDIT: epoch cut for CI
from _example_settings import figure_path  # EDIT: figures are saved (headless)

from rnnkit.layers import GRU, Dense
from rnnkit.models import Sequential


# EDIT: the program sits in main() so tests can run it and read its results.
def main(epochs: int | None = None) -> dict:
    # Generate sine wave data
    def generate_sine_wave(num_samples, frequency, noise_level):
        x = np.linspace(0, 4 * np.pi, num_samples)
        y = np.sin(frequency * x) + np.random.normal(0, noise_level, num_samples)
        return x, y

    num_samples = 1000
    frequency = 1.5
    noise_level = 0.1
    x, y = generate_sine_wave(num_samples, frequency, noise_level)

    # Prepare data for GRU
    def create_dataset(data, look_back=1):
        X, Y = [], []
        for i in range(len(data) - look_back):
            X.append(data[i:(i + look_back)])
            Y.append(data[i + look_back])
        return np.array(X), np.array(Y)

    look_back = 50
    X, Y = create_dataset(y, look_back)
    X = X.reshape((X.shape[0], X.shape[1], 1))
    # Split data into train and test sets
    train_size = int(len(X) * 0.8)
    X_train, X_test = X[:train_size], X[train_size:]
    Y_train, Y_test = Y[:train_size], Y[train_size:]
    # Build and train the GRU model
    model = Sequential([
        GRU(50, input_shape=(look_back, 1)),
        Dense(1)
    ])
    model.compile(optimizer='adam', loss='mse')
    # EDIT: epochs=50 may be cut (main(epochs=...), RNNKIT_EXAMPLE_EPOCHS).
    model.fit(X_train, Y_train, epochs=example_epochs(50, epochs), batch_size=32,
              validation_data=(X_test, Y_test), verbose=0)
    # Make predictions
    train_predict = model.predict(X_train)
    test_predict = model.predict(X_test)
    # Plot results
    plt.figure(figsize=(12, 6))
    plt.plot(y, label='Actual')
    plt.plot(np.arange(look_back, look_back + len(train_predict)), train_predict,
             label='Train Predict')
    plt.plot(np.arange(look_back + len(train_predict),
                       look_back + len(train_predict) + len(test_predict)), test_predict,
             label='Test Predict')
    plt.legend()
    plt.title('GRU Time Series Forecasting')
    plt.savefig(figure_path(__file__, "forecast"))  # EDIT: save instead of plt.show()

    # EDIT: return the results for tests.
    return {"test_loss": float(np.mean((np.ravel(test_predict) - Y_test) ** 2))}


if __name__ == "__main__":
    main()
