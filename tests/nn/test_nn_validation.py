"""Bad arguments to the drop-ins raise ValueError/TypeError naming the argument and the shapes."""

from __future__ import annotations

import re

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

from rnnkit.nn import GRU, LSTM, RNN

MODULES = {"lstm": LSTM, "gru": GRU, "rnn": RNN}


def hidden(family: str, *shape: int, dtype=torch.float32):
    h_0 = torch.zeros(*shape, dtype=dtype)
    return (h_0, torch.zeros(*shape, dtype=dtype)) if family == "lstm" else h_0


@pytest.fixture(params=list(MODULES))
def family(request) -> str:
    return request.param


@pytest.mark.parametrize("shape", [(5,), (2, 5, 3, 1)])
def test_wrong_rank(family, shape):
    module = MODULES[family](3, 4)
    with pytest.raises(
        ValueError, match=re.escape("input: expected a 3-D tensor (seq_len, batch, input_size)")
    ) as error:
        module(torch.zeros(shape))
    assert f"got shape {shape}" in str(error.value)


def test_rank_message_follows_batch_first(family):
    with pytest.raises(ValueError, match=re.escape("(batch, seq_len, input_size)")):
        MODULES[family](3, 4, batch_first=True)(torch.zeros(5))


@pytest.mark.parametrize("shape", [(5, 2, 7), (5, 7)])
def test_wrong_feature_size(family, shape):
    with pytest.raises(
        ValueError, match=re.escape("input: expected input_size (the last dimension) = 3, got 7")
    ):
        MODULES[family](3, 4)(torch.zeros(shape))


def test_integer_input(family):
    with pytest.raises(
        TypeError, match="input: expected a floating-point tensor, got dtype torch.int64"
    ):
        MODULES[family](3, 4)(torch.zeros(5, 2, 3, dtype=torch.long))


def test_input_dtype_must_match_parameters(family):
    with pytest.raises(TypeError, match="input: expected dtype torch.float32.*got torch.float64"):
        MODULES[family](3, 4)(torch.zeros(5, 2, 3, dtype=torch.float64))


def test_integer_packed_sequence(family):
    packed = pack_padded_sequence(
        torch.zeros(2, 5, 3, dtype=torch.long), torch.tensor([5, 2]), batch_first=True
    )
    with pytest.raises(TypeError, match="input: expected a floating-point PackedSequence"):
        MODULES[family](3, 4)(packed)


def test_hx_with_wrong_number_of_layers(family):
    module = MODULES[family](3, 4, num_layers=2, bidirectional=True)
    name = "hx\\[0\\] \\(h_0\\)" if family == "lstm" else "hx"
    message = (
        f"{name}: expected shape \\(num_layers \\* num_directions, batch, hidden_size\\) "
        "= \\(4, 2, 4\\), got \\(2, 2, 4\\)"
    )
    with pytest.raises(ValueError, match=message):
        module(torch.zeros(5, 2, 3), hidden(family, 2, 2, 4))


def test_hx_with_wrong_batch(family):
    module = MODULES[family](3, 4, batch_first=True)
    with pytest.raises(ValueError, match=re.escape("= (1, 6, 4), got (1, 5, 4)")):
        module(torch.zeros(6, 2, 3), hidden(family, 1, 5, 4))


def test_batched_hx_with_unbatched_input(family):
    with pytest.raises(
        ValueError,
        match=re.escape("(num_layers * num_directions, hidden_size) = (1, 4), got (1, 1, 4)"),
    ):
        MODULES[family](3, 4)(torch.zeros(5, 3), hidden(family, 1, 1, 4))


def test_hx_dtype_must_match(family):
    with pytest.raises(TypeError, match="expected dtype torch.float32.*got torch.float64"):
        MODULES[family](3, 4)(torch.zeros(5, 2, 3), hidden(family, 1, 2, 4, dtype=torch.float64))


