"""Univariate forecasting with recurrent networks: the pipeline behind ``rnnkit forecast``.

The series is split in time order into train | validation | test. The scaler is fit on the
training part only. Each sample is a window of ``window`` past values; with ``target="delta"``
(the default) inputs and targets are taken relative to the window's last value, so the network
learns changes and a trending series does not leave the range it was trained on.

Multi-step forecasts come two ways: ``direct`` (the network outputs all ``horizon`` steps) or
``recursive`` (a one-step network fed its own predictions). The test part is forecast from every
origin (rolling origin) and judged against naive and seasonal-naive forecasts from the same
origins, with MASE scaled by the seasonal-naive in-sample error on the training part.

Example:
    >>> config = ForecastConfig(window=24, horizon=12, epochs=30)        # doctest: +SKIP
    >>> result = run_forecast(series_values, config, season=12)           # doctest: +SKIP
    >>> result.metrics["mase"]                                             # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from rnnkit import evaluation
from rnnkit.data import get_scaler, time_split

CELLS = ("lstm", "gru", "rnn")
STRATEGIES = ("direct", "recursive")


@dataclass
class ForecastConfig:
    """Hyperparameters of a forecast run; the CLI's flags have the same names."""

    cell: str = "lstm"
    layers: int = 1
    units: int = 64
    bidirectional: bool = False
    window: int = 24
    horizon: int = 12
    strategy: str = "direct"
    target: str = "delta"
    scaler: str = "standard"
    epochs: int = 60
    batch_size: int = 32
    learning_rate: float = 3e-3
    patience: int = 10
    dropout: float = 0.0
    val_fraction: float = 0.15
    test_fraction: float = 0.15

    def __post_init__(self) -> None:
        for name, choices in (("cell", CELLS), ("strategy", STRATEGIES),
                              ("target", ("delta", "level"))):
            if getattr(self, name) not in choices:
                raise ValueError(f"{name}: expected one of {choices}, got {getattr(self, name)!r}")


@dataclass
class ForecastResult:
    metrics: dict
    baselines: dict
    y_true: np.ndarray  # (N, horizon), original units
    y_pred: np.ndarray  # (N, horizon)
    origins: np.ndarray  # (N,) index of the first forecast step of each test sample
    history: object
    model: object
    scaler: object
    split: object
    config: dict = field(default_factory=dict)


def window_origins(start: int, stop: int, window: int, horizon: int) -> np.ndarray:
    """Origins ``o`` whose targets ``[o, o+horizon)`` lie in ``[start, stop)`` and inputs exist."""
    return np.arange(max(start, window), stop - horizon + 1)


def _samples(scaled: np.ndarray, origins: np.ndarray, window: int, horizon: int, delta: bool):
    inputs = np.stack([scaled[o - window:o] for o in origins])  # (N, window)
    targets = np.stack([scaled[o:o + horizon] for o in origins])  # (N, horizon)
    anchor = inputs[:, -1:] if delta else np.zeros((len(origins), 1))
    return (inputs - anchor)[:, :, None].astype(np.float32), (targets - anchor).astype(np.float32)


def build_model(config: ForecastConfig):
    """``[recurrent layers] -> Dense(horizon or 1)`` as a Keras-face Sequential."""
    from rnnkit.layers import GRU, LSTM, Bidirectional, Dense, SimpleRNN
    from rnnkit.models import Sequential
    from rnnkit.optimizers import Adam

    layer_class = {"lstm": LSTM, "gru": GRU, "rnn": SimpleRNN}[config.cell]
    model = Sequential(name=f"{config.cell}_forecaster")
    for index in range(config.layers):
        last = index == config.layers - 1
        layer = layer_class(config.units, return_sequences=not last, dropout=config.dropout)
        if config.bidirectional:
            layer = Bidirectional(layer)
        model.add(layer)
    model.add(Dense(config.horizon if config.strategy == "direct" else 1))
    model.build_from_batch(np.zeros((1, config.window, 1), np.float32))
    model.compile(optimizer=Adam(learning_rate=config.learning_rate), loss="mse", metrics=["mae"])
    return model


def predict_scaled(model, windows: np.ndarray, config: ForecastConfig) -> np.ndarray:
    """Forecast ``horizon`` scaled levels from scaled windows, ``(N, window) -> (N, horizon)``."""
    delta = config.target == "delta"
    if config.strategy == "direct":
        anchor = windows[:, -1:] if delta else 0.0
        inputs = (windows - anchor)[:, :, None].astype(np.float32)
        return model.predict(inputs, verbose=0, batch_size=256) + anchor
    history = windows.copy()
    steps = []
    for _ in range(config.horizon):
        anchor = history[:, -1:] if delta else 0.0
        inputs = (history - anchor)[:, :, None].astype(np.float32)
        step = model.predict(inputs, verbose=0, batch_size=256)[:, :1] + anchor
        steps.append(step)
        history = np.concatenate([history[:, 1:], step], axis=1)
    return np.concatenate(steps, axis=1)


