"""Seed 001, "Bidirectional LSTMs and GRUs": Bidirectional LSTM(64)/LSTM(32) and GRU(64)/GRU(32)
stacks, each topped by Dense(1), and their summaries.

The seed's program with its Keras imports changed to rnnkit's (``import tensorflow as tf`` is
dropped: the program never uses it). Other edits are marked ``# EDIT:``. ``main()`` prints the
summaries and returns each model's parameter count (Keras counts 75,073 and 56,897).
"""

from rnnkit.layers import GRU, LSTM, Bidirectional, Dense
from rnnkit.models import Sequential


# EDIT: the program sits in main() so tests can read its parameter counts.
# EDIT: epochs is unused (nothing is trained); kept so every script has the same main().
def main(epochs: int | None = None) -> dict:
    # Example of a Bidirectional LSTM model
    bi_lstm_model = Sequential([
        Bidirectional(LSTM(64, return_sequences=True), input_shape=(None, 1)),
        Bidirectional(LSTM(32)),
        Dense(1)
    ])
    # Example of a Bidirectional GRU model
    bi_gru_model = Sequential([
        Bidirectional(GRU(64, return_sequences=True), input_shape=(None, 1)),
        Bidirectional(GRU(32)),
        Dense(1)
    ])
    print("Bidirectional LSTM Model Summary:")
    bi_lstm_model.summary()
    print("\nBidirectional GRU Model Summary:")
    bi_gru_model.summary()

    # EDIT: return the results for tests.
    return {"bi_lstm_params": bi_lstm_model.count_params(),
            "bi_gru_params": bi_gru_model.count_params()}


if __name__ == "__main__":
    main()
