"""Truncated BPTT: state carried across chunks, gradients cut at chunk boundaries, one update per
chunk that carries a loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from training_standins import StandInModel

from rnnkit import optimizers
from rnnkit.layers import GRU, LSTM, Bidirectional
from rnnkit.training.tbptt import TruncatedBPTT
from rnnkit.utils import set_random_seed

rng = np.random.default_rng(2)
X = rng.normal(size=(6, 12, 3)).astype("float32")
Y_SEQ = rng.normal(size=(6, 12, 2)).astype("float32")
Y_LAST = rng.normal(size=(6, 2)).astype("float32")


def sequence_model(return_sequences=True):
    set_random_seed(0)
    model = StandInModel(LSTM(5, return_sequences=True), GRU(4, return_sequences=return_sequences),
                         nn.LazyLinear(2))
    model.build_from_batch(torch.from_numpy(X[:1]))
    return model


def test_chunked_forward_equals_the_full_sequence_forward():
    model = sequence_model()
    x = torch.from_numpy(X)
    with torch.no_grad():
        full = model(x, training=False)
        tbptt = TruncatedBPTT(model, 5)
        with tbptt.stateful():
            chunked = torch.cat([model(x[:, span], training=False) for span in tbptt.chunks(x)], 1)
    assert [s.stop - s.start for s in tbptt.chunks(x)] == [5, 5, 2]
    torch.testing.assert_close(chunked, full, rtol=1e-6, atol=1e-6)


def test_layers_get_their_stateful_flag_and_states_back():
    model = sequence_model()
    layers = [model.layers[0], model.layers[1]]
    layers[1].stateful = True
    layers[1].states = [torch.ones(2, 4)]
    model.compile(optimizers.SGD(0.01), "mse")
    model.fit(X, Y_SEQ, batch_size=3, epochs=1, tbptt_steps=4, verbose=0)
    assert [layer.stateful for layer in layers] == [False, True]
    assert layers[0].states is None and torch.equal(layers[1].states[0], torch.ones(2, 4))


@pytest.mark.parametrize(("targets", "updates_per_batch"), [(Y_SEQ, 3), (Y_LAST, 1)],
                         ids=["time-distributed", "many-to-one"])
def test_one_update_per_chunk_that_carries_a_loss(targets, updates_per_batch):
    model = sequence_model(return_sequences=targets.ndim == 3)
    model.compile(optimizers.Adam(), "mse")
    history = model.fit(X, targets, batch_size=3, epochs=2, tbptt_steps=4, verbose=0)
    assert model.optimizer.iterations == 2 * 2 * updates_per_batch
    assert np.isfinite(history.history["loss"]).all()


def reference_tbptt(model, optimizer, x, y, steps):
    """Hand-written truncated BPTT with explicit, detached initial states."""
    lstm, gru, dense = model.layers
    lstm.return_state = gru.return_state = True
    lstm_state = gru_state = None
    for start in range(0, x.shape[1], steps):
        chunk = x[:, start:start + steps]
        hidden, *lstm_state = lstm(chunk, initial_state=lstm_state)
        hidden, *gru_state = gru(hidden, initial_state=gru_state)
        loss = ((dense(hidden) - y[:, start:start + steps]) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        lstm_state = [s.detach() for s in lstm_state]
        gru_state = [s.detach() for s in gru_state]
    lstm.return_state = gru.return_state = False


def test_updates_match_a_hand_written_truncated_bptt():
    model = sequence_model()
    model.compile(optimizers.SGD(0.1), "mse")
    model.fit(X, Y_SEQ, batch_size=6, epochs=1, shuffle=False, tbptt_steps=5, verbose=0)
    reference = sequence_model()
    optimizer = optimizers.SGD(0.1)
    optimizer.build(reference.parameters())
    reference_tbptt(reference, optimizer, torch.from_numpy(X), torch.from_numpy(Y_SEQ), 5)
    for ours, theirs in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)
    untruncated = sequence_model()
    untruncated.compile(optimizers.SGD(0.1), "mse")
    untruncated.fit(X, Y_SEQ, batch_size=6, epochs=1, shuffle=False, verbose=0)
    assert not torch.allclose(next(untruncated.parameters()), next(model.parameters()))


def test_layers_reading_backwards_are_refused():
    model = StandInModel(Bidirectional(LSTM(3)), nn.LazyLinear(1))
    model.compile("sgd", "mse")
    with pytest.raises(ValueError, match="read the sequence from its end"):
        model.fit(X, Y_LAST[:, :1], tbptt_steps=4, verbose=0)


def test_tbptt_needs_one_sequence_input():
    model = sequence_model()
    model.compile("sgd", "mse")
    with pytest.raises(ValueError, match="tbptt_steps: expected a positive integer"):
        model.fit(X, Y_SEQ, tbptt_steps=0, verbose=0)
