"""The native call (rnnkit.kernels.native): the rnnkit.nn drop-ins' plain call through one C++
autograd function and the compiled entries, against the reference loop and torch.nn, and the
calls it must leave to the Python path.

The extension is built by the README's setup command (``.ci/setup``); these tests fail, not
skip, when it is missing, so that CI cannot pass without it.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import rnnkit.nn
from rnnkit.kernels import native

NATIVE_NODE = "NativeSequence"


@pytest.fixture(autouse=True)
def _built():
    assert native.available(), (
        "the native call is not built: run `python -m rnnkit.kernels.native build` "
        "(.ci/setup does)"
    )


def _node(tensor: torch.Tensor) -> str:
    return tensor.grad_fn.name() if tensor.grad_fn is not None else ""


VARIANTS = [
    (rnnkit.nn.RNN, {}),
    (rnnkit.nn.RNN, {"nonlinearity": "relu", "bias": False}),
    (rnnkit.nn.GRU, {}),
    (rnnkit.nn.GRU, {"bias": False}),
    (rnnkit.nn.LSTM, {}),
    (rnnkit.nn.LSTM, {"bias": False}),
    (rnnkit.nn.LSTM, {"peephole": True}),
    (rnnkit.nn.LSTM, {"layer_norm": True}),
    (rnnkit.nn.LSTM, {"peephole": True, "layer_norm": True}),
]


def _pair(cls, options, dtype, batch_first=True, input_size=6, hidden_size=8, seed=0):
    """A module on the native call and its twin on the reference loop, with equal weights."""
    torch.manual_seed(seed)
    module = cls(input_size, hidden_size, batch_first=batch_first, dtype=dtype, **options)
    twin = cls(input_size, hidden_size, batch_first=batch_first, dtype=dtype,
               backend="reference", **options)
    twin.load_state_dict(module.state_dict())
    return module, twin


def _results(module, x, hx=None):
    """Outputs, final states and the gradients of a loss that uses all of them (with respect to
    the parameters, and ``x`` and ``hx`` where they require them)."""
    output, state = module(x) if hx is None else module(x, hx)
    states = state if isinstance(state, tuple) else (state,)
    loss = (output**2).sum() + sum(((k + 2) * s).sum() for k, s in enumerate(states))
    given = [] if hx is None else list(hx) if isinstance(hx, tuple) else [hx]
    tracked = list(module.parameters()) + [t for t in (x, *given) if t.requires_grad]
    return [output, *states, *torch.autograd.grad(loss, tracked)], states[0]


def _check_native_against(module, peer, x, hx=None, tolerance=1e-10):
    """``module`` runs natively and matches ``peer`` (outputs, states, every gradient)."""
    ours, h_n = _results(module, x, hx)
    theirs, _ = _results(peer, x, hx)
    assert NATIVE_NODE in _node(h_n)
    for a, b in zip(ours, theirs, strict=True):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=tolerance, atol=tolerance)


def _initial_state(cls, batch, hidden, dtype, requires_grad):
    def tensor():
        return torch.randn(1, batch, hidden, dtype=dtype, requires_grad=requires_grad)

    return (tensor(), tensor()) if cls is rnnkit.nn.LSTM else tensor()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("x_grad", [False, True])
@pytest.mark.parametrize(("cls", "options"), VARIANTS)
def test_native_matches_reference(cls, options, dtype, x_grad):
    module, twin = _pair(cls, options, dtype)
    x = torch.randn(3, 5, 6, dtype=dtype, requires_grad=x_grad)
    assert NATIVE_NODE not in _node(twin(x)[0])
    _check_native_against(module, twin, x, tolerance=1e-10 if dtype == torch.float64 else 1e-4)


@pytest.mark.parametrize("state_grad", [False, True])
@pytest.mark.parametrize(("cls", "options"), VARIANTS)
def test_native_with_initial_states_matches_reference(cls, options, state_grad):
    module, twin = _pair(cls, options, torch.float64)
    x = torch.randn(3, 5, 6, dtype=torch.float64, requires_grad=True)
    _check_native_against(module, twin, x, _initial_state(cls, 3, 8, torch.float64, state_grad))


PEERS = [(rnnkit.nn.RNN, torch.nn.RNN), (rnnkit.nn.GRU, torch.nn.GRU),
         (rnnkit.nn.LSTM, torch.nn.LSTM)]


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize(("cls", "peer_cls"), PEERS)
def test_native_matches_torch_nn(cls, peer_cls, batch_first):
    torch.manual_seed(1)
    module = cls(5, 7, batch_first=batch_first, dtype=torch.float64)
    peer = peer_cls(5, 7, batch_first=batch_first, dtype=torch.float64)
    peer.load_state_dict(module.state_dict())
    shape = (4, 6, 5) if batch_first else (6, 4, 5)
    x = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    _check_native_against(module, peer, x, _initial_state(cls, 4, 7, torch.float64, True))


def test_a_non_contiguous_initial_state_takes_the_python_path():
    torch.manual_seed(2)
    module = rnnkit.nn.LSTM(4, 6, batch_first=True)
    x = torch.randn(3, 5, 4)
    h = torch.zeros(1, 3, 12)[..., ::2]  # (L*D, B, H), strided
    output, _ = module(x, (h, torch.zeros(1, 3, 6)))
    assert NATIVE_NODE not in _node(output)
    assert output.grad_fn is not None


@pytest.mark.parametrize("call", ["plain", "hx", "lengths", "stack"])
@pytest.mark.parametrize("options", [{}, {"peephole": True, "layer_norm": True}])
def test_projected_lstm_runs_natively_and_matches_reference_and_the_python_path(options, call,
                                                                                monkeypatch):
    """``proj_size`` (h is ``W_hr m``, of width 3 here) through the native call: W_hr is one
    more weight of the recipe, h0 and the outputs are ``proj_size`` wide."""
    torch.manual_seed(9)
    kwargs = {"proj_size": 3, **options}
    if call == "stack":
        kwargs.update(num_layers=2, bidirectional=True)
    module, twin = _pair(rnnkit.nn.LSTM, kwargs, torch.float64)
    layers = 4 if call == "stack" else 1
    x = torch.randn(3, 5, 6, dtype=torch.float64, requires_grad=True)
    hx = None
    if call in ("hx", "stack"):
        hx = (torch.randn(layers, 3, 3, dtype=torch.float64, requires_grad=True),
              torch.randn(layers, 3, 8, dtype=torch.float64, requires_grad=True))

    def results(model):
        given = {"lengths": torch.tensor([5, 2, 4])} if call == "lengths" else {}
        output, (h_n, c_n) = model(x, hx, **given) if hx is not None else model(x, **given)
        loss = (output**2).sum() + (2 * h_n).sum() + (3 * c_n).sum()
        tracked = [*model.parameters(), x, *(hx or ())]
        return [output, h_n, c_n, *torch.autograd.grad(loss, tracked)], h_n

    ours = _native_matches_reference_and_python_path(results, module, twin, monkeypatch)
    assert ours[1].shape == (layers, 3, 3)


def _native_matches_reference_and_python_path(results, model, twin, monkeypatch,
                                              python_tolerance=0.0, node=NATIVE_NODE) -> list:
    """``results(model) -> (tensors, probe)``: ``model`` runs natively (the native node, or
    ``node``, is in ``probe``'s graph) and its tensors match ``twin``'s (the reference loop) and,
    exactly (or to ``python_tolerance``), those of its own Python path (the extension switched
    off). Returns the native run's tensors."""
    ours, probe = results(model)
    assert _in_graph(probe, node)
    theirs, probe = results(twin)
    assert not _in_graph(probe, NATIVE_NODE)
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    monkeypatch.setattr(native, "extension", lambda: None)
    python, probe = results(model)
    assert not _in_graph(probe, NATIVE_NODE)
    for a, b in zip(ours, python, strict=True):
        torch.testing.assert_close(a, b, rtol=python_tolerance, atol=python_tolerance)
    return ours


def _in_graph(tensor: torch.Tensor, name: str) -> bool:
    """Whether a node named ``name`` is among those ``tensor`` was computed through."""
    seen, stack = set(), [tensor.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        if name in node.name():
            return True
        stack.extend(function for function, _ in node.next_functions)
    return False


@pytest.mark.parametrize(("cls", "options"), VARIANTS)
def test_masked_calls_run_natively_and_match_reference_and_the_python_path(cls, options,
                                                                           monkeypatch):
    """``lengths`` (a mask of right padding) reaches the native call: the mask is one more
    input, and the results match the reference loop and, exactly, the Python path."""
    module, twin = _pair(cls, options, torch.float64)
    x = torch.randn(3, 5, 6, dtype=torch.float64, requires_grad=True)
    hx = _initial_state(cls, 3, 8, torch.float64, True)
    lengths = torch.tensor([5, 2, 4])

    def results(model):
        output, state = model(x, hx, lengths=lengths)
        states = state if isinstance(state, tuple) else (state,)
        loss = (output**2).sum() + sum(((k + 2) * s).sum() for k, s in enumerate(states))
        given = list(hx) if isinstance(hx, tuple) else [hx]
        grads = torch.autograd.grad(loss, [*model.parameters(), x, *given])
        return [output, *states, *grads], states[0]

    _native_matches_reference_and_python_path(results, module, twin, monkeypatch)


@pytest.mark.parametrize("family", ["SimpleRNN", "GRU", "LSTM"])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_keras_face_masks_run_natively_and_match_reference(family, return_sequences):
    """A Keras mask (left padding here), with masked outputs repeated (``return_sequences=
    False``) or zeros (``True``, Keras's ``zero_output_for_mask``), through the native call."""
    import rnnkit.layers

    torch.manual_seed(6)
    layers = [getattr(rnnkit.layers, family)(6, return_sequences=return_sequences,
                                             dtype=torch.float64, backend=backend)
              for backend in ("auto", "reference")]
    x = torch.randn(3, 5, 4, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[True] * 5, [False, False, True, True, True],
                         [False, True, True, True, True]])
    layers[0](x)
    layers[1](x)
    layers[1].load_state_dict(layers[0].state_dict())
    results = []
    for layer in layers:
        output = layer(x, mask=mask)
        results.append((output, *torch.autograd.grad((output**2).sum(),
                                                     [*layer.parameters(), x])))
    assert _in_graph(results[0][0], NATIVE_NODE)
    assert not _in_graph(results[1][0], NATIVE_NODE)
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize(("family", "options"), [
    ("SimpleRNN", {}), ("GRU", {}), ("GRU", {"reset_after": False}), ("LSTM", {}),
    ("LSTM", {"layer_norm": True, "peephole": True}),
])
@pytest.mark.parametrize("split", [False, True], ids=["whole", "halves"])
def test_keras_face_recurrent_dropout_runs_natively_and_matches_reference(family, options,
                                                                          masked, split,
                                                                          monkeypatch, request):
    """Training with ``recurrent_dropout`` (and ``dropout``): the recurrent mask is one more
    input of the native call (after a Keras mask, when there is one). With the same random masks
    the results match the reference loop and, exactly, the Python path. Split in halves of the
    batch (two threads), each half takes its rows of both masks; the results then match the
    Python path to 1e-10 (the weights' gradients are summed in another order)."""
    import rnnkit.layers

    if split:
        request.getfixturevalue("halves")

    torch.manual_seed(7)
    layers = [getattr(rnnkit.layers, family)(6, return_sequences=True, dropout=0.25,
                                             recurrent_dropout=0.4, dtype=torch.float64,
                                             backend=backend, **options)
              for backend in ("auto", "reference")]
    x = torch.randn(3, 5, 4, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[True] * 5, [False, False, True, True, True],
                         [False, True, True, True, True]]) if masked else None
    layers[0](x)
    layers[1](x)
    layers[1].load_state_dict(layers[0].state_dict())

    def results(layer):
        torch.manual_seed(8)  # the same dropout masks for every run
        output = layer(x, mask=mask, training=True)
        grads = torch.autograd.grad((output**2).sum(), [*layer.parameters(), x])
        return [output, *grads], output

    # the masks are drawn: without them the outputs differ
    assert not torch.allclose(layers[0](x, mask=mask), results(layers[0])[1])
    calls = native.extension().halved_calls()[0]
    _native_matches_reference_and_python_path(results, *layers, monkeypatch,
                                              1e-10 if split else 0.0,
                                              "NativeHalves" if split else NATIVE_NODE)
    monkeypatch.undo()  # the extension again, for its counter
    after = native.extension().halved_calls()[0]
    assert after >= calls + 2 if split else after == calls


