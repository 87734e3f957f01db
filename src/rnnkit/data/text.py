"""Text to integer sequences and back: ``Tokenizer`` and Keras-compatible ``pad_sequences``."""

from __future__ import annotations

import string
from collections.abc import Iterable, Sequence

import numpy as np

from rnnkit.data._arrays import one_of, positive_int

# ASCII punctuation except the apostrophe (so "don't" stays one word), plus tab and newline:
# the same set Keras's legacy Tokenizer strips by default.
WORD_FILTERS = "".join(c for c in string.punctuation if c != "'") + "\t\n"

PADDING_SIDES = ("pre", "post")


def pad_sequences(
    sequences: Sequence,
    maxlen: int | None = None,
    dtype="int32",
    padding: str = "pre",
    truncating: str = "pre",
    value=0,
) -> np.ndarray:
    """Pad (and cut) variable-length sequences into one array, with Keras's semantics.

    Args:
        sequences: a list of ``N`` sequences (lists, tuples or arrays); each item may be a
            scalar or an array of a shape shared by all sequences (``sample_shape``).
        maxlen: output length ``L``; ``None`` uses the longest sequence. Longer sequences are cut.
        dtype: dtype of the output (values are cast to it as ``np.asarray`` casts).
        padding: ``"pre"`` puts the padding before each sequence, ``"post"`` after it.
        truncating: ``"pre"`` drops the start of a too-long sequence, ``"post"`` its end.
        value: the padding value; a string needs a string or object ``dtype``.

    Returns:
        ``(N, L) + sample_shape`` array. Empty sequences become rows of ``value``.

    Example:
        >>> pad_sequences([[1, 2, 3], [4]], maxlen=2).tolist()
        [[2, 3], [0, 4]]
    """
    one_of(padding, "padding", PADDING_SIDES)
    one_of(truncating, "truncating", PADDING_SIDES)
    rows = _check_sequences(sequences)
    if maxlen is None:
        maxlen = max((len(row) for row in rows), default=0)
    else:
        maxlen = positive_int(maxlen, "maxlen", minimum=0)
    _check_pad_value(value, dtype)
    sample_shape = next((np.asarray(row).shape[1:] for row in rows if len(row)), ())
    padded = np.full((len(rows), maxlen) + sample_shape, value, dtype=dtype)  # (N, L, ...)
    if maxlen == 0:
        return padded
    for index, row in enumerate(rows):
        if not len(row):
            continue
        kept = row[-maxlen:] if truncating == "pre" else row[:maxlen]
        kept = np.asarray(kept, dtype=dtype)
        if kept.shape[1:] != sample_shape:
            raise ValueError(
                f"sequences[{index}]: expected items of shape {sample_shape} (the first "
                f"non-empty sequence's), got {kept.shape[1:]}"
            )
        if padding == "post":
            padded[index, : len(kept)] = kept
        else:
            padded[index, maxlen - len(kept) :] = kept
    return padded


def _check_sequences(sequences) -> list:
    if isinstance(sequences, (str, bytes)) or not isinstance(sequences, (Sequence, np.ndarray)):
        raise TypeError(f"sequences: expected a list of sequences, got {type(sequences).__name__}")
    rows = list(sequences)
    for index, row in enumerate(rows):
        if isinstance(row, (str, bytes)) or not isinstance(row, (Sequence, np.ndarray)):
            raise TypeError(
                f"sequences[{index}]: expected a list, tuple or array, got {type(row).__name__}"
            )
    return rows


def _check_pad_value(value, dtype) -> None:
    kind = np.dtype(dtype)
    if isinstance(value, str) and kind.kind not in "OUS":
        raise ValueError(
            f"value: expected a number for dtype {kind}, got the string {value!r} "
            f"(use dtype=object or a string dtype to pad with strings)"
        )


