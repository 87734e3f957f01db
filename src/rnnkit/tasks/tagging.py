"""Sequence tagging (many-to-many, equal lengths): the pipeline behind ``rnnkit tag``.

Seed 003's named-entity tagger: every token gets a tag from a bidirectional recurrent layer::

    words  -> Embedding(mask_zero=True) --+
    shapes -> Embedding(mask_zero=True) --+-> Concatenate -> SpatialDropout
    -> Bidirectional(LSTM, return_sequences) -> Dropout -> TimeDistributed(Dense(tags, softmax))

A word's shape (``Xx`` for "Paris", ``X`` for "NASA", ``d`` for "2016", ``@`` for a mention...,
see :func:`word_shape`) is the one clue left for words never seen in training, which in tweets
are most of the entities; ``word_shapes=False`` drops that input (and the functional model
becomes seed 003's single-input stack).

Sentences are padded at the end to the longest one. Padding is masked in the recurrent layers
(it does not reach the real tokens' states) and carries sample weight 0, so it counts in neither
the loss nor the accuracy. Tag index 0 is padding and is never predicted.

Sentences are shuffled with a seed and split train | val | test. The test part is scored with
entity-level precision, recall and F1 (seqeval, BIO tags) and token accuracy, next to a
baseline that gives each word its most frequent training tag (``O`` for unseen words).

Example:
    >>> data = load_tagging("wnut16")["train"]                                 # doctest: +SKIP
    >>> result = run_tagging(data.tokens, data.tags, TaggerConfig(), seed=0)   # doctest: +SKIP
    >>> result.metrics["entity_f1"]                                            # doctest: +SKIP
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field

import numpy as np

from rnnkit.callbacks import Callback
from rnnkit.tasks._common import CELLS, IndexSplit, random_split, recurrent_layer

UNK_TOKEN = "<unk>"
OUTSIDE_TAG = "O"
SHAPE_DIM = 16


@dataclass
class TaggerConfig:
    """Hyperparameters of a tagging run; the CLI's flags have the same names."""

    cell: str = "lstm"
    bidirectional: bool = True
    units: int = 64
    embedding_dim: int = 64
    min_count: int = 2
    lowercase: bool = True
    word_shapes: bool = True
    entity_weight: float = 5.0
    dropout: float = 0.5
    epochs: int = 30
    batch_size: int = 32
    learning_rate: float = 3e-3
    patience: int = 5
    val_fraction: float = 0.15
    test_fraction: float = 0.15

    def __post_init__(self) -> None:
        if self.cell not in CELLS:
            raise ValueError(f"cell: expected one of {CELLS}, got {self.cell!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout: expected a rate in [0, 1), got {self.dropout}")
        if self.entity_weight <= 0:
            raise ValueError(f"entity_weight: expected a positive weight, got {self.entity_weight}")


@dataclass
class TaggingResult:
    metrics: dict  # entity_precision, entity_recall, entity_f1, token_accuracy, per_type_f1
    baseline: dict  # the same for the most-frequent-tag baseline
    tags_true: list[list[str]]  # test sentences' gold tags
    tags_pred: list[list[str]]
    history: object
    model: object
    words: object  # Vocabulary of (lower-cased) words
    shapes: object  # Vocabulary of word shapes (None without word_shapes)
    tags: object  # Vocabulary of tags
    split: IndexSplit
    config: dict = field(default_factory=dict)


def check_sentences(tokens, tags) -> None:
    """Raise ``ValueError`` unless ``tokens`` and ``tags`` are equal-length non-empty lists."""
    if len(tokens) != len(tags):
        raise ValueError(
            f"tags: expected {len(tokens)} tag lists (one per sentence), got {len(tags)}"
        )
    if not tokens:
        raise ValueError("tokens: expected at least one sentence, got none")
    for index, (words, labels) in enumerate(zip(tokens, tags)):
        if len(words) != len(labels) or not words:
            raise ValueError(
                f"sentence {index}: expected one tag per token and at least one "
                f"token, got {len(words)} tokens and {len(labels)} tags"
            )


def encode(sentences, vocabulary, length: int, lowercase: bool = False) -> np.ndarray:
    """Token lists -> ``(N, length)`` int64 ids, padded at the end with 0."""
    ids = np.zeros((len(sentences), length), np.int64)  # (N, T)
    for row, sentence in enumerate(sentences):
        words = [word.lower() for word in sentence] if lowercase else sentence
        ids[row, : len(words)] = vocabulary.encode(words)
    return ids


def word_shape(word: str) -> str:
    """How ``word`` is written: ``@`` (mention), ``#`` (hashtag), ``url``, or its characters with
    capitals as ``X``, small letters as ``x`` and digits as ``d``, runs collapsed, at most 5
    kept: "iPhone" -> "xXx", "NASA" -> "X", "2016" -> "d", "McDonald's" -> "XxXx'"."""
    if len(word) > 1 and word[0] in "@#":
        return word[0]
    if word.lower().startswith(("http", "www.")):
        return "url"
    shape = re.sub("[0-9]", "d", re.sub("[a-z]", "x", re.sub("[A-Z]", "X", word)))
    return re.sub(r"(.)\1+", r"\1", shape)[:5]


