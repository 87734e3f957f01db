"""Token accuracy, exact match and corpus BLEU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnkit.seq2seq import corpus_bleu, exact_match, strip_special, token_accuracy


def test_token_accuracy_ignores_padding_and_accepts_logits():
    y_true = np.array([[5, 6, 7, 2], [5, 2, 0, 0]])
    y_pred = np.array([[5, 6, 8, 2], [4, 2, 9, 9]])  # 4 of the 6 real positions are right
    assert token_accuracy(y_true, y_pred) == pytest.approx(4 / 6)
    logits = torch.nn.functional.one_hot(torch.as_tensor(y_pred), 10).float()
    assert token_accuracy(y_true, logits) == pytest.approx(4 / 6)
    assert token_accuracy(y_true, y_pred, pad_id=9) == pytest.approx(4 / 8)


def test_strip_special_cuts_at_the_first_eos_and_drops_pad_and_bos():
    assert strip_special([[1, 5, 6, 2, 7, 0], [5, 0, 6], [2, 5]]) == [[5, 6], [5, 6], []]
    assert strip_special(np.array([[1, 5, 2]]), bos_id=None) == [[1, 5]]


def test_exact_match_compares_sequences_up_to_eos():
    references = np.array([[5, 6, 2, 0], [7, 8, 2, 0], [3, 2, 0, 0]])
    hypotheses = [[5, 6, 2], [7, 8, 8, 2], [3, 2, 9, 9]]  # right, one token too many, right
    assert exact_match(references, hypotheses) == pytest.approx(2 / 3)
    assert exact_match(references, references) == 1.0


def test_bleu_of_identical_corpora_is_100_and_of_disjoint_ones_0():
    sentences = ["the cat sat on the mat", "a quick brown fox jumps over it"]
    assert corpus_bleu(sentences, sentences) == pytest.approx(100.0)
    assert corpus_bleu(sentences, ["x y z w v", "p q r s t u"]) == pytest.approx(0.0)
    ids = np.array([[5, 6, 7, 8, 9, 2, 0], [9, 8, 7, 6, 5, 4, 2]])
    assert corpus_bleu(ids, ids.tolist()) == pytest.approx(100.0)


def test_bleu_on_tokens_matches_sacrebleu_on_the_joined_text():
    sacrebleu = pytest.importorskip("sacrebleu")
    references = [["the", "cat", "sat", "on", "the", "mat"], ["it", "was", "raining", "hard"]]
    hypotheses = [["the", "cat", "sat", "on", "a", "mat"], ["it", "was", "raining", "again"]]
    expected = sacrebleu.corpus_bleu([" ".join(h) for h in hypotheses],
                                     [[" ".join(r) for r in references]], tokenize="none").score
    assert 0 < expected < 100
    assert corpus_bleu(references, hypotheses) == pytest.approx(expected)


@pytest.mark.parametrize("call, error, message", [
    (lambda: exact_match([[1, 2]], [[1, 2], [3]]), ValueError,
     "hypotheses: expected one per reference \\(1\\), got 2"),
    (lambda: corpus_bleu([], []), ValueError, "references: expected at least one"),
    (lambda: corpus_bleu(["a b"], [[1, 2]]), TypeError, "hypotheses: expected the same kind"),
    (lambda: token_accuracy([[0, 0]], [[1, 2]]), ValueError, "y_true: every position is padding"),
    (lambda: token_accuracy([[1, 2]], [[1, 2, 3]]), ValueError,
     "y_pred: expected shape \\(1, 2\\)"),
])
def test_errors_name_the_argument(call, error, message):
    with pytest.raises(error, match=message):
        call()