def test_lstm_cell_state_checked_against_hidden_size_not_proj_size():
    lstm = LSTM(3, 4, proj_size=2)
    h_0 = torch.zeros(1, 2, 2)
    with pytest.raises(
        ValueError,
        match=re.escape(
            "hx[1] (c_0): expected shape (num_layers * "
            "num_directions, batch, hidden_size) = "
            "(1, 2, 4), got (1, 2, 2)"
        ),
    ):
        lstm(torch.zeros(5, 2, 3), (h_0, torch.zeros(1, 2, 2)))
    with pytest.raises(
        ValueError,
        match=re.escape(
            "hx[0] (h_0): expected shape (num_layers * num_directions, batch, proj_size)"
        ),
    ):
        lstm(torch.zeros(5, 2, 3), (torch.zeros(1, 2, 4), torch.zeros(1, 2, 4)))


def test_lstm_hx_must_be_a_pair():
    with pytest.raises(TypeError, match=r"hx: expected a tuple \(h_0, c_0\) for LSTM, got Tensor"):
        LSTM(3, 4)(torch.zeros(5, 2, 3), torch.zeros(1, 2, 4))


@pytest.mark.parametrize("module_class", [GRU, RNN])
def test_gru_and_rnn_hx_must_be_a_tensor(module_class):
    with pytest.raises(
        TypeError, match=f"hx: expected a torch.Tensor for {module_class.__name__}, got tuple"
    ):
        module_class(3, 4)(torch.zeros(5, 2, 3), (torch.zeros(1, 2, 4),))


@pytest.mark.parametrize(
    ("lengths", "error", "message"),
    [
        (torch.tensor([3]), ValueError, re.escape("lengths: expected shape (2,), got (1,)")),
        (torch.tensor([3, 6]), ValueError, re.escape("lengths: expected every length in [1, 5]")),
        (torch.tensor([3.0, 2.0]), TypeError, "lengths: expected an integer tensor"),
    ],
)
def test_bad_lengths(family, lengths, error, message):
    with pytest.raises(error, match=message):
        MODULES[family](3, 4, batch_first=True)(torch.zeros(2, 5, 3), lengths=lengths)


def test_lengths_with_packed_or_unbatched_input(family):
    module = MODULES[family](3, 4)
    packed = pack_padded_sequence(torch.zeros(5, 2, 3), torch.tensor([5, 2]))
    with pytest.raises(ValueError, match="lengths: expected None with a PackedSequence"):
        module(packed, lengths=torch.tensor([5, 2]))
    with pytest.raises(ValueError, match="lengths: expected None with unbatched 2-D input"):
        module(torch.zeros(5, 3), lengths=torch.tensor([5]))


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"hidden_size": 0}, ValueError, "hidden_size: expected a positive integer, got 0"),
        ({"hidden_size": 2.5}, TypeError, "hidden_size: expected a positive integer, got float"),
        ({"input_size": -1}, ValueError, "input_size: expected a positive integer, got -1"),
        ({"num_layers": 0}, ValueError, "num_layers: expected a positive integer, got 0"),
        (
            {"dropout": 1.5},
            ValueError,
            re.escape("dropout: expected a probability in [0, 1], got 1.5"),
        ),
        ({"backend": "gpu"}, ValueError, "backend: expected one of .*got 'gpu'"),
    ],
)
def test_bad_constructor_arguments(family, kwargs, error, message):
    arguments = {"input_size": 3, "hidden_size": 4, **kwargs}
    with pytest.raises(error, match=message):
        MODULES[family](**arguments)


@pytest.mark.parametrize("proj_size", [-1, 4, 5])
def test_bad_proj_size(proj_size):
    with pytest.raises(
        ValueError,
        match=re.escape(
            f"proj_size: expected 0 or an integer in [1, hidden_size=4), got {proj_size}"
        ),
    ):
        LSTM(3, 4, proj_size=proj_size)


def test_bad_nonlinearity():
    with pytest.raises(
        ValueError, match="nonlinearity: expected one of \\('tanh', 'relu'\\), got 'sigmoid'"
    ):
        RNN(3, 4, nonlinearity="sigmoid")


def test_dropout_with_one_layer_warns(family):
    with pytest.warns(UserWarning, match="dropout: 0.5 has no effect with num_layers=1"):
        MODULES[family](3, 4, dropout=0.5)