def build_tagger(config: TaggerConfig, num_words: int, num_tags: int, num_shapes: int = 0):
    """The tagger of the module docstring, compiled; ``num_shapes=0`` leaves out word shapes.

    Inputs: word ids ``(B, T)`` (and shape ids ``(B, T)``), 0 = padding. Output: ``(B, T, tags)``.
    """
    from rnnkit.layers import Concatenate, Dense, Dropout, Embedding, Input, TimeDistributed
    from rnnkit.models import Model
    from rnnkit.optimizers import Adam

    words = Input(shape=(None,), dtype="int64", name="words")
    features = Embedding(num_words, config.embedding_dim, mask_zero=True)(words)  # (B, T, E)
    inputs = [words]
    if num_shapes:
        shapes = Input(shape=(None,), dtype="int64", name="shapes")
        inputs.append(shapes)
        shape_features = Embedding(num_shapes, SHAPE_DIM, mask_zero=True)(shapes)  # (B, T, S)
        features = Concatenate()([features, shape_features])  # (B, T, E + S)
    x = Dropout(config.dropout, noise_shape=(None, 1, None))(features)
    x = recurrent_layer(config.cell, config.units, config.bidirectional, return_sequences=True)(
        x
    )  # (B, T, 2H)
    x = Dropout(config.dropout)(x)
    outputs = TimeDistributed(Dense(num_tags, activation="softmax"))(x)  # (B, T, tags)
    model = Model(inputs if num_shapes else words, outputs, name=f"{config.cell}_tagger")
    model.compile(
        optimizer=Adam(learning_rate=config.learning_rate), loss="sparse_categorical_crossentropy"
    )
    return model


def predict_tags(model, inputs, lengths, tags) -> list[list[str]]:
    """The most probable tag of each real token; padding (index 0) is never chosen.

    ``inputs`` is what the model takes: word ids ``(N, T)``, or ``[word ids, shape ids]``.
    """
    probabilities = model.predict(inputs, verbose=0, batch_size=256)  # (N, T, K)
    probabilities[..., tags.pad_index] = -1.0
    best = probabilities.argmax(-1)  # (N, T)
    return [tags.decode(row[:length]) for row, length in zip(best, lengths)]


def entity_scores(tags_true, tags_pred) -> dict:
    """Entity-level precision/recall/F1 (seqeval, micro over types), per-type F1, token accuracy."""
    from seqeval.metrics import classification_report, f1_score, precision_score, recall_score

    gold = [tag for sentence in tags_true for tag in sentence]
    guess = [tag for sentence in tags_pred for tag in sentence]
    report = classification_report(tags_true, tags_pred, output_dict=True, zero_division=0)
    return {
        "entity_precision": float(precision_score(tags_true, tags_pred, zero_division=0)),
        "entity_recall": float(recall_score(tags_true, tags_pred, zero_division=0)),
        "entity_f1": float(f1_score(tags_true, tags_pred, zero_division=0)),
        "token_accuracy": float(np.mean(np.asarray(gold) == np.asarray(guess))),
        "per_type_f1": {
            name: float(values["f1-score"]) for name, values in report.items() if "avg" not in name
        },
    }


def most_frequent_tag_baseline(
    train_tokens, train_tags, test_tokens, lowercase: bool
) -> list[list[str]]:
    """Each test word gets the tag it carried most often in training; unseen words get ``O``."""
    counts: dict[str, Counter] = defaultdict(Counter)
    for words, labels in zip(train_tokens, train_tags):
        for word, label in zip(words, labels):
            counts[word.lower() if lowercase else word][label] += 1
    best = {word: tally.most_common(1)[0][0] for word, tally in counts.items()}
    return [
        [best.get(word.lower() if lowercase else word, OUTSIDE_TAG) for word in words]
        for words in test_tokens
    ]


class EntityScores(Callback):
    """A callback adding ``entity_f1``, ``token_accuracy`` and their ``val_`` twins to each
    epoch's logs, from predictions in inference mode after the epoch.

    Validation loss is a poor guide here: with 95 % ``O`` tokens it can fall while entities are
    still missed, so early stopping watches ``val_entity_f1`` instead.

    Args:
        parts: ``{log prefix: (model inputs, lengths, gold tag lists)}``, e.g. ``{"": train,
            "val_": val}``.
        tags: the tag vocabulary.
    """

    def __init__(self, parts: dict, tags) -> None:
        super().__init__()
        self.parts, self.tags = parts, tags

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        for prefix, (inputs, lengths, gold) in self.parts.items():
            scores = entity_scores(gold, predict_tags(self.model, inputs, lengths, self.tags))
            logs[f"{prefix}entity_f1"] = scores["entity_f1"]
            logs[f"{prefix}token_accuracy"] = scores["token_accuracy"]


