"""The ``rnnkit`` command line. Commands live in :mod:`rnnkit.apps`; this module only wires them.

Each run writes ``runs/<timestamp>-<command>/`` with ``config.toml``, ``metrics.json``, the model
and PNG plots. User errors print one line and exit with code 2.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

from rnnkit.apps._common import (
    UserError,
    console,
    make_run_dir,
    parse_with_config,
    positive_int,
    save_config,
    save_metrics,
)

COMMANDS = ("forecast", "classify", "tag", "generate", "compare", "explain", "translate")
RUN_DIR_VARIABLE = "RNNKIT_RUN_DIR"  # the run directory an --nproc launch made for its ranks


def _available_commands():
    modules = {}
    for name in COMMANDS:
        try:
            modules[name] = importlib.import_module(f"rnnkit.apps.{name}")
        except ModuleNotFoundError as error:
            if error.name != f"rnnkit.apps.{name}":
                raise
    return modules


def build_parser(modules) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rnnkit", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in modules.items():
        sub = subparsers.add_parser(name, help=module.HELP, description=module.HELP)
        sub.add_argument("--config", metavar="FILE.toml",
                         help="read defaults from a TOML file whose keys are this command's flags")
        sub.add_argument("--runs-dir", default="runs", help="where run directories are created")
        sub.add_argument("--nproc", type=positive_int, default=1, metavar="N",
                         help="train data-parallel in N processes on this machine "
                              "(torch.distributed; docs/distributed.md)")
        module.add_arguments(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--"]:  # how _launch hands the command over torch.distributed.run's options
        argv = argv[1:]
    modules = _available_commands()
    parser = build_parser(modules)
    if not argv or argv[0] not in modules:
        parser.parse_args(argv)  # prints help/usage and exits for unknown commands
    command = argv[0]
    subparser = parser._subparsers._group_actions[0].choices[command]
    run_dir = None
    try:
        args = parse_with_config(subparser, argv[1:])
        args.command = command
        if args.nproc > 1 and _shared_run_dir() is None:
            return _launch(command, argv, args)
        if not _rank_zero():
            return _run_silently(modules[command], args)
        run_dir = _run_dir(command, args)
        metrics = modules[command].run(args, run_dir)
        save_metrics(metrics, run_dir)
    except UserError as error:
        if run_dir is not None:
            shutil.rmtree(run_dir, ignore_errors=True)
        if _rank_zero():
            print(f"rnnkit {command}: error: {error}", file=sys.stderr)
        return 2
    console.print(f"artifacts: {run_dir}")
    return 0


def _rank_zero() -> bool:
    """Rank 0 of a launch, or no launch: torchrun's RANK (read before importing torch)."""
    return os.environ.get("RANK", "0") == "0"


def _shared_run_dir() -> Path | None:
    """In a rank that ``--nproc`` launched: the run directory it made (config saved)."""
    shared = os.environ.get(RUN_DIR_VARIABLE)
    return Path(shared) if shared and "RANK" in os.environ else None


def _run_dir(command: str, args) -> Path:
    """The launch's shared run directory, else a new one with the config saved."""
    shared = _shared_run_dir()
    if shared is not None:
        return shared
    run_dir = make_run_dir(command, args.runs_dir)
    save_config(args, run_dir)
    return run_dir


def _launch(command: str, argv: list[str], args) -> int:
    """``--nproc N``: run the command in N ranks through torch.distributed.run; its exit code.

    The run directory and its config are made here, once; rank 0 writes everything else.
    """
    from rnnkit.training import distributed

    if distributed.launched():
        raise UserError(f"--nproc: this process was launched as one of {distributed.world_size()} "
                        "ranks already (torchrun); drop --nproc or the launcher")
    run_dir = make_run_dir(command, args.runs_dir)
    save_config(args, run_dir)
    flags = [arg for previous, arg in zip(argv, argv[1:])
             if "--nproc" not in (arg, previous) and not arg.startswith("--nproc=")]
    return distributed.launch(args.nproc, ["-m", "rnnkit.cli", "--", command, *flags],
                              env={RUN_DIR_VARIABLE: str(run_dir)})


def _run_silently(module, args) -> int:
    """A rank other than 0: the same training, printing nothing, its files in a scratch dir."""
    console.quiet = True
    with (tempfile.TemporaryDirectory(prefix="rnnkit-rank-") as scratch,
          open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull)):
        module.run(args, Path(scratch))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
