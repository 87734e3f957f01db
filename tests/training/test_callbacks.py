"""Callbacks: scripted monitored values against TF-Keras's callbacks, and inside fit."""

from __future__ import annotations

import csv
import io
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn
from training_standins import StandInModel

from rnnkit import callbacks, optimizers
from rnnkit.training.callbacks import ProgbarLogger

rng = np.random.default_rng(9)
X = rng.normal(size=(24, 5)).astype("float32")
Y = rng.normal(size=(24, 1)).astype("float32")


def linear_model(learning_rate=0.01):
    model = StandInModel(nn.LazyLinear(1))
    model.compile(optimizers.SGD(learning_rate), "mse", metrics=["mae"])
    return model


class FakeModel:
    """What a monitoring callback touches: weights (the epoch that set them), lr, stop flag."""

    def __init__(self) -> None:
        self.weights = -1
        self.stop_training = False
        self.optimizer = SimpleNamespace(learning_rate=1.0)

    def get_weights(self):
        return self.weights

    def set_weights(self, weights):
        self.weights = weights


def drive(callback, values, key="val_loss"):
    """Run the epoch hooks over scripted values; returns (epochs run, model)."""
    model = FakeModel()
    callback.set_model(model)
    callback.on_train_begin({})
    epochs = 0
    for epoch, value in enumerate(values):
        model.weights = epoch
        callback.on_epoch_end(epoch, {key: value})
        epochs += 1
        if model.stop_training:
            break
    callback.on_train_end({})
    return epochs, model


SCRIPTS = {
    "improves-then-stalls": [1.0, 0.8, 0.7, 0.72, 0.71, 0.75, 0.69, 0.9, 0.9, 0.9],
    "noisy": [0.5, 0.6, 0.4, 0.45, 0.41, 0.39, 0.5, 0.38, 0.6, 0.7],
    "flat": [1.0] * 8,
}
EARLY_STOPPING = [
    {"patience": 0}, {"patience": 2}, {"patience": 2, "restore_best_weights": True},
    {"patience": 1, "min_delta": 0.05}, {"patience": 2, "baseline": 0.6},
    {"patience": 1, "start_from_epoch": 3, "restore_best_weights": True},
]


@pytest.mark.peer
@pytest.mark.parametrize("script", SCRIPTS)
@pytest.mark.parametrize("kwargs", EARLY_STOPPING, ids=lambda k: "-".join(map(str, k.items())))
def test_early_stopping_matches_keras(keras, script, kwargs):
    ours = drive(callbacks.EarlyStopping(**kwargs), SCRIPTS[script])
    theirs = drive(keras.callbacks.EarlyStopping(**kwargs), SCRIPTS[script])
    assert (ours[0], ours[1].weights) == (theirs[0], theirs[1].weights)


@pytest.mark.peer
def test_early_stopping_in_max_mode_matches_keras(keras):
    values = [0.5, 0.6, 0.55, 0.58, 0.7, 0.69, 0.65, 0.6]
    ours = drive(callbacks.EarlyStopping("val_accuracy", patience=2, restore_best_weights=True),
                 values, "val_accuracy")
    theirs = drive(keras.callbacks.EarlyStopping("val_accuracy", patience=2, mode="max",
                                                 restore_best_weights=True),
                   values, "val_accuracy")
    assert (ours[0], ours[1].weights) == (theirs[0], theirs[1].weights) == (4, 1)


def test_early_stopping_in_fit_stops_and_restores_the_best_weights():
    scripted = [1.0, 0.5, 0.6, 0.7, 0.8, 0.9]
    snapshots = []

    def script(epoch, logs):
        logs["val_loss"] = scripted[epoch]
        snapshots.append([w.copy() for w in model.get_weights()])

    model = linear_model()
    history = model.fit(X, Y, epochs=6, verbose=0, callbacks=[
        callbacks.LambdaCallback(on_epoch_end=script),
        callbacks.EarlyStopping(patience=2, restore_best_weights=True)])
    assert history.epoch == [0, 1, 2, 3]
    for restored, best in zip(model.get_weights(), snapshots[1]):
        np.testing.assert_array_equal(restored, best)


@pytest.mark.peer
@pytest.mark.parametrize("kwargs", [
    {"patience": 1}, {"patience": 2, "factor": 0.5, "cooldown": 1},
    {"patience": 1, "min_lr": 0.05, "min_delta": 0.05},
], ids=lambda k: "-".join(map(str, k.items())))
def test_reduce_lr_on_plateau_matches_keras(keras, kwargs):
    values = SCRIPTS["improves-then-stalls"]
    rates = []
    for module in (callbacks, keras.callbacks):
        callback = module.ReduceLROnPlateau(**kwargs)
        model = FakeModel()
        callback.set_model(model)
        callback.on_train_begin({})
        seen = []
        for epoch, value in enumerate(values):
            callback.on_epoch_end(epoch, {"val_loss": value})
            seen.append(model.optimizer.learning_rate)
        rates.append(seen)
    np.testing.assert_allclose(rates[0], rates[1])


