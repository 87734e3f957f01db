import json

import numpy as np

from rnnkit.cli import main


def _run_dir(root):
    (run_dir,) = [p for p in root.iterdir() if p.name.endswith("-explain")]
    return run_dir


def test_default_prints_seed000_gates_and_measures_gradient_flow(tmp_path, capsys):
    args = ["explain", "--runs-dir", str(tmp_path), "--steps", "12", "--samples", "16",
            "--units", "4"]
    assert main(args) == 0
    run_dir = _run_dir(tmp_path)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    lstm = metrics["step"]["LSTM (seed 000)"]
    # The seed's LSTM step, computed correctly (docs/seed_examples.md).
    np.testing.assert_allclose(lstm["cell"], [1.054538, 1.217492], atol=1e-6)
    np.testing.assert_allclose(lstm["h"], [0.739901, 0.803774], atol=1e-6)
    gru = metrics["step"]["GRU (seed 000, update gate negated)"]
    np.testing.assert_allclose(gru["h"], [0.723450, 0.808150], atol=1e-6)
    flow = metrics["gradient_flow"]
    assert set(flow) == {"SimpleRNN", "LSTM", "GRU"}
    assert all(v["first"] > 0 and v["last"] > 0 for v in flow.values())
    assert (run_dir / "gradient_flow.png").exists()
    assert "forget" in capsys.readouterr().out


def test_given_weights_file(tmp_path):
    weights = {"cell": "rnn", "weights": [[[1.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]], [0.0, 0.5]],
               "x": [2.0]}
    path = tmp_path / "w.json"
    path.write_text(json.dumps(weights))
    args = ["explain", "--runs-dir", str(tmp_path / "runs"), "--weights", str(path),
            "--steps", "4", "--samples", "4", "--units", "2"]
    assert main(args) == 0
    metrics = json.loads((_run_dir(tmp_path / "runs") / "metrics.json").read_text())
    (step,) = metrics["step"].values()
    np.testing.assert_allclose(step["h"], np.tanh([2.0, 0.5]), atol=1e-12)


def test_trained_model_gate_heatmaps(tmp_path):
    from rnnkit.layers import LSTM, Dense
    from rnnkit.models import Sequential

    model = Sequential([LSTM(3, input_shape=(5, 2), name="encoder"), Dense(1)])
    model.save(tmp_path / "m.keras")
    args = ["explain", "--runs-dir", str(tmp_path / "runs"), "--model", str(tmp_path / "m.keras"),
            "--steps", "4", "--samples", "4", "--units", "2"]
    assert main(args) == 0
    run_dir = _run_dir(tmp_path / "runs")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["heatmap"] == {"layer": "encoder", "timesteps": 5}
    assert (run_dir / "gates.png").exists()


def test_bad_weights_file_is_a_user_error(tmp_path, capsys):
    path = tmp_path / "w.json"
    path.write_text('{"cell": "lstm"}')
    assert main(["explain", "--runs-dir", str(tmp_path), "--weights", str(path)]) == 2
    assert "needs 'cell', 'weights' and 'x'" in capsys.readouterr().err
