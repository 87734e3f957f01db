"""Sequence-to-sequence metrics: token accuracy, exact match and corpus BLEU.

Token sequences are ``(B, T)`` arrays or tensors of ids, or lists of id lists. A sequence ends at
its first ``eos`` (excluded), and ``pad``/``bos`` tokens are dropped, so decoder outputs (padded
after ``eos``) compare directly with ``tgt_out`` targets.

Example:
    >>> exact_match([[5, 6, 2, 0]], [[5, 6, 2]])
    1.0
    >>> corpus_bleu(["the cat sat"], ["the cat sat"])
    100.0
"""

from __future__ import annotations

import numpy as np
import torch

from rnnkit import _checks


def token_accuracy(y_true, y_pred, pad_id: int = 0) -> float:
    """Fraction of non-pad target positions predicted correctly.

    ``y_true (B, T)`` holds ids; ``y_pred`` is ids ``(B, T)`` or logits/probabilities
    ``(B, T, V)`` (argmax taken). Positions where ``y_true == pad_id`` are ignored.
    """
    true = _checks.as_tensor(y_true, "y_true").long()
    pred = _checks.as_tensor(y_pred, "y_pred")
    if pred.dim() == true.dim() + 1:
        pred = pred.argmax(-1)
    pred = pred.long()
    if true.shape != pred.shape:
        raise ValueError(f"y_pred: expected shape {tuple(true.shape)} (y_true's) or that plus a "
                         f"vocabulary axis, got {tuple(_checks.as_tensor(y_pred, 'y_pred').shape)}")
    real = true != pad_id
    count = int(real.sum())
    if count == 0:
        raise ValueError("y_true: every position is padding; token accuracy is undefined")
    return float(((pred == true) & real).sum()) / count


def strip_special(sequences, eos_id: int = 2, pad_id: int = 0,
                  bos_id: int | None = 1) -> list[list[int]]:
    """Each sequence cut at its first ``eos`` (excluded), without ``pad`` and ``bos`` ids."""
    skip = {pad_id} if bos_id is None else {pad_id, bos_id}
    stripped = []
    for sequence in _as_id_lists(sequences):
        kept = []
        for token in sequence:
            if token == eos_id:
                break
            if token not in skip:
                kept.append(token)
        stripped.append(kept)
    return stripped


def exact_match(references, hypotheses, eos_id: int = 2, pad_id: int = 0,
                bos_id: int | None = 1) -> float:
    """Fraction of hypotheses equal to their reference after :func:`strip_special`."""
    refs = strip_special(references, eos_id, pad_id, bos_id)
    hyps = strip_special(hypotheses, eos_id, pad_id, bos_id)
    _check_same_count(refs, hyps)
    return sum(ref == hyp for ref, hyp in zip(refs, hyps, strict=True)) / len(refs)


def corpus_bleu(references, hypotheses, tokenize: str = "13a", eos_id: int = 2,
                pad_id: int = 0, bos_id: int | None = 1, **options) -> float:
    """Corpus BLEU (0-100) with sacrebleu, one reference per hypothesis.

    Give strings (tokenized by sacrebleu with ``tokenize``), or token sequences: lists of words, or
    ids (an array ``(B, T)`` or lists, cut with :func:`strip_special`). Token sequences are joined
    with spaces and scored with ``tokenize="none"``. ``options`` go to ``sacrebleu.corpus_bleu``
    (e.g. ``smooth_method``).
    """
    import sacrebleu  # an optional dependency (rnnkit[data])

    special = {"eos_id": eos_id, "pad_id": pad_id, "bos_id": bos_id}
    refs, refs_are_text = _as_sentences(references, special)
    hyps, hyps_are_text = _as_sentences(hypotheses, special)
    _check_same_count(refs, hyps)
    if refs_are_text != hyps_are_text:
        raise TypeError("hypotheses: expected the same kind as references (strings or token "
                        "sequences)")
    tokenize = tokenize if refs_are_text else "none"
    return float(sacrebleu.corpus_bleu(hyps, [refs], tokenize=tokenize, **options).score)


def _as_sentences(sequences, special: dict) -> tuple[list[str], bool]:
    """Sentences as strings, and whether they were given as (untokenized) strings."""
    if isinstance(sequences, (np.ndarray, torch.Tensor)):
        return [" ".join(map(str, ids)) for ids in strip_special(sequences, **special)], False
    items = list(sequences)
    if all(isinstance(item, str) for item in items):
        return items, True
    sentences = []
    for item in items:
        tokens = list(item)
        if not all(isinstance(token, str) for token in tokens):
            tokens = strip_special([tokens], **special)[0]
        sentences.append(" ".join(map(str, tokens)))
    return sentences, False


def _as_id_lists(sequences) -> list[list[int]]:
    if isinstance(sequences, (np.ndarray, torch.Tensor)):
        tensor = _checks.as_tensor(sequences, "sequences")
        if tensor.dim() != 2:
            raise ValueError(f"sequences: expected a (batch, steps) array of token ids, "
                             f"got shape {tuple(tensor.shape)}")
        return tensor.long().tolist()
    return [[int(token) for token in sequence] for sequence in sequences]


def _check_same_count(references, hypotheses) -> None:
    if len(references) != len(hypotheses):
        raise ValueError(f"hypotheses: expected one per reference ({len(references)}), "
                         f"got {len(hypotheses)}")
    if not references:
        raise ValueError("references: expected at least one sequence, got none")