def loss_weights(targets: np.ndarray, tags, entity_weight: float) -> np.ndarray:
    """``(N, T)`` sample weights: 0 on padding, ``entity_weight`` on entity tags, 1 on ``O``."""
    weights = np.ones(targets.shape)  # (N, T)
    if OUTSIDE_TAG in tags:
        weights[targets != tags.index(OUTSIDE_TAG)] = entity_weight
    return (weights * (targets != tags.pad_index)).astype(np.float32)


def model_inputs(sentences, words, shapes, length: int, lowercase: bool):
    """Word ids ``(N, length)``, or ``[word ids, shape ids]`` when ``shapes`` is given."""
    ids = encode(sentences, words, length, lowercase)
    if shapes is None:
        return ids
    return [ids, encode([[word_shape(w) for w in s] for s in sentences], shapes, length)]


def run_tagging(
    tokens, tags, config: TaggerConfig, seed: int = 0, verbose: int = 1, callbacks=None
) -> TaggingResult:
    """Split the sentences, train with early stopping on validation entity F1, score the test."""
    from rnnkit.callbacks import EarlyStopping

    check_sentences(tokens, tags)
    split = random_split(len(tokens), config.val_fraction, config.test_fraction, seed)
    part_tokens = {name: [tokens[i] for i in getattr(split, name)] for name in split.sizes()}
    part_tags = {name: [tags[i] for i in getattr(split, name)] for name in split.sizes()}
    words, shapes, tag_vocabulary = _vocabularies(part_tokens["train"], tags, config)
    length = max(len(sentence) for sentence in tokens)
    inputs = {
        name: model_inputs(part_tokens[name], words, shapes, length, config.lowercase)
        for name in split.sizes()
    }
    targets = {name: encode(part_tags[name], tag_vocabulary, length) for name in split.sizes()}
    weights = {
        name: loss_weights(targets[name], tag_vocabulary, config.entity_weight)
        for name in split.sizes()
    }
    model = build_tagger(config, len(words), len(tag_vocabulary), len(shapes) if shapes else 0)
    scorer = EntityScores(
        {
            prefix: (inputs[name], [len(s) for s in part_tokens[name]], part_tags[name])
            for prefix, name in (("", "train"), ("val_", "val"))
        },
        tag_vocabulary,
    )
    stop = EarlyStopping(
        monitor="val_entity_f1", mode="max", patience=config.patience, restore_best_weights=True
    )
    history = model.fit(
        inputs["train"],
        targets["train"],
        sample_weight=weights["train"],
        validation_data=(inputs["val"], targets["val"], weights["val"]),
        epochs=config.epochs,
        batch_size=config.batch_size,
        verbose=verbose,
        callbacks=[scorer, stop, *(callbacks or [])],
    )
    lengths = [len(sentence) for sentence in part_tokens["test"]]
    tags_pred = predict_tags(model, inputs["test"], lengths, tag_vocabulary)
    baseline_pred = most_frequent_tag_baseline(
        part_tokens["train"], part_tags["train"], part_tokens["test"], config.lowercase
    )
    return TaggingResult(
        entity_scores(part_tags["test"], tags_pred),
        entity_scores(part_tags["test"], baseline_pred),
        part_tags["test"],
        tags_pred,
        history,
        model,
        words,
        shapes,
        tag_vocabulary,
        split,
        asdict(config),
    )


def _vocabularies(train_tokens, all_tags, config: TaggerConfig):
    """Words and shapes of the training part (rare words unknown); tags of the whole schema."""
    from rnnkit.data import Vocabulary

    shapes = None
    if config.word_shapes:
        shapes = Vocabulary.from_sequences(
            [[word_shape(w) for w in s] for s in train_tokens], unk_token=UNK_TOKEN
        )
    if config.lowercase:
        train_tokens = [[word.lower() for word in sentence] for sentence in train_tokens]
    words = Vocabulary.from_sequences(train_tokens, min_count=config.min_count, unk_token=UNK_TOKEN)
    return words, shapes, Vocabulary.from_sequences(all_tags)  # test-only tags too


def read_conll(path) -> tuple[list[list[str]], list[list[str]]]:
    """``token<TAB or space>tag`` lines, sentences separated by blank lines (wnut16's format).

    Raises ``ValueError`` naming the file and the first line that has no tag, or an empty file.
    """
    try:
        lines = open(path, encoding="utf-8").read().splitlines()
    except FileNotFoundError:
        raise ValueError(f"--file: no such file {str(path)!r}") from None
    except UnicodeDecodeError:
        raise ValueError(f"--file: {path} is not UTF-8 text") from None
    tokens: list[list[str]] = [[]]
    tags: list[list[str]] = [[]]
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            if tokens[-1]:
                tokens.append([])
                tags.append([])
            continue
        parts = line.split()
        if len(parts) < 2:
            raise ValueError(
                f"--file: line {number} of {path} has no tag; expected "
                f"'token<TAB>tag', got {line.strip()!r}"
            )
        tokens[-1].append(parts[0])
        tags[-1].append(parts[-1])
    if not tokens[-1]:
        tokens.pop()
        tags.pop()
    if not tokens:
        raise ValueError(f"--file: {path} holds no sentences")
    return tokens, tags