def test_reduce_lr_on_plateau_changes_the_optimizer_in_fit():
    model = linear_model(learning_rate=0.1)
    history = model.fit(X, Y, epochs=4, verbose=0, callbacks=[
        callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: logs.update(val_loss=1.0)),
        callbacks.ReduceLROnPlateau(patience=1, factor=0.5)])
    assert history.history["learning_rate"] == pytest.approx([0.1, 0.1, 0.05, 0.025])
    assert model.optimizer.learning_rate == pytest.approx(0.0125)
    assert model.optimizer.param_groups[0]["lr"] == pytest.approx(0.0125)


def test_learning_rate_scheduler_sets_each_epoch():
    model = linear_model(learning_rate=0.1)
    history = model.fit(X, Y, epochs=3, verbose=0, callbacks=[
        callbacks.LearningRateScheduler(lambda epoch, lr: lr * 0.5 if epoch else lr)])
    assert history.history["learning_rate"] == pytest.approx([0.1, 0.05, 0.025])
    model = linear_model()
    history = model.fit(X, Y, epochs=2, verbose=0, callbacks=[
        callbacks.LearningRateScheduler(lambda epoch: 0.01 * (epoch + 1))])
    assert history.history["learning_rate"] == pytest.approx([0.01, 0.02])


def test_csv_logger_writes_keras_format(tmp_path):
    path = tmp_path / "log.csv"
    model = linear_model()
    history = model.fit(X, Y, epochs=3, verbose=0, validation_split=0.25,
                        callbacks=[callbacks.CSVLogger(path)])
    with open(path) as file:
        rows = list(csv.reader(file))
    assert rows[0] == ["epoch", "loss", "mae", "val_loss", "val_mae"]
    assert [row[0] for row in rows[1:]] == ["0", "1", "2"]
    for row, loss in zip(rows[1:], history.history["loss"]):
        assert float(row[1]) == loss
    model.fit(X, Y, epochs=1, verbose=0, validation_split=0.25,
              callbacks=[callbacks.CSVLogger(path, append=True)])
    with open(path) as file:
        assert len(file.readlines()) == 5  # one header, four rows


def test_terminate_on_nan_stops_at_the_first_bad_batch():
    class Explodes(nn.Module):
        calls = 0

        def forward(self, x):
            Explodes.calls += 1
            return x * float("nan") if Explodes.calls > 3 else x

    model = StandInModel(nn.LazyLinear(1), Explodes())
    model.compile("sgd", "mse")
    history = model.fit(X, Y, batch_size=4, epochs=3, verbose=0,
                        callbacks=[callbacks.TerminateOnNaN()])
    assert Explodes.calls == 4  # the build pass, two good batches, the bad one
    assert history.epoch == [0] and np.isnan(history.history["loss"][0])


def test_model_checkpoint_formats_the_path_and_saves_only_improvements(tmp_path):
    scripted = [0.5, 0.4, 0.45, 0.3]
    model = linear_model()
    pattern = str(tmp_path / "ckpt-{epoch:02d}-{val_loss:.4f}.weights.pt")
    model.fit(X, Y, epochs=4, verbose=0, callbacks=[
        callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: logs.update(
            val_loss=scripted[epoch])),
        callbacks.ModelCheckpoint(pattern, save_best_only=True, save_weights_only=True)])
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "ckpt-01-0.5000.weights.pt", "ckpt-02-0.4000.weights.pt", "ckpt-04-0.3000.weights.pt"]
    state = torch.load(tmp_path / "ckpt-04-0.3000.weights.pt")
    for saved, current in zip(state.values(), model.parameters()):
        assert torch.equal(saved, current)


def test_batch_logs_hold_running_values_and_are_lazy():
    running = []
    model = linear_model()
    history = model.fit(X, Y, batch_size=5, epochs=1, verbose=0, callbacks=[
        callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: running.append(
            dict(logs)))])
    assert len(running) == 5
    assert running[-1]["loss"] == pytest.approx(history.history["loss"][0])
    assert set(running[0]) == {"loss", "mae"}


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_is_one_line_per_epoch_when_not_a_terminal(capsys):
    model = linear_model()
    model.fit(X, Y, batch_size=2, epochs=2, verbose=1)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and lines[0] == "Epoch 1/2"
    assert lines[1].startswith("12/12 ━━━━━━━━━━━━━━━━━━━━ ") and " - loss: " in lines[1]
    model.fit(X, Y, epochs=1, verbose=2, validation_split=0.5)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Epoch 1/1" and lines[1].startswith("1/1 - ")
    assert lines[1].endswith(tuple("0123456789")) and " - val_mae: " in lines[1]
    model.fit(X, Y, epochs=1, verbose=0)
    assert capsys.readouterr().out == ""


def test_progress_redraws_one_line_on_a_terminal():
    stream = _Terminal()
    logger = ProgbarLogger(1, stream=stream)
    logger.set_params({"epochs": 1, "steps": 3})
    logger.on_train_begin()
    logger.on_epoch_begin(0)
    for batch in range(3):
        logger.progbar._last_draw = 0.0  # draw every batch
        logger.on_train_batch_end(batch, {"loss": 0.5})
    logger.on_epoch_end(0, {"loss": 0.25})
    text = stream.getvalue()
    assert text.count("\r") == 4 and text.count("\n") == 2
    assert "1/3 ━━━━━━──────────────" in text and text.rstrip().endswith("loss: 0.2500")
