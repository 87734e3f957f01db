"""Greedy decoding, beam search and sampling, on tiny models and on a hand-written Markov model."""

from __future__ import annotations

import math

import pytest
import torch

from rnnkit.seq2seq import beam_search, greedy_decode, sample, sequence_log_prob
from rnnkit.seq2seq.model import DecoderState, Encoded

from .conftest import TGT_VOCAB, reverse_task, source_batch, tiny_model, train

PAD, BOS, EOS, A, B = range(5)


class MarkovModel:
    """A stand-in decoder whose next-token probabilities depend only on the previous token."""

    pad_id, bos_id, eos_id = PAD, BOS, EOS
    attention = None

    def __init__(self, transitions: dict[int, dict[int, float]]) -> None:
        table = torch.full((5, 5), 1e-9)
        for previous, row in transitions.items():
            for token, probability in row.items():
                table[previous, token] = probability
        self.log_table = (table / table.sum(1, keepdim=True)).log()

    def encode(self, src, training=False):
        batch = len(src)
        memory = torch.zeros(batch, 1, 1)
        state = DecoderState((torch.zeros(batch, 1),), torch.zeros(batch, 1))
        return Encoded(memory, None, torch.ones(batch, 1, dtype=torch.bool)), state

    def decode_step(self, tokens, state, encoded, training=False):
        return self.log_table[tokens], state, None

    def __call__(self, inputs, training=False):
        return self.log_table[inputs[1]]  # teacher-forced log-probabilities (B, T, V)


# From bos, "a" is likelier than "b"; but "b" almost surely ends at once while "a" rambles on.
TRAP = MarkovModel({BOS: {A: 0.5, B: 0.45, EOS: 0.05}, A: {A: 0.34, B: 0.33, EOS: 0.33},
                    B: {EOS: 0.9, A: 0.05, B: 0.05}})


def test_greedy_follows_the_most_probable_token_and_pads_after_eos():
    model = MarkovModel({BOS: {A: 0.6, EOS: 0.4}, A: {B: 0.7, EOS: 0.3}, B: {EOS: 1.0}})
    decoded = greedy_decode(model, torch.zeros(2, 1), max_len=6)
    assert decoded.tokens.tolist() == [[A, B, EOS]] * 2
    assert decoded.attention is None
    torch.testing.assert_close(decoded.log_prob, torch.full((2,), math.log(0.6 * 0.7 * 1.0)))


def test_beam_keeps_a_finished_hypothesis_while_live_ones_grow_and_returns_it():
    src = torch.zeros(1, 1)
    greedy = greedy_decode(TRAP, src, max_len=5)
    assert greedy.tokens.tolist() == [[A, A, A, A, A]]  # never ends: truncated at max_len
    beam = beam_search(TRAP, src, beam_size=2, max_len=5)
    assert beam.tokens.tolist() == [[B, EOS, PAD, PAD, PAD]]
    assert beam.log_prob.item() == pytest.approx(math.log(0.45 * 0.9), abs=1e-5)


def test_length_penalty_favours_longer_hypotheses():
    model = MarkovModel({BOS: {EOS: 0.6, A: 0.4}, A: {EOS: 0.99, B: 0.01}})
    src = torch.zeros(1, 1)
    assert beam_search(model, src, 2, 4).tokens.tolist() == [[EOS, PAD]]
    assert beam_search(model, src, 2, 4, length_penalty=5.0).tokens.tolist() == [[A, EOS]]


def test_beam_stops_when_every_hypothesis_has_finished():
    model = MarkovModel({BOS: {EOS: 0.7, A: 0.3}, A: {EOS: 1.0}})
    decoded = beam_search(model, torch.zeros(3, 1), beam_size=2, max_len=10)
    assert decoded.tokens.shape == (3, 2)  # stopped at step 2, not max_len


@pytest.mark.parametrize("options", [{}, {"cell": "gru", "attention": "luong"},
                                     {"attention": None}, {"bidirectional": True}])
@pytest.mark.parametrize("length_penalty", [0.0, 0.7])
def test_beam_of_one_is_exactly_greedy(options, length_penalty):
    model = tiny_model(seed=1, sharpen=3.0, **options)
    src = source_batch(batch=6)
    greedy = greedy_decode(model, src, max_len=8)
    beam = beam_search(model, src, beam_size=1, max_len=8, length_penalty=length_penalty)
    assert torch.equal(beam.tokens, greedy.tokens)
    torch.testing.assert_close(beam.log_prob, greedy.log_prob)
    if greedy.attention is None:
        assert beam.attention is None
    else:
        torch.testing.assert_close(beam.attention, greedy.attention)


@pytest.fixture(scope="module")
def half_trained():
    """A reversal model stopped early, so that its choices are sometimes uncertain."""
    model = tiny_model(cell="gru", embedding_dim=8, units=32)
    train(model, reverse_task(), steps=20)
    return model


