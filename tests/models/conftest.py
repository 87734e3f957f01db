"""Fixtures for the model tests: the Keras peer, and the seeds' models built on both sides.

Each builder in ``keras_cases`` returns ``(rnnkit model, keras model, inputs)`` for one of the
seeds' programs, with the same layers and names on both sides; the parity tests copy Keras's
weights with model-level ``set_weights(keras_model.get_weights())``.
"""

from __future__ import annotations

from _peer_helpers import ATOL, as_numpy, assert_close  # noqa: F401


def summary_of(model) -> list[str]:
    lines: list[str] = []
    model.summary(print_fn=lines.append)
    return lines


def summary_table(lines: list[str]) -> list[tuple[str, str, int]]:
    """``(layer name, output shape text, param count)`` from the rows of a summary."""
    rows = []
    for line in lines:
        cells = [cell.strip() for cell in line.strip("│").split("│")]
        if line.startswith("│") and cells[0]:
            rows.append((cells[0].split(" (")[0], cells[1], int(cells[2].replace(",", ""))))
    return rows


def summary_total(lines: list[str], label: str = "Total") -> int:
    for line in lines:
        if line.strip().startswith(f"{label} params:"):
            return int(line.split(":")[1].split("(")[0].strip().replace(",", ""))
    raise AssertionError(f"no '{label} params' line in the summary")
