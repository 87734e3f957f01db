"""One step of rnnkit's cells against torch.nn's: outputs and every gradient.

torch's weights are copied into an rnnkit cell unchanged (same layout and gate order), with
``recurrent_bias=True`` so that LSTM and SimpleRNN also carry ``bias_hh``; GRU with
``reset_after=True`` has both biases already.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import nn

from rnnkit.cells import GRUCell, LSTMCell, SimpleRNNCell

from ._cases import BATCH, INPUT_SIZE, PROJ_SIZE, UNITS

TOLERANCES = {torch.float32: 1e-5, torch.float64: 1e-10}


@dataclass(frozen=True)
class Peer:
    id: str
    make_torch: object  # (dtype) -> torch module
    make_rnnkit: object  # (dtype) -> rnnkit cell
    weight_names: tuple[str, ...]  # the same names in torch (nn.LSTM adds "_l0")


PEERS = [
    Peer(
        "rnn-tanh",
        lambda d: nn.RNNCell(INPUT_SIZE, UNITS, nonlinearity="tanh", dtype=d),
        lambda d: SimpleRNNCell(
            UNITS, input_size=INPUT_SIZE, activation="tanh", recurrent_bias=True, dtype=d
        ),
        ("weight_ih", "weight_hh", "bias_ih", "bias_hh"),
    ),
    Peer(
        "rnn-relu",
        lambda d: nn.RNNCell(INPUT_SIZE, UNITS, nonlinearity="relu", dtype=d),
        lambda d: SimpleRNNCell(
            UNITS, input_size=INPUT_SIZE, activation="relu", recurrent_bias=True, dtype=d
        ),
        ("weight_ih", "weight_hh", "bias_ih", "bias_hh"),
    ),
    Peer(
        "lstm",
        lambda d: nn.LSTMCell(INPUT_SIZE, UNITS, dtype=d),
        lambda d: LSTMCell(UNITS, input_size=INPUT_SIZE, recurrent_bias=True, dtype=d),
        ("weight_ih", "weight_hh", "bias_ih", "bias_hh"),
    ),
    Peer(
        "lstm-proj",
        lambda d: nn.LSTM(INPUT_SIZE, UNITS, proj_size=PROJ_SIZE, batch_first=True, dtype=d),
        lambda d: LSTMCell(
            UNITS, input_size=INPUT_SIZE, recurrent_bias=True, proj_size=PROJ_SIZE, dtype=d
        ),
        ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr"),
    ),
    Peer(
        "gru",
        lambda d: nn.GRUCell(INPUT_SIZE, UNITS, dtype=d),
        lambda d: GRUCell(UNITS, input_size=INPUT_SIZE, reset_after=True, dtype=d),
        ("weight_ih", "weight_hh", "bias_ih", "bias_hh"),
    ),
]


def _torch_param(module: nn.Module, name: str) -> torch.Tensor:
    return getattr(module, name + "_l0") if isinstance(module, nn.LSTM) else getattr(module, name)


def _torch_step(module: nn.Module, x: torch.Tensor, state: tuple) -> tuple:
    """One step of the torch peer as ``(output, state tuple)``."""
    if isinstance(module, nn.LSTM):
        output, (h, c) = module(x[:, None], (state[0][None], state[1][None]))
        return output[:, 0], (h[0], c[0])
    if isinstance(module, nn.LSTMCell):
        h, c = module(x, state)
        return h, (h, c)
    h = module(x, state[0])
    return h, (h,)


def _loss(output: torch.Tensor, state: tuple, generator: torch.Generator) -> torch.Tensor:
    """A random linear functional of every result, so each one's gradient path is exercised."""
    total = 0.0
    for tensor in (output, *state):
        total = (
            total
            + (tensor * torch.randn(tensor.shape, generator=generator, dtype=tensor.dtype)).sum()
        )
    return total


@pytest.mark.peer
@pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["fp32", "fp64"])
@pytest.mark.parametrize("peer", PEERS, ids=[p.id for p in PEERS])
def test_one_step_matches_torch(peer: Peer, dtype: torch.dtype):
    torch.manual_seed(0)
    reference = peer.make_torch(dtype)
    cell = peer.make_rnnkit(dtype)
    with torch.no_grad():
        for name in peer.weight_names:
            getattr(cell, name).copy_(_torch_param(reference, name))
    assert sorted(n for n, _ in cell.named_parameters()) == sorted(peer.weight_names)

    generator = torch.Generator().manual_seed(3)
    x = torch.randn(BATCH, INPUT_SIZE, generator=generator, dtype=dtype)
    state = tuple(
        torch.randn(BATCH, size, generator=generator, dtype=dtype) for size in cell.state_size
    )

    results = {}
    for label, module, step in (("torch", reference, _torch_step), ("rnnkit", cell, None)):
        inputs = [t.clone().requires_grad_(True) for t in (x, *state)]
        if step is None:
            output, new_state = module(inputs[0], tuple(inputs[1:]))
            params = [getattr(module, name) for name in peer.weight_names]
        else:
            output, new_state = step(module, inputs[0], tuple(inputs[1:]))
            params = [_torch_param(module, name) for name in peer.weight_names]
        loss = _loss(output, new_state, torch.Generator().manual_seed(4))
        grads = torch.autograd.grad(loss, [*inputs, *params])
        results[label] = (output, *new_state, *grads)

    tolerance = TOLERANCES[dtype]
    for expected, got in zip(results["torch"], results["rnnkit"], strict=True):
        assert got.dtype == dtype
        torch.testing.assert_close(got, expected, rtol=0, atol=tolerance)
