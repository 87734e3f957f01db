"""What every command shares: TOML configs, the run directory, the results table, user errors.

A command is a module in ``rnnkit.apps`` with ``NAME``, ``HELP``, ``add_arguments(parser)`` and
``run(args, run_dir) -> dict`` (the metrics). :func:`rnnkit.cli.main` wires them together.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

import tomli_w
from rich.console import Console
from rich.table import Table


class UserError(Exception):
    """A problem with the user's input: reported in one line, exit code 2, no traceback."""


console = Console(stderr=False)


def load_config(path: str, parser: argparse.ArgumentParser) -> dict:
    """Read a TOML file whose keys are the command's flag names (dashes or underscores)."""
    try:
        with open(path, "rb") as handle:
            config = tomllib.load(handle)
    except FileNotFoundError:
        raise UserError(f"--config: no such file {path!r}") from None
    except tomllib.TOMLDecodeError as error:
        raise UserError(f"--config: {path} is not valid TOML ({error})") from None
    known = {action.dest for action in parser._actions}
    normalised = {key.replace("-", "_"): value for key, value in config.items()}
    unknown = sorted(set(normalised) - known - {"config"})
    if unknown:
        raise UserError(f"--config: unknown key(s) {unknown} in {path}; the keys are the "
                        f"command's flags: {sorted(known - {'help', 'config'})}")
    return normalised


def parse_with_config(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """Parse ``argv``; values from ``--config`` become defaults that explicit flags override."""
    args = parser.parse_args(argv)
    if getattr(args, "config", None):
        parser.set_defaults(**load_config(args.config, parser))
        args = parser.parse_args(argv)
    return args


def make_run_dir(command: str, root: str | os.PathLike = "runs") -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_dir = Path(root) / f"{stamp}-{command}"
    suffix = 1
    while run_dir.exists():
        suffix += 1
        run_dir = Path(root) / f"{stamp}-{command}-{suffix}"
    run_dir.mkdir(parents=True)
    return run_dir


def write_atomic(path: Path, text: str) -> None:
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(f.name, path)


def save_config(args: argparse.Namespace, run_dir: Path) -> None:
    values = {k: v for k, v in vars(args).items()
              if k not in ("config", "handler", "command") and v is not None}
    values = {k: (str(v) if isinstance(v, Path) else v) for k, v in values.items()}
    write_atomic(run_dir / "config.toml", tomli_w.dumps(values))


def save_metrics(metrics: dict, run_dir: Path) -> None:
    write_atomic(run_dir / "metrics.json", json.dumps(metrics, indent=2, default=float) + "\n")


def results_table(title: str, columns: list[str], rows: list[list]) -> Table:
    table = Table(title=title)
    for column in columns:
        table.add_column(column, justify="right" if column != columns[0] else "left")
    for row in rows:
        table.add_row(*[f"{v:.4f}" if isinstance(v, float) else str(v) for v in row])
    return table


def positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def fraction(text: str) -> float:
    value = float(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a fraction in (0, 1), got {text}")
    return value


def add_training_arguments(group, defaults, *, fractions=("val", "test"),
                           patience_help: str | None = None) -> None:
    """The training options every command shares, defaulting to a task config's values.

    ``--epochs``, ``--batch-size``, ``--learning-rate``, ``--patience`` (when the config has
    one), ``--val-fraction``/``--test-fraction`` for each of ``fractions``, and ``--seed``.
    """
    group.add_argument("--epochs", type=positive_int, default=defaults.epochs)
    group.add_argument("--batch-size", type=positive_int, default=defaults.batch_size)
    group.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
    if hasattr(defaults, "patience"):
        group.add_argument("--patience", type=positive_int, default=defaults.patience,
                           help=patience_help)
    for part in fractions:
        group.add_argument(f"--{part}-fraction", type=fraction,
                           default=getattr(defaults, f"{part}_fraction"))
    group.add_argument("--seed", type=int, default=0)
