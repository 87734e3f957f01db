"""Seed 001, "Comparing LSTM and GRU": LSTM(64) and GRU(64) forecasters of a noisy sine wave,
trained side by side, with their loss curves plotted.

The seed's program with its Keras imports changed to rnnkit's. The seed's block has no imports
of its own (it relies on the guide's first block: ``tensorflow``, ``LSTM, GRU, Dense``,
``Sequential``). Other edits are marked ``# EDIT:``. ``main(epochs=None)`` runs the program and
returns each model's final validation MSE (the noise alone has variance 0.01).
"""

import matplotlib.pyplot as plt
import numpy as np
from _example_settings import epochs as example_epochs  # EDIT: epoch cut for CI
from _example_settings import figure_path  # EDIT: figures are saved (headless)

from rnnkit.layers import GRU, LSTM, Dense
from rnnkit.models import Sequential


# EDIT: the program sits in main() so tests can run it and read its results.
def main(epochs: int | None = None) -> dict:
    # Function to generate sine wave data
    def generate_sine_wave(num_samples, frequency, noise_level):
        x = np.linspace(0, 4 * np.pi, num_samples)
        y = np.sin(frequency * x) + np.random.normal(0, noise_level, num_samples)
        return x, y

    # Generate data
    num_samples = 1000
    frequency = 1.5
    noise_level = 0.1
    x, y = generate_sine_wave(num_samples, frequency, noise_level)
    # Prepare data for LSTM/GRU
    sequence_length = 50
    X = []
    Y = []
    for i in range(len(y) - sequence_length):
        X.append(y[i:i+sequence_length])
        Y.append(y[i+sequence_length])
    X = np.array(X).reshape(-1, sequence_length, 1)
    Y = np.array(Y)
    epochs = example_epochs(50, epochs)  # EDIT: epochs=50 below may be cut
    # Create and train LSTM model
    lstm_model = Sequential([  # EDIT: tf.keras.Sequential is rnnkit.models.Sequential
        LSTM(64, input_shape=(sequence_length, 1)),
        Dense(1)
    ])
    lstm_model.compile(optimizer='adam', loss='mse')
    lstm_history = lstm_model.fit(X, Y, epochs=epochs, batch_size=32, validation_split=0.2,
                                  verbose=0)
    # Create and train GRU model
    gru_model = Sequential([  # EDIT: tf.keras.Sequential is rnnkit.models.Sequential
        GRU(64, input_shape=(sequence_length, 1)),
        Dense(1)
    ])
    gru_model.compile(optimizer='adam', loss='mse')
    gru_history = gru_model.fit(X, Y, epochs=epochs, batch_size=32, validation_split=0.2,
                                verbose=0)
    # Plot training and validation loss
    plt.figure(figsize=(12, 6))
    plt.plot(lstm_history.history['loss'], label='LSTM Training Loss')
    plt.plot(lstm_history.history['val_loss'], label='LSTM Validation Loss')
    plt.plot(gru_history.history['loss'], label='GRU Training Loss')
    plt.plot(gru_history.history['val_loss'], label='GRU Validation Loss')
    plt.title('LSTM vs GRU: Training and Validation Loss')
    plt.xlabel('Epoch')
    plt.ylabel('Mean Squared Error')
    plt.legend()
    plt.savefig(figure_path(__file__, "losses"))  # EDIT: save instead of plt.show()

    # EDIT: return the results for tests.
    return {"lstm_val_loss": lstm_history.history['val_loss'][-1],
            "gru_val_loss": gru_history.history['val_loss'][-1]}


if __name__ == "__main__":
    main()
