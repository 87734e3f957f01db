"""Keras-named layers. Recurrent layers run on the fused kernels when they apply."""

from rnnkit.cells import GRUCell, LSTMCell, SimpleRNNCell
from rnnkit.layers.attention import AdditiveAttention, Attention, BahdanauAttention, LuongAttention
from rnnkit.layers.base import Layer
from rnnkit.layers.bidirectional import Bidirectional
from rnnkit.layers.core import Activation, Dense, Dropout, Lambda
from rnnkit.layers.embedding import Embedding, Masking
from rnnkit.layers.merging import (
    Add,
    Average,
    Concatenate,
    Maximum,
    Minimum,
    Multiply,
    Subtract,
    add,
    average,
    concatenate,
    maximum,
    minimum,
    multiply,
    subtract,
)
from rnnkit.layers.recurrent import GRU, LSTM, SimpleRNN
from rnnkit.layers.reshaping import Flatten, RepeatVector, Reshape
from rnnkit.layers.rnn import RNN
from rnnkit.layers.wrappers import TimeDistributed
from rnnkit.models.symbolic import Input

__all__ = ["Bidirectional", "GRU", "GRUCell", "LSTM", "LSTMCell", "Layer", "RNN", "SimpleRNN",
           "SimpleRNNCell",
           "Activation", "Add", "Average", "Concatenate", "Dense", "Dropout", "Embedding",
           "Flatten", "Lambda", "Masking", "Maximum", "Minimum", "Multiply", "RepeatVector",
           "Reshape", "Subtract", "TimeDistributed", "add", "average", "concatenate", "maximum",
           "minimum", "multiply", "subtract", "Input",
           "AdditiveAttention", "Attention", "BahdanauAttention", "LuongAttention"]