def run_forecast(values, config: ForecastConfig, season: int = 1, verbose: int = 1,
                 callbacks=None) -> ForecastResult:
    """Train on the training part, select on validation, and evaluate on the test part."""
    from rnnkit.callbacks import EarlyStopping

    values = np.asarray(values, dtype=np.float64).reshape(-1)
    split = time_split(len(values), config.val_fraction, config.test_fraction)
    _check_length(split, config, season)
    scaler = get_scaler(config.scaler)
    scaler.fit(values[split.train][:, None])
    scaled = scaler.transform(values[:, None])[:, 0]
    delta, out = config.target == "delta", config.horizon if config.strategy == "direct" else 1
    parts = {}
    for name, part in (("train", split.train), ("val", split.val)):
        origins = window_origins(part.start, part.stop, config.window, out)
        parts[name] = _samples(scaled, origins, config.window, out, delta)
    model = build_model(config)
    stop = EarlyStopping(monitor="val_loss", patience=config.patience, restore_best_weights=True)
    history = model.fit(*parts["train"], validation_data=parts["val"], epochs=config.epochs,
                        batch_size=config.batch_size, verbose=verbose,
                        callbacks=[stop, *(callbacks or [])])
    origins = window_origins(split.test.start, split.test.stop, config.window, config.horizon)
    windows = np.stack([scaled[o - config.window:o] for o in origins])
    y_pred = scaler.inverse_transform(
        predict_scaled(model, windows, config).reshape(-1, 1)).reshape(len(origins), -1)
    y_true = np.stack([values[o:o + config.horizon] for o in origins])
    train = values[split.train]
    metrics = evaluation.forecast_report(y_true, y_pred, train, season)
    baselines = {
        "naive": evaluation.forecast_report(
            y_true, evaluation.naive_forecast(values, origins, config.horizon), train, season),
        "seasonal_naive": evaluation.forecast_report(
            y_true, evaluation.seasonal_naive_forecast(values, origins, config.horizon, season),
            train, season),
    }
    return ForecastResult(metrics, baselines, y_true, y_pred, origins, history, model, scaler,
                          split, asdict(config))


def _check_length(split, config: ForecastConfig, season: int) -> None:
    need = config.window + config.horizon
    for name in ("train", "val", "test"):
        size = len(getattr(split, name))
        if name == "train" and size < need + 1:
            raise ValueError(f"series: the training part has {size} steps, fewer than window + "
                             f"horizon + 1 = {need + 1}; use a longer series or a smaller window")
        if name != "train" and size < config.horizon:
            raise ValueError(f"series: the {name} part has {size} steps, fewer than the horizon "
                             f"({config.horizon}); use a longer series or a smaller horizon")
    if split.test.start < max(season, config.window):
        raise ValueError(f"series: too short for a season of {season} before the test part")


def read_csv_series(path, column: str, time_column: str | None = None) -> np.ndarray:
    """One numeric column of a CSV file as ``(T,)`` float64, sorted by ``time_column`` if given.

    Raises ``ValueError`` naming the missing column (and the available ones), or the first row
    whose value is not a number.
    """
    import pandas as pd

    try:
        frame = pd.read_csv(path)
    except FileNotFoundError:
        raise ValueError(f"--csv: no such file {str(path)!r}") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise ValueError(f"--csv: {path} is not a readable CSV file ({error})") from None
    for name in (column, time_column):
        if name is not None and name not in frame.columns:
            raise ValueError(f"--column: no column {name!r} in {path}; "
                             f"columns are {list(map(str, frame.columns))}")
    if time_column is not None:
        frame = frame.assign(**{time_column: pd.to_datetime(frame[time_column], errors="coerce")})
        if frame[time_column].isna().any():
            row = int(frame[time_column].isna().to_numpy().argmax())
            raise ValueError(f"--time-column: row {row + 2} of {path} has no readable time in "
                             f"column {time_column!r}")
        frame = frame.sort_values(time_column, kind="stable")
    values = pd.to_numeric(frame[column], errors="coerce")
    bad = values.isna().to_numpy() | ~np.isfinite(values.to_numpy(dtype=float, na_value=np.nan))
    if bad.any():
        position = int(bad.argmax())
        raise ValueError(f"--column: row {position + 2} of {path} has a non-numeric value "
                         f"{frame[column].iloc[position]!r} in column {column!r}")
    return values.to_numpy(dtype=np.float64)
