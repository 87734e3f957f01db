"""Keras-face layers keep their cell's fused kernel between calls: every way the cell's definition
or parameters can change must reach the next call, checked against the reference loop on the
same weights."""

from __future__ import annotations

import copy
import gc
import weakref

import pytest
import torch

from rnnkit.kernels import fused
from rnnkit.layers import GRU, LSTM, RNN, SimpleRNN

LAYERS = {"lstm": LSTM, "gru": GRU, "rnn": SimpleRNN}


def make_pair(family: str, **options):
    """A fused layer and a reference twin with the same weights, both float64."""
    inputs = torch.randn(2, 5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    layers = [
        LAYERS[family](4, return_sequences=True, backend=backend, dtype=torch.float64, **options)
        for backend in ("fused", "reference")
    ]
    for layer in layers:
        layer(inputs)
    layers[1].set_weights(layers[0].get_weights())
    return layers[0], layers[1], inputs


def assert_same(fused_layer, reference_layer, inputs):
    torch.testing.assert_close(fused_layer(inputs), reference_layer(inputs), rtol=0, atol=1e-10)


def cached_cell(layer):
    """The bound cell the dispatch keeps for ``layer``'s cell (fails if there is none)."""
    entry = fused._LAYER_CACHES.get(layer.cell)
    assert entry is not None, "the layer's cell has no cached kernel"
    return entry[2]


@pytest.mark.parametrize("family", sorted(LAYERS))
def test_the_kernel_is_kept_between_calls(family):
    layer, reference, inputs = make_pair(family)
    assert_same(layer, reference, inputs)
    first = cached_cell(layer)
    assert_same(layer, reference, inputs)
    assert cached_cell(layer) is first
    assert first.kernel_cache[2] is not None  # the kernel ran, not the reference loop


@pytest.mark.parametrize("family", sorted(LAYERS))
def test_optimizer_steps_reach_the_next_call(family):
    layer, reference, inputs = make_pair(family)
    assert_same(layer, reference, inputs)
    for model in (layer, reference):
        optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
        model(inputs).square().sum().backward()
        optimizer.step()
    assert_same(layer, reference, inputs)


@pytest.mark.parametrize("family", sorted(LAYERS))
def test_data_writes_and_reassigned_parameters_reach_the_next_call(family):
    layer, reference, inputs = make_pair(family)
    assert_same(layer, reference, inputs)
    with torch.no_grad():
        for model in (layer, reference):
            model.cell.weight_hh.data.mul_(-1.5)  # no version bump
    assert_same(layer, reference, inputs)
    replacement = torch.randn_like(layer.cell.weight_ih)
    for model in (layer, reference):
        model.cell.weight_ih = torch.nn.Parameter(replacement.clone())
    assert_same(layer, reference, inputs)
    for model in (layer, reference):
        model.cell.bias_ih.data = model.cell.bias_ih.data + 1.0  # new storage, same object
    assert_same(layer, reference, inputs)


def test_a_changed_option_reaches_the_next_call():
    layer, reference, inputs = make_pair("rnn")
    assert_same(layer, reference, inputs)
    for model in (layer, reference):
        model.cell.activation = "relu"
    assert_same(layer, reference, inputs)
    assert cached_cell(layer).spec.activation == "relu"


def test_a_dtype_conversion_reaches_the_next_call():
    layer, reference, inputs = make_pair("lstm")
    assert_same(layer, reference, inputs)
    layer.float()
    reference.float()
    torch.testing.assert_close(layer(inputs.float()), reference(inputs.float()), rtol=0, atol=1e-5)


def test_a_cell_that_overrides_its_call_is_not_cached():
    class Doubled(type(LSTM(2).cell)):
        def forward(self, inputs, state, recurrent_mask=None):
            output, state = super().forward(inputs, state, recurrent_mask)
            return 2 * output, state

    layer = RNN(Doubled(4, dtype=torch.float64), return_sequences=True)
    reference = RNN(Doubled(4, dtype=torch.float64), return_sequences=True, backend="reference")
    inputs = torch.randn(2, 3, 3, dtype=torch.float64)
    layer(inputs)
    reference(inputs)
    reference.load_state_dict(layer.state_dict())
    assert layer.cell not in fused._LAYER_CACHES
    assert_same(layer, reference, inputs)  # the override's doubling is kept


def test_the_cache_neither_keeps_cells_alive_nor_travels_with_copies():
    layer, _, inputs = make_pair("gru")
    copied = copy.deepcopy(layer)
    assert copied.cell not in fused._LAYER_CACHES
    torch.testing.assert_close(copied(inputs), layer(inputs), rtol=0, atol=0)
    cells = [weakref.ref(layer.cell), weakref.ref(copied.cell)]
    del layer, copied
    gc.collect()
    assert [cell() for cell in cells] == [None, None]  # the cache held neither cell alive
