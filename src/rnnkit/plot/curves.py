"""Training curves and predictions.

Example:
    >>> history = model.fit(x, y, validation_split=0.2)          # doctest: +SKIP
    >>> rnnkit.plot.history({"LSTM": history, "GRU": other}, path="curves.png")  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.ticker import MaxNLocator

from rnnkit.plot._figure import new_figure, save


def _as_dict(history) -> dict[str, list[float]]:
    if isinstance(history, Mapping):
        return {k: list(v) for k, v in history.items()}
    if hasattr(history, "history"):
        return {k: list(v) for k, v in history.history.items()}
    raise TypeError(f"history: expected a History or a dict of metric lists, "
                    f"got {type(history).__name__}")


def history(histories, metric: str = "loss", path=None, title: str | None = None,
            log_scale: bool = False):
    """Plot ``metric`` and ``val_<metric>`` per epoch; several histories are overlaid.

    ``histories`` is one History (or ``.history`` dict), or a dict ``{label: History}`` — e.g.
    ``{"LSTM": h1, "GRU": h2}`` as in seed 001's comparison. Returns the saved path (or the figure
    when ``path`` is None).
    """
    if hasattr(histories, "history") or (
        isinstance(histories, Mapping) and all(not hasattr(v, "history") and
                                               not isinstance(v, Mapping)
                                               for v in histories.values())):
        histories = {"": histories}
    figure, axes = new_figure()
    for label, item in histories.items():
        logs = _as_dict(item)
        if metric not in logs:
            raise ValueError(f"metric: {metric!r} is not in the history of {label or 'the model'}"
                             f"; available: {sorted(logs)}")
        prefix = f"{label} " if label else ""
        line, = axes.plot(np.arange(1, len(logs[metric]) + 1), logs[metric],
                          label=f"{prefix}training {metric}")
        if f"val_{metric}" in logs:
            axes.plot(np.arange(1, len(logs[f"val_{metric}"]) + 1), logs[f"val_{metric}"],
                      linestyle="--", color=line.get_color(), label=f"{prefix}validation {metric}")
    axes.set_xlabel("epoch")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylabel(metric)
    if log_scale:
        axes.set_yscale("log")
    axes.set_title(title or f"{metric} per epoch")
    axes.legend()
    axes.grid(alpha=0.3)
    return save(figure, path) if path is not None else figure


def predictions(y_true, y_pred, path=None, title: str = "Predictions", index=None,
                split_at: dict[str, int] | None = None):
    """Plot actual against predicted values; ``split_at`` marks boundaries, e.g. {"test": 480}."""
    y_true = np.asarray(y_true, dtype=float).reshape(len(y_true), -1)[:, 0]
    y_pred = np.asarray(y_pred, dtype=float)
    y_pred = y_pred.reshape(len(y_pred), -1)[:, 0]
    if index is None:
        index = np.arange(len(y_true))
    if len(index) != len(y_true):
        raise ValueError(f"index: expected {len(y_true)} positions (len(y_true)), got {len(index)}")
    figure, axes = new_figure()
    axes.plot(index, y_true, label="actual", color="black", linewidth=1.2)
    pred_index = index[len(index) - len(y_pred):]
    axes.plot(pred_index, y_pred, label="predicted", color="tab:orange", linewidth=1.2)
    for name, position in (split_at or {}).items():
        axes.axvline(index[position], color="tab:gray", linestyle=":")
        axes.text(index[position], axes.get_ylim()[1], f" {name}", va="top", color="tab:gray")
    axes.set_title(title)
    axes.legend()
    axes.grid(alpha=0.3)
    return save(figure, path) if path is not None else figure
