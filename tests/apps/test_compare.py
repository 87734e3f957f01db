"""``rnnkit compare`` end to end on a tiny budget, and its tasks."""

import json

import numpy as np
import pytest

from rnnkit.apps._common import tomllib
from rnnkit.cli import main
from rnnkit.tasks.comparison import CompareConfig, xor_task

TINY = ["--samples", "120", "--epochs", "2", "--units", "4", "--sequence-length", "6"]


def run_compare(tmp_path, *argv):
    code = main(["compare", "--runs-dir", str(tmp_path / "runs"), *argv])
    found = (tmp_path / "runs").glob("*-compare*") if (tmp_path / "runs").exists() else []
    return code, sorted(found)


def test_xor_compares_the_three_cells(tmp_path, capsys):
    code, runs = run_compare(tmp_path, *TINY)
    out = capsys.readouterr().out
    assert code == 0 and len(runs) == 1
    for name in (
        "config.toml",
        "metrics.json",
        "curves.png",
        "rnn.rnnkit",
        "lstm.rnnkit",
        "gru.rnnkit",
    ):
        assert (runs[0] / name).stat().st_size > 0, name
    metrics = json.loads((runs[0] / "metrics.json").read_text())
    assert (metrics["task"], metrics["metric"]) == ("xor", "val_accuracy")
    cells = metrics["cells"]
    # Keras's counts for 4 units on 1 feature, plus Dense(1): 5.
    assert {cell: row["parameters"] for cell, row in cells.items()} == {
        "rnn": 4 * (1 + 4 + 1) + 5,
        "lstm": 4 * 4 * (1 + 4 + 1) + 5,
        "gru": 3 * 4 * (1 + 4 + 2) + 5,
    }
    for row in cells.values():
        assert 0.0 <= row["best_val_metric"] <= 1.0
        # the report's columns (the training time is reported, not checked: speed is in bench/)
        assert set(row) == {"parameters", "train_seconds", "best_val_metric", "best_epoch",
                            "final_val_metric"}
        assert 1 <= row["best_epoch"] <= 2
    assert "SimpleRNN" in out and "best val_accuracy" in out


def test_sine_with_bidirectional_cells_from_a_config_file(tmp_path):
    config = tmp_path / "compare.toml"
    config.write_text('task = "sine"\ncells = ["gru", "lstm"]\nbidirectional = true\n')
    code, runs = run_compare(tmp_path, "--config", str(config), *TINY)
    assert code == 0
    saved = tomllib.loads((runs[0] / "config.toml").read_text())
    assert saved["cells"] == ["gru", "lstm"] and saved["bidirectional"] is True
    metrics = json.loads((runs[0] / "metrics.json").read_text())
    assert metrics["metric"] == "val_loss" and list(metrics["cells"]) == ["gru", "lstm"]
    assert metrics["cells"]["gru"]["parameters"] == 2 * 3 * 4 * (1 + 4 + 2) + 9
    assert all(row["best_val_metric"] >= 0.0 for row in metrics["cells"].values())


def test_forecast_task_runs_on_co2(tmp_path):
    code, runs = run_compare(
        tmp_path,
        "--task",
        "forecast",
        "--cells",
        "rnn",
        "--epochs",
        "1",
        "--units",
        "4",
        "--sequence-length",
        "12",
    )
    assert code == 0
    row = json.loads((runs[0] / "metrics.json").read_text())["cells"]["rnn"]
    assert 0.0 < row["best_val_metric"] < 10.0  # MSE of standardised monthly changes


@pytest.mark.parametrize(
    "toml, message",
    [
        ("epochz = 3\n", "unknown key(s) ['epochz']"),
        ('cells = ["lstm", "lstm"]\n', "cells: expected each cell once"),
    ],
)
def test_bad_config_is_a_one_line_error(tmp_path, capsys, toml, message):
    config = tmp_path / "bad.toml"
    config.write_text(toml)
    code, runs = run_compare(tmp_path, "--config", str(config))
    err = capsys.readouterr().err
    assert code == 2 and runs == []
    assert message in err and "Traceback" not in err and err.count("\n") == 1


def test_xor_target_depends_only_on_the_first_two_steps():
    data = xor_task(200, 7, np.random.default_rng(0))
    x = np.concatenate([data.x_train, data.x_val])
    y = np.concatenate([data.y_train, data.y_val])
    assert x.shape == (200, 7, 1) and len(data.x_val) == 40
    assert not x[:, 2:].any()
    np.testing.assert_array_equal(y[:, 0], (x[:, 0, 0] != x[:, 1, 0]).astype(np.float32))
    assert 0.3 < y.mean() < 0.7


def test_config_rejects_unknown_cells():
    with pytest.raises(ValueError, match="cells: expected some of"):
        CompareConfig(cells=("lstm", "transformer"))
