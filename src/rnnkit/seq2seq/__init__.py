"""Sequence to sequence: the encoder-decoder, its decoders, metrics and the default dates task.

Example:
    >>> from rnnkit.seq2seq import Seq2Seq, beam_search, make_dates
    >>> data = make_dates(20000, seed=0)
    >>> model = Seq2Seq(len(data.source_vocab), len(data.target_vocab), 32, 64)
    >>> model.compile("adam", SparseCategoricalCrossentropy(from_logits=True))   # doctest: +SKIP
    >>> model.fit([data.src, data.tgt_in], data.tgt_out, epochs=5)              # doctest: +SKIP
    >>> tokens, attention, log_prob = beam_search(model, data.src[:8], 4, 12)   # doctest: +SKIP
"""

from rnnkit.seq2seq.dates import make_dates, random_dates
from rnnkit.seq2seq.decoding import (
    Decoded,
    beam_search,
    gnmt_length_penalty,
    greedy_decode,
    sample,
    sequence_log_prob,
)
from rnnkit.seq2seq.metrics import corpus_bleu, exact_match, strip_special, token_accuracy
from rnnkit.seq2seq.model import DecoderState, Encoded, Seq2Seq
from rnnkit.seq2seq.schedules import (
    TeacherForcingSchedule,
    exponential_decay,
    inverse_sigmoid_decay,
    linear_decay,
)
from rnnkit.seq2seq.vocab import (
    Seq2SeqData,
    char_vocabulary,
    decode_ids,
    encode_pairs,
    encode_texts,
    special_ids,
)

__all__ = [
    "Decoded",
    "DecoderState",
    "Encoded",
    "Seq2Seq",
    "Seq2SeqData",
    "TeacherForcingSchedule",
    "beam_search",
    "char_vocabulary",
    "corpus_bleu",
    "decode_ids",
    "encode_pairs",
    "encode_texts",
    "exact_match",
    "exponential_decay",
    "gnmt_length_penalty",
    "greedy_decode",
    "inverse_sigmoid_decay",
    "linear_decay",
    "make_dates",
    "random_dates",
    "sample",
    "sequence_log_prob",
    "special_ids",
    "strip_special",
    "token_accuracy",
]
