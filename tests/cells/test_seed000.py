"""Seed 000's worked LSTM and GRU steps: the correct numbers, and where the seed's differ.

The correct values (``_seed000``: NumPy float64 from the seed's matrices) are compared with
``rnnkit.layers.LSTM/GRU.step`` after ``set_weights``. Each value the seed printed is checked
against the correct value and against what the seed's own earlier lines give; the verdicts are
rendered into the doc's tables, which the last test compares with docs/seed_examples.md.
"""

from __future__ import annotations

import importlib.util
import io
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnkit.layers import GRU, LSTM

from ._seed000 import (
    C_PREV,
    FAMILIES,
    GRU_B,
    GRU_U,
    GRU_W,
    H_PREV,
    LSTM_B,
    LSTM_U,
    LSTM_W,
    S_GRU,
    S_LSTM,
    SEED_GRU,
    SEED_LSTM,
    X,
    correct_gru,
    correct_lstm,
    render_tables,
    verdicts,
)

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "seed_examples.md"
EXAMPLE = ROOT / "examples" / "seed000_worked_examples.py"


# -- the step API ---------------------------------------------------------------------------------
def _first_columns(weights: dict, gates, sign=None) -> np.ndarray:
    sign = sign or {}
    return np.concatenate([sign.get(g, 1.0) * weights[g][:, 0] for g in gates])[None, :]


def _stacked_transposes(weights: dict, gates, sign=None) -> np.ndarray:
    sign = sign or {}
    return np.concatenate([sign.get(g, 1.0) * weights[g].T for g in gates], axis=1)


def _stacked(biases: dict, gates, sign=None) -> np.ndarray:
    sign = sign or {}
    return np.concatenate([sign.get(g, 1.0) * biases[g] for g in gates])


def lstm_step_api() -> tuple[np.ndarray, np.ndarray]:
    """h_t, c_t from ``LSTM(2).step``, the seed's weights in Keras's layout (gates i, f, c, o)."""
    gates = "ifgo"
    layer = LSTM(2, input_shape=(None, 1), dtype="float64")
    layer.set_weights(
        [_first_columns(LSTM_W, gates), _stacked_transposes(LSTM_U, gates), _stacked(LSTM_B, gates)]
    )
    with torch.no_grad():
        _, (h, c) = layer.step(np.array([[X]]), [H_PREV[None], C_PREV[None]])
    return h[0].numpy(), c[0].numpy()


def gru_step_api(negate_update_gate: bool = True) -> np.ndarray:
    """h_t from ``GRU(2, reset_after=False).step``; gates z, r, h in Keras's layout."""
    gates = ("z", "r", "h~")
    sign = {"z": -1.0} if negate_update_gate else {}
    layer = GRU(2, reset_after=False, input_shape=(None, 1), dtype="float64")
    layer.set_weights(
        [
            _first_columns(GRU_W, gates, sign),
            _stacked_transposes(GRU_U, gates, sign),
            _stacked(GRU_B, gates, sign),
        ]
    )
    with torch.no_grad():
        _, (h,) = layer.step(np.array([[X]]), [H_PREV[None]])
    return h[0].numpy()


