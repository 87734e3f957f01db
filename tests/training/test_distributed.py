"""Data-parallel fit: two gloo processes on 127.0.0.1 against single-process training.

One module-scoped job starts two ranks with torchrun's environment variables (so ``fit`` finds and
initialises the process group itself) and runs every scenario; the tests compare what each rank
recorded with single-process runs that see the same global batches in the same order.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import socket
import sys

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset
from torch.utils.data.distributed import DistributedSampler

from rnnkit.callbacks import Callback, CSVLogger, LambdaCallback, ModelCheckpoint
from rnnkit.data.streaming import WindowStream
from rnnkit.layers import LSTM, Dense
from rnnkit.models import Sequential
from rnnkit.optimizers import Adam
from rnnkit.training import distributed
from rnnkit.utils import set_random_seed

WORLD = 2
LOCAL_BATCH = 6
EPOCHS = 3
FIT_SEED = 1234  # torch's generator just before each fit: rank 0 draws the shard shuffle from it
N, T, F = 48, 6, 2
rng = np.random.default_rng(7)
X = rng.normal(size=(N, T, F))
Y = X[:, :, :1].mean(1) + 0.1 * X[:, -1, 1:]  # (N, 1)
Y_SEQ = np.cumsum(X[:, :, :1], axis=1) / 4  # (N, T, 1) for truncated BPTT
X_VAL, Y_VAL = X[:7] * 0.5, Y[:7] * 0.5  # 7 samples: split 4/3, none counted twice


def make_model(return_sequences: bool = False, features: int = F):
    set_random_seed(0)
    model = Sequential([LSTM(4, return_sequences=return_sequences, dtype="float64"),
                        Dense(1, dtype="float64")])
    model.build_from_batch(torch.zeros(1, T, features, dtype=torch.float64))
    model.compile(Adam(learning_rate=0.02), "mse", metrics=["mae"])
    return model


def flat_weights(model) -> np.ndarray:
    return np.concatenate([w.ravel() for w in model.get_weights()])


# -- the two ranks ---------------------------------------------------------------------------------
class WeightsPerEpoch(Callback):
    """Each epoch's weights, and their largest difference across ranks (all-gathered)."""

    def __init__(self) -> None:
        super().__init__()
        self.weights, self.spread = [], []

    def on_epoch_end(self, epoch, logs=None):
        local = torch.from_numpy(flat_weights(self.model))
        gathered = [torch.empty_like(local) for _ in range(WORLD)]
        torch.distributed.all_gather(gathered, local)
        self.weights.append(local.numpy())
        self.spread.append(float(max((g - gathered[0]).abs().max() for g in gathered)))


def _fit_recorded(model, x, y=None, **kwargs) -> dict:
    recorder = WeightsPerEpoch()
    torch.manual_seed(FIT_SEED)
    kwargs.setdefault("batch_size", LOCAL_BATCH)
    history = model.fit(x, y, verbose=0, callbacks=[recorder, *kwargs.pop("callbacks", [])],
                        **kwargs)
    return {"weights": recorder.weights, "spread": recorder.spread, "history": history.history}


def _scenario_callbacks(rank: int, out) -> dict:
    model = make_model()
    stop = LambdaCallback(on_epoch_end=lambda epoch, logs: setattr(
        model, "stop_training", rank == 1 and epoch == 1))
    logger = CSVLogger(out / f"log-rank{rank}.csv")
    saver = ModelCheckpoint(out / f"weights-rank{rank}.safetensors", monitor="val_loss",
                            save_weights_only=True)
    torch.manual_seed(FIT_SEED)
    history = model.fit(X, Y, batch_size=LOCAL_BATCH, epochs=5, validation_data=(X_VAL, Y_VAL),
                        verbose=1, callbacks=[stop, logger, saver])
    evaluated = model.evaluate(X_VAL, Y_VAL, verbose=0, return_dict=True)
    return {"history": history.history, "evaluated": evaluated}


def _scenario_batch_stop(rank: int, out) -> dict:
    model = make_model()
    steps = []

    def on_batch_end(batch, logs):
        steps.append(batch)
        model.stop_training = rank == 0 and batch == 1

    history = model.fit(X, Y, batch_size=LOCAL_BATCH, epochs=3, verbose=0,
                        callbacks=[LambdaCallback(on_train_batch_end=on_batch_end)])
    return {"steps": steps, "epochs": history.epoch}


def _scenario_resume(rank: int, out) -> dict:
    directory = out.parent / "checkpoints"  # shared: rank 0 writes, both ranks read
    _fit_recorded(make_model(), X, Y, epochs=2, checkpoint_dir=directory)
    resumed = _fit_recorded(make_model(), X, Y, epochs=EPOCHS, checkpoint_dir=directory,
                            resume=True)
    uninterrupted = _fit_recorded(make_model(), X, Y, epochs=EPOCHS)
    return {"resumed": resumed, "uninterrupted": uninterrupted["weights"][-1]}


