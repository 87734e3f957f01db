"""Peer harness for the torch.nn drop-ins: build a (rnnkit, torch.nn) pair and compare them.

``run_pair`` runs both modules on the same input and initial state, backpropagates the same
random projection of every output, and returns outputs, final states and the gradients of the
input, of ``hx`` and of every parameter, keyed by name, so one ``assert_same`` covers them all.
"""

from __future__ import annotations

import torch
from torch.nn.utils.rnn import PackedSequence

import rnnkit.nn

FAMILIES = ("lstm", "gru", "rnn")
TORCH_CLASSES = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}
RNNKIT_CLASSES = {"lstm": rnnkit.nn.LSTM, "gru": rnnkit.nn.GRU, "rnn": rnnkit.nn.RNN}
TOLERANCE = {torch.float32: 1e-5, torch.float64: 1e-10}
BACKENDS = ("reference", "auto")


def build_pair(
    family: str, dtype: torch.dtype = torch.float64, backend: str = "reference", **options
):
    """A torch.nn module with its default init and an rnnkit module loaded from its state_dict."""
    torch.manual_seed(0)
    theirs = TORCH_CLASSES[family](dtype=dtype, **options)
    ours = RNNKIT_CLASSES[family](dtype=dtype, backend=backend, **options)
    ours.load_state_dict(theirs.state_dict())
    return ours, theirs


def _probe_loss(tensors: list[torch.Tensor]) -> torch.Tensor:
    """A fixed random linear function of the tensors: each element gets its own weight."""
    generator = torch.Generator().manual_seed(1234)
    return sum(
        (tensor * torch.randn(tensor.shape, generator=generator, dtype=tensor.dtype)).sum()
        for tensor in tensors
    )


def _as_leaves(inputs, hx):
    if isinstance(inputs, PackedSequence):
        data = inputs.data.detach().requires_grad_()
        inputs = PackedSequence(
            data, inputs.batch_sizes, inputs.sorted_indices, inputs.unsorted_indices
        )
        input_leaf = data
    else:
        inputs = input_leaf = inputs.detach().requires_grad_()
    if hx is None:
        return inputs, input_leaf, None, []
    if isinstance(hx, torch.Tensor):
        hx = hx.detach().requires_grad_()
        return inputs, input_leaf, hx, [hx]
    hx = tuple(tensor.detach().requires_grad_() for tensor in hx)
    return inputs, input_leaf, hx, list(hx)


def run_module(module, inputs, hx=None) -> dict[str, torch.Tensor]:
    """Outputs, final states and gradients of ``module`` on ``inputs``, keyed by name."""
    inputs, input_leaf, hx, hx_leaves = _as_leaves(inputs, hx)
    output, state = module(inputs, hx)
    states = list(state) if isinstance(state, tuple) else [state]
    if isinstance(output, PackedSequence):
        results = {"batch_sizes": output.batch_sizes, "sorted_indices": output.sorted_indices}
        output = output.data
    else:
        results = {}
    results.update({"output": output, **{f"state[{k}]": s for k, s in enumerate(states)}})
    names, parameters = zip(*module.named_parameters(), strict=True)
    leaves = [input_leaf, *hx_leaves, *parameters]
    grads = torch.autograd.grad(_probe_loss([output, *states]), leaves)
    results["grad input"] = grads[0]
    results.update({f"grad hx[{k}]": g for k, g in enumerate(grads[1 : 1 + len(hx_leaves)])})
    results.update(
        {f"grad {n}": g for n, g in zip(names, grads[1 + len(hx_leaves) :], strict=True)}
    )
    return results


def assert_same(ours: dict, theirs: dict, dtype: torch.dtype) -> None:
    assert sorted(ours) == sorted(theirs)
    tolerance = TOLERANCE[dtype]
    for name, expected in theirs.items():
        actual = ours[name]
        if expected is None or not expected.is_floating_point():
            assert actual is None if expected is None else torch.equal(actual, expected), name
            continue
        torch.testing.assert_close(
            actual, expected, atol=tolerance, rtol=0, msg=lambda text, name=name: f"{name}: {text}"
        )


def compare_pair(ours, theirs, inputs, hx, dtype) -> dict:
    """Run both modules and assert everything agrees; returns rnnkit's results."""
    ours_results = run_module(ours, inputs, hx)
    assert_same(ours_results, run_module(theirs, inputs, hx), dtype)
    return ours_results
