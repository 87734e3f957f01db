"""Forecast accuracy measures and the naive baselines they are judged against.

All functions take arrays of equal shape ``(N,)`` or ``(N, horizon)``.

- ``smape`` is the symmetric MAPE in percent, ``200 * mean(|y - ŷ| / (|y| + |ŷ|))`` (0 where both
  are 0).
- ``mase`` scales the MAE by the in-sample MAE of the seasonal-naive forecast on the *training*
  series (Hyndman & Koehler 2006): a value below 1 beats that baseline's in-sample error.

Example:
    >>> mase([3.0, 4.0], [3.5, 4.0], train=[1.0, 2.0, 3.0], season=1)
    0.25
"""

from __future__ import annotations

import numpy as np


def _pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_pred: expected the shape of y_true {y_true.shape}, "
                         f"got {y_pred.shape}")
    if y_true.size == 0:
        raise ValueError("y_true: expected at least one value, got an empty array")
    return y_true, y_pred


def rmse(y_true, y_pred) -> float:
    y_true, y_pred = _pair(y_true, y_pred)
    return float(np.sqrt(np.mean((y_true - y_pred) ** 2)))


def mae(y_true, y_pred) -> float:
    y_true, y_pred = _pair(y_true, y_pred)
    return float(np.mean(np.abs(y_true - y_pred)))


def smape(y_true, y_pred) -> float:
    y_true, y_pred = _pair(y_true, y_pred)
    denominator = np.abs(y_true) + np.abs(y_pred)
    ratio = np.divide(np.abs(y_true - y_pred), denominator,
                      out=np.zeros_like(denominator), where=denominator > 0)
    return float(200.0 * np.mean(ratio))


def seasonal_scale(train, season: int) -> float:
    """In-sample MAE of the seasonal-naive forecast ``y_t = y_{t-season}`` on ``train``."""
    train = np.asarray(train, dtype=np.float64).reshape(-1)
    if season < 1 or len(train) <= season:
        raise ValueError(f"season: expected an integer in [1, len(train)={len(train)}), "
                         f"got {season}")
    scale = float(np.mean(np.abs(train[season:] - train[:-season])))
    if scale == 0.0:
        raise ValueError("train: the seasonal-naive in-sample error is 0 (a constant or "
                         "perfectly periodic series); MASE is undefined")
    return scale


def mase(y_true, y_pred, train, season: int = 1) -> float:
    return mae(y_true, y_pred) / seasonal_scale(train, season)


def naive_forecast(history, origins, horizon: int) -> np.ndarray:
    """Repeat the last value before each origin: ``(len(origins), horizon)``."""
    history = np.asarray(history, dtype=np.float64).reshape(-1)
    return np.repeat(history[np.asarray(origins) - 1][:, None], horizon, axis=1)


def seasonal_naive_forecast(history, origins, horizon: int, season: int) -> np.ndarray:
    """``ŷ_{o+h} = y_{o+h-season·k}`` with the smallest k >= 1 that lies before the origin ``o``."""
    history = np.asarray(history, dtype=np.float64).reshape(-1)
    origins = np.asarray(origins)
    if origins.min() < season:
        raise ValueError(f"origins: expected every origin >= season ({season}), "
                         f"got {origins.min()}")
    steps = np.arange(horizon)
    lags = season * (steps // season + 1)  # (horizon,)
    return history[origins[:, None] + steps[None, :] - lags[None, :]]


def forecast_report(y_true, y_pred, train, season: int) -> dict[str, float]:
    """``{"rmse", "mae", "smape", "mase"}`` for one forecast."""
    return {"rmse": rmse(y_true, y_pred), "mae": mae(y_true, y_pred),
            "smape": smape(y_true, y_pred), "mase": mase(y_true, y_pred, train, season)}
