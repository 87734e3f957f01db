"""``model.summary()``: Keras's table of layers, output shapes and parameter counts.

The per-layer counts are the layers' ``count_params()`` (Keras's layout), so they match Keras's
summary for the same model; the totals add the model's parameters, split by ``requires_grad``.
Functional models that are not a plain chain get Keras's "Connected to" column, listing each
inbound tensor as ``layer[node][tensor]``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from torch import nn

_HEADERS = ("Layer (type)", "Output Shape", "Param #", "Connected to")
_MIN_WIDTHS = (31, 22, 13, 17)


def describe_outputs(outputs) -> str:
    """``(None, 10, 64)`` for one symbolic tensor, ``[(None, 8), (None, 8)]`` for a list."""
    if isinstance(outputs, (list, tuple)):
        return "[" + ", ".join(describe_outputs(item) for item in outputs) + "]"
    if isinstance(outputs, dict):
        return "{" + ", ".join(f"{key}: {describe_outputs(outputs[key])}"
                               for key in sorted(outputs)) + "}"
    return str(tuple(outputs.shape))


def print_summary(model, print_fn: Callable[[str], None] | None = None,
                  line_length: int | None = None) -> None:
    """Print the summary of ``model`` one line at a time through ``print_fn`` (stdout)."""
    emit = print_fn or _write_line
    for line in summary_lines(model, line_length):
        emit(line)


def summary_lines(model, line_length: int | None = None) -> list[str]:
    described = model._summary_rows()
    rows = [_row(layer, shape, inbound) for layer, shape, inbound in described]
    with_inbound = any(inbound is not None for _, _, inbound in described)
    columns = 4 if with_inbound else 3
    cells = [row[:columns] for row in rows]
    widths = [max([_MIN_WIDTHS[i], len(_HEADERS[i])] +
                  [len(line) for cell in cells for line in cell[i]]) for i in range(columns)]
    if line_length is not None:
        widths[0] += max(0, line_length - (sum(widths) + 3 * columns + 1))
    lines = [f'Model: "{model.name}"']
    lines.append(_rule("┏", "━", "┳", "┓", widths))
    lines.append(_text_line("┃", [[h] for h in _HEADERS[:columns]], widths, 0))
    lines.append(_rule("┡", "━", "╇", "┩", widths))
    for index, cell in enumerate(cells):
        if index:
            lines.append(_rule("├", "─", "┼", "┤", widths))
        height = max(len(part) for part in cell)
        lines.extend(_text_line("│", cell, widths, row) for row in range(height))
    lines.append(_rule("└", "─", "┴", "┘", widths))
    lines.extend(_totals(model))
    return lines


def _row(layer: nn.Module, shape: str, inbound: list[str] | None) -> tuple[list[str], ...]:
    name = getattr(layer, "name", None) or type(layer).__name__.lower()
    return ([f"{name} ({_type_name(layer)})"], [shape], [f"{_count(layer):,}"],
            (inbound or ["-"]) if inbound is not None else [""])


def _type_name(layer: nn.Module) -> str:
    from rnnkit.models.functional import Functional

    return "Functional" if isinstance(layer, Functional) else type(layer).__name__


def _count(layer: nn.Module) -> int:
    if hasattr(layer, "count_params") and getattr(layer, "built", True):
        return layer.count_params()
    return sum(param.numel() for param in layer.parameters())


def _totals(model: nn.Module) -> list[str]:
    parameters = list(model.parameters())
    trainable = [p for p in parameters if p.requires_grad]
    frozen = [p for p in parameters if not p.requires_grad]
    entries = (("Total", parameters), ("Trainable", trainable), ("Non-trainable", frozen))
    return [f" {label} params: {sum(p.numel() for p in group):,} ({_size(group)})"
            for label, group in entries]


def _size(parameters) -> str:
    size = float(sum(p.numel() * p.element_size() for p in parameters))
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024:
            return f"{size:.2f} {unit}"
        size /= 1024
    return f"{size:.2f} TB"


def _rule(left: str, fill: str, joint: str, right: str, widths: list[int]) -> str:
    return left + joint.join(fill * (width + 2) for width in widths) + right


def _text_line(bar: str, cells, widths: list[int], row: int) -> str:
    parts = []
    for column, (cell, width) in enumerate(zip(cells, widths, strict=False)):
        text = cell[row] if row < len(cell) else ""
        parts.append(f" {text.rjust(width) if column == 2 else text.ljust(width)} ")
    return bar + bar.join(parts) + bar


def _write_line(line: str) -> None:
    sys.stdout.write(line + "\n")