def test_lstm_step_api_matches_numpy():
    expected = correct_lstm()
    h, c = lstm_step_api()
    np.testing.assert_allclose(h, expected["h"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(c, expected["c"], rtol=0, atol=1e-12)


def test_gru_step_api_with_negated_update_gate_matches_the_seed_convention():
    np.testing.assert_allclose(gru_step_api(), correct_gru()["h"], rtol=0, atol=1e-12)


def test_gru_without_negation_is_the_keras_mirror():
    """Unnegated, rnnkit blends the other way round: z h_{t-1} + (1 - z) h~_t."""
    values = correct_gru()
    keras_form = values["z"] * H_PREV + (1.0 - values["z"]) * values["h~"]
    np.testing.assert_allclose(
        gru_step_api(negate_update_gate=False), keras_form, rtol=0, atol=1e-12
    )
    assert not np.allclose(keras_form, values["h"], atol=0.05)


ALL_LINES = [(family, line) for family, (lines, *_) in FAMILIES.items() for line in lines]


@pytest.mark.parametrize(
    ("family", "line"), ALL_LINES, ids=[f"{family}-{line.key}" for family, line in ALL_LINES]
)
def test_seed_line_verdicts(family, line):
    lines, printed, _, correct = FAMILIES[family]
    assert verdicts(line, printed, correct()) == line.verdict


def test_every_printed_value_has_a_line():
    for lines, _, seed, _ in FAMILIES.values():
        assert [line.key for line in lines] == list(seed)


# -- the interpretation ---------------------------------------------------------------------------
READINGS = {
    "W[:, 0] x (rows are units; chosen)": lambda w: w[:, 0] * X,
    "x W[0, :] (Keras kernel, first row)": lambda w: X * w[0, :],
    "W [x, x] (input [0.5, 0.5])": lambda w: w @ np.array([X, X]),
    "[x, x] W (Keras, input [0.5, 0.5])": lambda w: np.array([X, X]) @ w,
}
INPUT_TERMS = [(LSTM_W, S_LSTM, "ifgo"), (GRU_W, S_GRU, ("z", "r", "h~"))]


def _matches(reading, weights, printed, gates, part) -> int:
    return sum(
        int(np.sum(np.abs(reading(weights[g]) - printed[f"{g}.{part}"]) <= 1e-9)) for g in gates
    )


def test_chosen_reading_reproduces_the_most_input_terms():
    counts = {
        name: sum(_matches(reading, w, s, gates, "x") for w, s, gates in INPUT_TERMS)
        for name, reading in READINGS.items()
    }
    assert counts == {
        "W[:, 0] x (rows are units; chosen)": 12,
        "x W[0, :] (Keras kernel, first row)": 9,
        "W [x, x] (input [0.5, 0.5])": 0,
        "[x, x] W (Keras, input [0.5, 0.5])": 0,
    }


def test_no_reading_reproduces_the_recurrent_terms():
    readings = {
        "U h + b": lambda u, b: u @ H_PREV + b,
        "h U + b": lambda u, b: H_PREV @ u + b,
        "U h": lambda u, b: u @ H_PREV,
        "h U": lambda u, b: H_PREV @ u,
    }
    for reading in readings.values():
        for weights, biases, printed, gates in (
            (LSTM_U, LSTM_B, S_LSTM, "ifgo"),
            (GRU_U, GRU_B, S_GRU, ("z", "r")),
        ):
            for g in gates:
                assert np.all(np.abs(reading(weights[g], biases[g]) - printed[f"{g}.rec"]) > 0.05)


# -- the example script and the doc ---------------------------------------------------------------
def _load_example():
    spec = importlib.util.spec_from_file_location("seed000_worked_examples", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_values_match_numpy():
    example = _load_example()
    for run, correct in ((example.run_lstm, correct_lstm()), (example.run_gru, correct_gru())):
        values = run()
        assert values["check"].max() < 1e-14
        for key, expected in correct.items():
            np.testing.assert_allclose(values[key], expected, rtol=0, atol=1e-12, err_msg=key)
    for mine, theirs in ((SEED_LSTM, example.SEED_LSTM), (SEED_GRU, example.SEED_GRU)):
        assert {k: tuple(float(v) for v in vs) for k, vs in mine.items()} == theirs


def test_example_prints_every_value():
    example = _load_example()
    output = io.StringIO()
    with redirect_stdout(output):
        example.main()
    text = output.getvalue()
    for key in (*SEED_LSTM, *SEED_GRU):
        assert example._label(key) in text
    assert "[0.739901, 0.803774]" in text and "[0.723450, 0.808150]" in text


def test_doc_tables_match_the_computed_verdicts():
    text = DOC.read_text(encoding="utf-8")
    for family in FAMILIES:
        for row in render_tables(family):
            assert row in text, f"docs/seed_examples.md lacks: {row}"


def test_doc_quotes_the_computed_results():
    text = DOC.read_text(encoding="utf-8")
    lstm, gru = correct_lstm(), correct_gru()
    keras_blend = gru["z"] * H_PREV + (1.0 - gru["z"]) * gru["h~"]
    for values in (lstm["c"], lstm["h"], gru["h"], keras_blend):
        assert ", ".join(f"{v:.6f}" for v in values) in text
    for count in (12, 9, 0):
        assert f"| {count} |" in text
