"""``rnnkit forecast``: train a recurrent forecaster on a real series and judge it honestly."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from rnnkit.apps._common import (
    UserError,
    add_training_arguments,
    console,
    positive_int,
    results_table,
)

NAME = "forecast"
HELP = ("Forecast a univariate time series with an LSTM, GRU or SimpleRNN and compare it with "
        "naive and seasonal-naive baselines (default: monthly Mauna Loa CO2).")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from rnnkit.data import list_datasets
    from rnnkit.forecasting import CELLS, STRATEGIES, ForecastConfig

    defaults = ForecastConfig()
    data = parser.add_argument_group("data")
    data.add_argument("--dataset", default="co2", choices=list_datasets("series"),
                      help="a series shipped in a package (default: co2)")
    data.add_argument("--csv", type=Path, help="read the series from a CSV file instead")
    data.add_argument("--column", help="the CSV column holding the values")
    data.add_argument("--time-column", help="the CSV column holding times (rows are sorted by it)")
    data.add_argument("--season", type=positive_int,
                      help="season length for the seasonal-naive baseline and MASE (default: the "
                           "dataset's, or 1 for a CSV)")
    model = parser.add_argument_group("model")
    model.add_argument("--cell", choices=CELLS, default=defaults.cell)
    model.add_argument("--layers", type=positive_int, default=defaults.layers)
    model.add_argument("--units", type=positive_int, default=defaults.units)
    model.add_argument("--bidirectional", action="store_true")
    model.add_argument("--dropout", type=float, default=defaults.dropout)
    task = parser.add_argument_group("task and training")
    task.add_argument("--window", type=positive_int, default=defaults.window)
    task.add_argument("--horizon", type=positive_int, default=defaults.horizon)
    task.add_argument("--strategy", choices=STRATEGIES, default=defaults.strategy,
                      help="direct: one network outputs every step; recursive: a one-step "
                           "network fed its own forecasts")
    task.add_argument("--target", choices=("delta", "level"), default=defaults.target)
    task.add_argument("--scaler", choices=("minmax", "standard"), default=defaults.scaler)
    add_training_arguments(task, defaults)


def _load(args) -> tuple[np.ndarray, int, str]:
    from rnnkit.data import dataset_info, load_series
    from rnnkit.forecasting import read_csv_series

    if args.csv is not None:
        if not args.column:
            raise UserError("--column: required with --csv (the column holding the values)")
        try:
            values = read_csv_series(args.csv, args.column, args.time_column)
        except ValueError as error:
            raise UserError(str(error)) from None
        return values, args.season or 1, f"{args.csv}:{args.column}"
    info = dataset_info(args.dataset)
    season = args.season or getattr(info, "seasonal_period", None) or 1
    return load_series(args.dataset).to_numpy(), season, args.dataset


def run(args, run_dir: Path) -> dict:
    from rnnkit import plot
    from rnnkit.forecasting import ForecastConfig, run_forecast
    from rnnkit.utils import set_random_seed

    values, season, source = _load(args)
    config = ForecastConfig(**{k: getattr(args, k) for k in ForecastConfig.__dataclass_fields__})
    set_random_seed(args.seed)
    console.print(f"[bold]{source}[/]: {len(values)} steps, season {season}; "
                  f"{config.cell.upper()} x{config.layers} ({config.units} units), window "
                  f"{config.window}, horizon {config.horizon} ({config.strategy})")
    try:
        result = run_forecast(values, config, season=season)
    except ValueError as error:
        raise UserError(str(error)) from None
    result.model.save(run_dir / "model")
    plot.history(result.history, path=run_dir / "history.png", log_scale=True)
    _plot_forecast(values, result, run_dir / "forecast.png")
    rows = [[config.cell.upper(), *result.metrics.values()]]
    rows += [[name.replace("_", "-"), *m.values()] for name, m in result.baselines.items()]
    console.print(results_table(f"Test forecasts from {len(result.origins)} origins, "
                                f"{config.horizon} steps each", ["model", "RMSE", "MAE",
                                                                  "sMAPE %", "MASE"], rows))
    return {**result.metrics, "baselines": result.baselines, "season": season,
            "test_origins": len(result.origins), "epochs_trained": len(result.history.epoch)}


def _plot_forecast(values, result, path) -> None:
    from rnnkit import plot

    split = result.split
    one_step = result.y_pred[:, 0]
    plot.predictions(values[: result.origins[-1] + 1], one_step, path=path,
                     title="Test forecasts (first step from each origin) against the series",
                     split_at={"validation": split.val.start, "test": split.test.start})
