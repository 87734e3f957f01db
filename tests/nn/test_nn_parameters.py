"""Parameters of the drop-ins: torch.nn's names, shapes, init, state_dict round trips, dtypes, and
rnnkit's extra LSTM options."""

from __future__ import annotations

import math

import pytest
import torch
from nn_peer import RNNKIT_CLASSES, TORCH_CLASSES, build_pair, compare_pair

from rnnkit.cells import LSTMCell
from rnnkit.kernels import run_sequence

# torch.nn warns that projected LSTMs skip oneDNN; that is its business, not ours.
pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections")

CONFIGS = [
    ("lstm", {}),
    ("lstm", {"num_layers": 3, "bidirectional": True, "proj_size": 2}),
    ("lstm", {"num_layers": 2, "bias": False}),
    ("gru", {"num_layers": 2, "bidirectional": True}),
    ("gru", {"bias": False}),
    ("rnn", {"num_layers": 2, "bidirectional": True, "nonlinearity": "relu"}),
    ("rnn", {"bias": False}),
]
CONFIG_IDS = [
    family + "-" + "-".join(f"{k}={v}" for k, v in opts.items()) for family, opts in CONFIGS
]


def shapes_of(module) -> list[tuple[str, tuple[int, ...]]]:
    return [(name, tuple(tensor.shape)) for name, tensor in module.state_dict().items()]


@pytest.mark.peer
@pytest.mark.parametrize(("family", "options"), CONFIGS, ids=CONFIG_IDS)
def test_state_dict_keys_and_shapes_equal_torch(family, options):
    theirs = TORCH_CLASSES[family](3, 6, **options)
    ours = RNNKIT_CLASSES[family](3, 6, **options)
    assert shapes_of(ours) == shapes_of(theirs)
    assert [[tuple(p.shape) for p in group] for group in ours.all_weights] == [
        [tuple(p.shape) for p in group] for group in theirs.all_weights
    ]


@pytest.mark.peer
@pytest.mark.parametrize(("family", "options"), CONFIGS, ids=CONFIG_IDS)
def test_seeded_init_draws_the_same_values_as_torch(family, options):
    torch.manual_seed(11)
    theirs = TORCH_CLASSES[family](3, 6, **options)
    torch.manual_seed(11)
    ours = RNNKIT_CLASSES[family](3, 6, **options)
    for (name, expected), actual in zip(
        theirs.state_dict().items(), ours.state_dict().values(), strict=True
    ):
        assert torch.equal(actual, expected), name


@pytest.mark.parametrize("family", ["lstm", "gru", "rnn"])
def test_default_init_is_uniform_over_torch_range(family):
    hidden = 64
    module = RNNKIT_CLASSES[family](32, hidden, num_layers=2, bidirectional=True)
    bound = 1 / math.sqrt(hidden)
    values = torch.cat([p.detach().flatten() for p in module.parameters()])
    assert values.abs().max() <= bound
    assert values.max() > 0.99 * bound and values.min() < -0.99 * bound
    assert abs(values.mean().item()) < 0.02 * bound
    assert values.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.02)


@pytest.mark.peer
@pytest.mark.parametrize(("family", "options"), CONFIGS, ids=CONFIG_IDS)
def test_state_dict_loads_into_torch(family, options):
    ours = RNNKIT_CLASSES[family](3, 6, **options)
    theirs = TORCH_CLASSES[family](3, 6, **options)
    theirs.load_state_dict(ours.state_dict())
    inputs = torch.randn(5, 2, 3)
    torch.testing.assert_close(ours(inputs)[0], theirs(inputs)[0], atol=1e-5, rtol=0)


@pytest.mark.peer
@pytest.mark.parametrize("convert", ["double", "to-dtype"])
@pytest.mark.parametrize("family", ["lstm", "gru", "rnn"])
def test_double_and_to_convert_every_parameter(family, convert):
    ours, theirs = build_pair(family, torch.float32, input_size=3, hidden_size=4, num_layers=2)
    ours = ours.double() if convert == "double" else ours.to(torch.float64)
    theirs = theirs.double()
    assert {p.dtype for p in ours.parameters()} == {torch.float64}
    compare_pair(ours, theirs, torch.randn(5, 2, 3, dtype=torch.float64), None, torch.float64)


