"""``rnnkit translate``: train an encoder-decoder with attention, or translate with a saved one."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rnnkit.apps._common import (
    UserError,
    add_training_arguments,
    console,
    positive_int,
    results_table,
)

NAME = "translate"
HELP = ("Train a sequence-to-sequence model with attention (default: human-written dates to ISO "
        "dates; or --pairs FILE.tsv, --dataset bible_en_fr) and score greedy and beam decoding "
        "on held-out pairs; or translate SENTENCES with a saved --model.")

DATES = "dates"
# Per source: (pairs used, max tokens per side, token level) unless the flags say otherwise.
SOURCE_DEFAULTS = {DATES: (10_000, None, "char"), "pairs": (None, None, "word"),
                   "parallel": (5_000, 20, "word")}
EXAMPLES_SHOWN = 5


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from rnnkit.data import list_datasets
    from rnnkit.seq2seq.pipeline import CELLS, TOKEN_LEVELS, TranslateConfig

    defaults = TranslateConfig()
    data = parser.add_argument_group("data")
    data.add_argument("--dataset", choices=[DATES, *list_datasets("parallel")],
                      help="the synthetic dates task (default) or aligned Bible verses")
    data.add_argument("--pairs", type=Path, metavar="FILE",
                      help="train on a UTF-8 file of source<TAB>target lines instead")
    data.add_argument("--limit", type=positive_int,
                      help="pairs to use (default: 10000 dates; 5000 Bible verses; a whole "
                           "--pairs file)")
    data.add_argument("--max-length", type=positive_int,
                      help="drop pairs with more tokens on either side (default: 20 for the "
                           "Bible, no limit otherwise)")
    data.add_argument("--tokens", choices=TOKEN_LEVELS,
                      help="char, or lower-cased words and punctuation (default: char for dates, "
                           "word otherwise)")
    model = parser.add_argument_group("model")
    model.add_argument("--cell", choices=CELLS, default=defaults.cell)
    model.add_argument("--attention", choices=("bahdanau", "luong", "none"),
                       default=defaults.attention)
    model.add_argument("--bidirectional", action="store_true", help="a bidirectional encoder")
    model.add_argument("--units", type=positive_int, default=defaults.units)
    model.add_argument("--embedding-dim", type=positive_int, default=defaults.embedding_dim)
    training = parser.add_argument_group("training")
    add_training_arguments(training, defaults,
                           patience_help="stop after this many epochs without a lower validation "
                                         "loss; the best epoch's weights are kept")
    training.add_argument("--teacher-forcing", type=probability, default=defaults.teacher_forcing,
                          help="probability of feeding the gold token in the first epoch; below "
                               "1 the model's own previous output is fed otherwise (scheduled "
                               "sampling)")
    training.add_argument("--teacher-forcing-end", type=probability,
                          help="decay the probability linearly to this by the last epoch "
                               "(default: constant)")
    decoding = parser.add_argument_group("decoding")
    decoding.add_argument("--beam-size", type=positive_int, default=defaults.beam_size,
                          help="1: greedy decoding; the headline metrics use this decoder")
    decoding.add_argument("--model", type=Path,
                          help="skip training: translate SENTENCES with a saved model (a "
                               "translate run directory or its model.rnnkit)")
    decoding.add_argument("sentences", nargs="*", metavar="SENTENCE",
                          help="text to translate with --model")


def probability(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a probability in [0, 1], got {text}")
    return value


def run(args, run_dir: Path) -> dict:
    from rnnkit.utils import set_random_seed

    set_random_seed(args.seed)
    if args.model is not None:
        return _translate_saved(args, run_dir)
    if args.sentences:
        raise UserError(f"SENTENCE: translating {args.sentences[0]!r} needs a trained model; "
                        "give --model PATH (a translate run directory)")
    return _train(args, run_dir)


def _load_pairs(args) -> tuple[list[tuple[str, str]], str, str]:
    """The selected pairs, a description of their source, and the token level."""
    from rnnkit.data import DatasetNotInstalledError, load_parallel
    from rnnkit.seq2seq.dates import random_dates
    from rnnkit.seq2seq.pipeline import read_pairs, select_pairs

    if args.pairs is not None and args.dataset is not None:
        raise UserError("--pairs, --dataset: give one of them, not both")
    kind = "pairs" if args.pairs is not None else \
        DATES if args.dataset in (None, DATES) else "parallel"
    default_limit, default_max_length, default_tokens = SOURCE_DEFAULTS[kind]
    limit, tokens = args.limit or default_limit, args.tokens or default_tokens
    if kind == DATES:
        pairs, source = random_dates(limit, seed=args.seed), DATES
    elif kind == "pairs":
        try:
            pairs, source = read_pairs(args.pairs), str(args.pairs)
        except ValueError as error:
            raise UserError(f"--pairs: {error}") from None
    else:
        try:
            frame = load_parallel(args.dataset)
        except DatasetNotInstalledError as error:
            raise UserError(str(error)) from None
        pairs = list(zip(frame["source"], frame["target"], strict=True))
        source = args.dataset
    try:
        pairs = select_pairs(pairs, tokens, args.max_length or default_max_length, limit)
    except ValueError as error:
        raise UserError(f"--max-length: {str(error).removeprefix('max_length: ')}") from None
    return pairs, source, tokens


def _config(args, tokens: str):
    from rnnkit.seq2seq.pipeline import TranslateConfig

    values = {name: getattr(args, name) for name in TranslateConfig.__dataclass_fields__
              if hasattr(args, name)}
    values.update(attention=None if args.attention == "none" else args.attention, tokens=tokens)
    return TranslateConfig(**values)


def _train(args, run_dir: Path) -> dict:
    from rnnkit import plot
    from rnnkit.seq2seq.pipeline import run_translation, save_translator

    pairs, source, tokens = _load_pairs(args)
    config = _config(args, tokens)
    encoder = "bidirectional " if config.bidirectional else ""
    console.print(f"[bold]{source}[/]: {len(pairs)} pairs of {tokens} tokens; "
                  f"{config.cell.upper()} {encoder}encoder-decoder ({config.units} units), "
                  f"attention {config.attention or 'none'}")
    try:
        result = run_translation(pairs, config, seed=args.seed,
                                 verbose=1 if sys.stdout.isatty() else 2)
    except ValueError as error:
        raise UserError(str(error)) from None
    save_translator(result.translator, run_dir)
    plot.history(result.history, path=run_dir / "history.png")
    chosen = "beam" if config.beam_size > 1 else "greedy"
    _print_results(result, config, chosen)
    if config.attention is not None:
        _plot_attention(result, chosen, run_dir / "attention.png")
    headline = result.metrics[chosen]
    return {"exact_match": headline["exact_match"], "bleu": headline["bleu"],
            "token_accuracy": headline["token_accuracy"],
            "decoder": _decoder_name(chosen, config.beam_size), **result.metrics,
            "pairs": result.sizes, "source": source, "tokens": tokens,
            "epochs_trained": len(result.history.epoch)}


def _decoder_name(name: str, beam_size: int) -> str:
    return f"beam search ({beam_size})" if name == "beam" else "greedy"


def _print_results(result, config, chosen: str) -> None:
    rows = [[_decoder_name(name, config.beam_size), result.metrics[name]["exact_match"],
             result.metrics[name]["bleu"], result.metrics[name]["token_accuracy"]]
            for name in result.decoded]
    console.print(results_table(f"Held-out test pairs: {result.sizes['test']} (trained on "
                                f"{result.sizes['train']})",
                                ["decoder", "exact match", f"BLEU ({config.tokens}s)",
                                 "token accuracy"], rows))
    translator, test = result.translator, result.test
    examples = [[source, target, translator.detokenize(translator.output_tokens(ids))]
                for (source, target), ids in zip(test.pairs[:EXAMPLES_SHOWN],
                                                 result.decoded[chosen].tokens, strict=False)]
    console.print(results_table(f"Examples ({_decoder_name(chosen, config.beam_size)})",
                                ["source", "reference", "output"], examples))


def _plot_attention(result, chosen: str, path: Path) -> None:
    from rnnkit import plot
    from rnnkit.seq2seq.vocab import EOS

    translator, decoded = result.translator, result.decoded[chosen]
    source = result.test.pairs[0][0]
    output = translator.output_tokens(decoded.tokens[0])
    ends = translator.target_vocab.index(EOS) in decoded.tokens[0].tolist()
    plot.attention(decoded.attention[0], translator.tokenize(source),
                   output + (["<eos>"] if ends else []), path=path,
                   title=f"Attention on a held-out example: {source!r}")


def _translate_saved(args, run_dir: Path) -> dict:
    from rnnkit.seq2seq.pipeline import load_translator

    if not args.sentences:
        raise UserError("SENTENCE: expected at least one sentence to translate with --model")
    empty = [index for index, text in enumerate(args.sentences) if not text.strip()]
    if empty:
        raise UserError(f"SENTENCE: sentence {empty[0] + 1} is empty")
    try:
        translator = load_translator(args.model)
    except ValueError as error:
        raise UserError(f"--model: {error}") from None
    outputs, _ = translator.translate(args.sentences, beam_size=args.beam_size)
    lines = [f"{source}\t{output}" for source, output in zip(args.sentences, outputs,
                                                             strict=True)]
    (run_dir / "translations.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for source, output in zip(args.sentences, outputs, strict=True):
        console.print(f"{source} -> {output}", markup=False, highlight=False)
    return {"model": str(args.model), "decoder": _decoder_name(
        "beam" if args.beam_size > 1 else "greedy", args.beam_size),
        "translations": [{"source": s, "output": o}
                         for s, o in zip(args.sentences, outputs, strict=True)]}
