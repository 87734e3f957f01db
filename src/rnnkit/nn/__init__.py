"""rnnkit.nn: drop-in replacements for torch.nn's recurrent modules.

``LSTM``, ``GRU`` and ``RNN`` take torch.nn's arguments, hold torch.nn's parameters and return
torch.nn's outputs, and run on rnnkit's cells through :func:`rnnkit.kernels.run_sequence`.
"""

from rnnkit.nn.rnn import GRU, LSTM, RNN

__all__ = ["GRU", "LSTM", "RNN"]
