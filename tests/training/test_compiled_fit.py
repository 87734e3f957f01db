"""compile(jit_compile=...): the compiled training step against the torch step.

Every comparison trains two copies of one seeded model, one with ``jit_compile="auto"`` and one
with ``jit_compile=False`` (the torch step), and compares weights, optimizer state and logs.
A counter on the torch step tells which path ran each batch.
"""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch

from rnnkit import callbacks, optimizers
from rnnkit.layers import GRU, LSTM, Dense, Dropout, SimpleRNN
from rnnkit.models import Sequential
from rnnkit.training import loop
from rnnkit.utils import set_random_seed

rng = np.random.default_rng(11)
X = rng.normal(size=(23, 5, 2)).astype("float32")  # 23: batches of 4 end with a short one
Y = np.tanh(X.sum(1))[:, :1]  # (23, 1)
Y_SEQUENCE = np.tanh(np.cumsum(X, 1))  # (23, 5, 2)

TOLERANCE = {np.float32: 1e-5, np.float64: 1e-10}


@pytest.fixture
def torch_steps(monkeypatch):
    """How many batches the torch step trained (the compiled step counts none)."""
    count = [0]
    step_on = loop._Trainer.step_on

    def counted(self, *args, **kwargs):
        count[0] += 1
        return step_on(self, *args, **kwargs)

    monkeypatch.setattr(loop._Trainer, "step_on", counted)
    return count


