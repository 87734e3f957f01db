"""The single-step kernel behind ``RNN.step`` under ``torch.no_grad()``, against the cell.

The reference is the cell's own step (plain torch, ``rnnkit.cells``), run on the same weights.
Every test runs on both of the step's paths (the ``step_path`` fixture): the native build's C++
stepper and the Python one.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnkit import layers
from rnnkit.kernels import stepping
from rnnkit.kernels.stepping import STEP, TIMESTEP, TIMESTEP_SEQUENCE, fused_step

VARIANTS = {
    "lstm": lambda dtype: layers.LSTM(5, dtype=dtype),
    "lstm-peephole": lambda dtype: layers.LSTM(5, peephole=True, dtype=dtype),
    "lstm-relu-hard_sigmoid": lambda dtype: layers.LSTM(
        5, activation="relu", recurrent_activation="hard_sigmoid", dtype=dtype
    ),
    "lstm-layer_norm": lambda dtype: layers.LSTM(5, layer_norm=True, dtype=dtype),
    "lstm-proj_size": lambda dtype: layers.LSTM(5, proj_size=3, dtype=dtype),
    "gru": lambda dtype: layers.GRU(5, dtype=dtype),
    "gru-reset_before": lambda dtype: layers.GRU(5, reset_after=False, dtype=dtype),
    "gru-no_bias": lambda dtype: layers.GRU(5, use_bias=False, dtype=dtype),
    "simple_rnn": lambda dtype: layers.SimpleRNN(5, dtype=dtype),
    **{
        f"simple_rnn-{activation}": (
            lambda dtype, activation=activation: layers.SimpleRNN(
                5, activation=activation, dtype=dtype
            )
        )
        for activation in ("relu", "sigmoid", "hard_sigmoid", "linear")
    },
}
DECLINED = {"lstm-layer_norm", "lstm-proj_size"}  # layer.step takes the cell's path
TOLERANCE = {torch.float32: 1e-5, torch.float64: 1e-12}
DTYPES = [torch.float32, torch.float64]
pytestmark = pytest.mark.usefixtures("step_path")


def _layer(name, dtype=torch.float32, features=4):
    layer = VARIANTS[name](dtype)
    layer.build((3, 1, features))
    layer.built = True
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for parameter in layer.parameters():
            parameter.copy_(0.5 * torch.randn(parameter.shape, generator=generator, dtype=dtype))
    return layer


def _as_list(state):
    return [state] if isinstance(state, torch.Tensor) else list(state)


def _cell_step(layer, x, state):
    """The reference: the cell's own step, in plain torch."""
    output, new_state = layer.cell(x, tuple(state))
    return output, _as_list(new_state)


def _assert_step_equal(got, want, dtype):
    (output, state), (expected_output, expected_state) = got, want
    torch.testing.assert_close(output, expected_output, rtol=0, atol=TOLERANCE[dtype])
    assert len(state) == len(expected_state)
    for tensor, expected in zip(state, expected_state):
        torch.testing.assert_close(tensor, expected, rtol=0, atol=TOLERANCE[dtype])


def _random_state(layer, batch, dtype, seed=4):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, size, generator=generator, dtype=dtype) for size in layer.state_size]


