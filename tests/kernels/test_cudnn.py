"""The CUDA path of the built-in cells through torch's fused RNN (cuDNN there), run on CPU.

torch's CPU RNN takes the same call as its cuDNN one, so the weights, states, masks and gradients
rnnkit hands over are checked here against the reference loop and ``torch.nn``: the ``on_cpu``
fixture lets the path take CPU tensors and keeps the compiled kernels out of the way, so that
``backend="fused"`` raises unless this path ran.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import rnnkit.layers
import rnnkit.nn
from rnnkit.cells import CELL_CLASSES
from rnnkit.kernels import cudnn, dispatch, run_sequence

from ._harness import assert_backends_agree, make_problem, randomise

CASES = {
    "lstm": ("lstm", {}),
    "lstm_no_bias": ("lstm", {"use_bias": False}),
    "lstm_two_biases": ("lstm", {"recurrent_bias": True}),
    "lstm_projection": ("lstm", {"proj_size": 2}),
    "gru": ("gru", {}),
    "gru_no_bias": ("gru", {"use_bias": False}),
    "rnn_tanh": ("rnn", {}),
    "rnn_relu": ("rnn", {"activation": "relu"}),
    "rnn_no_bias": ("rnn", {"use_bias": False}),
}


@pytest.fixture
def on_cpu(monkeypatch):
    monkeypatch.setattr(cudnn, "DEVICES", ("cpu",))
    monkeypatch.setattr(dispatch, "fused_runner", lambda cell, inputs: None)


def make_cell(family: str, dtype=torch.float64, **options):
    cell = CELL_CLASSES[family](3, input_size=2, dtype=dtype, **options)
    return randomise(cell, torch.Generator().manual_seed(0))


def right_padded(lengths: list[int], steps: int) -> torch.Tensor:
    """The ``(B, T)`` mask of ``lengths[b]`` real steps then padding in each row."""
    return torch.arange(steps)[None] < torch.tensor(lengths)[:, None]


@pytest.mark.parametrize("mask", ["none", "zero_outputs", "held_outputs"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case", list(CASES))
def test_matches_the_reference(on_cpu, case, dtype, mask):
    family, options = CASES[case]
    problem = make_problem(make_cell(family, dtype, **options), batch=4, steps=6,
                           mask_kind="none", recurrent=False, zero_output=mask == "zero_outputs",
                           seed=3)
    if mask != "none":
        problem = dataclasses.replace(problem, mask=right_padded([6, 2, 4, 1], 6))
    assert_backends_agree(problem)  # "fused" is this path (see on_cpu)


@pytest.mark.parametrize("stacked", [False, True])
@pytest.mark.parametrize("family", sorted(CELL_CLASSES))
def test_zero_initial_state_and_final_state_shapes(on_cpu, family, stacked):
    cell = make_cell(family)
    inputs = torch.randn(2, 5, 2, dtype=torch.float64)
    outputs, finals = run_sequence(cell, inputs, None, backend="fused", stacked=stacked)
    zeros = tuple(torch.zeros(2, size, dtype=torch.float64) for size in cell.state_size)
    expected, expected_finals = run_sequence(cell, inputs, zeros, backend="reference",
                                             stacked=stacked)
    torch.testing.assert_close(outputs, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(finals, expected_finals, rtol=1e-12, atol=1e-12)
    assert finals[0].shape == ((1, 2, 3) if stacked else (2, 3))


DECLINED = {
    "peephole": (lambda: make_cell("lstm", peephole=True), {}),
    "layer_norm": (lambda: make_cell("lstm", layer_norm=True), {}),
    "hard_sigmoid": (lambda: make_cell("lstm", recurrent_activation="hard_sigmoid"), {}),
    "lstm_relu": (lambda: make_cell("lstm", activation="relu"), {}),
    "gru_reset_before": (lambda: make_cell("gru", reset_after=False), {}),
    "rnn_linear": (lambda: make_cell("rnn", activation="linear"), {}),
    "recurrent_dropout": (lambda: make_cell("lstm"),
                          {"recurrent_mask": torch.ones(2, 3, dtype=torch.float64)}),
    "left_padded": (lambda: make_cell("gru"), {"mask": right_padded([5, 2], 5).flip(1)}),
    "empty_row": (lambda: make_cell("lstm"),
                  {"mask": right_padded([5, 0], 5)}),
    "dtype_mismatch": (lambda: make_cell("lstm", torch.float32), {}),
}


@pytest.mark.parametrize("case", list(DECLINED))
def test_declines_what_cudnn_has_not(on_cpu, case):
    make, arguments = DECLINED[case]
    arguments = {"mask": None, "recurrent_mask": None, "zero_output_for_mask": True, **arguments}
    cell, inputs = make(), torch.randn(2, 5, 2, dtype=torch.float64)
    assert cudnn.runner(cell, inputs, **arguments) is None
    assert cudnn.runner(make_cell("lstm"), inputs, None, None, True) is cudnn.run  # the control


def test_declines_cpu_tensors_by_default():
    assert cudnn.DEVICES == ("cuda",)
    assert cudnn.runner(make_cell("lstm"), torch.randn(2, 5, 2, dtype=torch.float64), None, None,
                        True) is None


def test_dispatch_prefers_the_compiled_kernels(monkeypatch):
    """Where a compiled kernel takes the call it runs, and this path is not asked."""
    monkeypatch.setattr(cudnn, "DEVICES", ("cpu",))
    calls = []
    monkeypatch.setattr(cudnn, "run", lambda *arguments: calls.append(arguments))
    cell = make_cell("gru")
    outputs, _ = run_sequence(cell, torch.randn(2, 5, 2, dtype=torch.float64), None)
    assert outputs.shape == (2, 5, 3) and calls == []
    monkeypatch.setattr(dispatch, "fused_runner", lambda cell, inputs: None)
    run_sequence(cell, torch.randn(2, 5, 2, dtype=torch.float64), None)
    assert len(calls) == 1


@pytest.mark.parametrize("family", ["LSTM", "GRU", "RNN"])
def test_nn_drop_in_with_packed_sequences_matches_torch_nn(on_cpu, family):
    """A 2-layer bidirectional drop-in on packed input: forward directions take this path,
    reverse ones (left-padded after the flip) the reference loop; all match ``torch.nn``."""
    options = {"proj_size": 2} if family == "LSTM" else {}
    torch.manual_seed(0)
    peer = getattr(torch.nn, family)(3, 4, num_layers=2, bidirectional=True, batch_first=True,
                                     dtype=torch.float64, **options)
    ours = getattr(rnnkit.nn, family)(3, 4, num_layers=2, bidirectional=True, batch_first=True,
                                      dtype=torch.float64, **options)
    ours.load_state_dict(peer.state_dict())
    x = torch.randn(3, 6, 3, dtype=torch.float64)
    lengths = torch.tensor([6, 2, 4])
    results = []
    for module in (peer, ours):
        inputs = x.clone().requires_grad_()
        packed = pack_padded_sequence(inputs, lengths, batch_first=True, enforce_sorted=False)
        output, state = module(packed)
        padded, _ = pad_packed_sequence(output, batch_first=True)
        finals = state if isinstance(state, tuple) else (state,)
        loss = padded.square().sum() + sum(final.square().sum() for final in finals)
        grads = torch.autograd.grad(loss, (inputs, *module.parameters()))
        results.append((padded, finals, grads))
    torch.testing.assert_close(results[1], results[0], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("layer_class", ["LSTM", "GRU", "SimpleRNN"])
def test_keras_layer_with_a_mask_matches_the_reference(on_cpu, monkeypatch, layer_class):
    """Keras's default: padded steps repeat the last real step's output."""
    calls = []
    run = cudnn.run
    monkeypatch.setattr(cudnn, "run", lambda *arguments: calls.append(1) or run(*arguments))
    layer = getattr(rnnkit.layers, layer_class)(3, return_sequences=True, return_state=True)
    x = torch.randn(4, 6, 2)
    mask = right_padded([6, 2, 4, 1], 6)
    taken = layer(x, mask=mask)
    assert len(calls) == 1
    layer.backend = "reference"
    expected = layer(x, mask=mask)
    torch.testing.assert_close(taken, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(taken[0][1, 2:], taken[0][1, 1].expand(4, 3), rtol=0, atol=0)
