"""``rnnkit generate``: train a character-level model and sample text from it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from rnnkit.apps._common import (
    UserError,
    add_training_arguments,
    console,
    positive_int,
    results_table,
)

NAME = "generate"
HELP = (
    "Train a character-level LSTM/GRU/SimpleRNN on text (default: a slice of the Shakespeare "
    "corpus), report validation perplexity and sample text; or continue --prime with a "
    "saved --model."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from rnnkit.tasks.generation import CELLS, GeneratorConfig

    defaults = GeneratorConfig()
    data = parser.add_argument_group("data")
    data.add_argument(
        "--dataset",
        default="shakespeare",
        help="'shakespeare' or 'shakespeare/<work>', e.g. shakespeare/hamlet",
    )
    data.add_argument("--text-file", type=Path, help="train on a UTF-8 text file instead")
    data.add_argument("--start", type=int, default=0, help="first character of the slice")
    data.add_argument(
        "--max-chars",
        type=positive_int,
        default=300_000,
        help="length of the slice of the text to use (default: 300000)",
    )
    model = parser.add_argument_group("model")
    model.add_argument("--cell", choices=CELLS, default=defaults.cell)
    model.add_argument("--layers", type=positive_int, default=defaults.layers)
    model.add_argument("--units", type=positive_int, default=defaults.units)
    model.add_argument("--embedding-dim", type=positive_int, default=defaults.embedding_dim)
    model.add_argument("--dropout", type=float, default=defaults.dropout)
    training = parser.add_argument_group("training")
    training.add_argument(
        "--sequence-length",
        type=positive_int,
        default=defaults.sequence_length,
        help="characters per training window (and context when sampling)",
    )
    add_training_arguments(training, defaults, fractions=("val",))
    sampling = parser.add_argument_group("sampling")
    sampling.add_argument(
        "--model",
        type=Path,
        help="skip training: sample from a saved model (a generate run "
        "directory or its model.rnnkit, with vocabulary.json beside it)",
    )
    sampling.add_argument("--prime", default="ROMEO.\n", help="text the sample continues")
    sampling.add_argument("--length", type=positive_int, default=400, help="characters to generate")
    sampling.add_argument(
        "--temperature",
        type=float,
        default=0.8,
        help="below 1: safer, more repetitive text; above 1: more surprising",
    )


def _load_text(args) -> tuple[str, str]:
    from rnnkit.data import DatasetNotInstalledError, load_corpus

    try:
        if args.text_file is not None:
            text, source = args.text_file.read_text(encoding="utf-8"), str(args.text_file)
        else:
            text, source = load_corpus(args.dataset), args.dataset
    except FileNotFoundError:
        raise UserError(f"--text-file: no such file {str(args.text_file)!r}") from None
    except UnicodeDecodeError:
        raise UserError(f"--text-file: {args.text_file} is not UTF-8 text") from None
    except DatasetNotInstalledError as error:
        raise UserError(str(error)) from None
    except ValueError as error:
        raise UserError(f"--dataset: {error}") from None
    if not text.strip():
        raise UserError(f"--text-file: {source} holds no text")
    if args.start < 0 or args.start >= max(len(text), 1):
        raise UserError(
            f"--start: expected a position in [0, {len(text)}) of {source}, got {args.start}"
        )
    text = text[args.start : args.start + args.max_chars]
    return text, f"{source}[{args.start}:{args.start + len(text)}]"


def run(args, run_dir: Path) -> dict:
    from rnnkit.utils import set_random_seed

    if args.temperature <= 0:
        raise UserError(f"--temperature: expected a positive number, got {args.temperature}")
    if not args.prime:
        raise UserError("--prime: expected at least one character, got ''")
    set_random_seed(args.seed)
    if args.model is not None:
        return _sample_saved(args, run_dir)
    return _train(args, run_dir)


def _train(args, run_dir: Path) -> dict:
    from rnnkit import plot
    from rnnkit.tasks.generation import GeneratorConfig, run_generation, save_generator

    text, source = _load_text(args)
    try:
        config = GeneratorConfig(
            **{k: getattr(args, k) for k in GeneratorConfig.__dataclass_fields__}
        )
        console.print(
            f"[bold]{source}[/]: {len(text)} characters; {config.cell.upper()} "
            f"x{config.layers} ({config.units} units), windows of "
            f"{config.sequence_length} characters"
        )
        result = run_generation(text, config, verbose=1 if sys.stdout.isatty() else 2)
    except ValueError as error:
        raise UserError(str(error)) from None
    save_generator(result.model, result.vocabulary, result.sequence_length, run_dir)
    plot.history(result.history, path=run_dir / "history.png")
    sample = _write_sample(args, run_dir, result.model, result.vocabulary, result.sequence_length)
    metrics = result.metrics
    console.print(
        results_table(
            f"Validation: {metrics['val_chars']} characters",
            ["model", "perplexity", "cross-entropy (nats/char)"],
            [
                [config.cell.upper(), metrics["val_perplexity"], metrics["val_cross_entropy"]],
                [
                    "character frequencies (unigram)",
                    metrics["unigram_perplexity"],
                    float(np.log(metrics["unigram_perplexity"])),
                ],
            ],
        )
    )
    return {
        **metrics,
        "epochs_trained": len(result.history.epoch),
        "temperature": args.temperature,
        "sample_chars": len(sample),
    }


def _sample_saved(args, run_dir: Path) -> dict:
    from rnnkit.tasks.generation import load_generator

    try:
        model, vocabulary, sequence_length = load_generator(args.model)
    except ValueError as error:
        raise UserError(str(error)) from None
    sample = _write_sample(args, run_dir, model, vocabulary, sequence_length)
    return {
        "model": str(args.model),
        "temperature": args.temperature,
        "prime_chars": len(args.prime),
        "sample_chars": len(sample),
    }


def _write_sample(args, run_dir: Path, model, vocabulary, sequence_length: int) -> str:
    from rnnkit.tasks.generation import sample_text

    rng = np.random.default_rng(args.seed)
    sample = sample_text(
        model, vocabulary, args.prime, args.length, args.temperature, rng, sequence_length
    )
    (run_dir / "sample.txt").write_text(sample, encoding="utf-8")
    console.print(f"[bold]sample[/] (temperature {args.temperature}):")
    console.print(sample, markup=False, highlight=False)
    return sample