def test_dtype_argument_sets_parameter_dtype():
    module = RNNKIT_CLASSES["gru"](3, 4, dtype=torch.float64, device="cpu")
    assert {p.dtype for p in module.parameters()} == {torch.float64}
    assert module(torch.randn(5, 3, dtype=torch.float64))[0].dtype == torch.float64


def test_lstm_extra_options_add_named_parameters():
    lstm = RNNKIT_CLASSES["lstm"](
        3, 4, num_layers=2, bidirectional=True, proj_size=2, peephole=True, layer_norm=True
    )
    shapes = dict(shapes_of(lstm))
    assert shapes["weight_peephole_l1_reverse"] == (3, 4)
    assert shapes["ln_ih_weight_l0"] == (16,) and shapes["ln_hh_bias_l1"] == (16,)
    assert shapes["ln_c_weight_l1_reverse"] == (4,) and shapes["ln_c_bias_l0"] == (4,)
    assert torch.equal(lstm.ln_ih_weight_l0, torch.ones(16))
    assert torch.equal(lstm.ln_c_bias_l1, torch.zeros(4))
    torch_keys = set(
        TORCH_CLASSES["lstm"](3, 4, num_layers=2, bidirectional=True, proj_size=2).state_dict()
    )
    assert torch_keys < set(shapes)


@pytest.mark.peer
def test_zero_peepholes_reduce_to_torch_lstm(dtype):
    torch.manual_seed(0)
    theirs = TORCH_CLASSES["lstm"](3, 4, num_layers=2, bidirectional=True, dtype=dtype)
    ours = RNNKIT_CLASSES["lstm"](
        3, 4, num_layers=2, bidirectional=True, dtype=dtype, peephole=True
    )
    missing, unexpected = ours.load_state_dict(theirs.state_dict(), strict=False)
    assert sorted(missing) == sorted(n for n in ours.state_dict() if "peephole" in n)
    assert unexpected == []
    with torch.no_grad():
        for name, parameter in ours.named_parameters():
            if "peephole" in name:
                parameter.zero_()
    inputs = torch.randn(5, 2, 3, dtype=dtype)
    torch.testing.assert_close(ours(inputs)[0], theirs(inputs)[0], atol=1e-5, rtol=0)


@pytest.mark.parametrize("backend", ["reference", "auto"])
def test_peephole_layer_norm_lstm_runs_the_lstm_cell(backend):
    """The drop-in binds its tensors to LSTMCell's equations unchanged (one layer/direction)."""
    torch.manual_seed(0)
    lstm = RNNKIT_CLASSES["lstm"](
        3,
        4,
        batch_first=True,
        peephole=True,
        layer_norm=True,
        proj_size=2,
        dtype=torch.float64,
        backend=backend,
    )
    with torch.no_grad():
        for name, parameter in lstm.named_parameters():
            if name.startswith("ln_"):
                parameter.normal_()
    cell = LSTMCell(
        4,
        input_size=3,
        peephole=True,
        layer_norm=True,
        proj_size=2,
        recurrent_bias=True,
        dtype=torch.float64,
    )
    with torch.no_grad():
        for name, parameter in cell.named_parameters():
            parameter.copy_(getattr(lstm, f"{name}_l0"))
    inputs = torch.randn(2, 5, 3, dtype=torch.float64)
    expected, (h_n, c_n) = run_sequence(
        cell, inputs, cell.get_initial_state(2, torch.float64, "cpu"), backend="reference"
    )
    output, (ours_h, ours_c) = lstm(inputs)
    torch.testing.assert_close(output, expected, atol=1e-12, rtol=0)
    torch.testing.assert_close(ours_h[0], h_n, atol=1e-12, rtol=0)
    torch.testing.assert_close(ours_c[0], c_n, atol=1e-12, rtol=0)


def test_repr_names_non_default_options():
    assert (
        repr(RNNKIT_CLASSES["rnn"](3, 4, 2, "relu"))
        == "RNN(3, 4, num_layers=2, nonlinearity='relu')"
    )
    assert RNNKIT_CLASSES["rnn"](3, 4, nonlinearity="relu").mode == "RNN_RELU"
