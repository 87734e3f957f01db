"""Keras-face models: ``Model`` (subclassed or functional), ``Sequential``, saving and loading.

Example:
    >>> from rnnkit.layers import LSTM, Dense, Input
    >>> inputs = Input(shape=(None, 3))
    >>> model = Model(inputs, Dense(1)(LSTM(8)(inputs)))
    >>> model.save("forecaster.rnnkit"); restored = load_model("forecaster.rnnkit")
"""

from rnnkit.models.functional import Functional
from rnnkit.models.model import Model
from rnnkit.models.registry import register_serializable
from rnnkit.models.saving import load_model
from rnnkit.models.sequential import Sequential
from rnnkit.models.symbolic import Input, InputLayer, SymbolicTensor

__all__ = ["Functional", "Input", "InputLayer", "Model", "Sequential", "SymbolicTensor",
           "load_model", "register_serializable"]