class Tokenizer:
    """Word- or character-level text to integer sequences, with a JSON-serialisable config.

    Index 0 is reserved for padding and never assigned to a token. With ``oov_token`` set it
    takes index 1, and tokens then start at 2. Tokens are indexed by descending count, ties
    broken by first appearance, so the same texts always give the same indices.

    Args:
        num_words: if set, only indices below ``num_words`` are used (so an
            ``Embedding(num_words, ...)`` covers them); rarer tokens become ``oov_token`` or are
            dropped. ``None`` keeps every token.
        oov_token: token standing for out-of-vocabulary words, or ``None`` to drop them.
        lower: lower-case texts before splitting.
        char_level: every character is a token (spaces and newlines included).
        filters: characters removed before splitting. ``None`` means ``WORD_FILTERS``
            (punctuation, tab, newline) at word level and nothing at character level.
    """

    def __init__(
        self,
        num_words: int | None = None,
        oov_token: str | None = None,
        lower: bool = True,
        char_level: bool = False,
        filters: str | None = None,
    ) -> None:
        self.num_words = None if num_words is None else positive_int(num_words, "num_words")
        self.oov_token = _optional_str(oov_token, "oov_token")
        self.lower = _check_bool(lower, "lower")
        self.char_level = _check_bool(char_level, "char_level")
        self.filters = _optional_str(filters, "filters")
        if self.oov_token is not None and self.num_words == 1:
            raise ValueError(
                "num_words: expected at least 2 with an oov_token (index 0 is padding and 1 is "
                "the oov_token), got 1"
            )
        self.word_counts: dict[str, int] = {}
        self.word_index: dict[str, int] = {}
        self.index_word: dict[int, str] = {}

    @property
    def vocab_size(self) -> int:
        """Number of indices sequences can contain, padding included: ``max index + 1``."""
        size = len(self.word_index) + 1
        return size if self.num_words is None else min(size, self.num_words)

    def tokenize(self, text: str) -> list[str]:
        """Split one text into tokens after lower-casing and filtering."""
        if not isinstance(text, str):
            raise TypeError(f"text: expected a str, got {type(text).__name__}")
        if self.lower:
            text = text.lower()
        filters = (
            self.filters if self.filters is not None else ("" if self.char_level else WORD_FILTERS)
        )
        if filters:
            text = text.translate(str.maketrans(filters, " " * len(filters)))
        return list(text) if self.char_level else text.split()

    def fit_on_texts(self, texts: Iterable[str]) -> Tokenizer:
        """Count tokens in ``texts`` (on top of earlier fits) and rebuild the index."""
        for text in _check_texts(texts, "texts"):
            for token in self.tokenize(text):
                self.word_counts[token] = self.word_counts.get(token, 0) + 1
        self._build_index()
        return self

    def texts_to_sequences(self, texts: Iterable[str]) -> list[list[int]]:
        """Each text as a list of indices (unknown and rare tokens: ``oov_token`` or dropped)."""
        self._require_fitted()
        oov_index = self.word_index.get(self.oov_token) if self.oov_token else None
        sequences = []
        for text in _check_texts(texts, "texts"):
            sequence = []
            for token in self.tokenize(text):
                index = self.word_index.get(token)
                if index is None or index >= self.vocab_size:
                    index = oov_index
                if index is not None:
                    sequence.append(index)
            sequences.append(sequence)
        return sequences

    def sequences_to_texts(self, sequences: Iterable[Iterable[int]]) -> list[str]:
        """Indices back to text; padding (0) is skipped, tokens joined by spaces (words) or not."""
        self._require_fitted()
        separator = "" if self.char_level else " "
        texts = []
        for row, sequence in enumerate(sequences):
            tokens = [self._index_to_token(index, row) for index in sequence]
            texts.append(separator.join(token for token in tokens if token is not None))
        return texts

    def to_config(self) -> dict:
        """A JSON-serialisable dict; ``from_config`` rebuilds the same index."""
        return {
            "num_words": self.num_words,
            "oov_token": self.oov_token,
            "lower": self.lower,
            "char_level": self.char_level,
            "filters": self.filters,
            "word_counts": [[token, count] for token, count in self.word_counts.items()],
        }

    @classmethod
    def from_config(cls, config: dict) -> Tokenizer:
        if not isinstance(config, dict):
            raise TypeError(f"config: expected a dict, got {type(config).__name__}")
        settings = ("num_words", "oov_token", "lower", "char_level", "filters")
        tokenizer = cls(**{key: config[key] for key in settings if key in config})
        counts = config.get("word_counts", [])
        tokenizer.word_counts = {str(token): int(count) for token, count in counts}
        tokenizer._build_index()
        return tokenizer

    def _build_index(self) -> None:
        # sorted() is stable, so equal counts keep their first-appearance order.
        ranked = sorted(
            (token for token in self.word_counts if token != self.oov_token),
            key=lambda token: -self.word_counts[token],
        )
        if self.oov_token is not None:
            ranked.insert(0, self.oov_token)
        self.word_index = {token: index for index, token in enumerate(ranked, start=1)}
        self.index_word = {index: token for token, index in self.word_index.items()}

    def _index_to_token(self, index, row: int) -> str | None:
        if isinstance(index, (bool, np.bool_)) or not isinstance(index, (int, np.integer)):
            raise TypeError(
                f"sequences[{row}]: expected integer indices, got {type(index).__name__}"
            )
        if index == 0:
            return None
        if 0 < index < self.vocab_size and index in self.index_word:
            return self.index_word[int(index)]
        return self.oov_token

    def _require_fitted(self) -> None:
        if not self.word_index:
            raise ValueError(
                "Tokenizer: expected fit_on_texts() (or from_config) before converting, "
                "got an empty index"
            )

    def __repr__(self) -> str:
        level = "char" if self.char_level else "word"
        return (
            f"Tokenizer({level}-level, vocab_size={self.vocab_size}, "
            f"num_words={self.num_words}, oov_token={self.oov_token!r})"
        )


def _check_texts(texts, name: str) -> list[str]:
    if isinstance(texts, str):
        raise TypeError(f"{name}: expected a list of strings, got a single str (wrap it in a list)")
    try:
        texts = list(texts)
    except TypeError:
        raise TypeError(f"{name}: expected a list of strings, got {type(texts).__name__}") from None
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"{name}[{index}]: expected a str, got {type(text).__name__}")
    return texts


def _optional_str(value, name: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{name}: expected a str or None, got {type(value).__name__}")
    return value


def _check_bool(value, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected a bool, got {type(value).__name__}")
    return bool(value)