@pytest.mark.parametrize("dropout", [0.0, 0.5])
@pytest.mark.parametrize(("cls", "options"), [VARIANTS[0], VARIANTS[2], VARIANTS[4], VARIANTS[7]])
def test_stacked_bidirectional_layers_run_natively_and_match_reference(cls, options, dropout):
    """Each layer and direction of a stack is its own native call."""
    torch.manual_seed(3)
    kwargs = {"num_layers": 2, "bidirectional": True, "dropout": dropout, **options}
    module, twin = _pair(cls, kwargs, torch.float64)
    hx = _initial_state(cls, 3, 8, torch.float64, True)
    hx = tuple(h.repeat(4, 1, 1) for h in hx) if isinstance(hx, tuple) else hx.repeat(4, 1, 1)
    x = torch.randn(3, 5, 6, dtype=torch.float64, requires_grad=True)
    torch.manual_seed(4)
    ours, h_n = _results(module, x, hx)
    torch.manual_seed(4)  # the same dropout masks
    theirs, _ = _results(twin, x, hx)
    assert h_n.shape == (4, 3, 8)
    assert "CatBackward" in _node(h_n)
    nodes = [function.name() for function, _ in h_n.grad_fn.next_functions]
    assert len(nodes) == 4 and all(NATIVE_NODE in name for name in nodes), nodes
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_large_sizes_take_the_native_call_and_reuse_freed_buffers(monkeypatch):
    """Arrays of any size come from the C++ pool: a buffer freed by one call serves the next."""
    module, twin = _pair(rnnkit.nn.RNN, {}, torch.float32, input_size=64, hidden_size=128)
    x = torch.randn(32, 100, 64, requires_grad=True)  # x_t alone is 819 kB, the work 2.4 MB
    results, h_n = _results(module, x, None)
    assert NATIVE_NODE in _node(h_n)
    expected, _ = _results(twin, x, None)
    for a, b in zip(results, expected, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    native_values = [r.detach().clone() for r in results]
    del results, h_n
    pooled = native.extension().pooled_bytes()
    assert pooled >= 32 * 100 * 128 * 4  # at least the outputs' buffer came back
    output, _ = module(x)
    assert native.extension().pooled_bytes() < pooled  # taken from the pool, not allocated
    detached = output.detach()
    detached.resize_(2, 3)  # a pooled tensor behaves as any other, resizable storage included
    detached.fill_(1.0)
    assert detached.sum().item() == 6.0
    monkeypatch.setattr(native, "extension", lambda: None)
    python_results, h_n = _results(module, x, None)
    assert "FusedSequenceBackward" in _node(h_n)
    for a, b in zip(native_values, python_results, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_the_pool_keeps_the_most_recently_freed_buffers_within_its_limit():
    extension = native.extension()
    module = rnnkit.nn.GRU(32, 64, batch_first=True)
    previous = extension.set_pool_limit(4 << 20)
    try:
        assert extension.pooled_bytes() <= 4 << 20  # lowering the limit evicts at once
        for steps in (100, 120, 140):  # outputs of 1.6, 2.0 and 2.3 MB (and smaller work)
            output, _ = module(torch.randn(64, steps, 32))
            output.sum().backward()
            del output
            assert extension.pooled_bytes() <= 4 << 20
        # the last size's buffers were the last freed: its next call takes them back
        pooled = extension.pooled_bytes()
        output, _ = module(torch.randn(64, 140, 32))
        assert extension.pooled_bytes() < pooled
    finally:
        extension.set_pool_limit(previous)
    assert extension.set_pool_limit(previous) == previous
    with pytest.raises(RuntimeError, match="bytes must be >= 0"):
        extension.set_pool_limit(-1)


def test_no_grad_gives_the_same_values_without_a_graph():
    module, twin = _pair(rnnkit.nn.GRU, {}, torch.float32)
    x = torch.randn(2, 4, 6)
    with torch.no_grad():
        output, h_n = module(x)
    assert output.grad_fn is None and not output.requires_grad
    expected, expected_h = twin(x)
    torch.testing.assert_close(output, expected.detach())
    torch.testing.assert_close(h_n, expected_h.detach())
    assert h_n.shape == (1, 2, 8)


def test_updated_weights_are_read_on_every_call():
    module, twin = _pair(rnnkit.nn.LSTM, {}, torch.float64)
    x = torch.randn(2, 3, 6, dtype=torch.float64)
    optimizer = torch.optim.SGD(module.parameters(), lr=0.5)
    for _ in range(3):
        optimizer.zero_grad()
        output, _ = module(x)
        output.sum().backward()
        optimizer.step()
    twin.load_state_dict(module.state_dict())
    torch.testing.assert_close(module(x)[0], twin(x)[0], rtol=1e-10, atol=1e-10)


def test_in_place_change_between_forward_and_backward_raises():
    module = rnnkit.nn.RNN(3, 4, batch_first=True)
    output, _ = module(torch.randn(2, 5, 3))
    assert NATIVE_NODE in _node(output)
    with torch.no_grad():
        module.weight_hh_l0.add_(1.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        output.sum().backward()


def test_create_graph_works_but_a_second_derivative_is_refused():
    module = rnnkit.nn.GRU(3, 4, batch_first=True, dtype=torch.float64)
    x = torch.randn(2, 5, 3, dtype=torch.float64, requires_grad=True)
    output, _ = module(x)
    assert NATIVE_NODE in _node(output)
    (d_x,) = torch.autograd.grad(output.square().sum(), x, create_graph=True)
    ours_first = d_x.detach().clone()
    twin = rnnkit.nn.GRU(3, 4, batch_first=True, dtype=torch.float64, backend="reference")
    twin.load_state_dict(module.state_dict())
    (expected,) = torch.autograd.grad(twin(x)[0].square().sum(), x)
    torch.testing.assert_close(ours_first, expected, rtol=1e-10, atol=1e-10)
    with pytest.raises(RuntimeError, match="differentiate twice .* once_differentiable"):
        d_x.sum().backward()


def test_layer_norm_gradients_sharing_one_allocation_act_as_tensors_of_their_own():
    """The six layer-norm gradients are parts of one allocation of the backward: each has its
    parameter's shape, accumulates over two backwards as the reference's do, and an in-place
    change of one leaves the others untouched."""
    module, twin = _pair(rnnkit.nn.LSTM, {"layer_norm": True}, torch.float64)
    x = torch.randn(3, 4, 6, dtype=torch.float64)
    for m in (module, twin):
        for _ in range(2):
            output, (h_n, c_n) = m(x)
            assert (NATIVE_NODE in _node(output)) == (m is module)
            (output.square().sum() + c_n.sum()).backward()
    names = [name for name, _ in module.named_parameters() if "ln" in name]
    assert len(names) == 6
    ours, theirs = dict(module.named_parameters()), dict(twin.named_parameters())
    for name in names:
        assert ours[name].grad.shape == ours[name].shape
        torch.testing.assert_close(ours[name].grad, theirs[name].grad, rtol=1e-10, atol=1e-10)
    kept = {name: ours[name].grad.clone() for name in names}
    ours[names[0]].grad.add_(1.0)
    for name in names[1:]:
        torch.testing.assert_close(ours[name].grad, kept[name], rtol=0, atol=0)


def test_frozen_weight_gets_no_gradient():
    module, twin = _pair(rnnkit.nn.LSTM, {"peephole": True}, torch.float64)
    for m in (module, twin):
        m.weight_ih_l0.requires_grad_(False)
    x = torch.randn(2, 4, 6, dtype=torch.float64)
    for m in (module, twin):
        output, (h_n, c_n) = m(x)
        (output.sum() + c_n.sum()).backward()
    assert module.weight_ih_l0.grad is None
    for ours, theirs in zip(module.parameters(), twin.parameters(), strict=True):
        if ours.requires_grad:
            torch.testing.assert_close(ours.grad, theirs.grad, rtol=1e-10, atol=1e-10)


def test_a_wrong_input_raises_the_modules_error():
    module = rnnkit.nn.RNN(3, 4, batch_first=True)
    with pytest.raises((ValueError, TypeError, RuntimeError), match="input"):
        module(torch.randn(2, 5, 7))  # 7 features, not 3
    with pytest.raises((ValueError, TypeError, RuntimeError), match="input"):
        module(torch.randn(2, 5, 3, dtype=torch.float64))  # the weights are float32


def test_the_native_call_refuses_inputs_its_recipe_does_not_fit():
    # The single-layer drop-ins call their kept kernel straight away; the C++ side checks x's and
    # the weights' dtype, sizes and contiguity, and runs nothing when they differ.
    module, twin = _pair(rnnkit.nn.GRU, {}, torch.float32, input_size=3, hidden_size=4)
    x = torch.randn(2, 5, 3)
    module(x)
    kernel = module._bound_cell(0, 0).kernel_cache[2]
    assert NATIVE_NODE in _node(kernel.native_run(x, None, True, (4,))[0])
    assert kernel.native_run(torch.randn(2, 5, 7), None, True, (4,)) is None
    assert kernel.native_run(x.double(), None, True, (4,)) is None
    weight = module.weight_hh_l0
    original = weight.data
    for changed in (torch.zeros(12, 3), torch.zeros(12, 4, dtype=torch.float64),
                    torch.zeros(4, 12).t()):  # wrong shape, wrong dtype, not contiguous
        weight.data = changed
        assert kernel.native_run(x, None, True, (4,)) is None
    weight.data = torch.randn(4, 12).t()  # the right shape, not contiguous: the Python path
    twin.weight_hh_l0.data = weight.data.clone()
    torch.testing.assert_close(module(x)[0], twin(x)[0])
    weight.data = original
    twin.weight_hh_l0.data = original.clone()
    _check_native_against(module, twin, x, tolerance=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("loss", ["sum", "mean", "row weights", "transposed weights"])
def test_broadcast_and_strided_output_gradients_match_reference(dtype, loss):
    # A sum's or mean's gradient arrives as one value broadcast (every stride 0) and is filled
    # in C++; a partly broadcast or transposed one is copied.
    module, twin = _pair(rnnkit.nn.LSTM, {}, dtype)
    x = torch.randn(3, 5, 6, dtype=dtype, requires_grad=True)
    row = torch.randn(8, dtype=dtype)
    grid = torch.randn(8, 5, 3, dtype=dtype).permute(2, 1, 0)  # (3, 5, 8), not contiguous
    losses = {"sum": lambda out: out.sum(), "mean": lambda out: out.mean(),
              "row weights": lambda out: (out * row).sum(),
              "transposed weights": lambda out: (out * grid).sum()}
    results = []
    for m in (module, twin):
        output, _ = m(x)
        tracked = [x, *m.parameters()]
        results.append(torch.autograd.grad(losses[loss](output), tracked))
    assert NATIVE_NODE in _node(module(x)[0])
    for ours, theirs in zip(*results, strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


def test_unbatched_input_matches_batched():
    module = rnnkit.nn.GRU(3, 4)
    x = torch.randn(5, 3)  # (T, I)
    output, h_n = module(x)
    batched, batched_h = module(x.unsqueeze(1))
    torch.testing.assert_close(output, batched.squeeze(1))
    torch.testing.assert_close(h_n, batched_h.squeeze(1))


def test_build_directory_names_the_sources_and_versions():
    directory = native.build_directory()
    assert torch.__version__.split("+")[0] in directory.name
    assert native.main(["where"]) == 0


@pytest.mark.parametrize("family", ["SimpleRNN", "GRU", "LSTM"])
def test_keras_face_layers_run_natively_and_match_reference(family):
    """A Keras-face layer without a mask reaches the native call through run_sequence, with
    Keras's weights (one bias, so b_hh absent) and its initial states ``(B, H)``."""
    import rnnkit.layers

    torch.manual_seed(5)
    layers = [getattr(rnnkit.layers, family)(6, return_sequences=True, return_state=True,
                                             dtype=torch.float64, backend=backend)
              for backend in ("auto", "reference")]
    x = torch.randn(3, 4, 5, dtype=torch.float64, requires_grad=True)
    layers[0](x)  # builds it
    layers[1](x)
    layers[1].load_state_dict(layers[0].state_dict())
    count = 2 if family == "LSTM" else 1
    states = [torch.randn(3, 6, dtype=torch.float64, requires_grad=True) for _ in range(count)]
    results = []
    for layer in layers:
        output, *finals = layer(x, initial_state=states)
        loss = (output**2).sum() + sum((k + 2) * f.sum() for k, f in enumerate(finals))
        results.append((output, *finals,
                        *torch.autograd.grad(loss, [*layer.parameters(), x, *states])))
    assert NATIVE_NODE in _node(results[0][1])
    assert NATIVE_NODE not in _node(results[1][1])
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_threads_running_native_calls_at_once_get_their_own_results():
    """The native call releases the GIL: calls from two threads overlap and must not share
    buffers."""
    from concurrent.futures import ThreadPoolExecutor

    torch.manual_seed(6)
    module = rnnkit.nn.GRU(8, 16, batch_first=True)
    inputs = [torch.randn(4, 30, 8) for _ in range(8)]
    expected = [module(x)[0].detach() for x in inputs]

    def run(x):
        output, _ = module(x)
        assert NATIVE_NODE in _node(output)
        return output.detach()

    with ThreadPoolExecutor(2) as pool:
        for _ in range(5):
            for ours, theirs in zip(pool.map(run, inputs), expected, strict=True):
                torch.testing.assert_close(ours, theirs, rtol=0, atol=0)


@pytest.mark.parametrize(("cls", "options"), VARIANTS)
def test_without_the_build_the_python_path_gives_the_same_results(cls, options, monkeypatch):
    """Where the native call is not built (or past its limit), calls without masks take the
    Python autograd.Function: it must match the native call exactly as it did before."""
    module, twin = _pair(cls, options, torch.float64)
    x = torch.randn(3, 5, 6, dtype=torch.float64, requires_grad=True)
    hx = _initial_state(cls, 3, 8, torch.float64, True)
    native_results, h_n = _results(module, x, hx)
    assert NATIVE_NODE in _node(h_n)
    monkeypatch.setattr(native, "extension", lambda: None)
    assert not native.available()
    python_results, python_h_n = _results(module, x, hx)
    assert "FusedSequenceBackward" in _node(python_h_n)
    for a, b in zip(native_results, python_results, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.fixture
def on_time():
    """The second core is never taken for held up (see ``run_two`` in _native.cpp), so that
    every two-task call runs on two threads even while other tests keep that core busy."""
    previous = native.extension().set_late_after(1 << 62)
    yield
    native.extension().set_late_after(previous)


@pytest.fixture
def two_cores(monkeypatch, on_time):
    """Two torch threads, and every call of two steps or more pipelined on them, one step per
    chunk (see rnnkit.kernels._sync)."""
    from rnnkit.kernels import _common

    monkeypatch.setattr(_common, "PIPELINE_MIN_MACS", dict.fromkeys(_common.PIPELINE_MIN_MACS, 0))
    monkeypatch.setattr(_common, "PIPELINE_MIN_ROWS", 1)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


PIPELINED = [
    (rnnkit.nn.LSTM, {}),
    (rnnkit.nn.LSTM, {"bias": False}),
    (rnnkit.nn.LSTM, {"peephole": True}),
    (rnnkit.nn.LSTM, {"layer_norm": True}),
    (rnnkit.nn.LSTM, {"proj_size": 3}),
    (rnnkit.nn.LSTM, {"peephole": True, "layer_norm": True, "proj_size": 3}),
    (rnnkit.nn.RNN, {}),
    (rnnkit.nn.RNN, {"nonlinearity": "relu", "bias": False}),
    (rnnkit.nn.GRU, {}),
    (rnnkit.nn.GRU, {"bias": False}),
]


TWO_CORE_CALLS = ["plain", "hx", "lengths", "stack", "dropout"]
TWO_CORE_IDS = ["lstm", "lstm-no_bias", "peephole", "layer_norm", "proj", "lstm-all", "rnn",
                "rnn-relu-no_bias", "gru", "gru-no_bias"]


@pytest.mark.parametrize("call", TWO_CORE_CALLS)
@pytest.mark.parametrize(("cls", "options"), PIPELINED, ids=TWO_CORE_IDS)
@pytest.mark.parametrize("batch", [1, 3])
def test_the_two_core_pipeline_matches_reference_and_the_python_path(batch, cls, options, call,
                                                                     two_cores, monkeypatch):
    """With two threads the GEMMs over all steps run on the second core, chunk by chunk, next to
    the recurrence: the native call runs both at once (counted by the extension), the results
    match the reference loop and the Python path, which runs the same chunks one after the other.

    To the last place or so, not exactly: at B=1 the first run after a fresh build (Python-path
    loops compiled in the process, the native entries loaded from the build's cache) differed
    from the Python path by up to 1e-16 in 10 of these 80 cases; later runs matched exactly."""
    from rnnkit.kernels import _common

    gates = {rnnkit.nn.LSTM: 4, rnnkit.nn.GRU: 3, rnnkit.nn.RNN: 1}[cls]
    rec = options.get("proj_size", 0) or 8
    family = {rnnkit.nn.LSTM: "lstm", rnnkit.nn.GRU: "gru", rnnkit.nn.RNN: "rnn"}[cls]
    assert _common.pipeline_chunk(family, batch, 7, 6, gates * 8, rec) == 1
    assert _common.halves_rows(batch, 7, 6, gates * 8, rec, np.float64) == 0
    _check_two_core_call(batch, cls, options, call, monkeypatch, "companion_calls", NATIVE_NODE,
                         1e-14)


@pytest.fixture
def halves(monkeypatch, on_time):
    """Two torch threads, and every native call of two rows or more split in two halves of the
    batch (see rnnkit.kernels._entries.recipe)."""
    from rnnkit.kernels import _common

    monkeypatch.setattr(_common, "HALVES_MIN_MACS", 0)
    monkeypatch.setattr(_common, "HALVES_MIN_BATCH_PACKED", 2)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("call", TWO_CORE_CALLS)
@pytest.mark.parametrize(("cls", "options"), PIPELINED, ids=TWO_CORE_IDS)
@pytest.mark.parametrize("batch", [2, 3])
def test_calls_split_in_halves_of_the_batch_match_reference_and_the_python_path(
        batch, cls, options, call, halves, monkeypatch):
    """With two threads a native call may split its batch in two, each half a call of its own
    on one core (counted by the extension): the outputs, and the gradients of x and the initial
    states, are the halves' rows; the weights' gradients are their sums. The results match the
    reference loop, and the Python path (one call for the whole batch) to 1e-10, as the
    reference: the sums and, in stacks, what follows from them are in another order. With
    ``lengths`` the rows' lengths differ between the halves."""
    from rnnkit.kernels import _common

    gates = {rnnkit.nn.LSTM: 4, rnnkit.nn.GRU: 3, rnnkit.nn.RNN: 1}[cls]
    rec = options.get("proj_size", 0) or 8
    assert _common.halves_rows(batch, 7, 6, gates * 8, rec, np.float64) == (batch + 1) // 2
    _check_two_core_call(batch, cls, options, call, monkeypatch, "halved_calls", "NativeHalves",
                         1e-10)


def _check_two_core_call(batch, cls, options, call, monkeypatch, counter, node, tolerance):
    """One of the two-core tests: ``call`` of a ``cls(**options)`` module (one layer, or two
    with ``stack`` or ``dropout``) matches the reference loop and the Python path (see
    :func:`_native_matches_reference_and_python_path`), and the extension's ``counter`` counts
    a forward and a backward per layer and direction, some of them run on two threads."""
    torch.manual_seed(11)
    kwargs = dict(options)
    if call == "stack":
        kwargs.update(num_layers=2, bidirectional=True)
    if call == "dropout":
        kwargs.update(num_layers=2, dropout=0.5)
    module, twin = _pair(cls, kwargs, torch.float64)
    lstm = cls is rnnkit.nn.LSTM
    rec = kwargs.get("proj_size", 0) or 8
    layers = 4 if call == "stack" else 2 if call == "dropout" else 1
    x = torch.randn(batch, 7, 6, dtype=torch.float64, requires_grad=True)
    hx = None
    if call in ("hx", "stack"):
        h0 = torch.randn(layers, batch, rec, dtype=torch.float64, requires_grad=True)
        hx = (h0, torch.randn(layers, batch, 8, dtype=torch.float64, requires_grad=True)) \
            if lstm else h0
    lengths = torch.tensor([7, 3, 5][:batch]) if call == "lengths" else None

    def results(model):
        torch.manual_seed(5)  # the same dropout masks for every run
        given = {} if lengths is None else {"lengths": lengths}
        output, state = model(x, hx, **given) if hx is not None else model(x, **given)
        states = state if lstm else (state,)
        loss = (output**2).sum() + sum(((k + 2) * s).sum() for k, s in enumerate(states))
        initial = (hx if lstm else (hx,)) if hx is not None else ()
        tracked = [*model.parameters(), x, *initial]
        return [output, *states, *torch.autograd.grad(loss, tracked)], states[0]

    calls, concurrent = getattr(native.extension(), counter)()
    if call == "dropout":  # inter-layer dropout: the reference twin draws the same masks
        module.train(), twin.train()
    _native_matches_reference_and_python_path(results, module, twin, monkeypatch, tolerance, node)
    monkeypatch.undo()  # the extension again, for its counters
    after = getattr(native.extension(), counter)()
    assert after[0] >= calls + 2 * layers  # a forward and a backward per layer and direction
    assert after[1] > concurrent


@pytest.mark.parametrize("split", ["halves", "two_cores"])
def test_calls_run_on_one_thread_while_the_second_core_is_held_up(split, request):
    """A call whose second task starts or ends late (every call, once ``set_late_after(0)``) makes
    the next calls run both tasks on the calling thread, with the same results as on two;
    ``set_late_after`` forgets the late call."""
    request.getfixturevalue(split)
    extension = native.extension()
    counter = extension.halved_calls if split == "halves" else extension.companion_calls
    torch.manual_seed(2)
    module = rnnkit.nn.LSTM(6, 8, batch_first=True, dtype=torch.float64)
    x = torch.randn(3, 7, 6, dtype=torch.float64)

    def results():
        output, (h, c) = module(x)
        grads = torch.autograd.grad((output**2).sum() + (3 * c).sum(), list(module.parameters()))
        return [output, h, c, *grads]

    def counts():
        return (*counter(), *extension.held_up_calls())  # calls, on two threads, late, alone

    start = counts()
    expected = results()
    on_two = counts()
    assert on_two[0] - start[0] == 2 and on_two[1] - start[1] >= 1  # forward and backward
    assert on_two[2:] == start[2:]
    previous = extension.set_late_after(0)
    try:
        for _ in range(3):
            for ours, theirs in zip(results(), expected):
                torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-12)
        held = counts()
        late, alone = held[2] - on_two[2], held[3] - on_two[3]
        assert held[0] - on_two[0] == 6
        assert late == held[1] - on_two[1] >= 1  # each call on two threads was late
        assert alone >= 1
    finally:
        extension.set_late_after(previous)
    results()
    after = counts()
    assert after[1] > held[1] and after[2:] == held[2:]


def test_halves_with_unused_outputs_and_create_graph(halves):
    """Split in halves, an unused output gets zeros as its gradient, and a ``create_graph=True``
    backward gives first-order gradients that refuse a second differentiation."""
    module, twin = _pair(rnnkit.nn.LSTM, {"peephole": True}, torch.float64)
    x = torch.randn(5, 4, 6, dtype=torch.float64, requires_grad=True)
    grads = []
    for model in (module, twin):
        _, (h_n, _) = model(x)  # the outputs and c_n unused
        grads.append(torch.autograd.grad(h_n.square().sum(), [x, *model.parameters()],
                                         create_graph=model is module))
        assert _in_graph(h_n, "NativeHalves") == (model is module)
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a.detach(), b, rtol=1e-10, atol=1e-10)
    with pytest.raises(RuntimeError, match="differentiate twice .* once_differentiable"):
        grads[0][0].sum().backward()


def test_which_calls_are_split_in_halves(monkeypatch):
    """Two threads, two rows or more, a step GEMM on one BLAS thread and GEMMs of at least
    HALVES_MIN_MACS multiply-adds; where the halves' step GEMMs would be packed, B=2 or at least
    HALVES_MIN_BATCH_PACKED rows. The first half takes the odd row."""
    from rnnkit.kernels import _common, _mkl

    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        f32, f64 = np.float32, np.float64
        assert _common.halves_rows(2, 100, 64, 256, 64, f32) == 1
        assert _common.halves_rows(33, 100, 64, 256, 64, f32) == 17
        assert _common.halves_rows(32, 100, 64, 256, 64, f64) == 16
        assert _common.halves_rows(5, 100, 64, 256, 64, f64) == 3  # never packed
        assert _common.halves_rows(8, 10, 32, 128, 32, f64) == 0  # below HALVES_MIN_MACS
        assert _common.halves_rows(64, 100, 512, 2048, 512, f64) == 0  # a two-thread step GEMM
        for packs in (True, False):  # halves of 2 rows: split only when they run unpacked
            monkeypatch.setattr(_mkl, "PREFERENCE", packs)
            assert _common.halves_rows(4, 100, 64, 256, 64, f32) == (0 if packs else 2)
            assert _common.halves_rows(8, 100, 64, 256, 64, f32) == 4
        torch.set_num_threads(1)
        assert _common.halves_rows(32, 100, 64, 256, 64, f64) == 0
    finally:
        torch.set_num_threads(threads)
