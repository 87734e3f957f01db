"""The Keras face of the cells: weight layout, round trip, Keras's equations and count_params."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnkit.layers import GRU, LSTM, SimpleRNN

from ._cases import INPUT_SIZE, PROJ_SIZE, UNITS

IN, H, P = INPUT_SIZE, UNITS, PROJ_SIZE

LAYERS = {
    "simple_rnn": (SimpleRNN, {}, [(IN, H), (H, H), (H,)]),
    "simple_rnn-no_bias": (SimpleRNN, {"use_bias": False}, [(IN, H), (H, H)]),
    "lstm": (LSTM, {}, [(IN, 4 * H), (H, 4 * H), (4 * H,)]),
    "lstm-no_bias": (LSTM, {"use_bias": False}, [(IN, 4 * H), (H, 4 * H)]),
    "lstm-peephole+layer_norm+proj": (
        LSTM,
        {"peephole": True, "layer_norm": True, "proj_size": P},
        [
            (IN, 4 * H),
            (P, 4 * H),
            (4 * H,),
            (H, P),
            (3, H),
            (4 * H,),
            (4 * H,),
            (4 * H,),
            (4 * H,),
            (H,),
            (H,),
        ],
    ),
    "gru-reset_after": (GRU, {}, [(IN, 3 * H), (H, 3 * H), (2, 3 * H)]),
    "gru-reset_before": (GRU, {"reset_after": False}, [(IN, 3 * H), (H, 3 * H), (3 * H,)]),
    "gru-no_bias": (GRU, {"use_bias": False}, [(IN, 3 * H), (H, 3 * H)]),
}


def _layer(name: str, seed: int | None = None):
    layer_class, options, _ = LAYERS[name]
    layer = layer_class(
        H, input_shape=(None, IN), dtype="float64", return_sequences=True, **options
    )
    if seed is not None:
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for param in layer.parameters():
                param.copy_(0.5 * torch.randn(param.shape, generator=generator, dtype=param.dtype))
    return layer


def _inputs(seed: int = 5) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(2, 4, IN))


def _sigmoid(a: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-a))


@pytest.mark.parametrize("name", LAYERS)
def test_get_weights_has_keras_shapes(name):
    shapes = [w.shape for w in _layer(name).get_weights()]
    assert shapes == LAYERS[name][2]


@pytest.mark.parametrize("name", LAYERS)
def test_round_trip_is_exact(name):
    source = _layer(name, seed=0)
    arrays = source.get_weights()
    target = _layer(name, seed=1)
    target.set_weights(arrays)
    for got, sent in zip(target.get_weights(), arrays, strict=True):
        assert got.dtype == sent.dtype and np.array_equal(got, sent)
    for (param_name, got), (_, sent) in zip(
        target.cell.named_parameters(), source.cell.named_parameters(), strict=True
    ):
        assert torch.equal(got, sent), param_name
    x = _inputs()
    with torch.no_grad():
        assert torch.equal(target(x), source(x))


@pytest.mark.parametrize("name", ["lstm", "gru-reset_after", "gru-reset_before"])
def test_keras_gate_order_in_the_kernel(name):
    """Keras's kernel is rnnkit's weight_ih transposed, with GRU's z and r blocks swapped."""
    layer = _layer(name, seed=0)
    kernel = layer.get_weights()[0]
    blocks = np.split(layer.cell.weight_ih.detach().numpy(), 4 if name == "lstm" else 3)
    order = [0, 1, 2, 3] if name == "lstm" else [1, 0, 2]  # rnnkit (r, z, n) -> Keras (z, r, h)
    np.testing.assert_array_equal(kernel, np.concatenate([blocks[k] for k in order]).T)


def _keras_lstm(arrays, x, h, c):
    kernel, recurrent_kernel, bias = arrays
    z = x @ kernel + h @ recurrent_kernel + bias
    i, f, g, o = np.split(z, 4, axis=-1)
    c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
    return _sigmoid(o) * np.tanh(c), c


