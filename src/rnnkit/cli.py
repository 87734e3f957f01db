"""The ``rnnkit`` command line. Commands live in :mod:`rnnkit.apps`; this module only wires them.

Each run writes ``runs/<timestamp>-<command>/`` with ``config.toml``, ``metrics.json``, the model
and PNG plots. User errors print one line and exit with code 2.
"""

from __future__ import annotations

import argparse
import importlib
import shutil
import sys

from rnnkit.apps._common import UserError, console, make_run_dir, parse_with_config, save_config, \
    save_metrics

COMMANDS = ("forecast", "classify", "tag", "generate", "compare", "explain", "translate")


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
        module.add_arguments(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
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
        run_dir = make_run_dir(command, args.runs_dir)
        save_config(args, run_dir)
        metrics = modules[command].run(args, run_dir)
        save_metrics(metrics, run_dir)
    except UserError as error:
        if run_dir is not None:
            shutil.rmtree(run_dir, ignore_errors=True)
        print(f"rnnkit {command}: error: {error}", file=sys.stderr)
        return 2
    console.print(f"artifacts: {run_dir}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
