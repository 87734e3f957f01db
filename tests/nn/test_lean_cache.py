"""The drop-ins keep bound cells, kernel decisions and weight arrays between calls: every way a
parameter can change must reach the next call, checked against torch.nn on the same weights."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch
from nn_peer import FAMILIES, build_pair, compare_pair

from rnnkit.kernels.dispatch import fused_runner

TOLERANCE = {torch.float32: 1e-5, torch.float64: 1e-10}


def make_pair(family: str, dtype=torch.float64, **options):
    ours, theirs = build_pair(
        family, dtype, backend="fused", input_size=3, hidden_size=4, batch_first=True, **options
    )
    return ours, theirs


def inputs_for(dtype=torch.float64, batch=2, steps=5, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, steps, 3, generator=generator, dtype=dtype)


def assert_outputs_equal(ours, theirs, inputs):
    expected, _ = theirs(inputs)
    actual, _ = ours(inputs)
    tolerance = TOLERANCE[inputs.dtype]
    torch.testing.assert_close(actual, expected, atol=tolerance, rtol=0)


def kernel_of(module, layer=0, direction=0):
    """The kernel the module's cell has cached (``None`` when it declined)."""
    cache = module._bound_cell(layer, direction).kernel_cache
    assert cache is not None, "no call has gone through the fused dispatch yet"
    return cache[2]


@pytest.mark.parametrize("family", FAMILIES)
def test_in_place_update_reaches_the_next_call(family):
    ours, theirs = make_pair(family)
    inputs = inputs_for()
    assert_outputs_equal(ours, theirs, inputs)
    with torch.no_grad():
        for module in (ours, theirs):
            module.weight_hh_l0.mul_(-1.5)
            module.bias_ih_l0.add_(0.25)
    assert_outputs_equal(ours, theirs, inputs)


@pytest.mark.parametrize("family", FAMILIES)
def test_writes_through_data_reach_the_next_call(family):
    # ``.data`` writes do not bump the version counter: nothing derived from a weight's values
    # may be kept across calls, only views of its memory.
    ours, theirs = make_pair(family)
    inputs = inputs_for()
    assert_outputs_equal(ours, theirs, inputs)
    for module in (ours, theirs):
        module.weight_hh_l0.data.mul_(-1.5)
        module.weight_ih_l0.data.copy_(
            torch.linspace(-1, 1, module.weight_ih_l0.numel()).reshape(module.weight_ih_l0.shape)
        )
    assert_outputs_equal(ours, theirs, inputs)


@pytest.mark.parametrize("family", FAMILIES)
def test_data_reassignment_reaches_the_next_call(family):
    ours, theirs = make_pair(family)
    inputs = inputs_for()
    assert_outputs_equal(ours, theirs, inputs)
    generator = torch.Generator().manual_seed(3)
    new = torch.randn(ours.weight_hh_l0.shape, generator=generator, dtype=torch.float64)
    ours.weight_hh_l0.data = new.clone()
    theirs.weight_hh_l0.data = new.clone()
    assert_outputs_equal(ours, theirs, inputs)


def test_reassigned_transposed_view_is_read_with_its_strides():
    # Same storage, same (square) shape, other strides: only the strides tell the change.
    ours, theirs = make_pair("rnn")
    inputs = inputs_for()
    assert_outputs_equal(ours, theirs, inputs)
    for module in (ours, theirs):
        module.weight_hh_l0.data = module.weight_hh_l0.data.t()
    assert not ours.weight_hh_l0.is_contiguous()
    assert_outputs_equal(ours, theirs, inputs)


@pytest.mark.parametrize("family", FAMILIES)
def test_in_place_update_keeps_the_kernel_of_contiguous_weights(family):
    # Its arrays view the weights' memory: an optimizer step needs no new kernel.
    ours, theirs = make_pair(family)
    inputs = inputs_for()
    assert_outputs_equal(ours, theirs, inputs)
    kernel = kernel_of(ours)
    with torch.no_grad():
        for module in (ours, theirs):
            module.weight_ih_l0.mul_(0.5)
    assert_outputs_equal(ours, theirs, inputs)
    assert kernel_of(ours) is kernel


def test_in_place_update_of_a_copied_weight_reaches_the_next_call():
    # A transposed weight reaches the kernel as a copy, which an in-place update must renew.
    ours, theirs = make_pair("rnn")
    inputs = inputs_for()
    for module in (ours, theirs):
        module.weight_hh_l0.data = module.weight_hh_l0.data.t()
    assert_outputs_equal(ours, theirs, inputs)
    kernel = kernel_of(ours)
    with torch.no_grad():
        for module in (ours, theirs):
            module.weight_hh_l0.mul_(-2.0)
    assert_outputs_equal(ours, theirs, inputs)
    assert kernel_of(ours) is not kernel


@pytest.mark.parametrize("family", FAMILIES)
def test_parameter_replacement_reaches_the_next_call(family):
    ours, theirs = make_pair(family)
    inputs = inputs_for()
    assert_outputs_equal(ours, theirs, inputs)
    generator = torch.Generator().manual_seed(4)
    new = torch.randn(ours.weight_ih_l0.shape, generator=generator, dtype=torch.float64)
    ours.weight_ih_l0 = torch.nn.Parameter(new.clone())
    theirs.weight_ih_l0 = torch.nn.Parameter(new.clone())
    assert_outputs_equal(ours, theirs, inputs)