def _keras_gru(arrays, x, h, reset_after):
    kernel, recurrent_kernel, bias = arrays
    input_bias, recurrent_bias = (bias[0], bias[1]) if reset_after else (bias, np.zeros_like(bias))
    x_z, x_r, x_h = np.split(x @ kernel + input_bias, 3, axis=-1)
    rec_z, rec_r, rec_h = np.split(recurrent_kernel, 3, axis=-1)
    b_z, b_r, b_h = np.split(recurrent_bias, 3)
    z = _sigmoid(x_z + h @ rec_z + b_z)
    r = _sigmoid(x_r + h @ rec_r + b_r)
    if reset_after:
        candidate = np.tanh(x_h + r * (h @ rec_h + b_h))
    else:
        candidate = np.tanh(x_h + (r * h) @ rec_h)
    return z * h + (1.0 - z) * candidate


def _random_keras_arrays(name: str, seed: int = 7) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(scale=0.5, size=shape) for shape in LAYERS[name][2]]


@pytest.mark.parametrize("name", ["simple_rnn", "lstm", "gru-reset_after", "gru-reset_before"])
def test_step_follows_keras_equations_on_keras_arrays(name):
    """Arrays in Keras's layout, pushed through set_weights, give Keras's own equations."""
    arrays = _random_keras_arrays(name)
    layer = _layer(name)
    layer.set_weights(arrays)
    rng = np.random.default_rng(8)
    x, h, c = rng.normal(size=(2, IN)), rng.normal(size=(2, H)), rng.normal(size=(2, H))
    with torch.no_grad():
        if name == "lstm":
            _, (got_h, got_c) = layer.step(x, [h, c])
            want_h, want_c = _keras_lstm(arrays, x, h, c)
            np.testing.assert_allclose(got_c.numpy(), want_c, rtol=0, atol=1e-12)
        elif name == "simple_rnn":
            _, (got_h,) = layer.step(x, [h])
            kernel, recurrent_kernel, bias = arrays
            want_h = np.tanh(x @ kernel + bias + h @ recurrent_kernel)
        else:
            _, (got_h,) = layer.step(x, [h])
            want_h = _keras_gru(arrays, x, h, reset_after=name == "gru-reset_after")
    np.testing.assert_allclose(got_h.numpy(), want_h, rtol=0, atol=1e-12)


def _keras_count(family: str, units: int, inputs: int, use_bias=True, reset_after=True) -> int:
    """Keras's count: gates * (inputs * units + units * units + biases)."""
    gates = {"simple_rnn": 1, "lstm": 4, "gru": 3}[family]
    biases = 0 if not use_bias else (2 * units if family == "gru" and reset_after else units)
    return gates * (inputs * units + units * units + biases)


@pytest.mark.parametrize(
    ("layer_class", "options", "family"),
    [
        (SimpleRNN, {}, "simple_rnn"),
        (SimpleRNN, {"use_bias": False}, "simple_rnn"),
        (LSTM, {}, "lstm"),
        (LSTM, {"use_bias": False}, "lstm"),
        (GRU, {}, "gru"),
        (GRU, {"reset_after": False}, "gru"),
        (GRU, {"use_bias": False}, "gru"),
    ],
)
@pytest.mark.parametrize(("units", "inputs"), [(3, 2), (50, 1), (50, 50)])
def test_count_params_is_keras_formula(layer_class, options, family, units, inputs):
    layer = layer_class(units, input_shape=(None, inputs), **options)
    assert layer.count_params() == _keras_count(family, units, inputs, **options)


def test_count_params_matches_keras_published_numbers():
    """Keras's model.summary() for the seed's LSTM(50)/GRU(50) stacks on one feature."""
    assert LSTM(50, input_shape=(None, 1)).count_params() == 10_400
    assert LSTM(50, input_shape=(None, 50)).count_params() == 20_200
    assert GRU(50, input_shape=(None, 1)).count_params() == 7_950
    assert GRU(50, input_shape=(None, 50)).count_params() == 15_300
    assert GRU(50, reset_after=False, input_shape=(None, 1)).count_params() == 7_800


def test_count_params_includes_rnnkit_extensions():
    layer = LSTM(H, input_shape=(None, IN), peephole=True, layer_norm=True, proj_size=P)
    expected = 4 * H * IN + 4 * H * P + 4 * H + H * P + 3 * H + 2 * (2 * 4 * H) + 2 * H
    assert layer.count_params() == expected
