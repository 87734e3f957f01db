"""A stateful layer called on one timestep at a time (streaming) under ``torch.no_grad()``.

It runs as one compiled step; the reference is the same layer's weights run over the whole
sequence at once by the reference loop (``backend="reference"``).
"""

from __future__ import annotations

import pytest
import torch

from rnnkit import layers
from rnnkit.layers import rnn as rnn_module

LAYERS = {"lstm": layers.LSTM, "gru": layers.GRU, "simple_rnn": layers.SimpleRNN}
TOLERANCE = {torch.float32: 1e-5, torch.float64: 1e-12}


def _pair(name, dtype, **options):
    """A stateful layer and a reference-loop layer with the same weights."""
    stateful = LAYERS[name](5, stateful=True, dtype=dtype, **options)
    reference = LAYERS[name](
        5, backend="reference", return_sequences=True, return_state=True, dtype=dtype
    )
    for layer in (stateful, reference):
        layer.build((2, 1, 4))
        layer.built = True
    generator = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for a, b in zip(stateful.parameters(), reference.parameters()):
            a.copy_(0.5 * torch.randn(a.shape, generator=generator, dtype=dtype))
            b.copy_(a)
    return stateful, reference


def _refuse_the_sequence_path(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the one-step call took the sequence path")

    monkeypatch.setattr(rnn_module, "run_sequence", refuse)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", sorted(LAYERS))
@pytest.mark.parametrize("form", ["last", "sequences", "state"])
def test_one_step_at_a_time_matches_the_whole_sequence(name, dtype, form, monkeypatch):
    options = {
        "last": {},
        "sequences": {"return_sequences": True},
        "state": {"return_state": True},
    }[form]
    stateful, reference = _pair(name, dtype, **options)
    xs = torch.randn(2, 6, 4, generator=torch.Generator().manual_seed(12), dtype=dtype)
    atol = TOLERANCE[dtype]
    with torch.no_grad():
        outputs, *final_state = reference(xs)
        _refuse_the_sequence_path(monkeypatch)
        for t in range(xs.shape[1]):
            result = stateful(xs[:, t : t + 1].contiguous())
            output = result[0] if form == "state" else result
            expected = outputs[:, t : t + 1] if form == "sequences" else outputs[:, t]
            assert output.shape == expected.shape
            torch.testing.assert_close(output, expected, rtol=0, atol=atol)
    for got, want in zip(stateful.states, final_state):
        torch.testing.assert_close(got, want, rtol=0, atol=atol)
    if form == "state":
        for got, want in zip(result[1:], final_state):
            torch.testing.assert_close(got, want, rtol=0, atol=atol)


def test_runs_without_the_sequence_path(monkeypatch):
    stateful, _ = _pair("lstm", torch.float32)
    _refuse_the_sequence_path(monkeypatch)
    with torch.no_grad():
        stateful(torch.randn(2, 1, 4))
        stateful(torch.randn(2, 1, 4))
    with pytest.raises(AssertionError, match="sequence path"):
        stateful(torch.randn(2, 2, 4))  # two timesteps: the usual path


def test_writing_to_the_output_leaves_the_state_alone(monkeypatch):
    stateful, reference = _pair("gru", torch.float32)
    xs = torch.randn(2, 2, 4, generator=torch.Generator().manual_seed(13))
    with torch.no_grad():
        expected, *_ = reference(xs)
        _refuse_the_sequence_path(monkeypatch)
        output = stateful(xs[:, :1].contiguous())
        output.fill_(100.0)
        second = stateful(xs[:, 1:].contiguous())
    torch.testing.assert_close(second, expected[:, 1], rtol=0, atol=1e-5)


def test_reset_states_and_batch_mismatch():
    stateful, reference = _pair("lstm", torch.float32)
    x = torch.randn(2, 1, 4, generator=torch.Generator().manual_seed(14))
    with torch.no_grad():
        first = stateful(x)
        stateful(x)
        stateful.reset_states()
        again = stateful(x)
        with pytest.raises(ValueError, match="reset_states"):
            stateful(torch.randn(3, 1, 4))
        expected, *_ = reference(x)
    torch.testing.assert_close(again, first, rtol=0, atol=0)
    torch.testing.assert_close(again, expected[:, 0], rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_sees_weights_changed_between_timesteps(name, monkeypatch):
    stateful, reference = _pair(name, torch.float32)
    xs = torch.randn(2, 2, 1, 4, generator=torch.Generator().manual_seed(15))
    with torch.no_grad():
        stateful(xs[0])
        state = [s.clone() for s in stateful.states]
        for a, b in zip(stateful.parameters(), reference.parameters()):
            a.mul_(0.5)
            b.mul_(0.5)
        expected, *final_state = reference(xs[1], initial_state=state)
        _refuse_the_sequence_path(monkeypatch)
        output = stateful(xs[1])
    torch.testing.assert_close(output, expected[:, 0], rtol=0, atol=1e-5)
    for got, want in zip(stateful.states, final_state):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
