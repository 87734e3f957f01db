"""Translation end to end: the pipeline behind ``rnnkit translate``.

Text pairs ``(source, target)`` are split into tokens (characters, or lower-cased words and
punctuation), de-duplicated by source and shuffled into train | validation | test, so no test
source is ever seen in training. Vocabularies come from the training part only; rarer or unseen
tokens read as ``<unk>``. A :class:`~rnnkit.seq2seq.Seq2Seq` is trained with ``fit()``; the
weights of the epoch with the lowest validation loss are kept (training stops after
``patience`` epochs without improvement). The test part is then decoded greedily and with beam
search.

Every metric is on the model's tokens (characters or words): exact match, corpus BLEU (0-100, so
character BLEU for a character model) and token accuracy (decoded token ``t`` against reference
token ``t``). A reference token outside the target vocabulary counts as wrong even when the model
outputs ``<unk>`` for it.

Example:
    >>> pairs = random_dates(10000, seed=0)                                  # doctest: +SKIP
    >>> result = run_translation(pairs, TranslateConfig())                   # doctest: +SKIP
    >>> result.metrics["beam"]["exact_match"]                                # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from rnnkit.data import Vocabulary
from rnnkit.seq2seq.decoding import Decoded, beam_search, greedy_decode
from rnnkit.seq2seq.metrics import corpus_bleu, exact_match, token_accuracy
from rnnkit.seq2seq.model import Seq2Seq
from rnnkit.seq2seq.vocab import BOS, EOS, Seq2SeqData, encode_pairs, encode_texts, special_ids

CELLS = ("lstm", "gru")
ATTENTIONS = ("bahdanau", "luong", None)
TOKEN_LEVELS = ("char", "word")
UNK = "<unk>"
MODEL_FILE = "model.rnnkit"
VOCABULARY_FILE = "vocabularies.json"
# A reference id no decoder can emit: out-of-vocabulary reference tokens become it for scoring.
_NEVER_EMITTED = -1
_WORD = re.compile(r"\w+|[^\w\s]")


@dataclass
class TranslateConfig:
    """Hyperparameters of a translation run; the CLI's flags have the same names."""

    cell: str = "lstm"
    attention: str | None = "bahdanau"
    bidirectional: bool = False
    units: int = 64
    embedding_dim: int = 32
    tokens: str = "char"
    epochs: int = 8
    batch_size: int = 64
    learning_rate: float = 3e-3
    patience: int = 3
    teacher_forcing: float = 1.0
    teacher_forcing_end: float | None = None
    beam_size: int = 4
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    backend: str = "reference"

    def __post_init__(self) -> None:
        for name, choices in (("cell", CELLS), ("attention", ATTENTIONS),
                              ("tokens", TOKEN_LEVELS)):
            if getattr(self, name) not in choices:
                raise ValueError(f"{name}: expected one of {choices}, got {getattr(self, name)!r}")
        for name in ("teacher_forcing", "teacher_forcing_end"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"{name}: expected a probability in [0, 1], got {value}")


@dataclass
class Translator:
    """A trained model with what it needs to read and write text."""

    model: Seq2Seq
    source_vocab: Vocabulary
    target_vocab: Vocabulary
    tokens: str  # "char" or "word"
    max_len: int  # decoding stops after this many output tokens

    def tokenize(self, text: str) -> list[str]:
        return tokenize(text, self.tokens)

    def detokenize(self, tokens: Sequence[str]) -> str:
        return ("" if self.tokens == "char" else " ").join(tokens)

    def output_tokens(self, ids) -> list[str]:
        """Decoded ids up to ``<eos>`` (excluded) as tokens."""
        eos, pad, bos = (special_ids(self.target_vocab)[k] for k in ("eos_id", "pad_id", "bos_id"))
        tokens = []
        for index in map(int, ids):
            if index == eos:
                break
            if index not in (pad, bos):
                tokens.append(self.target_vocab.tokens[index])
        return tokens

    def decode(self, src: np.ndarray, beam_size: int, batch_size: int = 256) -> Decoded:
        """Greedy (``beam_size=1``) or beam search over ``src (N, S)``, in batches."""
        return decode_in_batches(self.model, src, beam_size, self.max_len, batch_size)

    def translate(self, texts: Sequence[str], beam_size: int = 1) -> tuple[list[str], Decoded]:
        """Translate ``texts``; returns the output texts and the :class:`Decoded` batch."""
        src = encode_texts(self.source_vocab, texts, tokenize=self.tokenize)
        decoded = self.decode(src, beam_size)
        outputs = [self.detokenize(self.output_tokens(row)) for row in decoded.tokens]
        return outputs, decoded