def test_each_path_runs_its_own_stepper(step_path):
    layer = _layer("lstm")
    with torch.no_grad():
        layer.step(torch.randn(3, 4))
    stepper = stepping._STEPPERS[id(layer.cell)]
    assert type(stepper).__name__ == ("Stepper" if step_path == "native" else "_Stepper")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_step_kernel_matches_the_cell(name, dtype):
    layer = _layer(name, dtype)
    x = torch.randn(3, 4, generator=torch.Generator().manual_seed(4), dtype=dtype)
    state = _random_state(layer, 3, dtype, seed=5)
    with torch.no_grad():
        fast = fused_step(layer.cell, x, state)
        expected = _cell_step(layer, x, state)
        stepped = layer.step(x, state)
    assert (fast is None) == (name in DECLINED)
    for result in (fast, stepped):
        if result is not None:
            _assert_step_equal(result, expected, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_streaming_matches_the_cell_step_by_step(name, dtype):
    """The state each step returns, fed back: the path that recognises it must agree too."""
    layer = _layer(name, dtype)
    xs = torch.randn(12, 2, 4, generator=torch.Generator().manual_seed(6), dtype=dtype)
    with torch.no_grad():
        state, expected_state = None, _as_list(layer.cell.get_initial_state(2, dtype, "cpu"))
        for x in xs:
            output, state = layer.step(x, state)
            expected_output, expected_state = _cell_step(layer, x, expected_state)
            _assert_step_equal((output, state), (expected_output, expected_state), dtype)


def test_outputs_of_earlier_steps_are_not_overwritten():
    layer = _layer("lstm")
    xs = torch.randn(80, 1, 4, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        state, kept = None, []
        for x in xs:  # more steps than one block of outputs holds
            output, state = layer.step(x, state)
            kept.append((output, state))
        expected_state = [torch.zeros(1, 5), torch.zeros(1, 5)]
        for x, result in zip(xs, kept):
            expected = _cell_step(layer, x, expected_state)
            _assert_step_equal(result, expected, torch.float32)
            expected_state = expected[1]


def _update_in_place(layer):
    layer.cell.weight_ih.mul_(0.5)
    layer.cell.bias_ih.add_(1.0)


def _update_by_optimizer(layer):
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.5)
    with torch.enable_grad():
        output, _ = layer.step(torch.ones(1, 4))
        output.sum().backward()
    optimizer.step()


def _update_by_set_weights(layer):
    layer.set_weights([2.0 * w for w in layer.get_weights()])


def _update_data(layer):
    layer.cell.weight_hh.data = torch.ones_like(layer.cell.weight_hh)


def _replace_parameter(layer):
    layer.cell.weight_hh = torch.nn.Parameter(2 * layer.cell.weight_hh.detach())


def _set_storage(layer):
    layer.cell.weight_hh.set_(torch.full_like(layer.cell.weight_hh, 0.1))


def _load_state_dict(layer):
    layer.load_state_dict({name: 0.5 * value for name, value in layer.state_dict().items()})


UPDATES = {
    "in_place": _update_in_place,
    "optimizer": _update_by_optimizer,
    "set_weights": _update_by_set_weights,
    "data": _update_data,
    "parameter": _replace_parameter,
    "set_": _set_storage,
    "load_state_dict": _load_state_dict,
}


@pytest.mark.parametrize("name", ["lstm", "gru", "simple_rnn"])
@pytest.mark.parametrize("update", sorted(UPDATES))
def test_sees_weights_changed_between_steps(name, update):
    layer = _layer(name)
    xs = torch.randn(3, 1, 4, generator=torch.Generator().manual_seed(8))
    with torch.no_grad():
        _, state = layer.step(xs[0])
        _, state = layer.step(xs[1], state)
        before = [w.copy() for w in layer.get_weights()]
        UPDATES[update](layer)
        assert any(not np.array_equal(a, b) for a, b in zip(before, layer.get_weights()))
        result = layer.step(xs[2], state)
        expected = _cell_step(layer, xs[2], state)
    _assert_step_equal(result, expected, torch.float32)


def test_sees_an_activation_change():
    layer = _layer("simple_rnn")
    xs = torch.randn(2, 1, 4, generator=torch.Generator().manual_seed(10))
    with torch.no_grad():
        _, state = layer.step(xs[0])
        layer.cell.activation = "relu"
        result = layer.step(xs[1], state)
        expected = _cell_step(layer, xs[1], state)
    assert float(result[0].min()) >= 0.0
    _assert_step_equal(result, expected, torch.float32)


def test_sees_a_dtype_change():
    layer = _layer("gru")
    with torch.no_grad():
        _, state = layer.step(torch.randn(1, 4))
        layer.double()
        x = torch.randn(1, 4, dtype=torch.float64)
        assert fused_step(layer.cell, x, [s.double() for s in state]) is not None
        assert fused_step(layer.cell, x.float(), state) is None  # float32 no longer fits
        result = layer.step(x, [s.double() for s in state])
        expected = _cell_step(layer, x, [s.double() for s in state])
    assert result[0].dtype == torch.float64
    _assert_step_equal(result, expected, torch.float64)


def _older_state(layer, states):
    return states[-2]


def _fresh_tensors(layer, states):
    return [s.clone() + 0.25 for s in states[-1]]


def _written_in_place(layer, states):
    state = states[-1]
    state[0].mul_(0.5)
    return state


def _list_item_replaced(layer, states):
    state = states[-1]
    state[0] = torch.full_like(state[0], 0.3)
    return state


def _data_reassigned(layer, states):
    state = states[-1]
    state[0].data = torch.full_like(state[0], -0.2)
    return state


def _as_tuple(layer, states):
    return tuple(states[-1])


STATES = {
    "older": _older_state,
    "fresh": _fresh_tensors,
    "in_place": _written_in_place,
    "item_replaced": _list_item_replaced,
    "data": _data_reassigned,
    "tuple": _as_tuple,
}


@pytest.mark.parametrize("name", ["lstm", "gru"])
@pytest.mark.parametrize("kind", sorted(STATES))
def test_a_state_not_from_the_previous_step(name, kind):
    layer = _layer(name)
    xs = torch.randn(3, 2, 4, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        states = [layer.step(xs[0])[1]]
        states.append(layer.step(xs[1], states[-1])[1])
        state = STATES[kind](layer, states)
        expected = _cell_step(layer, xs[2], [s.clone() for s in state])
        result = layer.step(xs[2], state)
    _assert_step_equal(result, expected, torch.float32)


@pytest.mark.parametrize("change", ["unsqueeze_", "set_"])
def test_a_returned_state_reshaped_in_place_gets_the_checked_paths_error(change):
    layer = _layer("lstm")
    with torch.no_grad():
        _, state = layer.step(torch.randn(2, 4))
        h = state[0]
        if change == "unsqueeze_":
            h.unsqueeze_(0)
        else:  # same storage and address, one row fewer
            h.set_(h.untyped_storage(), h.storage_offset(), (1, 5), (5, 1))
        with pytest.raises(ValueError, match="state"):
            layer.step(torch.randn(2, 4), state)


def test_declines_with_grad_or_foreign_arguments():
    layer = _layer("lstm")
    x, state = torch.randn(2, 4), [torch.zeros(2, 5), torch.zeros(2, 5)]
    assert fused_step(layer.cell, x, state) is None  # grad mode
    with torch.no_grad():
        _, returned = layer.step(x, state)
        for inputs in (
            x.double(),
            x[:, :3],
            x.t().contiguous().t(),
            x[None],
            x.numpy(),
            torch.empty(2, 4, device="meta"),
            x.to_sparse(),
            torch.empty(0, 4),
            torch.nn.Parameter(x),
        ):
            assert fused_step(layer.cell, inputs, state) is None
            assert fused_step(layer.cell, inputs, returned) is None
        long_x = torch.randn(2, 8)
        assert fused_step(layer.cell, long_x[:, ::2], state) is None  # not contiguous
        for bad_state in (
            state[:1],
            [torch.zeros(1, 5)] * 2,
            [state[0], state[1].double()],
            [state[0], torch.empty(2, 5, device="meta")],
            state[0],
            "state",
        ):
            assert fused_step(layer.cell, x, bad_state) is None
        assert fused_step(layer.cell, x[:1], returned) is None  # batch of the returned state
        assert fused_step(_layer("lstm").cell, x, state) is not None


def test_bad_input_raises_the_checked_paths_error():
    layer = _layer("lstm")
    with torch.no_grad():
        _, state = layer.step(torch.randn(2, 4))
        with pytest.raises(ValueError, match="features"):
            layer.step(torch.randn(2, 3), state)
        with pytest.raises(ValueError, match="state"):
            layer.step(torch.randn(1, 4), state)


def test_zero_state_by_default():
    layer = _layer("simple_rnn", torch.float64)
    x = torch.randn(2, 4, dtype=torch.float64)
    with torch.no_grad():
        output, (h,) = layer.step(x)
        expected, _ = layer.cell(x, (torch.zeros(2, 5, dtype=torch.float64),))
    torch.testing.assert_close(output, expected, rtol=0, atol=1e-12)
    assert output is h


@pytest.mark.parametrize("name", ["lstm", "gru", "simple_rnn"])
@pytest.mark.parametrize("form", [TIMESTEP, TIMESTEP_SEQUENCE])
def test_a_timestep_form_returns_a_copy_of_h_shaped_for_the_layer(name, form):
    layer = _layer(name)
    xs = torch.randn(3, 2, 1, 4, generator=torch.Generator().manual_seed(15))
    with torch.no_grad():
        expected_state = _random_state(layer, 2, torch.float32)
        state = [s.clone() for s in expected_state]
        for x in xs:
            output, state = fused_step(layer.cell, x, state, form)
            expected = _cell_step(layer, x[:, 0], expected_state)
            expected_state = expected[1]
            assert output.shape == ((2, 1, 5) if form == TIMESTEP_SEQUENCE else (2, 5))
            _assert_step_equal((output.reshape(2, 5), state), expected, torch.float32)
            assert output.data_ptr() != state[0].data_ptr()


def test_each_form_takes_only_its_inputs_rank():
    layer = _layer("lstm")
    x = torch.randn(2, 4)
    with torch.no_grad():
        _, returned = fused_step(layer.cell, x, None)
        for state in (None, returned):
            assert fused_step(layer.cell, x, state, TIMESTEP) is None
            assert fused_step(layer.cell, x[:, None], state, STEP) is None
            assert fused_step(layer.cell, x[None], state, TIMESTEP) is None  # (1, 2, 4)
        # The state a step returned feeds a timestep too (and back), through the full checks.
        output, state = fused_step(layer.cell, x[:, None], returned, TIMESTEP_SEQUENCE)
        expected = _cell_step(layer, x, returned)
        _assert_step_equal((output[:, 0], state), expected, torch.float32)
        assert fused_step(layer.cell, x, state) is not None
