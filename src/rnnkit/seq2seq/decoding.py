"""Decoding a :class:`~rnnkit.seq2seq.Seq2Seq`: greedy, beam search and sampling.

Each decoder takes ``src (B, S)`` token ids and returns a :class:`Decoded`:

- ``tokens (B, T_out)``: the generated ids after ``bos``, up to and including ``eos``, then
  ``pad_id``; ``T_out <= max_len`` is the longest output in the batch;
- ``attention (B, T_out, S)``: the weights of each output step (zero after ``eos``), or None when
  the model has no attention;
- ``log_prob (B,)``: the model's log-probability of ``tokens`` (through ``eos``).

A hypothesis that reaches ``max_len`` without ``eos`` is returned truncated. Decoding runs without
gradients and in inference mode (no dropout, no scheduled sampling), whatever the model's mode.

Example:
    >>> tokens, attention, log_prob = beam_search(model, src, beam_size=4, max_len=12)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch

from rnnkit import _checks


class Decoded(NamedTuple):
    tokens: torch.Tensor  # (B, T_out) long
    attention: torch.Tensor | None  # (B, T_out, S)
    log_prob: torch.Tensor  # (B,)


def greedy_decode(model, src, max_len: int) -> Decoded:
    """Take the most probable token at each step."""
    return _decode_by_step(model, src, max_len, lambda log_probs: log_probs.argmax(-1))


def sample(model, src, max_len: int, temperature: float = 1.0, top_k: int | None = None,
           top_p: float | None = None, generator: torch.Generator | None = None,
           seed: int | None = None) -> Decoded:
    """Draw each token from the model's distribution, reshaped by the options.

    ``temperature`` divides the log-probabilities (0 means greedy); ``top_k`` keeps the k most
    probable tokens; ``top_p`` keeps the smallest set whose probability reaches p (nucleus
    sampling). Give a ``generator`` or a ``seed`` for reproducible draws. ``log_prob`` is the
    log-probability of the drawn tokens under the unmodified model.
    """
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) \
            or temperature < 0:
        raise ValueError(f"temperature: expected a number >= 0, got {temperature!r}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"top_k: expected a positive integer or None, got {top_k!r}")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p: expected a probability in (0, 1] or None, got {top_p!r}")
    if generator is not None and seed is not None:
        raise ValueError("generator, seed: give one of them, not both")
    if seed is not None:
        generator = torch.Generator().manual_seed(int(seed))

    def choose(log_probs: torch.Tensor) -> torch.Tensor:
        if temperature == 0:
            return log_probs.argmax(-1)
        logits = _filter_top_p(_filter_top_k(log_probs / temperature, top_k), top_p)
        probs = torch.softmax(logits, dim=-1)  # (B, V)
        return torch.multinomial(probs, 1, generator=generator).squeeze(-1)

    return _decode_by_step(model, src, max_len, choose)


@torch.no_grad()
def _decode_by_step(model, src, max_len: int,
                    choose: Callable[[torch.Tensor], torch.Tensor]) -> Decoded:
    """Extend every sequence by ``choose(log_probs (B, V)) -> (B,)`` until all have emitted eos."""
    _check_max_len(max_len)
    encoded, state = model.encode(src, training=False)
    batch = encoded.memory.shape[0]
    device = encoded.memory.device
    tokens = torch.full((batch,), model.bos_id, dtype=torch.long, device=device)
    finished = torch.zeros(batch, dtype=torch.bool, device=device)
    log_prob = torch.zeros(batch, device=device)
    all_tokens, all_weights = [], []
    for _ in range(max_len):
        logits, state, weights = model.decode_step(tokens, state, encoded, training=False)
        log_probs = torch.log_softmax(logits.float(), dim=-1)  # (B, V)
        tokens = choose(log_probs).masked_fill(finished, model.pad_id)  # (B,)
        chosen = log_probs.gather(1, tokens[:, None]).squeeze(1)
        log_prob = log_prob + chosen.masked_fill(finished, 0.0)
        all_tokens.append(tokens)
        if weights is not None:
            all_weights.append(weights.masked_fill(finished[:, None], 0.0))  # (B, S)
        finished = finished | (tokens == model.eos_id)
        if bool(finished.all()):
            break
    attention = torch.stack(all_weights, dim=1) if all_weights else None
    return Decoded(torch.stack(all_tokens, dim=1), attention, log_prob)


def _filter_top_k(logits: torch.Tensor, top_k: int | None) -> torch.Tensor:
    if top_k is None or top_k >= logits.shape[-1]:
        return logits
    kth_best = logits.topk(top_k, dim=-1).values[..., -1:]  # (B, 1)
    return logits.masked_fill(logits < kth_best, float("-inf"))


def _filter_top_p(logits: torch.Tensor, top_p: float | None) -> torch.Tensor:
    if top_p is None or top_p >= 1.0:
        return logits
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    probs = torch.softmax(sorted_logits, dim=-1)
    mass_before = probs.cumsum(-1) - probs  # the most probable token always stays
    drop_sorted = mass_before >= top_p
    drop = drop_sorted.scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def gnmt_length_penalty(lengths: torch.Tensor, alpha: float) -> torch.Tensor:
    """GNMT's length normalisation (Wu et al. 2016, eq. 14): ``((5 + |Y|) / 6) ** alpha``."""
    return ((5.0 + lengths.float()) / 6.0) ** alpha


