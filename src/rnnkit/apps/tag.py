"""``rnnkit tag``: named-entity tagging with a bidirectional recurrent network."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rnnkit.apps._common import (
    UserError,
    add_training_arguments,
    console,
    positive_int,
    results_table,
)

NAME = "tag"
HELP = (
    "Tag every token of a sentence (BiLSTM + TimeDistributed Dense) and report entity-level "
    "F1 and token accuracy (default: the wnut16 Twitter NER set)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from rnnkit.data import list_datasets
    from rnnkit.tasks.tagging import CELLS, TaggerConfig

    defaults = TaggerConfig()
    data = parser.add_argument_group("data")
    data.add_argument(
        "--dataset",
        default="wnut16",
        choices=list_datasets("tagging"),
        help="a tagged set shipped in a package (default: wnut16)",
    )
    data.add_argument(
        "--file",
        type=Path,
        help="read 'token<TAB>tag' lines instead, sentences separated by blank lines",
    )
    data.add_argument("--limit", type=positive_int, help=argparse.SUPPRESS)
    model = parser.add_argument_group("model")
    model.add_argument("--cell", choices=CELLS, default=defaults.cell)
    model.add_argument(
        "--bidirectional", action=argparse.BooleanOptionalAction, default=defaults.bidirectional
    )
    model.add_argument("--units", type=positive_int, default=defaults.units)
    model.add_argument("--embedding-dim", type=positive_int, default=defaults.embedding_dim)
    model.add_argument(
        "--min-count",
        type=positive_int,
        default=defaults.min_count,
        help="rarer training words become the unknown word",
    )
    model.add_argument(
        "--lowercase", action=argparse.BooleanOptionalAction, default=defaults.lowercase
    )
    model.add_argument(
        "--word-shapes",
        action=argparse.BooleanOptionalAction,
        default=defaults.word_shapes,
        help="also feed each word's shape (Xx, X, d, @, #, url...)",
    )
    model.add_argument(
        "--entity-weight",
        type=float,
        default=defaults.entity_weight,
        help="loss weight of entity tokens (O tokens weigh 1, padding 0)",
    )
    model.add_argument("--dropout", type=float, default=defaults.dropout)
    training = parser.add_argument_group("training")
    add_training_arguments(
        training, defaults,
        patience_help="epochs without a better validation entity F1 before stopping",
    )


def _load(args) -> tuple[list, list, str]:
    from rnnkit.data import DatasetNotInstalledError, load_tagging
    from rnnkit.tasks._common import subsample
    from rnnkit.tasks.tagging import read_conll

    try:
        if args.file is not None:
            tokens, tags = read_conll(args.file)
            source = str(args.file)
        else:
            data = load_tagging(args.dataset)["train"]
            tokens, tags, source = data.tokens, data.tags, args.dataset
    except (ValueError, DatasetNotInstalledError) as error:
        raise UserError(str(error)) from None
    keep = subsample(len(tokens), args.limit, args.seed)
    return [tokens[i] for i in keep], [tags[i] for i in keep], source


def run(args, run_dir: Path) -> dict:
    from rnnkit import plot
    from rnnkit.tasks.tagging import TaggerConfig, run_tagging
    from rnnkit.utils import set_random_seed

    tokens, tags, source = _load(args)
    try:
        config = TaggerConfig(**{k: getattr(args, k) for k in TaggerConfig.__dataclass_fields__})
        set_random_seed(args.seed)
        console.print(
            f"[bold]{source}[/]: {len(tokens)} sentences, "
            f"{sum(map(len, tokens))} tokens; "
            f"{'bidirectional ' if config.bidirectional else ''}{config.cell.upper()} "
            f"({config.units} units)"
        )
        result = run_tagging(
            tokens, tags, config, seed=args.seed, verbose=1 if sys.stdout.isatty() else 2
        )
    except ValueError as error:
        raise UserError(str(error)) from None
    result.model.save(run_dir / "model.rnnkit")
    vocabularies = {
        "words": result.words.to_config(),
        "tags": result.tags.to_config(),
        "shapes": result.shapes.to_config() if result.shapes else None,
        "lowercase": config.lowercase,
    }
    (run_dir / "vocabulary.json").write_text(json.dumps(vocabularies), encoding="utf-8")
    plot.history(result.history, path=run_dir / "history.png")
    plot.history(
        result.history,
        metric="entity_f1",
        path=run_dir / "entity_f1.png",
        title="entity-level F1 per epoch",
    )
    columns = ["model", "entity P", "entity R", "entity F1", "token acc."]
    keys = ("entity_precision", "entity_recall", "entity_f1", "token_accuracy")
    name = f"{'Bi' if config.bidirectional else ''}{config.cell.upper()}"
    rows = [
        [name, *(result.metrics[k] for k in keys)],
        ["most frequent tag per word", *(result.baseline[k] for k in keys)],
    ]
    console.print(results_table(f"Test set: {len(result.tags_true)} sentences", columns, rows))
    return {
        **result.metrics,
        "baseline": result.baseline,
        "split": result.split.sizes(),
        "epochs_trained": len(result.history.epoch),
    }
