"""The single-step kernel behind ``RNN.step`` under ``torch.no_grad()``, against the cell."""

from __future__ import annotations

import pytest
import torch

from rnnkit import layers
from rnnkit.kernels.stepping import fused_step

VARIANTS = {
    "lstm": lambda dtype: layers.LSTM(5, dtype=dtype),
    "lstm-peephole": lambda dtype: layers.LSTM(5, peephole=True, dtype=dtype),
    "lstm-relu-hard_sigmoid": lambda dtype: layers.LSTM(
        5, activation="relu", recurrent_activation="hard_sigmoid", dtype=dtype
    ),
    "gru": lambda dtype: layers.GRU(5, dtype=dtype),
    "gru-reset_before": lambda dtype: layers.GRU(5, reset_after=False, dtype=dtype),
    "simple_rnn": lambda dtype: layers.SimpleRNN(5, dtype=dtype),
}
TOLERANCE = {torch.float32: 1e-5, torch.float64: 1e-12}


def _layer(name, dtype):
    layer = VARIANTS[name](dtype)
    layer.build((3, 1, 4))
    layer.built = True
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for parameter in layer.parameters():
            parameter.copy_(0.5 * torch.randn(parameter.shape, generator=generator, dtype=dtype))
    return layer


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_step_kernel_matches_the_cell(name, dtype):
    layer = _layer(name, dtype)
    generator = torch.Generator().manual_seed(4)
    x = torch.randn(3, 4, generator=generator, dtype=dtype)
    state = [torch.randn(3, 5, generator=generator, dtype=dtype) for _ in layer.state_size]
    with torch.no_grad():
        fast = fused_step(layer.cell, x, state)
        expected_output, expected_state = layer.cell(x, tuple(state))
        stepped = layer.step(x, state)
    assert fast is not None
    expected_state = (
        [expected_state] if isinstance(expected_state, torch.Tensor) else list(expected_state)
    )
    for result in (fast, stepped):
        output, new_state = result
        torch.testing.assert_close(output, expected_output, rtol=0, atol=TOLERANCE[dtype])
        assert len(new_state) == len(expected_state)
        for got, want in zip(new_state, expected_state):
            torch.testing.assert_close(got, want, rtol=0, atol=TOLERANCE[dtype])


def test_declines_with_grad_or_foreign_arguments():
    layer = _layer("lstm", torch.float32)
    x, state = torch.randn(2, 4), [torch.zeros(2, 5), torch.zeros(2, 5)]
    assert fused_step(layer.cell, x, state) is None  # grad mode
    with torch.no_grad():
        assert fused_step(layer.cell, x.double(), state) is None
        assert fused_step(layer.cell, x[:, :3], state) is None
        assert fused_step(layer.cell, x, state[:1]) is None
        assert fused_step(layer.cell, x, [torch.zeros(1, 5), torch.zeros(1, 5)]) is None
        assert fused_step(layer.cell, x.numpy(), state) is None
        assert fused_step(_layer("lstm", torch.float32).cell, x, state) is not None
        assert fused_step(layers.LSTM(5, layer_norm=True, input_shape=(None, 4)).cell, x,
                          state) is None


@pytest.mark.parametrize("change", ["data", "in_place", "parameter"])
def test_sees_changed_weights(change):
    layer = _layer("gru", torch.float32)
    x, state = torch.randn(1, 4), [torch.randn(1, 5)]
    with torch.no_grad():
        fused_step(layer.cell, x, state)
        if change == "data":
            layer.cell.weight_hh.data = torch.zeros_like(layer.cell.weight_hh)
        elif change == "in_place":
            layer.cell.weight_ih.mul_(0.5)
            layer.cell.bias_ih.add_(1.0)
        else:
            layer.cell.weight_hh = torch.nn.Parameter(2 * layer.cell.weight_hh)
        output, _ = fused_step(layer.cell, x, state)
        expected, _ = layer.cell(x, tuple(state))
    torch.testing.assert_close(output, expected, rtol=0, atol=1e-6)


def test_zero_state_by_default():
    layer = _layer("simple_rnn", torch.float64)
    x = torch.randn(2, 4, dtype=torch.float64)
    with torch.no_grad():
        output, (h,) = layer.step(x)
        expected, _ = layer.cell(x, (torch.zeros(2, 5, dtype=torch.float64),))
    torch.testing.assert_close(output, expected, rtol=0, atol=1e-12)
    assert output is h