class _Beam(NamedTuple):
    """The K hypotheses of every example, finished or alive. Shapes use B examples, K beams."""

    scores: torch.Tensor  # (B, K) log-probabilities
    lengths: torch.Tensor  # (B, K) tokens generated, eos included
    finished: torch.Tensor  # (B, K) bool
    tokens: torch.Tensor  # (B, K, t)
    weights: torch.Tensor | None  # (B, K, t, S)


@torch.no_grad()
def beam_search(model, src, beam_size: int, max_len: int,
                length_penalty: float = 0.0) -> Decoded:
    """Keep the ``beam_size`` best hypotheses of every example at each step (batched over B).

    Hypotheses are ranked by ``log_prob / gnmt_length_penalty(length, alpha)`` with
    ``alpha = length_penalty`` (0: raw log-probability; GNMT uses 0.6-0.7). A hypothesis that emits
    ``eos`` is finished: it stops growing, keeps its score and stays in the beam, competing with the
    live ones, until ``beam_size`` finished hypotheses fill the beam or ``max_len`` is reached.
    Returns the best hypothesis; with ``beam_size=1`` this is exactly :func:`greedy_decode`. Beam
    search usually, but not provably, finds a more probable output than greedy decoding.
    """
    if isinstance(beam_size, bool) or not isinstance(beam_size, int) or beam_size < 1:
        raise ValueError(f"beam_size: expected a positive integer, got {beam_size!r}")
    if isinstance(length_penalty, bool) or not isinstance(length_penalty, (int, float)) \
            or length_penalty < 0:
        raise ValueError(f"length_penalty: expected a number >= 0 (GNMT's alpha), "
                         f"got {length_penalty!r}")
    _check_max_len(max_len)
    encoded, state = model.encode(src, training=False)
    batch, device = encoded.memory.shape[0], encoded.memory.device
    rows = torch.arange(batch, device=device).repeat_interleave(beam_size)  # (B*K,)
    encoded, state = encoded.index_select(rows), state.index_select(rows)
    beam = _initial_beam(batch, beam_size, encoded.memory.shape[1], model.attention is not None,
                         device)
    tokens = torch.full((batch * beam_size,), model.bos_id, dtype=torch.long, device=device)
    for _ in range(max_len):
        logits, state, weights = model.decode_step(tokens, state, encoded, training=False)
        beam, origin = _advance(beam, logits, weights, model, length_penalty)
        flat_origin = (origin + torch.arange(batch, device=device)[:, None] * beam_size).view(-1)
        state = state.index_select(flat_origin)
        tokens = beam.tokens[:, :, -1].reshape(-1)  # (B*K,)
        if bool(beam.finished.all()):
            break
    return _best_hypotheses(beam, length_penalty)


