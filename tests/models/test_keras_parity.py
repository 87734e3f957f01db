"""The seeds' models against Keras: outputs after a model-level weight copy, and summaries.

Weights go both ways: Keras's into rnnkit (``ours.set_weights(theirs.get_weights())``), then
rnnkit's freshly drawn ones into Keras, so a wrong order or layout cannot cancel out.
"""

from __future__ import annotations

import numpy as np
import pytest

from models._cases import CASES
from models.conftest import assert_close, summary_of, summary_table, summary_total

pytestmark = pytest.mark.peer


@pytest.fixture(scope="module", params=sorted(CASES))
def pair(request, keras):
    """Each case is built once per module: building Keras models dominates the suite's time."""
    return CASES[request.param](keras, np.random.default_rng(0))


def test_outputs_match_keras_after_model_level_weight_copy(pair):
    ours, theirs, inputs = pair
    ours.set_weights(theirs.get_weights())
    assert_close(ours(inputs), theirs(inputs))

    draw = np.random.default_rng(1)
    ours.set_weights([draw.uniform(-0.5, 0.5, w.shape).astype(w.dtype)
                      for w in ours.get_weights()])
    theirs.set_weights(ours.get_weights())
    assert_close(ours(inputs), theirs(inputs))


def test_weight_lists_line_up_with_keras(pair):
    ours, theirs, _ = pair
    assert [w.shape for w in ours.get_weights()] == [tuple(w.shape) for w in theirs.get_weights()]
    assert ours.count_params() == theirs.count_params()


def _keras_shape(outputs) -> str:
    if isinstance(outputs, (list, tuple)):
        return "[" + ", ".join(_keras_shape(item) for item in outputs) + "]"
    return str(tuple(outputs.shape))


def test_summary_rows_and_totals_match_keras(pair):
    ours, theirs, _ = pair
    lines = summary_of(ours)
    rows = summary_table(lines)
    expected = [(type(layer).__name__, _keras_shape(layer.output), layer.count_params())
                for layer in theirs.layers]
    got = [(type(layer).__name__, shape, count)
           for layer, (_, shape, count) in zip(ours.layers, rows, strict=True)]
    assert len(rows) == len(theirs.layers)
    assert got == expected

    keras_lines: list[str] = []
    theirs.summary(print_fn=lambda text, **_: keras_lines.extend(text.splitlines()))
    for label in ("Total", "Trainable", "Non-trainable"):
        assert summary_total(lines, label) == summary_total(keras_lines, label)
