"""Shared pieces of the hardening tables: sizes, layer and module factories, and the check
that an error names its argument, the expected value and what it got."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnkit import layers
from rnnkit import nn as rnn_nn
from rnnkit.models import Sequential

B, T, F, UNITS = 2, 5, 3, 4

LAYERS = {
    "lstm": lambda **kw: layers.LSTM(UNITS, **kw),
    "gru": lambda **kw: layers.GRU(UNITS, **kw),
    "simple_rnn": lambda **kw: layers.SimpleRNN(UNITS, **kw),
    "bidirectional": lambda **kw: layers.Bidirectional(layers.LSTM(UNITS, **kw)),
}
MODULES = {"lstm": rnn_nn.LSTM, "gru": rnn_nn.GRU, "rnn": rnn_nn.RNN}
BACKENDS = ("auto", "reference")


def sequence(batch=B, steps=T, features=F, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).uniform(-1, 1, (batch, steps, features)).astype(dtype)


def state_count(layer) -> int:
    if isinstance(layer, layers.Bidirectional):
        return 2 * len(layer.forward_layer.state_size)
    return len(layer.state_size)


def states(layer, batch=B, units=UNITS, **kwargs):
    return [torch.zeros(batch, units, **kwargs) for _ in range(state_count(layer))]


def hidden(module_class, batch=B, **kwargs):
    h = torch.zeros(1, batch, UNITS, **kwargs)
    return (h, h.clone()) if module_class is rnn_nn.LSTM else h


def expect_error(call, error, argument, *fragments):
    """``call()`` raises ``error`` whose message names ``argument`` and contains ``fragments``."""
    with pytest.raises(error) as caught:
        call()
    message = str(caught.value)
    assert caught.type is error, f"{caught.type.__name__}: {message}"
    assert message.startswith(argument) or f"{argument}:" in message, message
    for fragment in fragments:
        assert str(fragment) in message, f"{fragment!r} missing from: {message}"


def compiled_model(*stack):
    model = Sequential(list(stack))
    model.compile("adam", "mse")
    return model


def lstm_model():
    return compiled_model(layers.LSTM(UNITS), layers.Dense(1))
