"""Sliding windows that turn a time series into supervised ``(inputs, targets)`` pairs."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from rnnkit.data._arrays import check_finite, float_array, positive_int


def make_windows(
    series, window: int, horizon: int = 1, stride: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Cut ``series`` into input windows and the ``horizon`` steps that follow each of them.

    Window ``i`` starts at step ``i * stride``::

        X[i] = series[i * stride : i * stride + window]
        y[i] = series[i * stride + window : i * stride + window + horizon]

    Args:
        series: a 1-D ``(T,)`` or 2-D ``(T, F)`` numeric array (pandas objects are accepted),
            in time order. Integers are converted to float64; floating dtypes are kept.
        window: number of input steps per sample, at least 1.
        horizon: number of target steps per sample, at least 1.
        stride: steps between the starts of consecutive windows, at least 1.

    Returns:
        ``X (N, window, F)`` and ``y (N, horizon, F)``, where
        ``N = (T - window - horizon) // stride + 1``. For a 1-D series ``F = 1`` in ``X`` and
        ``y`` drops the feature axis: ``y (N, horizon)``. Both are contiguous copies.

    Raises:
        TypeError: non-numeric values, or a non-int ``window``/``horizon``/``stride``.
        ValueError: a series that is not 1-D or 2-D, that contains NaN or infinity, or that is
            shorter than ``window + horizon``.

    Example:
        >>> X, y = make_windows(np.arange(6.0), window=3, horizon=2)
        >>> X[:, :, 0].tolist(), y.tolist()
        ([[0.0, 1.0, 2.0], [1.0, 2.0, 3.0]], [[3.0, 4.0], [4.0, 5.0]])
    """
    window = positive_int(window, "window")
    horizon = positive_int(horizon, "horizon")
    stride = positive_int(stride, "stride")
    values = _check_series(series)
    univariate = values.ndim == 1
    values = values.reshape(len(values), -1)  # (T, F)
    span = window + horizon
    if len(values) < span:
        raise ValueError(
            f"series: expected at least window + horizon = {window} + {horizon} = {span} steps, "
            f"got a series of length {len(values)}"
        )
    # sliding_window_view puts the window axis last: (T - span + 1, F, span).
    spans = sliding_window_view(values, span, axis=0)[::stride]
    spans = np.moveaxis(spans, -1, 1)  # (N, span, F)
    inputs = np.ascontiguousarray(spans[:, :window])  # (N, window, F)
    targets = np.ascontiguousarray(spans[:, window:])  # (N, horizon, F)
    if univariate:
        targets = targets[:, :, 0]  # (N, horizon)
    return inputs, targets


def _check_series(series) -> np.ndarray:
    values = float_array(series, "series")
    if values.ndim not in (1, 2):
        raise ValueError(
            f"series: expected a 1-D (T,) or 2-D (T, F) array, got shape {values.shape}"
        )
    if values.ndim == 2 and values.shape[1] == 0:
        raise ValueError(f"series: expected at least one feature column, got shape {values.shape}")
    check_finite(values, "series")
    return values
