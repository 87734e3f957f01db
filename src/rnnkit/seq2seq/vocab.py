"""Text pairs to the arrays ``Seq2Seq`` trains on, with :class:`rnnkit.data.Vocabulary`.

A sequence-to-sequence vocabulary reserves ``<pad>`` (0), ``<unk>`` when given, then ``<bos>`` and
``<eos>``; :func:`special_ids` reads them back as ``Seq2Seq``'s ``pad_id``/``bos_id``/``eos_id``.
Without ``<unk>`` they are 0, 1 and 2, ``Seq2Seq``'s defaults.

Example:
    >>> vocab = char_vocabulary("0123456789-")
    >>> encode_texts(vocab, ["2021-03"], add_eos=True)
    array([[5, 3, 5, 4, 13, 3, 6, 2]])
    >>> decode_ids(vocab, [5, 3, 5, 4, 2, 0])
    '2021'
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple

import numpy as np

from rnnkit.data import Vocabulary, pad_sequences

BOS, EOS = "<bos>", "<eos>"


class Seq2SeqData(NamedTuple):
    """Arrays ready for ``model.fit([src, tgt_in], tgt_out)`` and the text they encode."""

    src: np.ndarray  # (N, S) int64, right-padded source tokens
    tgt_in: np.ndarray  # (N, T) int64, bos + target tokens
    tgt_out: np.ndarray  # (N, T) int64, target tokens + eos
    pairs: list[tuple[str, str]]  # (source, target) text
    source_vocab: Vocabulary
    target_vocab: Vocabulary


def char_vocabulary(alphabet: Iterable[str], unk_token: str | None = None) -> Vocabulary:
    """A character vocabulary: the specials, then ``alphabet`` in the order given."""
    return Vocabulary(list(alphabet), unk_token=unk_token, specials=(BOS, EOS))


def special_ids(vocab: Vocabulary) -> dict[str, int]:
    """``{"pad_id", "bos_id", "eos_id"}`` of ``vocab``, to pass to ``Seq2Seq``."""
    return {"pad_id": vocab.pad_index, "bos_id": vocab.index(BOS), "eos_id": vocab.index(EOS)}


def encode_texts(vocab: Vocabulary, texts: Sequence[str], add_bos: bool = False,
                 add_eos: bool = False, tokenize: Callable[[str], list[str]] = list,
                 length: int | None = None) -> np.ndarray:
    """Right-padded ``(N, L)`` int64 ids; ``tokenize`` splits a text (characters by default)."""
    bos = [vocab.index(BOS)] if add_bos else []
    eos = [vocab.index(EOS)] if add_eos else []
    rows = [bos + vocab.encode(tokenize(text)) + eos for text in texts]
    longest = max((len(row) for row in rows), default=0)
    if length is not None and length < longest:
        raise ValueError(f"length: expected at least {longest} (the longest encoded text), "
                         f"got {length}")
    return pad_sequences(rows, maxlen=length, dtype="int64", padding="post",
                         value=vocab.pad_index)


def decode_ids(vocab: Vocabulary, ids: Iterable[int], separator: str = "") -> str:
    """The text of ``ids`` up to the first ``<eos>``, without ``<pad>`` and ``<bos>``."""
    eos, skip = vocab.index(EOS), {vocab.pad_index, vocab.index(BOS)}
    tokens = []
    for index in map(int, ids):
        if index == eos:
            break
        if index not in skip:
            tokens.append(vocab.decode([index])[0])
    return separator.join(tokens)


def encode_pairs(pairs: Sequence[tuple[str, str]], source_vocab: Vocabulary,
                 target_vocab: Vocabulary,
                 tokenize: Callable[[str], list[str]] = list) -> Seq2SeqData:
    """Encode ``(source, target)`` pairs: ``tgt_in`` starts with bos, ``tgt_out`` ends with eos."""
    pairs = list(pairs)
    if not pairs:
        raise ValueError("pairs: expected at least one (source, target) pair, got none")
    sources, targets = zip(*pairs, strict=True)
    return Seq2SeqData(
        encode_texts(source_vocab, sources, tokenize=tokenize),
        encode_texts(target_vocab, targets, add_bos=True, tokenize=tokenize),
        encode_texts(target_vocab, targets, add_eos=True, tokenize=tokenize),
        pairs, source_vocab, target_vocab)