@dataclass
class TranslationResult:
    metrics: dict  # "greedy" and, with beam_size > 1, "beam": exact_match, bleu, token_accuracy
    history: object
    translator: Translator
    test: Seq2SeqData
    decoded: dict  # "greedy" (and "beam"): the test part's Decoded
    sizes: dict  # pairs in train, val, test
    config: dict = field(default_factory=dict)


def tokenize(text: str, tokens: str = "char") -> list[str]:
    """Characters, or (``tokens="word"``) lower-cased words and punctuation marks."""
    if tokens == "char":
        return list(text)
    return _WORD.findall(text.lower())


def read_pairs(path) -> list[tuple[str, str]]:
    """``(source, target)`` pairs from a UTF-8 file of ``source<TAB>target`` lines.

    Blank lines are skipped. Raises ``ValueError`` naming the first line that does not hold
    exactly two non-empty tab-separated columns.
    """
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ValueError(f"no such file {str(path)!r}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not UTF-8 text") from None
    pairs = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        columns = line.split("\t")
        if len(columns) != 2 or not all(column.strip() for column in columns):
            raise ValueError(f"line {number} of {path} has {len(columns)} tab-separated "
                             f"column(s) {line[:40]!r}; expected 2 non-empty ones: "
                             "source<TAB>target")
        pairs.append((columns[0].strip(), columns[1].strip()))
    if not pairs:
        raise ValueError(f"{path} holds no source<TAB>target lines")
    return pairs


def select_pairs(pairs: Sequence[tuple[str, str]], tokens: str = "char",
                 max_length: int | None = None, limit: int | None = None):
    """The first ``limit`` pairs with a new source and at most ``max_length`` tokens per side."""
    kept = [pair for pair in unique_sources(pairs) if max_length is None
            or max(len(tokenize(text, tokens)) for text in pair) <= max_length]
    if not kept:
        raise ValueError(f"max_length: no pair has at most {max_length} {tokens} tokens on both "
                         "sides; raise it")
    return kept[:limit]