def _scenario_stream(rank: int, out) -> dict:
    stream = WindowStream(out.parent / "series.csv", ["a", "b"], window=T, horizon=1,
                          targets=["a"], chunk_rows=50, dtype=torch.float64)
    return {**_fit_recorded(make_model(), stream, batch_size=8, epochs=2),
            "windows": len(stream)}


SCENARIOS = {
    "arrays": lambda rank, out: _fit_recorded(make_model(), X, Y, epochs=EPOCHS),
    "dataset": lambda rank, out: _fit_recorded(
        make_model(), TensorDataset(torch.from_numpy(X), torch.from_numpy(Y)), epochs=EPOCHS),
    "tbptt": lambda rank, out: _fit_recorded(make_model(return_sequences=True), X, Y_SEQ,
                                             epochs=EPOCHS, tbptt_steps=2),
    "callbacks": _scenario_callbacks,
    "batch_stop": _scenario_batch_stop,
    "resume": _scenario_resume,
    "stream": _scenario_stream,
}


def _rank_main(rank: int, port: int, root: str) -> None:
    from pathlib import Path

    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    if os.path.exists("/sys/class/net/lo"):
        os.environ["GLOO_SOCKET_IFNAME"] = "lo"
    torch.set_num_threads(1)
    out = Path(root) / f"rank{rank}"
    out.mkdir()
    sys.stdout = open(out / "stdout.txt", "w")  # noqa: SIM115 - closed at exit
    results = {name: scenario(rank, out) for name, scenario in SCENARIOS.items()}
    torch.save(results, out / "results.pt")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    """What each of the two ranks recorded, by scenario; and the directory they wrote in."""
    root = tmp_path_factory.mktemp("distributed")
    series = np.random.default_rng(3).normal(size=(203, 2))
    (root / "series.csv").write_text("a,b\n" + "\n".join(f"{a},{b}" for a, b in series))
    context = multiprocessing.get_context("spawn")
    port = _free_port()
    processes = [context.Process(target=_rank_main, args=(rank, port, str(root)))
                 for rank in range(WORLD)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=240)
    for process in processes:
        if process.is_alive():
            process.kill()
    assert [p.exitcode for p in processes] == [0] * WORLD, "a rank failed or hung"
    return [torch.load(root / f"rank{r}" / "results.pt", weights_only=False)
            for r in range(WORLD)], root


# -- the single-process reference -----------------------------------------------------------------
def fit_seed() -> int:
    """The shuffle seed rank 0 draws when fit starts with torch's generator at FIT_SEED."""
    torch.manual_seed(FIT_SEED)
    return int(torch.randint(0, 2**31 - 1, (1,), dtype=torch.int64))


def global_order(size: int, epoch: int) -> list[int]:
    """Step k's global batch is rank 0's k-th local batch followed by rank 1's."""
    shards = []
    for rank in range(WORLD):
        sampler = DistributedSampler(range(size), WORLD, rank, shuffle=True, seed=fit_seed())
        sampler.set_epoch(epoch)
        shards.append(list(sampler))
    steps = math.ceil(len(shards[0]) / LOCAL_BATCH)
    return [i for k in range(steps) for shard in shards
            for i in shard[k * LOCAL_BATCH:(k + 1) * LOCAL_BATCH]]


def single_process(model, x, y, epochs: int, **kwargs) -> tuple[list, dict]:
    weights, history = [], {}
    for epoch in range(epochs):
        order = global_order(len(x), epoch)
        logs = model.fit(x[order], y[order], batch_size=WORLD * LOCAL_BATCH, shuffle=False,
                         epochs=1, verbose=0, **kwargs).history
        weights.append(flat_weights(model))
        for key, values in logs.items():
            history.setdefault(key, []).extend(values)
    return weights, history


# -- the tests ------------------------------------------------------------------------------------
@pytest.mark.parametrize("scenario", ["arrays", "dataset"])
def test_two_ranks_equal_single_process_training_on_the_global_batch(ranks, scenario):
    results, _ = ranks
    weights, history = single_process(make_model(), X, Y, EPOCHS)
    for rank in range(WORLD):
        recorded = results[rank][scenario]
        for epoch in range(EPOCHS):
            np.testing.assert_allclose(recorded["weights"][epoch], weights[epoch], rtol=0,
                                       atol=1e-6)
        # the logged loss and metric are the global ones, not rank 0's half
        np.testing.assert_allclose(recorded["history"]["loss"], history["loss"], atol=1e-9)
        np.testing.assert_allclose(recorded["history"]["mae"], history["mae"], atol=1e-9)
    assert np.abs(weights[-1] - weights[0]).max() > 1e-3  # training moved the weights


@pytest.mark.parametrize("scenario", ["arrays", "dataset", "tbptt", "stream"])
def test_weights_are_identical_across_ranks_after_every_epoch(ranks, scenario):
    results, _ = ranks
    for rank in range(WORLD):
        assert results[rank][scenario]["spread"] == [0.0] * len(results[rank][scenario]["spread"])
    assert len(results[0][scenario]["spread"]) >= 2


