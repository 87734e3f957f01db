import json

import numpy as np
import pytest

from rnnkit.cli import main

TINY = ["--epochs", "2", "--units", "8", "--window", "12", "--horizon", "3"]


def _run_dir(root):
    (run_dir,) = [p for p in root.iterdir() if p.name.endswith("-forecast")]
    return run_dir


def test_default_dataset_end_to_end_writes_every_artifact(tmp_path, capsys):
    assert main(["forecast", "--runs-dir", str(tmp_path), *TINY]) == 0
    run_dir = _run_dir(tmp_path)
    for name in ("config.toml", "metrics.json", "model", "history.png", "forecast.png"):
        assert (run_dir / name).exists(), name
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert {"rmse", "mae", "smape", "mase", "baselines"} <= set(metrics)
    assert set(metrics["baselines"]) == {"naive", "seasonal_naive"}
    assert metrics["season"] == 12 and metrics["epochs_trained"] == 2
    assert 0 < metrics["mae"] <= metrics["rmse"]
    out = capsys.readouterr().out
    assert "seasonal-naive" in out and "MASE" in out


def test_csv_with_recursive_strategy_and_config_file(tmp_path):
    t = np.arange(200)
    values = 10 + np.sin(2 * np.pi * t / 7) + 0.01 * t
    csv = tmp_path / "series.csv"
    csv.write_text("day,value\n" + "\n".join(f"2020-01-{1 + i % 28:02d},{v}" for i, v in
                                             enumerate(values)))
    config = tmp_path / "run.toml"
    config.write_text('strategy = "recursive"\ncell = "gru"\nseason = 7\n')
    code = main(["forecast", "--runs-dir", str(tmp_path / "runs"), "--csv", str(csv),
                 "--column", "value", "--config", str(config), *TINY])
    assert code == 0
    run_dir = _run_dir(tmp_path / "runs")
    saved = (run_dir / "config.toml").read_text()
    assert 'strategy = "recursive"' in saved and 'cell = "gru"' in saved
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["season"] == 7


@pytest.mark.parametrize(
    "content, flags, message",
    [
        ("a,b\n1,2\n", ["--column", "value"], "no column 'value'"),
        ("value\n1\n2\nabc\n4\n", ["--column", "value"], "row 4 .* non-numeric value 'abc'"),
        ("value\n" + "\n".join(["1.0"] * 20), ["--column", "value"], "series: the training part"),
    ],
    ids=["missing-column", "non-numeric", "too-short"],
)
def test_bad_csv_is_one_line_exit_2_no_traceback(tmp_path, capsys, content, flags, message):
    csv = tmp_path / "bad.csv"
    csv.write_text(content)
    code = main(["forecast", "--runs-dir", str(tmp_path / "runs"), "--csv", str(csv), *flags,
                 *TINY])
    assert code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rnnkit forecast: error: ")
    import re
    assert re.search(message, lines[0]), lines[0]
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_unknown_config_key_is_a_user_error(tmp_path, capsys):
    config = tmp_path / "bad.toml"
    config.write_text("windows = 3\n")
    assert main(["forecast", "--runs-dir", str(tmp_path), "--config", str(config)]) == 2
    assert "unknown key(s) ['windows']" in capsys.readouterr().err