@pytest.mark.parametrize("family", FAMILIES)
def test_load_state_dict_reaches_the_next_call(family):
    ours, theirs = make_pair(family)
    inputs = inputs_for()
    assert_outputs_equal(ours, theirs, inputs)
    torch.manual_seed(9)
    other = type(theirs)(3, 4, batch_first=True, dtype=torch.float64)
    theirs.load_state_dict(other.state_dict())
    ours.load_state_dict(other.state_dict())
    assert_outputs_equal(ours, theirs, inputs)
    ours.load_state_dict(theirs.state_dict(), assign=True)
    assert_outputs_equal(ours, theirs, inputs)


@pytest.mark.parametrize("family", FAMILIES)
def test_dtype_conversion_is_noticed(family):
    ours, theirs = make_pair(family, torch.float32)
    assert_outputs_equal(ours, theirs, inputs_for(torch.float32))
    float32_kernel = kernel_of(ours)
    assert float32_kernel is not None
    ours.double()
    theirs.double()
    assert_outputs_equal(ours, theirs, inputs_for(torch.float64))
    assert kernel_of(ours) is not float32_kernel
    assert kernel_of(ours).dtype == torch.float64
    ours.float()
    theirs.float()
    assert_outputs_equal(ours, theirs, inputs_for(torch.float32))


def test_a_weight_of_the_wrong_shape_never_reaches_the_kernel():
    ours, _ = make_pair("gru")
    inputs = inputs_for()
    ours(inputs)
    assert kernel_of(ours) is not None
    ours.weight_hh_l0.data = torch.zeros(12, 3, dtype=torch.float64)  # (3H, H) is (12, 4)
    cell = ours._bound_cell(0, 0)
    assert fused_runner(cell, inputs) is None
    with pytest.raises(ValueError, match="'fused' has no kernel"):
        ours(inputs)
    ours.backend = "auto"
    with pytest.raises(RuntimeError):  # torch's own shape error, from the reference loop
        ours(inputs)


def test_a_weight_of_another_dtype_never_reaches_the_kernel():
    ours, _ = make_pair("lstm")
    inputs = inputs_for()
    ours(inputs)
    ours.weight_hh_l0.data = ours.weight_hh_l0.data.float()
    assert fused_runner(ours._bound_cell(0, 0), inputs) is None


@pytest.mark.parametrize("family", FAMILIES)
def test_training_matches_torch_step_for_step(family):
    # Each optimizer step bumps the versions; every step's gradients must use the new weights.
    ours, theirs = make_pair(family, num_layers=2, bidirectional=True)
    optimizers = [torch.optim.SGD(m.parameters(), lr=0.5) for m in (ours, theirs)]
    for step in range(3):
        inputs = inputs_for(seed=step)
        for module, optimizer in zip((ours, theirs), optimizers, strict=True):
            optimizer.zero_grad()
            output, _ = module(inputs)
            output.pow(2).sum().backward()
            optimizer.step()
    for (name, expected), actual in zip(theirs.named_parameters(), ours.parameters(), strict=True):
        torch.testing.assert_close(actual, expected, atol=1e-10, rtol=0, msg=name)


def test_in_place_update_between_forward_and_backward_raises():
    ours, _ = make_pair("lstm")
    output, _ = ours(inputs_for())
    with torch.no_grad():
        ours.weight_hh_l0.add_(1.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        output.sum().backward()


@pytest.mark.parametrize("family", FAMILIES)
def test_no_initial_state_equals_zeros(family):
    ours, theirs = make_pair(family)
    inputs = inputs_for()
    zeros = torch.zeros(1, 2, 4, dtype=torch.float64)
    hx = (zeros, zeros) if family == "lstm" else zeros
    compare_pair(ours, theirs, inputs, None, torch.float64)
    compare_pair(ours, theirs, inputs, hx, torch.float64)


@pytest.mark.parametrize("family", FAMILIES)
def test_only_final_state_in_the_loss(family):
    ours, theirs = make_pair(family)
    inputs = inputs_for()
    grads = []
    for module in (ours, theirs):
        _, state = module(inputs)
        h_n = state[0] if family == "lstm" else state
        grads.append(torch.autograd.grad(h_n.sum(), list(module.parameters())))
    for actual, expected in zip(*grads, strict=True):
        torch.testing.assert_close(actual, expected, atol=1e-10, rtol=0)


@pytest.mark.parametrize(
    "clone", [copy.deepcopy, lambda m: pickle.loads(pickle.dumps(m))], ids=["deepcopy", "pickle"]
)
def test_copies_run_on_their_own_weights(clone):
    ours, theirs = make_pair("gru")
    inputs = inputs_for()
    ours(inputs)
    copied = clone(ours)
    with torch.no_grad():
        ours.weight_hh_l0.mul_(2.0)
    assert_outputs_equal(copied, theirs, inputs)
