import numpy as np
import pytest

import rnnkit.plot as plot


def _png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_history_overlays_every_model_with_its_validation_curve(tmp_path):
    histories = {"LSTM": {"loss": [3, 2, 1], "val_loss": [3, 2.5, 2]},
                 "GRU": {"loss": [3, 1.5, 1], "val_loss": [3, 2, 1.8]}}
    figure = plot.history(histories)
    labels = [line.get_label() for line in figure.axes[0].get_lines()]
    assert labels == ["LSTM training loss", "LSTM validation loss",
                      "GRU training loss", "GRU validation loss"]
    np.testing.assert_array_equal(figure.axes[0].get_lines()[3].get_ydata(), [3, 2, 1.8])
    path = plot.history(histories, path=tmp_path / "curves.png")
    width, height = _png_size(path)
    assert width > 500 and height > 300


def test_history_names_the_missing_metric():
    with pytest.raises(ValueError, match="'accuracy'.*available: \\['loss'\\]"):
        plot.history({"loss": [1.0]}, metric="accuracy")


def test_predictions_aligns_a_shorter_forecast_to_the_end(tmp_path):
    figure = plot.predictions(np.arange(10.0), np.arange(3.0), split_at={"test": 7})
    actual, predicted = figure.axes[0].get_lines()[:2]
    np.testing.assert_array_equal(predicted.get_xdata(), [7, 8, 9])
    assert len(actual.get_xdata()) == 10
    with pytest.raises(ValueError, match="path: expected a file name ending in .png"):
        plot.predictions([1.0], [1.0], path=tmp_path / "x.jpg")


def test_gate_heatmaps_have_one_panel_per_gate(tmp_path):
    trace = {"input": np.full((2, 5, 3), 0.5), "forget": np.zeros((2, 5, 3)),
             "cell": np.ones((2, 5, 3)), "h": np.zeros((2, 5, 3))}
    figure = plot.gates(trace)
    images = [axis for axis in figure.axes if axis.images]
    assert len(images) == 3
    assert images[0].images[0].get_array().shape == (3, 5)
    assert _png_size(plot.gates(trace, path=tmp_path / "g.png"))[0] > 500


def test_gradient_flow_is_log_scaled_and_labelled():
    figure = plot.gradient_flow({"LSTM": [1.0, 0.5], "SimpleRNN": [1e-4, 1.0]})
    axes = figure.axes[0]
    assert axes.get_yscale() == "log"
    assert [line.get_label() for line in axes.get_lines()] == ["LSTM", "SimpleRNN"]