def test_truncated_bptt_equals_single_process_training(ranks):
    results, _ = ranks
    weights, _ = single_process(make_model(return_sequences=True), X, Y_SEQ, EPOCHS,
                                tbptt_steps=2)
    for epoch in range(EPOCHS):
        np.testing.assert_allclose(results[0]["tbptt"]["weights"][epoch], weights[epoch],
                                   rtol=0, atol=1e-6)


def test_validation_metrics_are_global_and_every_rank_logs_the_same(ranks):
    results, _ = ranks
    first, second = (results[rank]["callbacks"] for rank in range(WORLD))
    assert first["history"] == second["history"]
    # val_loss after the last epoch is the loss over all 7 validation samples, each once
    assert first["history"]["val_loss"][-1] == pytest.approx(first["evaluated"]["loss"],
                                                             abs=1e-10)
    assert first["history"]["val_mae"][-1] == pytest.approx(first["evaluated"]["mae"], abs=1e-10)


def test_a_stop_on_one_rank_stops_every_rank(ranks):
    results, _ = ranks
    # rank 1 alone set stop_training after epoch index 1
    assert [len(results[r]["callbacks"]["history"]["loss"]) for r in range(WORLD)] == [2, 2]
    # rank 0 alone set it after its second batch: both ranks ran two steps of one epoch
    assert [results[r]["batch_stop"]["steps"] for r in range(WORLD)] == [[0, 1], [0, 1]]
    assert [results[r]["batch_stop"]["epochs"] for r in range(WORLD)] == [[0], [0]]


def test_only_rank_zero_logs_and_writes(ranks):
    _, root = ranks
    zero, one = root / "rank0", root / "rank1"
    assert (zero / "log-rank0.csv").read_text().count("\n") == 3  # header and two epochs
    assert (zero / "weights-rank0.safetensors").exists()
    assert not (one / "log-rank1.csv").exists()
    assert not (one / "weights-rank1.safetensors").exists()
    assert "Epoch 2/5" in (zero / "stdout.txt").read_text()
    assert (one / "stdout.txt").read_text() == ""


def test_resume_reads_rank_zero_checkpoints_and_continues_the_run(ranks):
    results, root = ranks
    for rank in range(WORLD):
        resumed = results[rank]["resume"]
        assert len(resumed["resumed"]["weights"]) == 1  # only the third epoch was trained
        np.testing.assert_array_equal(resumed["resumed"]["weights"][-1],
                                      resumed["uninterrupted"])
    saved = sorted(path.name for path in (root / "checkpoints").iterdir())
    assert saved == ["epoch-00002", "epoch-00003"]  # rank 0's, the newest two


def test_a_stream_gives_every_rank_the_same_number_of_windows(ranks):
    results, _ = ranks
    windows = [results[r]["stream"]["windows"] for r in range(WORLD)]
    assert windows == [(203 - T - 1 + 1) // WORLD] * WORLD


# -- without a process group ----------------------------------------------------------------------
def test_outside_a_launch_fit_trains_alone(monkeypatch):
    for name in distributed.LAUNCH_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert distributed.current() is distributed.LOCAL
    assert (distributed.rank(), distributed.world_size(), distributed.is_main_process()) == \
        (0, 1, True)


def test_incomplete_launch_environment_is_reported(monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    monkeypatch.delenv("MASTER_PORT", raising=False)
    with pytest.raises(RuntimeError, match=r"\['MASTER_ADDR', 'MASTER_PORT'\]"):
        distributed.current()


@pytest.mark.parametrize("nproc", [0, -1, 1.5, True])
def test_launch_rejects_a_bad_process_count(nproc):
    with pytest.raises(ValueError, match="nproc: expected a positive integer"):
        distributed.launch(nproc, ["-c", "pass"])


# -- the command line -----------------------------------------------------------------------------
def test_forecast_with_two_processes_writes_one_run_from_rank_zero(tmp_path, capfd):
    from rnnkit.cli import main

    code = main(["forecast", "--nproc", "2", "--epochs", "3", "--units", "8", "--window", "12",
                 "--horizon", "3", "--runs-dir", str(tmp_path)])
    out = capfd.readouterr().out
    assert code == 0
    (run_dir,) = tmp_path.iterdir()
    for name in ("config.toml", "metrics.json", "model", "history.png", "forecast.png"):
        assert (run_dir / name).exists(), name
    assert "nproc = 2" in (run_dir / "config.toml").read_text()
    assert json.loads((run_dir / "metrics.json").read_text())["epochs_trained"] == 3
    assert out.count("Test forecasts from") == 1  # the results table, from rank 0 only
    assert out.count("artifacts:") == 1


def test_nproc_inside_a_launched_process_is_a_user_error(tmp_path, monkeypatch, capsys):
    from rnnkit.cli import main

    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["forecast", "--nproc", "2", "--runs-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rnnkit forecast: error: --nproc: this process was launched")