def _initial_beam(batch: int, beam_size: int, source_steps: int, with_attention: bool,
                  device) -> _Beam:
    scores = torch.full((batch, beam_size), float("-inf"), device=device)
    scores[:, 0] = 0.0  # the K starting hypotheses are identical: keep one
    zeros = torch.zeros(batch, beam_size, dtype=torch.long, device=device)
    weights = torch.zeros(batch, beam_size, 0, source_steps, device=device) \
        if with_attention else None
    return _Beam(scores, zeros, zeros.bool(), zeros[:, :, None][:, :, :0], weights)


def _advance(beam: _Beam, logits: torch.Tensor, weights: torch.Tensor | None, model,
             alpha: float) -> tuple[_Beam, torch.Tensor]:
    """One step: score every extension, keep the best K; returns the beam and each one's origin."""
    batch, beam_size = beam.scores.shape
    vocab = logits.shape[-1]
    log_probs = torch.log_softmax(logits.float(), dim=-1).view(batch, beam_size, vocab)
    # A finished hypothesis has one extension, pad, which leaves its score unchanged.
    frozen = torch.full((vocab,), float("-inf"), device=logits.device)
    frozen[model.pad_id] = 0.0
    log_probs = torch.where(beam.finished[..., None], frozen, log_probs)
    candidates = beam.scores[..., None] + log_probs  # (B, K, V)
    lengths = beam.lengths + (~beam.finished).long()  # (B, K)
    ranking = candidates / gnmt_length_penalty(lengths, alpha)[..., None]
    flat = ranking.view(batch, -1).topk(beam_size, dim=-1).indices  # (B, K)
    origin, token = flat // vocab, flat % vocab
    was_finished = beam.finished.gather(1, origin)
    token = token.masked_fill(was_finished, model.pad_id)
    history = beam.tokens.gather(1, origin[..., None].expand_as(beam.tokens))
    new_weights = None
    if weights is not None:
        step_weights = weights.view(batch, beam_size, -1).gather(
            1, origin[..., None].expand(-1, -1, weights.shape[-1]))  # (B, K, S)
        step_weights = step_weights.masked_fill(was_finished[..., None], 0.0)
        old = beam.weights.gather(1, origin[..., None, None].expand_as(beam.weights))
        new_weights = torch.cat([old, step_weights[:, :, None]], dim=2)  # (B, K, t+1, S)
    new_beam = _Beam(candidates.view(batch, -1).gather(1, flat), lengths.gather(1, origin),
                     was_finished | (token == model.eos_id),
                     torch.cat([history, token[..., None]], dim=-1), new_weights)
    return new_beam, origin


def _best_hypotheses(beam: _Beam, alpha: float) -> Decoded:
    normalised = beam.scores / gnmt_length_penalty(beam.lengths, alpha)
    best = normalised.argmax(-1)  # (B,)
    rows = torch.arange(best.shape[0], device=best.device)
    weights = None if beam.weights is None else beam.weights[rows, best]
    return Decoded(beam.tokens[rows, best], weights, beam.scores[rows, best])


@torch.no_grad()
def sequence_log_prob(model, src, tokens) -> torch.Tensor:
    """The model's log-probability ``(B,)`` of output ``tokens (B, T)``, through the first eos.

    ``tokens`` are laid out as the decoders return them (no bos; pad after eos).
    """
    tokens = _checks.as_tensor(tokens, "tokens").long()
    bos = torch.full_like(tokens[:, :1], model.bos_id)
    tgt_in = torch.cat([bos, tokens[:, :-1]], dim=1)  # (B, T)
    logits = model([src, tgt_in], training=False)  # (B, T, V)
    log_probs = torch.log_softmax(logits.float(), dim=-1)
    chosen = log_probs.gather(2, tokens[..., None]).squeeze(-1)  # (B, T)
    is_eos = tokens == model.eos_id
    through_eos = (is_eos.long().cumsum(1) - is_eos.long()) == 0
    return chosen.masked_fill(~through_eos, 0.0).sum(1)


def _check_max_len(max_len) -> None:
    if isinstance(max_len, bool) or not isinstance(max_len, int) or max_len < 1:
        raise ValueError(f"max_len: expected a positive integer, got {max_len!r}")
