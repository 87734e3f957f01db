"""Reference recurrent cells: one step each, in plain torch, equations in the docstrings."""

from rnnkit.cells.base import BuiltinCell, CellSpec, CellWeights
from rnnkit.cells.gru import GRUCell
from rnnkit.cells.lstm import LSTMCell
from rnnkit.cells.rnn import SimpleRNNCell

CELL_CLASSES = {"rnn": SimpleRNNCell, "lstm": LSTMCell, "gru": GRUCell}

__all__ = ["BuiltinCell", "CellSpec", "CellWeights", "GRUCell", "LSTMCell", "SimpleRNNCell",
           "CELL_CLASSES"]
