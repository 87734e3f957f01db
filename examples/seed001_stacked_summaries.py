"""Seed 001, "Introduction to LSTMs and GRUs": stacked LSTM(64)/LSTM(32) and GRU(64)/GRU(32)
models, each topped by Dense(1), and their summaries.

The seed's program with its Keras imports changed to rnnkit's (``import tensorflow as tf`` is
dropped: the program never uses it). Other edits are marked ``# EDIT:``. ``main()`` prints the
summaries and returns each model's parameter count (Keras counts 29,345 and 22,305).
"""

from rnnkit.layers import GRU, LSTM, Dense
from rnnkit.models import Sequential


# EDIT: the program sits in main() so tests can read its parameter counts.
# EDIT: epochs is unused (nothing is trained); kept so every script has the same main().
def main(epochs: int | None = None) -> dict:
    # Create a simple LSTM model
    lstm_model = Sequential([
        LSTM(64, input_shape=(None, 1), return_sequences=True),
        LSTM(32),
        Dense(1)
    ])
    # Create a simple GRU model
    gru_model = Sequential([
        GRU(64, input_shape=(None, 1), return_sequences=True),
        GRU(32),
        Dense(1)
    ])
    print("LSTM Model Summary:")
    lstm_model.summary()
    print("\nGRU Model Summary:")
    gru_model.summary()

    # EDIT: return the results for tests.
    return {"lstm_params": lstm_model.count_params(), "gru_params": gru_model.count_params()}


if __name__ == "__main__":
    main()
