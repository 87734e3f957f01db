"""``rnnkit classify``: many-to-one text classification, judged against a TF-IDF baseline."""

from __future__ import annotations

import argparse
import json
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

NAME = "classify"
HELP = (
    "Classify texts with an Embedding + LSTM/GRU/SimpleRNN network and compare it with a "
    "TF-IDF + logistic-regression baseline (default: the tweet_sentiment data set)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from rnnkit.data import list_datasets
    from rnnkit.tasks.text_classification import CELLS, ClassifierConfig

    defaults = ClassifierConfig()
    data = parser.add_argument_group("data")
    data.add_argument(
        "--dataset",
        default="tweet_sentiment",
        choices=list_datasets("text_classification"),
        help="a labelled text set shipped in a package (default: tweet_sentiment)",
    )
    data.add_argument("--csv", type=Path, help="read texts and labels from a CSV file instead")
    data.add_argument("--text-column", default="text", help="the CSV column holding the texts")
    data.add_argument("--label-column", default="label", help="the CSV column holding the labels")
    data.add_argument("--limit", type=positive_int, help=argparse.SUPPRESS)
    model = parser.add_argument_group("model")
    model.add_argument("--cell", choices=CELLS, default=defaults.cell)
    model.add_argument("--bidirectional", action="store_true")
    model.add_argument("--units", type=positive_int, default=defaults.units)
    model.add_argument("--embedding-dim", type=positive_int, default=defaults.embedding_dim)
    model.add_argument(
        "--vocab-size",
        type=positive_int,
        default=defaults.vocab_size,
        help="keep at most this many word ids (padding and OOV included)",
    )
    model.add_argument(
        "--min-count",
        type=positive_int,
        default=defaults.min_count,
        help="rarer training words become the OOV token",
    )
    model.add_argument(
        "--max-length", type=positive_int, default=defaults.max_length, help="words kept per text"
    )
    model.add_argument(
        "--dropout",
        type=float,
        default=defaults.dropout,
        help="dropout on the recurrent layer's output",
    )
    model.add_argument(
        "--spatial-dropout",
        type=float,
        default=defaults.spatial_dropout,
        help="dropout of whole embedding channels",
    )
    training = parser.add_argument_group("training")
    add_training_arguments(
        training, defaults, patience_help="epochs without a better validation loss before stopping"
    )
    training.add_argument(
        "--stratify",
        action=argparse.BooleanOptionalAction,
        default=defaults.stratify,
        help="keep class proportions in each part",
    )


def _load(args) -> tuple[list[str], list[str], str]:
    from rnnkit.data import DatasetNotInstalledError, load_text_classification
    from rnnkit.tasks._common import subsample
    from rnnkit.tasks.text_classification import read_csv_texts

    try:
        if args.csv is not None:
            texts, labels = read_csv_texts(args.csv, args.text_column, args.label_column)
            source = f"{args.csv}:{args.text_column}->{args.label_column}"
        else:
            frame = load_text_classification(args.dataset)
            texts, labels, source = frame["text"].tolist(), frame["label"].tolist(), args.dataset
    except (ValueError, DatasetNotInstalledError) as error:
        raise UserError(str(error)) from None
    keep = subsample(len(texts), args.limit, args.seed)
    return [texts[i] for i in keep], [labels[i] for i in keep], source


def run(args, run_dir: Path) -> dict:
    from rnnkit import plot
    from rnnkit.tasks.text_classification import ClassifierConfig, run_classification
    from rnnkit.utils import set_random_seed

    texts, labels, source = _load(args)
    try:
        config = ClassifierConfig(
            **{k: getattr(args, k) for k in ClassifierConfig.__dataclass_fields__}
        )
        set_random_seed(args.seed)
        console.print(
            f"[bold]{source}[/]: {len(texts)} texts, {len(set(labels))} classes; "
            f"{'bidirectional ' if config.bidirectional else ''}{config.cell.upper()} "
            f"({config.units} units), up to {config.max_length} words per text"
        )
        result = run_classification(
            texts, labels, config, seed=args.seed, verbose=1 if sys.stdout.isatty() else 2
        )
    except ValueError as error:
        raise UserError(str(error)) from None
    result.model.save(run_dir / "model.rnnkit")
    (run_dir / "tokenizer.json").write_text(_tokenizer_json(result), encoding="utf-8")
    plot.history(result.history, path=run_dir / "history.png")
    name = f"{'Bi' if config.bidirectional else ''}{config.cell.upper()}"
    _plot_confusions(result, run_dir / "confusion.png", name)
    rows = [
        [name, *result.metrics.values()],
        ["TF-IDF + logistic regression", *result.baseline.values()],
    ]
    console.print(
        results_table(
            f"Test set: {len(result.y_true)} texts", ["model", "accuracy", "macro-F1"], rows
        )
    )
    return {
        **result.metrics,
        **{f"baseline_{name}": value for name, value in result.baseline.items()},
        "classes": result.classes,
        "split": result.split.sizes(),
        "epochs_trained": len(result.history.epoch),
        "confusion_matrix": result.confusion(result.y_pred).tolist(),
        "baseline_confusion_matrix": result.confusion(result.baseline_pred).tolist(),
    }


def _tokenizer_json(result) -> str:
    return json.dumps(
        {
            "tokenizer": result.tokenizer.to_config(),
            "classes": result.classes,
            "max_length": result.config["max_length"],
        }
    )


def _plot_confusions(result, path: Path, model_name: str) -> None:
    """The network's and the baseline's test confusion matrices, side by side, row-normalised."""
    import matplotlib.pyplot as plt

    from rnnkit.plot._figure import save

    size = len(result.classes)
    figure, axes = plt.subplots(1, 2, figsize=(4.0 + 1.6 * size, 1.5 + 0.8 * size))
    for axis, name, predictions in (
        (axes[0], model_name, result.y_pred),
        (axes[1], "TF-IDF + LR", result.baseline_pred),
    ):
        counts = result.confusion(predictions)
        shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
        axis.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
        for row in range(size):
            for column in range(size):
                axis.text(
                    column,
                    row,
                    str(counts[row, column]),
                    ha="center",
                    va="center",
                    color="white" if shares[row, column] > 0.5 else "black",
                )
        axis.set_xticks(range(size), result.classes, rotation=45, ha="right")
        axis.set_yticks(range(size), result.classes)
        axis.set_xlabel("predicted")
        axis.set_ylabel("true")
        accuracy = float(np.mean(predictions == result.y_true))
        axis.set_title(f"{name}: accuracy {accuracy:.3f}")
    save(figure, path)
