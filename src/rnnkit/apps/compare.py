"""``rnnkit compare``: SimpleRNN, LSTM and GRU on the same task, data and budget."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rnnkit.apps._common import UserError, console, positive_int, results_table

NAME = "compare"
HELP = (
    "Train SimpleRNN, LSTM and GRU on the same task, data and budget and compare parameters, "
    "training time and best validation metric (default: seed 001's XOR long-term "
    "dependency task)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from rnnkit.tasks.comparison import CELLS, TASKS, CompareConfig

    defaults = CompareConfig()
    task = parser.add_argument_group("task")
    task.add_argument(
        "--task",
        choices=TASKS,
        default=defaults.task,
        help="xor: XOR of the first two of many steps; sine: next value of a "
        "noisy sine; forecast: next monthly change of CO2",
    )
    task.add_argument(
        "--samples",
        type=positive_int,
        default=defaults.samples,
        help="sequences (xor) or series points (sine); ignored by forecast",
    )
    task.add_argument(
        "--sequence-length",
        type=positive_int,
        default=defaults.sequence_length,
        help="steps per sequence (xor) or input window (sine, forecast)",
    )
    model = parser.add_argument_group("models and budget")
    model.add_argument("--cells", nargs="+", choices=CELLS, default=list(defaults.cells))
    model.add_argument("--bidirectional", action="store_true")
    model.add_argument("--units", type=positive_int, default=defaults.units)
    model.add_argument("--epochs", type=positive_int, default=defaults.epochs)
    model.add_argument("--batch-size", type=positive_int, default=defaults.batch_size)
    model.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
    model.add_argument("--seed", type=int, default=0)


def run(args, run_dir: Path) -> dict:
    from rnnkit import plot
    from rnnkit.data import DatasetNotInstalledError
    from rnnkit.tasks.comparison import CELL_NAMES, CompareConfig, run_comparison

    try:
        config = CompareConfig(**{k: getattr(args, k) for k in CompareConfig.__dataclass_fields__})
        console.print(
            f"[bold]{config.task}[/] task: {', '.join(CELL_NAMES[c] for c in config.cells)}"
            f"{' (bidirectional)' if config.bidirectional else ''}, {config.units} "
            f"units, {config.epochs} epochs each"
        )
        result = run_comparison(config, seed=args.seed, verbose=1 if sys.stdout.isatty() else 2)
    except (ValueError, DatasetNotInstalledError) as error:
        raise UserError(str(error)) from None
    for cell, model in result.models.items():
        model.save(run_dir / f"{cell}.rnnkit")
    curve = "accuracy" if result.metric == "val_accuracy" else "loss"
    plot.history(
        result.histories,
        metric=curve,
        path=run_dir / "curves.png",
        log_scale=curve == "loss",
        title=f"{config.task}: {curve} per epoch, same data and budget",
    )
    best = f"best {result.metric}"
    rows = [
        [
            CELL_NAMES[cell],
            row["parameters"],
            f"{row['train_seconds']:.1f}",
            row["best_val_metric"],
            row["best_epoch"],
        ]
        for cell, row in result.cells.items()
    ]
    console.print(
        results_table(
            f"{config.task}: {len(result.data.x_train)} training and "
            f"{len(result.data.x_val)} validation sequences",
            ["cell", "parameters", "train s", best, "at epoch"],
            rows,
        )
    )
    return {"task": config.task, "metric": result.metric, "cells": result.cells}
