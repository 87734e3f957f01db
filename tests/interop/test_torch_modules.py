"""from_torch / to_torch: torch.nn <-> rnnkit.nn <-> Keras face, weights bit for bit."""

from __future__ import annotations

import itertools

import pytest
import torch

import rnnkit.nn
from interop.conftest import assert_close
from rnnkit.interop import from_torch, to_torch
from rnnkit.layers import GRU, LSTM, Bidirectional, Dense, Dropout, SimpleRNN
from rnnkit.models import Sequential

# torch.nn itself warns that oneDNN lacks projected LSTMs; nothing to act on here.
pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections")

TORCH = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}
CONFIGS = [
    (family, bidirectional, num_layers, proj_size, batch_first)
    for family, bidirectional, num_layers, proj_size, batch_first in itertools.product(
        TORCH, (False, True), (1, 2), (0, 2), (False, True))
    if proj_size == 0 or family == "lstm"
]


def _torch_module(family, bidirectional, num_layers, proj_size, batch_first):
    options = {"num_layers": num_layers, "bidirectional": bidirectional,
               "batch_first": batch_first, "dropout": 0.25 if num_layers > 1 else 0.0}
    if proj_size:
        options["proj_size"] = proj_size
    if family == "rnn":
        options["nonlinearity"] = "relu" if bidirectional else "tanh"
    return TORCH[family](3, 4, **options).eval()


def _same_state_dict(ours: dict, theirs: dict) -> None:
    assert list(ours) == list(theirs)
    for key in theirs:
        assert ours[key].dtype == theirs[key].dtype
        assert torch.equal(ours[key], theirs[key]), key


def _ids(config):
    family, bidirectional, layers, proj, batch_first = config
    return f"{family}-{'bi' if bidirectional else 'uni'}-L{layers}-P{proj}-bf{int(batch_first)}"


@pytest.mark.parametrize("config", CONFIGS, ids=_ids)
def test_torch_to_rnnkit_nn_and_back_is_exact(config):
    module = _torch_module(*config)
    drop_in = from_torch(module)
    assert type(drop_in) is getattr(rnnkit.nn, type(module).__name__)
    _same_state_dict(drop_in.state_dict(), module.state_dict())
    _same_state_dict(to_torch(drop_in).state_dict(), module.state_dict())
    x = torch.randn(2, 5, 3) if module.batch_first else torch.randn(5, 2, 3)
    with torch.no_grad():
        assert_close(drop_in(x)[0], module(x)[0])


@pytest.mark.parametrize("config", CONFIGS, ids=_ids)
def test_torch_to_keras_face_and_back_is_exact(config):
    module = _torch_module(*config)
    family, bidirectional, num_layers, _, batch_first = config
    keras_face = from_torch(module, face="keras")
    if num_layers > 1:
        assert isinstance(keras_face, Sequential)
        assert [type(layer) for layer in keras_face.layers][1] is Dropout
    elif bidirectional:
        assert isinstance(keras_face, Bidirectional)
    back = to_torch(keras_face, batch_first=batch_first)
    assert type(back) is type(module) and back.batch_first == batch_first
    assert back.dropout == module.dropout and back.num_layers == num_layers
    _same_state_dict(back.state_dict(), module.state_dict())

    x = torch.randn(2, 5, 3)  # the Keras face is batch-first
    with torch.no_grad():
        theirs = module(x if batch_first else x.transpose(0, 1))[0]
        theirs = theirs if batch_first else theirs.transpose(0, 1)
        drop_in = from_torch(module)
        exact = drop_in(x if batch_first else x.transpose(0, 1))[0]
        exact = exact if batch_first else exact.transpose(0, 1)
        ours = keras_face(x)
    assert_close(ours, theirs)
    assert torch.equal(ours, exact)  # the two rnnkit faces run the same numbers


@pytest.mark.parametrize("family", ["lstm", "rnn"])
def test_folded_biases_match_torch_within_rounding(family):
    module = TORCH[family](3, 4, num_layers=2, batch_first=True).eval()
    folded = from_torch(module, face="keras", fold_biases=True)
    assert all(getattr(layer.cell, "bias_hh", None) is None for layer in folded.layers)
    x = torch.randn(2, 6, 3)
    with torch.no_grad():
        assert_close(folded(x), module(x)[0])
    back = to_torch(folded)
    for layer in range(2):
        summed = getattr(module, f"bias_ih_l{layer}") + getattr(module, f"bias_hh_l{layer}")
        assert_close(getattr(back, f"bias_ih_l{layer}") + getattr(back, f"bias_hh_l{layer}"),
                     summed, atol=1e-6)


def test_rnnkit_nn_extensions_reach_the_keras_face():
    module = rnnkit.nn.LSTM(3, 4, num_layers=2, peephole=True, layer_norm=True,
                            batch_first=True)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    keras_face = from_torch(module, face="keras")
    x = torch.randn(2, 5, 3)
    with torch.no_grad():
        assert torch.equal(keras_face(x), module(x)[0])


def test_keras_built_stacks_convert_to_torch():
    model = Sequential([Bidirectional(GRU(4, return_sequences=True), input_shape=(None, 3)),
                        Dropout(0.1), Bidirectional(GRU(4))])
    module = to_torch(model)
    assert isinstance(module, torch.nn.GRU) and module.num_layers == 2
    assert module.bidirectional and module.dropout == 0.1 and module.batch_first
    x = torch.randn(2, 5, 3)
    with torch.no_grad():
        output, h_n = module(x)
        last_forward, first_backward = output[:, -1, :4], output[:, 0, 4:]
        assert_close(model(x), torch.cat([last_forward, first_backward], dim=-1))


@pytest.mark.parametrize("layer_or_module, message", [
    (LSTM(4, peephole=True, input_shape=(None, 3)), "peephole"),
    (GRU(4, reset_after=False, input_shape=(None, 3)), "reset_after"),
    (SimpleRNN(4, activation="sigmoid", input_shape=(None, 3)), "activation"),
    (LSTM(4, recurrent_dropout=0.2, input_shape=(None, 3)), "recurrent_dropout"),
    (LSTM(4, go_backwards=True, input_shape=(None, 3)), "go_backwards"),
    (Bidirectional(LSTM(4), merge_mode="sum", input_shape=(None, 3)), "merge"),
    (Sequential([LSTM(4, input_shape=(None, 3), return_sequences=True), GRU(4)]), "GRU"),
    (Sequential([LSTM(4, input_shape=(None, 3), return_sequences=True), LSTM(3)]), "units"),
    (Sequential([LSTM(4, input_shape=(None, 3)), Dense(2)]), "Dense"),
    (rnnkit.nn.LSTM(3, 4, layer_norm=True), "layer_norm"),
])
def test_what_torch_lacks_is_refused_by_name(layer_or_module, message):
    with pytest.raises(ValueError, match=message):
        to_torch(layer_or_module)


def test_arguments_are_checked():
    with pytest.raises(TypeError, match="torch.nn.LSTM, GRU or RNN"):
        from_torch(torch.nn.Linear(2, 3))
    with pytest.raises(ValueError, match="face"):
        from_torch(torch.nn.GRU(2, 3), face="tf")
    with pytest.raises(TypeError, match="face='nn'"):
        from_torch(rnnkit.nn.GRU(2, 3))
    with pytest.raises(TypeError, match="already a torch.nn module"):
        to_torch(torch.nn.GRU(2, 3))
