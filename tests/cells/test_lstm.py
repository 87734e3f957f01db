"""LSTM specifics beyond the shared harness: forget-bias init and how the options reduce."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnkit.cells import LSTMCell
from rnnkit.layers import LSTM

from . import _numpy_cells
from ._cases import CASES, INPUT_SIZE, UNITS, make_cell, random_inputs, random_state

H = UNITS
FORGET_BLOCK = slice(H, 2 * H)  # gates are stacked i, f, g, o in rnnkit and i, f, c, o in Keras


def test_unit_forget_bias_sets_only_the_forget_gate_bias_to_one():
    cell = LSTMCell(H, input_size=INPUT_SIZE)
    expected = np.zeros(4 * H)
    expected[FORGET_BLOCK] = 1.0
    np.testing.assert_array_equal(cell.bias_ih.detach().numpy(), expected)


def test_unit_forget_bias_counts_once_with_a_recurrent_bias():
    cell = LSTMCell(H, input_size=INPUT_SIZE, recurrent_bias=True)
    total = (cell.bias_ih + cell.bias_hh).detach().numpy()
    np.testing.assert_array_equal(total[FORGET_BLOCK], np.ones(H))
    assert np.count_nonzero(total) == H


def test_unit_forget_bias_off_leaves_zeros():
    cell = LSTMCell(H, input_size=INPUT_SIZE, unit_forget_bias=False)
    assert torch.count_nonzero(cell.bias_ih) == 0


def test_unit_forget_bias_through_the_keras_layer():
    layer = LSTM(H, input_shape=(None, INPUT_SIZE))
    bias = layer.get_weights()[2]
    np.testing.assert_array_equal(bias, np.repeat([0.0, 1.0, 0.0, 0.0], H))
    assert len(LSTM(H, use_bias=False, input_shape=(None, INPUT_SIZE)).get_weights()) == 2


def test_unit_forget_bias_reapplied_by_reset_parameters():
    cell = LSTMCell(H, input_size=INPUT_SIZE)
    with torch.no_grad():
        cell.bias_ih.fill_(-3.0)
    cell.reset_parameters()
    np.testing.assert_array_equal(cell.bias_ih.detach().numpy()[FORGET_BLOCK], np.ones(H))


def _case(case_id: str):
    return next(case for case in CASES if case.id == case_id)


@torch.no_grad()
def test_zero_peepholes_reduce_to_the_plain_cell():
    peephole = make_cell(_case("lstm-peephole"))
    plain = LSTMCell(H, input_size=INPUT_SIZE, dtype=torch.float64)
    for name, param in plain.named_parameters():
        param.copy_(getattr(peephole, name))
    x, state = random_inputs(plain, 2), random_state(plain)
    expected = plain(x, state)[1]
    assert not torch.allclose(peephole(x, state)[1][0], expected[0])
    peephole.weight_peephole.zero_()
    for got, want in zip(peephole(x, state)[1], expected, strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=0)


@torch.no_grad()
def test_output_peephole_reads_the_new_cell_state():
    """Only p_o is nonzero: the output gate must see c_t, not c_{t-1} (Gers & Schmidhuber 2000)."""
    cell = make_cell(_case("lstm-peephole"))
    cell.weight_peephole[:2].zero_()
    x, state = random_inputs(cell, 2), random_state(cell)
    h, c = cell(x, state)[1]
    weights = {n: v.numpy() for n, v in cell.weights()._asdict().items() if v is not None}
    pre = x.numpy() @ weights["weight_ih"].T + state[0].numpy() @ weights["weight_hh"].T
    pre_o = (pre + weights["bias_ih"])[:, 3 * H :]
    sigmoid = _numpy_cells.ACTIVATIONS["sigmoid"]
    for c_seen, should_match in ((c.numpy(), True), (state[1].numpy(), False)):
        candidate_h = sigmoid(pre_o + weights["weight_peephole"][2] * c_seen) * np.tanh(c.numpy())
        assert np.allclose(h.numpy(), candidate_h, rtol=0, atol=1e-12) is should_match


@torch.no_grad()
@pytest.mark.parametrize("case_id", ["lstm-layer_norm", "lstm-peephole+layer_norm+proj"])
def test_layer_norm_is_invariant_to_rescaling_the_kernels(case_id):
    """Ba et al. normalise W x and U h separately, so scaling W and U by different s > 0 cancels.

    A joint normalisation of W x + U h, or none, would change the output. eps is made tiny so
    that the invariance holds to 1e-9.
    """
    cell = make_cell(_case(case_id))
    cell.layer_norm_epsilon = 1e-12
    x, state = random_inputs(cell, 2), random_state(cell)
    before = cell(x, state)[1]
    cell.weight_ih.mul_(7.0)
    cell.weight_hh.mul_(0.5)
    after = cell(x, state)[1]
    for got, want in zip(after, before, strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-9)


@torch.no_grad()
def test_layer_norm_carries_the_unnormalised_cell_state():
    cell = make_cell(_case("lstm-layer_norm"))
    x, state = random_inputs(cell, 2), random_state(cell)
    _, (_, c) = cell(x, state)
    expected_c = _numpy_cells.step(cell, x.numpy(), tuple(s.numpy() for s in state))[1][1]
    np.testing.assert_allclose(c.numpy(), expected_c, rtol=0, atol=1e-12)
    normalised = _numpy_cells.layer_norm(
        expected_c, cell.ln_c_weight.numpy(), cell.ln_c_bias.numpy(), cell.layer_norm_epsilon
    )
    assert not np.allclose(c.numpy(), normalised, atol=1e-3)
