"""rnnkit.nn.{LSTM,GRU,RNN} against torch.nn loaded with the same state_dict.

Every test compares outputs, h_n (and c_n), and the gradients of the input, of hx and of every
parameter, within 1e-5 in float32 and 1e-10 in float64, for backend="reference" and "auto".
"""

from __future__ import annotations

import pytest
import torch
from nn_peer import build_pair, compare_pair, run_module
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

# torch.nn warns that projected LSTMs skip oneDNN; that is its business, not ours.
pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections")

INPUT_SIZE, HIDDEN_SIZE, STEPS, BATCH = 4, 5, 6, 3

CASES = [
    ("lstm", {}),
    ("lstm", {"num_layers": 2, "bidirectional": True}),
    ("lstm", {"num_layers": 2, "bidirectional": True, "proj_size": 3}),
    ("lstm", {"bias": False, "proj_size": 2}),
    ("gru", {}),
    ("gru", {"num_layers": 2, "bidirectional": True}),
    ("gru", {"bias": False}),
    ("rnn", {}),
    ("rnn", {"nonlinearity": "relu", "num_layers": 2, "bidirectional": True}),
    ("rnn", {"nonlinearity": "relu", "bias": False}),
]
CASE_IDS = [family + "-" + "-".join(f"{k}={v}" for k, v in opts.items()) for family, opts in CASES]


def random_state(family: str, options: dict, batch: int | None, dtype: torch.dtype):
    """A random ``hx`` in torch's layout; ``batch=None`` for unbatched input."""
    stacked = options.get("num_layers", 1) * (2 if options.get("bidirectional") else 1)
    middle = () if batch is None else (batch,)
    h_0 = torch.randn(stacked, *middle, options.get("proj_size") or HIDDEN_SIZE, dtype=dtype)
    if family != "lstm":
        return h_0
    return h_0, torch.randn(stacked, *middle, HIDDEN_SIZE, dtype=dtype)


def as_list(state) -> list[torch.Tensor]:
    return list(state) if isinstance(state, tuple) else [state]


def make_pair(family, options, dtype, backend, **extra):
    return build_pair(
        family, dtype, backend, input_size=INPUT_SIZE, hidden_size=HIDDEN_SIZE, **options, **extra
    )


@pytest.mark.peer
@pytest.mark.parametrize("with_hx", [False, True], ids=["no-hx", "hx"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["time-major", "batch-first"])
@pytest.mark.parametrize(("family", "options"), CASES, ids=CASE_IDS)
def test_padded_batch(family, options, batch_first, with_hx, dtype, backend):
    ours, theirs = make_pair(family, options, dtype, backend, batch_first=batch_first)
    shape = (BATCH, STEPS, INPUT_SIZE) if batch_first else (STEPS, BATCH, INPUT_SIZE)
    inputs = torch.randn(shape, dtype=dtype)
    hx = random_state(family, options, BATCH, dtype) if with_hx else None
    results = compare_pair(ours, theirs, inputs, hx, dtype)
    directions = 2 if options.get("bidirectional") else 1
    width = directions * (options.get("proj_size") or HIDDEN_SIZE)
    assert results["output"].shape == shape[:2] + (width,)


@pytest.mark.peer
@pytest.mark.parametrize("with_hx", [False, True], ids=["no-hx", "hx"])
@pytest.mark.parametrize(("family", "options"), CASES, ids=CASE_IDS)
def test_unbatched_input(family, options, with_hx, dtype, backend):
    ours, theirs = make_pair(family, options, dtype, backend)
    inputs = torch.randn(STEPS, INPUT_SIZE, dtype=dtype)
    hx = random_state(family, options, None, dtype) if with_hx else None
    results = compare_pair(ours, theirs, inputs, hx, dtype)
    assert results["state[0]"].dim() == 2


@pytest.mark.peer
@pytest.mark.parametrize("with_hx", [False, True], ids=["no-hx", "hx"])
@pytest.mark.parametrize("lengths", [[4, 6, 1, 3], [6, 4, 3, 1]], ids=["unsorted", "sorted"])
@pytest.mark.parametrize(("family", "options"), CASES, ids=CASE_IDS)
def test_packed_sequence(family, options, lengths, with_hx, dtype, backend):
    ours, theirs = make_pair(family, options, dtype, backend, batch_first=True)
    padded = torch.randn(len(lengths), STEPS, INPUT_SIZE, dtype=dtype)
    enforce_sorted = lengths == sorted(lengths, reverse=True)
    packed = pack_padded_sequence(
        padded, torch.tensor(lengths), batch_first=True, enforce_sorted=enforce_sorted
    )
    hx = random_state(family, options, len(lengths), dtype) if with_hx else None
    results = compare_pair(ours, theirs, packed, hx, dtype)
    assert results["output"].shape[0] == sum(lengths)


@pytest.mark.peer
@pytest.mark.parametrize(("family", "options"), CASES, ids=CASE_IDS)
def test_lengths_extension_equals_packed_input(family, options, dtype, backend):
    ours, theirs = make_pair(family, options, dtype, backend, batch_first=True)
    lengths = torch.tensor([2, 6, 5])
    padded = torch.randn(len(lengths), STEPS, INPUT_SIZE, dtype=dtype)
    hx = random_state(family, options, len(lengths), dtype)
    packed = pack_padded_sequence(padded, lengths, batch_first=True, enforce_sorted=False)
    expected_output, expected_state = theirs(packed, hx)
    expected_output, _ = pad_packed_sequence(expected_output, batch_first=True)
    output, state = ours(padded, hx, lengths=lengths)
    tolerance = 1e-5 if dtype == torch.float32 else 1e-10
    torch.testing.assert_close(output, expected_output, atol=tolerance, rtol=0)
    for actual, expected in zip(as_list(state), as_list(expected_state), strict=True):
        torch.testing.assert_close(actual, expected, atol=tolerance, rtol=0)


@pytest.mark.peer
@pytest.mark.parametrize("batch_first", [False, True], ids=["time-major", "batch-first"])
@pytest.mark.parametrize("family", ["lstm", "gru", "rnn"])
def test_dropout_between_layers_reproduces_torch_mask(family, batch_first, backend):
    options = {"num_layers": 3, "bidirectional": True, "dropout": 0.5, "batch_first": batch_first}
    ours, theirs = make_pair(family, options, torch.float64, backend)
    inputs = torch.randn(BATCH, STEPS, INPUT_SIZE, dtype=torch.float64)
    torch.manual_seed(7)
    ours_results = run_module(ours, inputs)
    torch.manual_seed(7)
    theirs_results = run_module(theirs, inputs)
    for name, expected in theirs_results.items():
        torch.testing.assert_close(ours_results[name], expected, atol=1e-10, rtol=0, msg=name)
    ours.eval()
    theirs.eval()
    eval_results = compare_pair(ours, theirs, inputs, None, torch.float64)
    assert not torch.allclose(eval_results["output"], ours_results["output"])


@pytest.mark.parametrize("family", ["lstm", "gru", "rnn"])
def test_dropout_is_not_applied_after_the_last_layer(family):
    with pytest.warns(UserWarning, match="dropout"):
        ours, _ = make_pair(family, {"dropout": 0.9}, torch.float64, "reference")
    inputs = torch.randn(STEPS, BATCH, INPUT_SIZE, dtype=torch.float64)
    training_output = ours(inputs)[0]
    ours.eval()
    torch.testing.assert_close(training_output, ours(inputs)[0], atol=0, rtol=0)