def test_beam_finds_at_least_greedys_log_probability_for_every_example(half_trained):
    """Not a theorem (beam search can prune greedy's path), but what a working beam shows."""
    improved = 0
    for seed in range(3):
        src = source_batch(batch=32, seed=seed).clamp(max=TGT_VOCAB - 1)
        greedy = greedy_decode(half_trained, src, max_len=10)
        beam = beam_search(half_trained, src, beam_size=4, max_len=10)
        assert torch.all(beam.log_prob >= greedy.log_prob - 1e-5)
        improved += int((beam.log_prob > greedy.log_prob + 1e-4).sum())
        # The decoders' running scores are the model's teacher-forced log-probabilities.
        for decoded in (beam, greedy):
            torch.testing.assert_close(sequence_log_prob(half_trained, src, decoded.tokens),
                                       decoded.log_prob, atol=1e-4, rtol=0)
    assert improved > 0


def test_decoded_attention_is_zero_on_padding_and_after_eos():
    model = tiny_model(seed=2, sharpen=3.0)
    src = source_batch(batch=6)
    for decoded in (greedy_decode(model, src, 8), beam_search(model, src, 3, 8)):
        weights = decoded.attention
        assert weights.shape == (6, decoded.tokens.shape[1], src.shape[1])
        assert torch.all(weights[(src == 0)[:, None, :].expand_as(weights)] == 0)
        is_eos = decoded.tokens == model.eos_id
        after_eos = (is_eos.long().cumsum(1) - is_eos.long()) > 0
        assert torch.all(weights[after_eos] == 0)
        assert torch.all(decoded.tokens[after_eos] == model.pad_id)
        torch.testing.assert_close(weights[~after_eos].sum(-1), torch.ones(int((~after_eos).sum())))


@pytest.mark.parametrize("options", [{"temperature": 0.0}, {"temperature": 1e-7},
                                     {"top_k": 1}, {"top_p": 1e-3}, {"top_k": 1, "top_p": 0.9}])
def test_sampling_in_the_limit_is_greedy(options):
    model = tiny_model(seed=1, sharpen=3.0)
    src = source_batch(batch=6)
    greedy = greedy_decode(model, src, max_len=8)
    sampled = sample(model, src, max_len=8, seed=0, **options)
    assert torch.equal(sampled.tokens, greedy.tokens)
    torch.testing.assert_close(sampled.log_prob, greedy.log_prob)


def test_sampling_is_reproducible_from_a_seed_or_generator():
    model = tiny_model(seed=1)
    src = source_batch(batch=6)
    first = sample(model, src, 8, seed=5).tokens
    assert torch.equal(sample(model, src, 8, seed=5).tokens, first)
    generator = torch.Generator().manual_seed(5)
    assert torch.equal(sample(model, src, 8, generator=generator).tokens, first)
    assert not torch.equal(sample(model, src, 8, seed=6).tokens, first)


def test_samples_follow_the_filtered_distribution():
    model = MarkovModel({BOS: {A: 0.5, B: 0.3, EOS: 0.2}, A: {EOS: 1.0}, B: {EOS: 1.0}})
    src = torch.zeros(4000, 1)
    first = sample(model, src, 1, seed=0).tokens[:, 0]
    for token, probability in ((A, 0.5), (B, 0.3), (EOS, 0.2)):
        assert (first == token).float().mean().item() == pytest.approx(probability, abs=0.03)
    top_two = sample(model, src, 1, top_k=2, seed=0).tokens[:, 0]
    assert set(top_two.tolist()) == {A, B}
    assert (top_two == A).float().mean().item() == pytest.approx(0.5 / 0.8, abs=0.03)
    nucleus = sample(model, src, 1, top_p=0.6, seed=0).tokens[:, 0]  # a (0.5) then b reach 0.6
    assert set(nucleus.tolist()) == {A, B}
    hot = sample(model, src, 1, temperature=4.0, seed=0).tokens[:, 0]
    flattened = torch.softmax(model.log_table[BOS] / 4.0, dim=0)
    for token in (A, B, EOS):
        frequency = (hot == token).float().mean().item()
        assert frequency == pytest.approx(flattened[token].item(), abs=0.03)


@pytest.mark.parametrize("call, message", [
    (lambda m, s: greedy_decode(m, s, 0), "max_len: expected a positive integer, got 0"),
    (lambda m, s: beam_search(m, s, 0, 5), "beam_size: expected a positive integer, got 0"),
    (lambda m, s: beam_search(m, s, 2, 5, length_penalty=-1),
     "length_penalty: expected a number >= 0"),
    (lambda m, s: sample(m, s, 5, temperature=-1.0), "temperature: expected a number >= 0"),
    (lambda m, s: sample(m, s, 5, top_k=0), "top_k: expected a positive integer or None"),
    (lambda m, s: sample(m, s, 5, top_p=0.0), "top_p: expected a probability in \\(0, 1\\]"),
    (lambda m, s: sample(m, s, 5, seed=1, generator=torch.Generator()),
     "generator, seed: give one of them"),
])
def test_decoder_errors_name_the_argument(call, message):
    with pytest.raises(ValueError, match=message):
        call(tiny_model(), source_batch())