def batches(batch_size: int) -> int:
    return -(-len(X) // batch_size)


def train(jit_compile, layers, optimizer="adam", loss="mse", *, x=X, y=Y, epochs=3,
          batch_size=1, metrics=None, dtype=np.float32, **fit_kwargs):
    """A seeded model trained by fit; returns ``(model, history)``."""
    set_random_seed(0)
    if dtype is np.float64:
        torch.set_default_dtype(torch.float64)
    try:
        model = Sequential(layers())
        model.compile(optimizer() if callable(optimizer) else optimizer, loss, metrics=metrics,
                      jit_compile=jit_compile)
        history = model.fit(x.astype(dtype), y.astype(dtype), epochs=epochs,
                            batch_size=batch_size, verbose=0, **fit_kwargs)
    finally:
        torch.set_default_dtype(torch.float32)
    return model, history


def assert_close_runs(compiled, reference, tolerance: float) -> None:
    (model, history), (reference_model, reference_history) = compiled, reference
    for ours, theirs in zip(model.get_weights(), reference_model.get_weights(), strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=tolerance)
    assert list(history.history) == list(reference_history.history)
    for key, values in reference_history.history.items():
        np.testing.assert_allclose(history.history[key], values, rtol=tolerance, atol=tolerance)
    ours, theirs = model.optimizer.state_dict(), reference_model.optimizer.state_dict()
    assert ours["param_groups"] == theirs["param_groups"]
    for index, slots in theirs["state"].items():
        for slot, value in slots.items():
            np.testing.assert_allclose(ours["state"][index][slot], value, rtol=0, atol=tolerance)


def compare(layers, optimizer="adam", loss="mse", **kwargs):
    """Train both ways and check they agree; returns the compiled run."""
    compiled = train("auto", layers, optimizer, loss, **kwargs)
    reference = train(False, layers, optimizer, loss, **kwargs)
    assert_close_runs(compiled, reference, TOLERANCE[kwargs.get("dtype", np.float32)])
    return compiled


# -- supported models, losses and optimizers ---------------------------------------------------
MODELS = {
    "lstm_dense": lambda: [LSTM(6, input_shape=(5, 2)), Dense(1)],
    "stacked_lstm": lambda: [LSTM(5, return_sequences=True, input_shape=(5, 2)), LSTM(4),
                             Dense(1, activation="tanh")],
    "lstm_options": lambda: [LSTM(6, peephole=True, layer_norm=True, proj_size=3,
                                  recurrent_bias=True, input_shape=(5, 2)), Dense(1)],
    "gru_dense_relu": lambda: [GRU(6, input_shape=(5, 2)), Dense(4, activation="relu"),
                               Dense(1)],
    "gru_reset_before": lambda: [GRU(5, reset_after=False, return_sequences=True,
                                     input_shape=(5, 2)), GRU(3), Dense(1)],
    "simple_rnn_sigmoid": lambda: [SimpleRNN(6, input_shape=(5, 2)),
                                   Dense(1, activation="sigmoid", use_bias=False)],
    "dense_first": lambda: [Dense(3, activation="tanh", input_shape=(5, 2)), LSTM(4), Dense(1)],
}


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("batch_size", [1, 4])
def test_each_model_trains_like_the_torch_step(name, batch_size, torch_steps):
    compare(MODELS[name], batch_size=batch_size)
    assert torch_steps[0] == 3 * batches(batch_size)  # the reference run's only


def test_a_plain_lstm_runs_the_fused_kernels_on_batches_of_several(torch_steps, monkeypatch):
    from rnnkit.training.jit import layers as jit_layers
    from rnnkit.training.jit import small_lstm

    calls = {"kernels": 0, "loops": 0}

    def counting(original, kind):
        def counted(*args, **kwargs):
            calls[kind] += 1
            return original(*args, **kwargs)

        return counted

    # The compiled step's own view of the LSTM kernels (the torch step's calls are not counted).
    kernels = jit_layers.FAMILIES["lstm"]
    counted_kernels = types.SimpleNamespace(**{
        name: getattr(kernels, name) for name in ("weight_tensors", "prepare", "backward")
    }, forward=counting(kernels.forward, "kernels"))
    monkeypatch.setitem(jit_layers.FAMILIES, "lstm", counted_kernels)
    monkeypatch.setattr(small_lstm, "lstm_forward", counting(small_lstm.lstm_forward, "loops"))

    def layers():
        return [LSTM(48, return_sequences=True, input_shape=(5, 2)), LSTM(3), Dense(1)]

    compare(layers, batch_size=22)  # batches of 22 samples (the kernels) and 1 (the loops)
    assert torch_steps[0] == 3 * 2
    assert 4 * 48**2 <= small_lstm.MAX_STEP_MACS
    assert calls == {"kernels": 3 * 2, "loops": 3 * 2}


def test_sequence_outputs_train_like_the_torch_step(torch_steps):
    def layers():
        return [GRU(4, return_sequences=True, input_shape=(5, 2)), Dense(2, activation="tanh")]

    compare(layers, y=Y_SEQUENCE, batch_size=4, metrics=["mae"])
    assert torch_steps[0] == 3 * 6


OPTIMIZERS = {
    "adam": lambda: optimizers.Adam(0.01),
    "adam_amsgrad": lambda: optimizers.Adam(0.01, amsgrad=True),
    "adamw": lambda: optimizers.AdamW(0.01, weight_decay=0.1),
    "adam_schedule": lambda: optimizers.Adam(lambda step: 0.02 / (1 + step)),
    "sgd": lambda: optimizers.SGD(0.05),
    "sgd_momentum": lambda: optimizers.SGD(0.05, momentum=0.9),
    "sgd_nesterov": lambda: optimizers.SGD(0.05, momentum=0.9, nesterov=True),
    "sgd_decay": lambda: optimizers.SGD(0.05, weight_decay=0.01),
    "rmsprop": lambda: optimizers.RMSprop(0.01),
    "rmsprop_momentum_centered": lambda: optimizers.RMSprop(0.01, momentum=0.5, centered=True),
    "rmsprop_low_rho": lambda: optimizers.RMSprop(0.01, rho=0.3, centered=True),
    "adam_low_beta": lambda: optimizers.Adam(0.01, beta_1=0.2),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_each_optimizer_updates_like_the_torch_step(name, torch_steps):
    compare(MODELS["lstm_dense"], OPTIMIZERS[name], batch_size=4)
    assert torch_steps[0] == 3 * 6


@pytest.mark.parametrize("loss", ["mse", "mae", "mean_squared_error", "MeanAbsoluteError"])
@pytest.mark.parametrize("metrics", [None, ["mae"], ["mse", "mean_absolute_error"]])
def test_losses_and_metrics_are_logged_like_the_torch_step(loss, metrics, torch_steps):
    compiled = compare(MODELS["gru_dense_relu"], loss=loss, metrics=metrics, batch_size=4)
    assert torch_steps[0] == 3 * 6
    assert len(compiled[1].history) == 1 + len(metrics or [])


@pytest.mark.parametrize("batch_size", [1, 4])
def test_float64_trains_like_the_torch_step(batch_size, torch_steps):
    compare(MODELS["stacked_lstm"], batch_size=batch_size, dtype=np.float64)
    compare(MODELS["gru_reset_before"], "rmsprop", batch_size=batch_size, dtype=np.float64)
    assert torch_steps[0] == 2 * 3 * batches(batch_size)


# -- fit's machinery around the compiled step ----------------------------------------------------
def test_callbacks_see_the_same_batch_and_epoch_logs(torch_steps):
    def recorded(jit_compile):
        seen = {"batch": [], "epoch": []}
        recorder = callbacks.LambdaCallback(
            on_train_batch_end=lambda batch, logs: seen["batch"].append(dict(logs)),
            on_epoch_end=lambda epoch, logs: seen["epoch"].append(dict(logs)))
        train(jit_compile, MODELS["lstm_dense"], metrics=["mae"], batch_size=4,
              validation_split=0.25, callbacks=[recorder])
        return seen

    compiled, reference = recorded("auto"), recorded(False)
    assert torch_steps[0] == 3 * 5
    for when in ("batch", "epoch"):
        assert len(compiled[when]) == len(reference[when]) > 0
        for ours, theirs in zip(compiled[when], reference[when]):
            assert list(ours) == list(theirs)
            np.testing.assert_allclose(list(ours.values()), list(theirs.values()), rtol=1e-5)


def test_learning_rate_callbacks_take_effect(torch_steps):
    def schedule(epoch, lr):
        return 0.0 if epoch >= 2 else 0.01

    def run(jit_compile):
        weights = []
        track = callbacks.LambdaCallback(
            on_epoch_end=lambda epoch, logs: weights.append(model_box[0].get_weights()))
        plateau = callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=0,
                                              min_delta=10.0)
        model_box = []
        set_random_seed(0)
        model = Sequential(MODELS["lstm_dense"]())
        model_box.append(model)
        model.compile(optimizers.Adam(0.01), "mse", jit_compile=jit_compile)
        history = model.fit(X, Y, epochs=4, batch_size=4, verbose=0, callbacks=[
            plateau, callbacks.LearningRateScheduler(schedule), track])
        return model, history, weights

    compiled, reference = run("auto"), run(False)
    assert torch_steps[0] == 4 * 6
    assert_close_runs(compiled[:2], reference[:2], 1e-5)
    weights = compiled[2]
    # A learning rate of 0 from the third epoch on: the weights stop moving.
    assert not np.allclose(weights[0][0], weights[1][0])
    for later in weights[3]:
        assert any(np.array_equal(later, w) for w in weights[2])


def test_predict_and_evaluate_use_the_trained_weights(torch_steps):
    compiled = train("auto", MODELS["lstm_dense"], batch_size=4)
    reference = train(False, MODELS["lstm_dense"], batch_size=4)
    assert torch_steps[0] == 3 * 6
    set_random_seed(0)
    before = Sequential(MODELS["lstm_dense"]()).predict(X, verbose=0)
    after = compiled[0].predict(X, verbose=0)
    np.testing.assert_allclose(after, reference[0].predict(X, verbose=0), atol=1e-5)
    assert np.abs(after - before).max() > 1e-3
    assert compiled[0].evaluate(X, Y, verbose=0) == pytest.approx(
        reference[0].evaluate(X, Y, verbose=0), rel=1e-5)


def test_each_compiled_update_counts_as_an_in_place_change(torch_steps):
    set_random_seed(0)
    model = Sequential(MODELS["lstm_dense"]())
    model.compile("adam", "mse")
    model.build_from_batch(torch.as_tensor(X[:1]))
    before = [p._version for p in model.parameters()]
    model.fit(X, Y, epochs=2, batch_size=4, verbose=0)
    assert torch_steps[0] == 0
    assert [p._version - v for p, v in zip(model.parameters(), before)] == [2 * 6] * len(before)


def test_training_continues_on_either_step_from_the_shared_state(torch_steps):
    def run(first, second):
        set_random_seed(0)
        model = Sequential(MODELS["lstm_dense"]())
        model.compile(optimizers.Adam(0.01), "mse", jit_compile=first)
        model.fit(X, Y, epochs=2, batch_size=4, verbose=0)
        model._jit_compile = second
        model.fit(X, Y, epochs=2, batch_size=4, verbose=0)
        return model.get_weights(), model.optimizer.iterations

    compiled_first, torch_only = run("auto", False), run(False, False)
    assert compiled_first[1] == torch_only[1] == 4 * 6
    for ours, theirs in zip(compiled_first[0], torch_only[0], strict=True):
        np.testing.assert_allclose(ours, theirs, atol=1e-5)


def test_a_resumed_compiled_run_equals_the_uninterrupted_one(tmp_path, torch_steps):
    reference = train("auto", MODELS["lstm_dense"], epochs=4, batch_size=4)
    train("auto", MODELS["lstm_dense"], epochs=2, batch_size=4, checkpoint_dir=tmp_path)
    resumed = train("auto", MODELS["lstm_dense"], epochs=4, batch_size=4,
                    checkpoint_dir=tmp_path, resume=True)
    assert torch_steps[0] == 0
    for ours, theirs in zip(resumed[0].get_weights(), reference[0].get_weights(), strict=True):
        np.testing.assert_array_equal(ours, theirs)


# -- what stays on the torch step ----------------------------------------------------------------
FALLBACKS = {
    "dropout_layer": dict(layers=lambda: [LSTM(4, input_shape=(5, 2)), Dropout(0.3), Dense(1)]),
    "recurrent_dropout": dict(layers=lambda: [LSTM(4, recurrent_dropout=0.2, input_shape=(5, 2)),
                                              Dense(1)]),
    "go_backwards": dict(layers=lambda: [GRU(4, go_backwards=True, input_shape=(5, 2)),
                                         Dense(1)]),
    "reference_backend": dict(layers=lambda: [LSTM(4, backend="reference", input_shape=(5, 2)),
                                              Dense(1)]),
    "softplus_dense": dict(layers=lambda: [LSTM(4, input_shape=(5, 2)),
                                           Dense(1, activation="softplus")]),
    "huber_loss": dict(loss="huber"),
    "accuracy_metric": dict(metrics=["mse", "accuracy"]),
    "adagrad": dict(optimizer="adagrad"),
    "clipnorm": dict(optimizer=lambda: optimizers.Adam(clipnorm=1.0)),
    "sample_weight": dict(sample_weight=np.linspace(0.5, 1.5, 23)),
    "class_weight": dict(class_weight={0: 1.0}),
    "broadcast_targets": dict(y=np.linspace(0, 1, 23 * 3).reshape(23, 3)),
}


@pytest.mark.parametrize("name", sorted(FALLBACKS))
def test_unsupported_settings_run_the_torch_step_with_identical_results(name, torch_steps):
    options = dict(FALLBACKS[name])
    layers = options.pop("layers", MODELS["lstm_dense"])
    auto = train("auto", layers, batch_size=4, **options)
    assert torch_steps[0] == 3 * 6
    torch_only = train(False, layers, batch_size=4, **options)
    for ours, theirs in zip(auto[0].get_weights(), torch_only[0].get_weights(), strict=True):
        np.testing.assert_array_equal(ours, theirs)
    assert auto[1].history == torch_only[1].history


def test_a_frozen_layer_runs_the_torch_step(torch_steps):
    def layers():
        first = LSTM(4, input_shape=(5, 2))
        first.trainable = False
        return [first, Dense(1)]

    train("auto", layers, batch_size=4)
    assert torch_steps[0] == 3 * 6


@pytest.mark.parametrize("value", ["yes", None, 1])
def test_jit_compile_takes_auto_true_or_false(value):
    model = Sequential(MODELS["lstm_dense"]())
    with pytest.raises(ValueError, match="jit_compile: expected 'auto', True or False"):
        model.compile("adam", "mse", jit_compile=value)


@pytest.mark.parametrize("name", ["adam", "adam_amsgrad", "adam_low_beta", "adamw", "sgd_nesterov",
                                  "rmsprop_momentum_centered"])
@pytest.mark.parametrize("handover", ["fresh", "reused", "reused_strided"])
def test_a_compiled_update_matches_the_torch_step_to_rounding(name, handover):
    """A few steps of the compiled rule from the same state as torch's optimizer step agree to
    a unit or two in the last place (torch's vectorised kernels may round a product differently),
    the weights and every slot (both lerp branches: beta_1 = 0.9 and 0.2).

    The gradients come as new arrays at each step, or as the same arrays refilled in place (the
    layer steps' kept buffers), C-ordered or not (the update then reads a contiguous copy, which
    must be taken again at each step)."""
    from rnnkit.training.jit import updates

    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(7, 5)), torch.nn.Parameter(torch.randn(7))]
    twins = [torch.nn.Parameter(p.detach().clone()) for p in params]
    optimizer, twin = OPTIMIZERS[name](), OPTIMIZERS[name]()
    optimizer.build(params)
    twin.build(twins)
    update = updates.rule_for(optimizer)(optimizer, params)
    order = "F" if handover == "reused_strided" else "C"
    kept = [np.zeros(tuple(p.shape), np.float32, order=order) for p in params]
    for _ in range(3):
        grads = [torch.randn_like(p) for p in params]
        for p, g in zip(twins, grads, strict=True):
            p.grad = g.clone()
        twin.step()
        if handover == "fresh":
            arrays = [g.numpy() for g in grads]
        else:
            for array, g in zip(kept, grads, strict=True):
                array[...] = g.numpy()
            arrays = kept
        update.apply(optimizer.param_groups[0], arrays)
    for ours, theirs in zip(params, twins, strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-7)
    for ours, theirs in zip(optimizer.state_dict()["state"].values(),
                            twin.state_dict()["state"].values(), strict=True):
        assert ours.keys() == theirs.keys()
        for slot, value in theirs.items():
            torch.testing.assert_close(ours[slot], value, rtol=1e-6, atol=1e-7)


def test_a_compiled_update_names_a_gradient_of_the_wrong_size():
    from rnnkit.training.jit import updates

    params = [torch.nn.Parameter(torch.randn(7, 5)), torch.nn.Parameter(torch.randn(7))]
    optimizer = optimizers.Adam(0.01)
    optimizer.build(params)
    update = updates.rule_for(optimizer)(optimizer, params)
    with pytest.raises(ValueError, match=r"grads\[1\]: expected 7 values, got 6"):
        update.apply(optimizer.param_groups[0], [np.zeros((7, 5), np.float32),
                                                 np.zeros(6, np.float32)])
    with pytest.raises(ValueError, match="grads: expected 2 arrays, one per parameter, got 1"):
        update.apply(optimizer.param_groups[0], [np.zeros((7, 5), np.float32)])
