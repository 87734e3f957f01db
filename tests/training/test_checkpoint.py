"""fit(checkpoint_dir=..., resume=True): bit-exact resume, SIGKILL while saving, damaged files."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import safetensors
import safetensors.torch
import torch

from rnnkit import callbacks
from rnnkit.layers import LSTM, Dense, Dropout
from rnnkit.models import Sequential
from rnnkit.training.checkpoint import CheckpointDir, read_checkpoint
from rnnkit.utils import set_random_seed

WORKER = Path(__file__).with_name("checkpoint_worker.py")
rng = np.random.default_rng(7)
X = rng.normal(size=(26, 5, 2)).astype("float32")
Y = X[:, :, 0].mean(1, keepdims=True)  # (26, 1)


class Interrupted(Exception):
    pass


def random_draws() -> callbacks.Callback:
    """Logs one draw from NumPy's and Python's global generators per epoch."""
    def draw(epoch, logs):
        logs.update(numpy_draw=float(np.random.random()), python_draw=random.random())
    return callbacks.LambdaCallback(on_epoch_end=draw)


def train(directory, epochs, resume=False, *, optimizer="adam", extra=(), layers=None,
          **fit_kwargs):
    """A seeded run of a small LSTM with dropout, shuffling, validation and LR reduction."""
    set_random_seed(0)
    model = Sequential(layers or [LSTM(4), Dropout(0.3), Dense(1)])
    model.compile(optimizer, "mse", metrics=["mae"])
    plateau = callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=2, min_delta=10.0)
    fit_kwargs = {"batch_size": 5, "validation_split": 0.2, **fit_kwargs}
    history = model.fit(X, Y, epochs=epochs, verbose=0, checkpoint_dir=directory, resume=resume,
                        callbacks=[plateau, random_draws(), *extra], **fit_kwargs)
    return model, history


def assert_same_weights(first: dict, second: dict) -> None:
    assert list(first) == list(second)
    for name in first:
        assert torch.equal(first[name], second[name]), name


def assert_same_run(run, reference) -> None:
    (model, history), (reference_model, reference_history) = run, reference
    assert_same_weights(model.state_dict(), reference_model.state_dict())
    assert history.history == reference_history.history
    assert history.epoch == reference_history.epoch
    ours, theirs = model.optimizer.state_dict(), reference_model.optimizer.state_dict()
    assert ours["param_groups"] == theirs["param_groups"]
    for index, slots in theirs["state"].items():
        for slot, value in slots.items():
            assert torch.equal(torch.as_tensor(ours["state"][index][slot]),
                               torch.as_tensor(value))


def stop_at(epoch: int) -> callbacks.Callback:
    def interrupt(current, logs=None):
        if current == epoch:
            raise Interrupted
    return callbacks.LambdaCallback(on_epoch_begin=interrupt)


# -- bit-exact resume ------------------------------------------------------------------------------
@pytest.mark.parametrize("optimizer", ["adam", "nadam", "sgd"])
def test_resume_after_fewer_epochs_equals_the_uninterrupted_run(tmp_path, optimizer):
    reference = train(None, 5, optimizer=optimizer)
    train(tmp_path, 3, optimizer=optimizer)
    resumed = train(tmp_path, 5, resume=True, optimizer=optimizer)
    assert_same_run(resumed, reference)
    # ReduceLROnPlateau halves the rate after epochs 2 and 4: the first reduction crosses the
    # resume in the optimizer state, the second needs the callback's restored wait count.
    lr = 0.01 if optimizer == "sgd" else 0.001
    assert resumed[1].history["learning_rate"] == [lr, lr, lr, lr / 2, lr / 2]
    assert resumed[0].optimizer.learning_rate == lr / 4


def test_resume_after_an_exception_mid_run_equals_the_uninterrupted_run(tmp_path):
    reference = train(None, 5)
    with pytest.raises(Interrupted):
        train(tmp_path, 5, extra=[stop_at(2)])
    assert [number for number, _ in CheckpointDir(tmp_path).checkpoints()] == [1, 2]
    assert_same_run(train(tmp_path, 5, resume=True), reference)


def test_early_stopping_state_and_best_weights_survive_a_resume(tmp_path):
    def stopper():  # never improves after epoch 0: stops at epoch 3, restores epoch 0's weights
        return callbacks.EarlyStopping(monitor="loss", min_delta=10.0, patience=3,
                                       restore_best_weights=True)
    reference = train(None, 8, extra=[stopper()])
    assert reference[1].epoch == [0, 1, 2, 3]
    with pytest.raises(Interrupted):
        train(tmp_path, 8, extra=[stopper(), stop_at(2)])
    assert_same_run(train(tmp_path, 8, resume=True, extra=[stopper()]), reference)


def test_a_stream_that_runs_across_epochs_resumes_mid_pass(tmp_path):
    # 21 training samples in batches of 5 make 5 batches per pass; epochs of 3 cut passes.
    reference = train(None, 4, steps_per_epoch=3)
    train(tmp_path, 2, steps_per_epoch=3)
    assert_same_run(train(tmp_path, 4, resume=True, steps_per_epoch=3), reference)


def test_stateful_layers_resume_with_their_carried_state(tmp_path):
    def run(directory, epochs, resume=False):
        layers = [LSTM(3, stateful=True), Dense(1)]
        return train(directory, epochs, resume, layers=layers, shuffle=False,
                     validation_split=0.0, batch_size=13)
    reference = run(None, 3)
    run(tmp_path, 2)
    resumed = run(tmp_path, 3, resume=True)
    assert_same_run(resumed, reference)
    assert torch.equal(resumed[0].layers[0].states[0], reference[0].layers[0].states[0])


def test_a_torch_optimizer_resumes_with_its_state(tmp_path):
    def run(directory, epochs, resume=False):
        set_random_seed(0)
        model = Sequential([LSTM(4), Dense(1)])
        model.build((None, 5, 2))
        model.compile(torch.optim.Adam(model.parameters(), lr=0.01, betas=(0.8, 0.9)), "mse")
        history = model.fit(X, Y, epochs=epochs, batch_size=5, verbose=0,
                            checkpoint_dir=directory, resume=resume)
        return model, history
    reference = run(None, 3)
    run(tmp_path, 1)
    resumed = run(tmp_path, 3, resume=True)
    assert_same_run(resumed, reference)
    assert resumed[0].optimizer.param_groups[0]["betas"] == (0.8, 0.9)


# -- starting, finishing, refusing -----------------------------------------------------------------
def test_resume_without_a_checkpoint_starts_fresh(tmp_path):
    assert_same_run(train(tmp_path / "new", 3, resume=True), train(None, 3))
    assert [n for n, _ in CheckpointDir(tmp_path / "new").checkpoints()] == [2, 3]


def test_resuming_a_finished_run_returns_its_history_without_training(tmp_path):
    finished = train(tmp_path, 3)
    batches = []
    counter = callbacks.LambdaCallback(on_train_batch_begin=lambda batch, logs: batches.append(1))
    model, history = train(tmp_path, 3, resume=True, extra=[counter])
    assert batches == []
    assert history.history == finished[1].history
    assert_same_weights(model.state_dict(), finished[0].state_dict())


def test_an_early_stopped_run_counts_as_finished(tmp_path):
    stopper = callbacks.EarlyStopping(monitor="loss", min_delta=10.0, patience=1)
    stopped = train(tmp_path, 6, extra=[stopper])
    assert stopped[1].epoch == [0, 1]
    again = train(tmp_path, 6, resume=True,
                  extra=[callbacks.EarlyStopping(monitor="loss", min_delta=10.0, patience=1)])
    assert again[1].epoch == [0, 1]
    assert_same_weights(again[0].state_dict(), stopped[0].state_dict())


@pytest.mark.parametrize("change, part", [
    ({"layers": [LSTM(5), Dense(1)]}, "model"),
    ({"optimizer": "rmsprop"}, "optimizer"),
])
def test_a_different_model_or_optimizer_is_refused(tmp_path, change, part):
    train(tmp_path, 1)
    with pytest.raises(ValueError, match=f"written for a different {part}"):
        train(tmp_path, 2, resume=True, **change)


def test_existing_checkpoints_without_resume_are_refused(tmp_path):
    train(tmp_path, 1)
    with pytest.raises(ValueError, match="already holds checkpoints.*resume=True"):
        train(tmp_path, 2)


def test_argument_errors_name_the_argument(tmp_path):
    with pytest.raises(ValueError, match="resume: resume=True needs the checkpoint_dir"):
        train(None, 1, resume=True)
    with pytest.raises(TypeError, match="resume: expected True or False"):
        train(tmp_path, 1, resume="yes")
    with pytest.raises(ValueError, match="keep: expected a positive integer"):
        CheckpointDir(tmp_path, keep=0)
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="checkpoint_dir: expected a directory"):
        train(tmp_path / "file", 1)


def test_keeps_the_newest_checkpoints_each_complete(tmp_path):
    train(CheckpointDir(tmp_path, keep=3), 5)
    found = CheckpointDir(tmp_path).checkpoints()
    assert [number for number, _ in found] == [3, 4, 5]
    for _, path in found:
        assert sorted(p.name for p in path.iterdir()) == sorted(
            ["manifest.json", "model.safetensors", "optimizer.json", "optimizer.safetensors",
             "training.json", "training.safetensors"])
        assert set(read_checkpoint(path)) == {p.name for p in path.iterdir()} - {"manifest.json"}


# -- damaged checkpoints ---------------------------------------------------------------------------
def flip_a_byte(file: Path) -> None:
    data = bytearray(file.read_bytes())
    data[len(data) // 2] ^= 0x01
    file.write_bytes(bytes(data))


def truncate(file: Path) -> None:
    file.write_bytes(file.read_bytes()[:-9])


@pytest.mark.parametrize("damage, message", [(flip_a_byte, "does not match the SHA-256"),
                                             (truncate, "truncated")])
@pytest.mark.parametrize("name", ["model.safetensors", "optimizer.json", "training.safetensors"])
def test_a_damaged_file_is_a_clear_error(tmp_path, damage, message, name):
    train(tmp_path, 1)
    path = tmp_path / "epoch-00001"
    damage(path / name)
    with pytest.raises(ValueError, match=message) as error:
        read_checkpoint(path)
    assert name in str(error.value)
    with pytest.raises(ValueError, match=f"no valid checkpoint to resume from.*{message}"):
        train(tmp_path, 2, resume=True)


@pytest.mark.parametrize("damage", [flip_a_byte, truncate])
def test_a_damaged_newest_checkpoint_is_skipped_with_a_warning(tmp_path, damage):
    reference = train(None, 4)
    train(tmp_path, 3)
    damage(tmp_path / "epoch-00003" / "model.safetensors")
    with pytest.warns(UserWarning, match="skipping a damaged checkpoint.*epoch-00003.*"
                                         "resuming from epoch-00002"):
        resumed = train(tmp_path, 4, resume=True)
    assert_same_run(resumed, reference)
    assert [n for n, _ in CheckpointDir(tmp_path).checkpoints()] == [3, 4]


def test_a_checkpoint_without_manifest_is_ignored_silently(tmp_path, recwarn):
    reference = train(None, 4)
    train(tmp_path, 3)
    (tmp_path / "epoch-00003" / "manifest.json").unlink()
    assert_same_run(train(tmp_path, 4, resume=True), reference)
    assert not [w for w in recwarn if "checkpoint" in str(w.message)]


def test_a_consistent_but_forged_checkpoint_is_checked_against_the_model(tmp_path):
    """Matching digests prove integrity, not origin: the content is still validated."""
    train(tmp_path, 1)
    path = tmp_path / "epoch-00001"
    tensors = safetensors.torch.load((path / "optimizer.safetensors").read_bytes())
    tensors = {key: torch.zeros(7) if value.dim() else value for key, value in tensors.items()}
    (path / "optimizer.safetensors").write_bytes(safetensors.torch.save(tensors))
    manifest = json.loads((path / "manifest.json").read_text())
    data = (path / "optimizer.safetensors").read_bytes()
    manifest["files"]["optimizer.safetensors"] = {"bytes": len(data),
                                                  "sha256": hashlib.sha256(data).hexdigest()}
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="invalid optimizer state.*shape \\[7\\]"):
        train(tmp_path, 2, resume=True)


def test_loading_never_unpickles(tmp_path, monkeypatch):
    reference = train(None, 3)
    train(tmp_path, 2)

    def refuse(*args, **kwargs):
        raise AssertionError("a checkpoint load unpickled something")
    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)
    monkeypatch.setattr(torch, "load", refuse)
    assert_same_run(train(tmp_path, 3, resume=True), reference)


# -- SIGKILL while saving --------------------------------------------------------------------------
def run_worker(directory: Path, result: Path, *block: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, str(WORKER), str(directory), str(result), *block],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(process: subprocess.Popen) -> None:
    _, stderr = process.communicate(timeout=240)
    assert process.returncode == 0, stderr.decode()


def read_result(result: Path) -> tuple[dict, dict]:
    with safetensors.safe_open(str(result), "pt") as file:
        metadata = file.metadata()
    return safetensors.torch.load_file(str(result)), metadata


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> tuple[dict, dict]:
    directory = tmp_path_factory.mktemp("uninterrupted")
    finish(run_worker(directory / "checkpoints", directory / "result.safetensors"))
    return read_result(directory / "result.safetensors")


@pytest.mark.slow  # three processes, each importing torch
@pytest.mark.parametrize("file", ["model.safetensors", "manifest.json"])
def test_sigkill_while_saving_then_resume_matches_an_uninterrupted_run(
        tmp_path, uninterrupted, file):
    """Killed halfway through a file of the second checkpoint, the run resumes after epoch 1."""
    directory = "epoch-00002"
    checkpoints, result, ready = tmp_path / "checkpoints", tmp_path / "result", tmp_path / "ready"
    process = run_worker(checkpoints, result, directory, file, str(ready))
    deadline = time.monotonic() + 240
    while not ready.exists():
        assert process.poll() is None, process.communicate()[1].decode()
        assert time.monotonic() < deadline, "the worker never reached the blocked write"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL
    assert not result.exists()
    half_written = list((checkpoints / directory).glob(f".{file}.*.tmp"))
    assert len(half_written) == 1 and half_written[0].stat().st_size > 0
    assert not (checkpoints / directory / "manifest.json").exists()

    finish(run_worker(checkpoints, result))
    weights, metadata = read_result(result)
    reference_weights, reference_metadata = uninterrupted
    assert json.loads(metadata["trained"]) == [1, 2, 3]
    assert_same_weights(weights, reference_weights)
    assert json.loads(metadata["history"]) == json.loads(reference_metadata["history"])
    assert [n for n, _ in CheckpointDir(checkpoints).checkpoints()] == [3, 4]
    assert not list((checkpoints / "epoch-00004").glob(".*.tmp"))
