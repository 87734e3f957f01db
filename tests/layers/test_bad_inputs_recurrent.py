"""The recurrent layers refuse bad input with a ValueError/TypeError that names the argument,
the expected value and the value it got."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnkit import layers

UNITS = 4
SEQUENCE = np.zeros((2, 5, 3), "float32")  # (B, T, F)


def built(layer, inputs=SEQUENCE):
    layer(inputs)
    return layer


RECURRENT = {
    "lstm": lambda: layers.LSTM(UNITS, return_sequences=True),
    "gru": lambda: layers.GRU(UNITS),
    "gru-reset-before": lambda: layers.GRU(UNITS, reset_after=False),
    "simple-rnn": lambda: layers.SimpleRNN(UNITS),
    "bidirectional": lambda: layers.Bidirectional(layers.LSTM(UNITS, return_sequences=True)),
}


def _state_count(layer) -> int:
    if isinstance(layer, layers.Bidirectional):
        return 2 * len(layer.forward_layer.state_size)
    return len(layer.state_size)


def _with_states(make, batch: int, units: int):
    layer = built(make())
    states = [np.zeros((batch, units), "float32")] * _state_count(layer)
    return layer(SEQUENCE, initial_state=states)


# id: (call on a layer factory, error type, argument, expected, actual)
# fmt: off
RECURRENT_CASES = {
    "rank-2-unbuilt": (lambda make: make()(np.zeros((2, 3), "float32")),
                       ValueError, "inputs", "rank-3", "(2, 3)"),
    "rank-4-built": (lambda make: built(make())(np.zeros((2, 5, 3, 1), "float32")),
                     ValueError, "inputs", "rank-3", "(2, 5, 3, 1)"),
    "features": (lambda make: built(make())(np.zeros((2, 5, 7), "float32")),
                 ValueError, "inputs", 3, 7),
    "integer-input": (lambda make: make()(np.zeros((2, 5, 3), "int64")),
                      TypeError, "inputs", "floating-point", "torch.int64"),
    "integer-tensor": (lambda make: built(make())(torch.zeros(2, 5, 3, dtype=torch.int32)),
                       TypeError, "inputs", "floating-point", "torch.int32"),
    "mask-timesteps": (lambda make: built(make())(SEQUENCE, mask=np.ones((2, 4), bool)),
                       ValueError, "mask", "(2, 5)", "(2, 4)"),
    "mask-rank": (lambda make: built(make())(SEQUENCE, mask=np.ones((2, 5, 1), bool)),
                  ValueError, "mask", "(2, 5)", "(2, 5, 1)"),
    "lengths-zero": (lambda make: built(make())(SEQUENCE, lengths=np.array([0, 5])),
                     ValueError, "lengths", "[1, 5]", "min 0"),
    "lengths-past-end": (lambda make: built(make())(SEQUENCE, lengths=np.array([6, 2])),
                         ValueError, "lengths", "[1, 5]", "max 6"),
    "initial-state-batch": (lambda make: _with_states(make, batch=3, units=UNITS),
                            ValueError, "initial_state", f"(2, {UNITS})", f"(3, {UNITS})"),
    "initial-state-units": (lambda make: _with_states(make, batch=2, units=UNITS + 1),
                            ValueError, "initial_state", f"(2, {UNITS})", f"(2, {UNITS + 1})"),
    "no-timesteps": (lambda make: built(make())(np.zeros((2, 0, 3), "float32")),
                     ValueError, "inputs", "at least one timestep", "(2, 0, 3)"),
}
# fmt: on


@pytest.mark.parametrize("make", RECURRENT.values(), ids=RECURRENT.keys())
@pytest.mark.parametrize(
    ("trigger", "error", "argument", "expected", "actual"),
    RECURRENT_CASES.values(),
    ids=RECURRENT_CASES.keys(),
)
def test_recurrent_layers_refuse(make, trigger, error, argument, expected, actual, error_names):
    with pytest.raises(error) as caught:
        trigger(make)
    error_names(caught.value, argument, expected, actual)


@pytest.mark.parametrize("make", RECURRENT.values(), ids=RECURRENT.keys())
@pytest.mark.parametrize("offset", [-1, 1], ids=["too-few", "too-many"])
def test_recurrent_initial_state_count(make, offset, error_names):
    layer = built(make())
    wanted = _state_count(layer)
    given = [np.zeros((2, UNITS), "float32")] * (wanted + offset)
    with pytest.raises(ValueError) as caught:
        layer(SEQUENCE, initial_state=given)
    error_names(caught.value, "initial_state", wanted, wanted + offset)


@pytest.mark.parametrize("make", RECURRENT.values(), ids=RECURRENT.keys())
def test_set_weights_names_the_expected_shapes(make, error_names):
    layer = built(make())
    with pytest.raises(ValueError) as caught:
        layer.set_weights([np.zeros((5, 4))] * len(layer.get_weights()))
    error_names(caught.value, "weights[0]", tuple(layer.get_weights()[0].shape), "(5, 4)")


def test_stateful_layer_refuses_another_batch_size(error_names):
    layer = built(layers.LSTM(UNITS, stateful=True))
    with pytest.raises(ValueError) as caught:
        layer(np.zeros((3, 5, 3), "float32"))
    error_names(caught.value, "inputs", "(2)", 3)


def test_mask_with_values_other_than_0_1_names_them(error_names):
    with pytest.raises(ValueError) as caught:
        built(layers.LSTM(UNITS))(SEQUENCE, mask=np.full((2, 5), 2))
    error_names(caught.value, "mask", "0/1", 2)