def unique_sources(pairs: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """The first pair of each source, in order: a repeated source could otherwise be tested on."""
    first = {}
    for source, target in pairs:
        first.setdefault(source, (source, target))
    return list(first.values())


def build_vocabularies(pairs: Sequence[tuple[str, str]], tokens: str):
    """Source and target vocabularies: ``<pad>``, ``<unk>``, ``<bos>``, ``<eos>``, then tokens.

    Words must occur twice in ``pairs`` to get an index (the rest are ``<unk>``), so the model
    learns what ``<unk>`` means; every character gets one.
    """
    min_count = 2 if tokens == "word" else 1
    return tuple(Vocabulary.from_sequences([tokenize(pair[side], tokens) for pair in pairs],
                                           min_count=min_count, unk_token=UNK,
                                           specials=(BOS, EOS))
                 for side in (0, 1))


def build_model(config: TranslateConfig, source_vocab: Vocabulary,
                target_vocab: Vocabulary) -> Seq2Seq:
    """A compiled :class:`Seq2Seq`; the loss ignores target padding."""
    from rnnkit.optimizers import Adam
    from rnnkit.training.losses import SparseCategoricalCrossentropy

    ids = special_ids(target_vocab)
    model = Seq2Seq(len(source_vocab), len(target_vocab), config.embedding_dim, config.units,
                    cell=config.cell, bidirectional=config.bidirectional,
                    attention=config.attention, teacher_forcing=config.teacher_forcing,
                    backend=config.backend, **ids)
    model.compile(optimizer=Adam(learning_rate=config.learning_rate, global_clipnorm=5.0),
                  loss=SparseCategoricalCrossentropy(from_logits=True,
                                                     ignore_class=ids["pad_id"]))
    return model


def teacher_forcing_schedule(config: TranslateConfig) -> Callable[[int], float] | None:
    """Linear from ``teacher_forcing`` (first epoch) to ``teacher_forcing_end`` (last epoch)."""
    start, end = config.teacher_forcing, config.teacher_forcing_end
    if end is None or end == start:
        return None
    return lambda epoch: start + (end - start) * epoch / max(1, config.epochs - 1)


@contextlib.contextmanager
def one_torch_thread():
    """Run torch's ops on one thread, restoring the setting afterwards.

    The decoder runs one small step at a time; waking a thread pool per op costs more than it
    gains, and on a busy 2-core machine far more (a training epoch measured 9x slower).
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def decode_in_batches(model: Seq2Seq, src: np.ndarray, beam_size: int, max_len: int,
                      batch_size: int = 256) -> Decoded:
    """:func:`greedy_decode` (``beam_size=1``) or :func:`beam_search` on ``src (N, S)``."""
    parts = []
    with one_torch_thread():
        for start in range(0, len(src), batch_size):
            batch = torch.as_tensor(src[start:start + batch_size])
            parts.append(greedy_decode(model, batch, max_len) if beam_size == 1
                         else beam_search(model, batch, beam_size, max_len))
    width = max(part.tokens.shape[1] for part in parts)
    tokens = torch.cat([_pad_steps(part.tokens, width, model.pad_id) for part in parts])
    attention = None if parts[0].attention is None else torch.cat(
        [_pad_steps(part.attention, width, 0.0) for part in parts])
    return Decoded(tokens, attention, torch.cat([part.log_prob for part in parts]))


def _pad_steps(tensor: torch.Tensor, width: int, value) -> torch.Tensor:
    """Pad axis 1 (output steps) of ``(B, T, ...)`` up to ``width``."""
    padding = tensor.new_full((tensor.shape[0], width - tensor.shape[1], *tensor.shape[2:]),
                              value)
    return torch.cat([tensor, padding], dim=1)


def score(translator: Translator, data: Seq2SeqData, decoded: Decoded) -> dict:
    """Exact match (0-1), corpus BLEU (0-100) and token accuracy (0-1) of ``decoded``."""
    ids = special_ids(translator.target_vocab)
    references = np.where(data.tgt_out == translator.target_vocab.unk_index, _NEVER_EMITTED,
                          data.tgt_out)  # (N, T)
    hypotheses = decoded.tokens.numpy()  # (N, T_out)
    width = references.shape[1]
    aligned = np.full_like(references, ids["pad_id"])
    aligned[:, :min(width, hypotheses.shape[1])] = hypotheses[:, :width]
    special = {"eos_id": ids["eos_id"], "pad_id": ids["pad_id"], "bos_id": ids["bos_id"]}
    return {"exact_match": exact_match(references, hypotheses, **special),
            "bleu": corpus_bleu(references, hypotheses, **special),
            "token_accuracy": token_accuracy(references, aligned, pad_id=ids["pad_id"])}


def evaluate(translator: Translator, data: Seq2SeqData, beam_size: int) -> tuple[dict, dict]:
    """Decode ``data`` greedily and, if ``beam_size > 1``, with beam search.

    Returns the :func:`score` of each decoder (with ``decode_seconds``) and its :class:`Decoded`,
    both keyed by ``"greedy"`` and ``"beam"``.
    """
    metrics, decoded = {}, {}
    for name, size in (("greedy", 1), ("beam", beam_size)):
        if name == "beam" and size == 1:
            continue
        started = time.perf_counter()
        decoded[name] = translator.decode(data.src, size)
        metrics[name] = {**score(translator, data, decoded[name]),
                         "decode_seconds": time.perf_counter() - started}
    return metrics, decoded


def split_pairs(pairs: Sequence[tuple[str, str]], config: TranslateConfig, seed: int):
    """De-duplicate by source, then shuffle into train, validation and test pair lists."""
    from rnnkit.tasks._common import random_split

    unique = unique_sources(pairs)
    split = random_split(len(unique), config.val_fraction, config.test_fraction, seed)
    return tuple([unique[i] for i in part] for part in (split.train, split.val, split.test))


def run_translation(pairs: Sequence[tuple[str, str]], config: TranslateConfig, seed: int = 0,
                    verbose: int = 1, callbacks=None) -> TranslationResult:
    """Train on the training part, then decode and score the test part."""
    from rnnkit.callbacks import EarlyStopping
    from rnnkit.seq2seq.schedules import TeacherForcingSchedule

    train_pairs, val_pairs, test_pairs = split_pairs(pairs, config, seed)
    source_vocab, target_vocab = build_vocabularies(train_pairs, config.tokens)
    train, val, test = (encode_pairs(part, source_vocab, target_vocab,
                                     tokenize=lambda text: tokenize(text, config.tokens))
                        for part in (train_pairs, val_pairs, test_pairs))
    model = build_model(config, source_vocab, target_vocab)
    stop = EarlyStopping(monitor="val_loss", patience=config.patience, restore_best_weights=True)
    schedule = teacher_forcing_schedule(config)
    extra = [stop, *([TeacherForcingSchedule(schedule)] if schedule else [])]
    started = time.perf_counter()
    with one_torch_thread():
        history = model.fit([train.src, train.tgt_in], train.tgt_out,
                            validation_data=([val.src, val.tgt_in], val.tgt_out),
                            epochs=config.epochs, batch_size=config.batch_size, verbose=verbose,
                            callbacks=[*extra, *(callbacks or [])])
    train_seconds = time.perf_counter() - started
    translator = Translator(model, source_vocab, target_vocab, config.tokens,
                            max_len=2 * train.tgt_out.shape[1])
    metrics, decoded = evaluate(translator, test, config.beam_size)
    metrics.update(train_seconds=train_seconds, best_epoch=stop.best_epoch + 1)
    sizes = {"train": len(train_pairs), "val": len(val_pairs), "test": len(test_pairs)}
    return TranslationResult(metrics, history, translator, test, decoded, sizes, asdict(config))


def save_translator(translator: Translator, directory) -> Path:
    """Write ``model.rnnkit`` and ``vocabularies.json`` into ``directory``; returns the first."""
    directory = Path(directory)
    translator.model.save(directory / MODEL_FILE)
    payload = {"source_vocab": translator.source_vocab.to_config(),
               "target_vocab": translator.target_vocab.to_config(),
               "tokens": translator.tokens, "max_len": translator.max_len}
    (directory / VOCABULARY_FILE).write_text(json.dumps(payload), encoding="utf-8")
    return directory / MODEL_FILE


def load_translator(path) -> Translator:
    """A :class:`Translator` from a translate run directory or its ``model.rnnkit``.

    The vocabularies are read from ``vocabularies.json`` next to the model file.
    """
    from rnnkit.models import load_model

    path = Path(path)
    model_path = path / MODEL_FILE if path.is_dir() else path
    vocabulary_path = model_path.parent / VOCABULARY_FILE
    for name, file in (("model", model_path), ("vocabulary", vocabulary_path)):
        if not file.is_file():
            raise ValueError(f"no {name} file {str(file)!r} (a translate run directory holds "
                             f"{MODEL_FILE} and {VOCABULARY_FILE})")
    try:
        payload = json.loads(vocabulary_path.read_text(encoding="utf-8"))
        vocabularies = [Vocabulary.from_config(payload[key])
                        for key in ("source_vocab", "target_vocab")]
        tokens, max_len = payload["tokens"], int(payload["max_len"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{vocabulary_path} is not a vocabulary file written by rnnkit "
                         f"translate ({error})") from None
    model = load_model(model_path)
    if not isinstance(model, Seq2Seq):
        raise ValueError(f"{model_path} holds a {type(model).__name__}, not a Seq2Seq")
    return Translator(model, *vocabularies, tokens, max_len)
