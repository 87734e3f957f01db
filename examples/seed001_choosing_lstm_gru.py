"""Seed 001, "Choosing Between LSTM and GRU": LSTM(64) and GRU(64) regressors built by one
``create_model`` function and fitted to random targets, with their loss curves plotted.

The seed's program with its Keras imports changed to rnnkit's. Other edits are marked
``# EDIT:``. The targets are pure noise (variance 1), so there is nothing to generalise: the
models can only memorise the training set, and the validation loss stays near 1.
``main(epochs=None)`` runs the program and returns the first and last training and validation
losses of both models, and the validation targets' variance.
"""

import matplotlib.pyplot as plt
import numpy as np
from _example_settings import epochs as example_epochs  # EDIT: epoch cut for CI
from _example_settings import figure_path  # EDIT: figures are saved (headless)

from rnnkit.layers import GRU, LSTM, Dense
from rnnkit.models import Sequential
from rnnkit.optimizers import Adam


def create_model(cell_type, input_shape, output_units):
    model = Sequential()
    if cell_type == 'lstm':
        model.add(LSTM(64, input_shape=input_shape))
    elif cell_type == 'gru':
        model.add(GRU(64, input_shape=input_shape))
    model.add(Dense(output_units))
    model.compile(optimizer=Adam(learning_rate=0.001), loss='mse')
    return model


# EDIT: the program sits in main() so tests can run it and read its results.
def main(epochs: int | None = None) -> dict:
    # Generate sample data
    np.random.seed(42)
    X = np.random.randn(1000, 50, 1)
    y = np.random.randn(1000, 1)
    # Train LSTM and GRU models
    lstm_model = create_model('lstm', (50, 1), 1)
    gru_model = create_model('gru', (50, 1), 1)
    epochs = example_epochs(50, epochs)  # EDIT: epochs=50 below may be cut
    lstm_history = lstm_model.fit(X, y, epochs=epochs, batch_size=32, validation_split=0.2,
                                  verbose=0)
    gru_history = gru_model.fit(X, y, epochs=epochs, batch_size=32, validation_split=0.2,
                                verbose=0)
    # Plot training curves
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

    # EDIT: return the results for tests, with the validation targets' variance: the loss of
    # predicting their mean, the best a model can do on noise (validation_split holds out the
    # last 20 %).
    results = {f"{name}_{key}_{end}": history.history[key][index]
               for name, history in (("lstm", lstm_history), ("gru", gru_history))
               for key in ("loss", "val_loss") for end, index in (("first", 0), ("last", -1))}
    return {**results, "val_target_variance": float(y[800:].var())}


if __name__ == "__main__":
    main()
