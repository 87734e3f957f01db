"""Keras-named layers. Recurrent layers run on the fused kernels when they apply."""

from rnnkit.cells import GRUCell, LSTMCell, SimpleRNNCell
from rnnkit.layers.base import Layer
from rnnkit.layers.bidirectional import Bidirectional
from rnnkit.layers.recurrent import GRU, LSTM, SimpleRNN
from rnnkit.layers.rnn import RNN

__all__ = ["Bidirectional", "GRU", "GRUCell", "LSTM", "LSTMCell", "Layer", "RNN", "SimpleRNN",
           "SimpleRNNCell"]
