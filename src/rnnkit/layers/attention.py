"""Attention over a source sequence: additive (Bahdanau), multiplicative (Luong) and Keras's layers.

Every layer scores a query against each source position, turns the scores into weights with a
masked softmax and returns the weighted sum of the values::

    e_ts = score(q_t, k_s)                       (B, Tq, S)
    a_ts = softmax_s(e_ts) over unmasked s       weights; exactly 0 where the source mask is False
    c_t  = Σ_s a_ts v_s                          (B, Tq, D)

A query ``(B, Dq)`` gives ``context (B, D)`` and ``weights (B, S)``; a query sequence
``(B, Tq, Dq)`` gives ``(B, Tq, D)`` and ``(B, Tq, S)``. A source whose mask is all False gets zero
weights and a zero context (Keras's layers would spread uniform weights over the padding).

Two call conventions:

- :class:`BahdanauAttention` and :class:`LuongAttention` (encoder-decoder attention):
  ``context, weights = layer(query, values, mask=source_mask)``. They also split the work into
  :meth:`project_keys` (once per source) and :meth:`attend` (once per decoder step).
- :class:`Attention` and :class:`AdditiveAttention` (Keras's names, weights and call):
  ``layer([query, value, key?], mask=[query_mask, value_mask], return_attention_scores=False)``.

Example:
    >>> attention = BahdanauAttention(16)
    >>> context, weights = attention(torch.randn(2, 8), torch.randn(2, 5, 12),
    ...                              mask=torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]))
    >>> context.shape, weights.shape
    (torch.Size([2, 12]), torch.Size([2, 5]))
"""

from __future__ import annotations

import torch
from torch import nn

from rnnkit import _checks, initializers
from rnnkit.layers.base import Layer

LUONG_SCORES = ("dot", "general", "concat")
KERAS_SCORE_MODES = ("dot", "concat")


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Softmax over the last axis of ``scores (B, Tq, S)``, exactly 0 where ``mask`` is False.

    ``mask`` is boolean ``(B, S)``, ``(B, Tq, S)`` or ``(1, Tq, S)``. Masked scores are set to the
    dtype's lowest value (not ``-inf``, which would give NaN on an all-masked row) before the
    softmax and the weights are zeroed afterwards, so padding never leaks, even in float16.
    """
    if mask is None:
        return torch.softmax(scores, dim=-1)
    if mask.dim() == scores.dim() - 1:
        mask = mask.unsqueeze(-2)  # (B, 1, S)
    scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    return torch.softmax(scores, dim=-1).masked_fill(~mask, 0.0)


def _kernel(shape: tuple[int, ...], dtype: torch.dtype, initializer="glorot_uniform"):
    return nn.Parameter(initializers.get(initializer)(shape, dtype))


def _additive_scores(query_proj: torch.Tensor, keys: torch.Tensor, score_kernel: torch.Tensor,
                     bias: torch.Tensor | None = None) -> torch.Tensor:
    """``v · tanh(q_t + k_s + b)`` for ``query_proj (B, Tq, U)`` and ``keys (B, S, U)``."""
    hidden = query_proj.unsqueeze(2) + keys.unsqueeze(1)  # (B, Tq, S, U)
    if bias is not None:
        hidden = hidden + bias
    return torch.tanh(hidden) @ score_kernel  # (B, Tq, S)


class _SourceAttention(Layer):
    """Encoder-decoder attention: ``layer(query, values, mask=source_mask) -> (context, weights)``.

    Subclasses define ``build([query_shape, values_shape])``, :meth:`project_keys` and ``score``.
    """

    def forward(self, query, values, mask=None, training=None):
        return super().forward([query, values], mask=mask, training=training)

    def call(self, inputs, mask=None, training=None):
        query, values = inputs
        _check_attention_inputs(query, values)
        return self.attend(query, values, self.project_keys(values), mask)

    def project_keys(self, values: torch.Tensor) -> torch.Tensor:
        """The per-source part of the score, ``(B, S, K)``: compute it once, reuse it every step."""
        return values

    def score(self, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """Scores ``(B, Tq, S)`` for ``query (B, Tq, Dq)`` and projected ``keys (B, S, K)``."""
        raise NotImplementedError

    def attend(self, query: torch.Tensor, values: torch.Tensor, keys: torch.Tensor,
               mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Context and weights for ``query`` (B, Dq) or (B, Tq, Dq) given precomputed ``keys``."""
        single = query.dim() == 2
        query = query.unsqueeze(1) if single else query  # (B, Tq, Dq)
        mask = _checks.check_mask(mask, values.shape[0], values.shape[1], values.device)
        weights = masked_softmax(self.score(query, keys), mask)  # (B, Tq, S)
        context = weights @ values  # (B, Tq, D)
        if single:
            return context.squeeze(1), weights.squeeze(1)
        return context, weights

    def compute_output_shape(self, input_shape):
        query_shape, values_shape = input_shape
        return [(*query_shape[:-1], values_shape[-1]), (*query_shape[:-1], values_shape[1])]


class BahdanauAttention(_SourceAttention):
    """Additive attention (Bahdanau et al. 2015; seed 001's ``AttentionLayer``)::

        score(q, h_s) = V · tanh(W1 h_s + W2 q + b)

    ``W1 = key_kernel (D, units)``, ``W2 = query_kernel (Dq, units)``, ``b = bias (units,)`` and
    ``V = score_kernel (units,)``, kernels in Keras orientation. ``W1 h_s`` is the projected key.
    """

    def __init__(self, units: int, use_bias: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        _check_units(units)
        self.units = int(units)
        self.use_bias = use_bias

    def build(self, input_shape) -> None:
        query_shape, values_shape = input_shape
        dtype = self.param_dtype
        self.query_kernel = _kernel((query_shape[-1], self.units), dtype)
        self.key_kernel = _kernel((values_shape[-1], self.units), dtype)
        self.bias = _kernel((self.units,), dtype, "zeros") if self.use_bias else None
        self.score_kernel = _kernel((self.units,), dtype, "random_uniform")

    def project_keys(self, values: torch.Tensor) -> torch.Tensor:
        return values @ self.key_kernel  # (B, S, U)

    def score(self, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        return _additive_scores(query @ self.query_kernel, keys, self.score_kernel, self.bias)

    def get_config(self) -> dict:
        return {**super().get_config(), "units": self.units, "use_bias": self.use_bias}


class LuongAttention(_SourceAttention):
    """Multiplicative attention (Luong et al. 2015, section 3.1), one of three scores::

        dot:     score(q, h_s) = q · h_s                      (needs Dq == D)
        general: score(q, h_s) = q · (W_a h_s)                key_kernel (D, Dq)
        concat:  score(q, h_s) = v · tanh(W_q q + W_k h_s)    query_kernel (Dq, units),
                                                              key_kernel (D, units), score_kernel
    ``units`` (concat only) defaults to the query width. ``scale=True`` divides dot and general
    scores by ``sqrt(Dq)``.
    """

    def __init__(self, score: str = "general", units: int | None = None, scale: bool = False,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        if score not in LUONG_SCORES:
            raise ValueError(f"score: expected one of {LUONG_SCORES}, got {score!r}")
        if units is not None:
            _check_units(units)
        self.score_name = score
        self.units = units
        self.scale = scale

    def build(self, input_shape) -> None:
        query_shape, values_shape = input_shape
        query_dim, value_dim, dtype = query_shape[-1], values_shape[-1], self.param_dtype
        if self.score_name == "dot" and query_dim != value_dim:
            raise ValueError(f"query: score='dot' expects the query width to equal the values' "
                             f"({value_dim}), got {query_dim}; use score='general'")
        if self.score_name == "general":
            self.key_kernel = _kernel((value_dim, query_dim), dtype)
        if self.score_name == "concat":
            units = self.units or query_dim
            self.query_kernel = _kernel((query_dim, units), dtype)
            self.key_kernel = _kernel((value_dim, units), dtype)
            self.score_kernel = _kernel((units,), dtype, "random_uniform")

    def project_keys(self, values: torch.Tensor) -> torch.Tensor:
        return values if self.score_name == "dot" else values @ self.key_kernel

    def score(self, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        if self.score_name == "concat":
            return _additive_scores(query @ self.query_kernel, keys, self.score_kernel)
        scores = query @ keys.transpose(1, 2)  # (B, Tq, S)
        return scores / query.shape[-1] ** 0.5 if self.scale else scores

    def get_config(self) -> dict:
        return {**super().get_config(), "score": self.score_name, "units": self.units,
                "scale": self.scale}


class _KerasAttention(Layer):
    """Keras's call: ``layer([query, value, key?], mask=[query_mask, value_mask])``.

    Returns the context ``(B, Tq, D)`` (zero where ``query_mask`` is False) and, with
    ``return_attention_scores=True``, the weights ``(B, Tq, Tv)`` as well. ``dropout`` drops
    weights in training. ``use_causal_mask`` stops position i attending to positions j > i.
    """

    supports_masking = True

    def __init__(self, dropout: float = 0.0, seed: int | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout: expected a rate in [0, 1), got {dropout!r}")
        self.dropout = float(dropout)
        self.seed = seed
        self._generator = None
        if seed is not None:
            self._generator = torch.Generator().manual_seed(int(seed))

    def call(self, inputs, mask=None, training=None, return_attention_scores: bool = False,
             use_causal_mask: bool = False):
        query, value, key = _unpack_keras_inputs(inputs, type(self).__name__)
        _check_attention_inputs(query, value, key)
        single = query.dim() == 2
        query = query.unsqueeze(1) if single else query  # (B, Tq, Dq)
        query_mask, value_mask = _unpack_keras_masks(mask, query, value)
        if use_causal_mask:
            steps_q, steps_v = query.shape[1], value.shape[1]
            causal = torch.ones(steps_q, steps_v, dtype=torch.bool, device=query.device).tril()
            value_mask = causal[None] if value_mask is None else value_mask[:, None] & causal
        weights = masked_softmax(self.score(query, key), value_mask)  # (B, Tq, Tv)
        if training and self.dropout > 0:
            keep = torch.empty_like(weights).bernoulli_(1 - self.dropout, generator=self._generator)
            weights = weights * keep / (1 - self.dropout)
        context = weights @ value  # (B, Tq, D)
        if query_mask is not None:
            context = context.masked_fill(~query_mask.unsqueeze(-1), 0.0)
        if single:
            context, weights = context.squeeze(1), weights.squeeze(1)
        return (context, weights) if return_attention_scores else context

    def score(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def compute_mask(self, inputs, mask=None):
        if mask is None:
            return None
        return mask[0]

    def compute_output_shape(self, input_shape, return_attention_scores: bool = False):
        query_shape, value_shape = input_shape[0], input_shape[1]
        context_shape = (*query_shape[:-1], value_shape[-1])
        if return_attention_scores:
            return [context_shape, (*query_shape[:-1], value_shape[1])]
        return context_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "dropout": self.dropout, "seed": self.seed}


class Attention(_KerasAttention):
    """Keras's ``Attention`` (dot-product, Luong-style). Weights: ``scale ()`` if ``use_scale``,
    then ``concat_score_weight ()`` if ``score_mode="concat"``, as in Keras::

        dot:    score = scale · (q · k)
        concat: score = concat_score_weight · Σ tanh(scale · (q + k))
    """

    def __init__(self, use_scale: bool = False, score_mode: str = "dot", **kwargs) -> None:
        super().__init__(**kwargs)
        if score_mode not in KERAS_SCORE_MODES:
            raise ValueError(f"score_mode: expected one of {KERAS_SCORE_MODES}, "
                             f"got {score_mode!r}")
        self.use_scale = use_scale
        self.score_mode = score_mode

    def build(self, input_shape) -> None:
        dtype = self.param_dtype
        self.scale = _kernel((), dtype, "ones") if self.use_scale else None
        if self.score_mode == "concat":
            self.concat_score_weight = _kernel((), dtype, "ones")

    def score(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        scale = 1.0 if self.scale is None else self.scale
        if self.score_mode == "dot":
            return (query @ key.transpose(1, 2)) * scale  # (B, Tq, Tv)
        hidden = torch.tanh(scale * (query.unsqueeze(2) + key.unsqueeze(1)))  # (B, Tq, Tv, D)
        return self.concat_score_weight * hidden.sum(-1)

    def get_config(self) -> dict:
        return {**super().get_config(), "use_scale": self.use_scale, "score_mode": self.score_mode}


class AdditiveAttention(_KerasAttention):
    """Keras's ``AdditiveAttention`` (Bahdanau-style without projections)::

        score = Σ_d scale_d · tanh(q_d + k_d)

    ``scale (dim,)`` (glorot_uniform) exists when ``use_scale`` is True, Keras's default.
    """

    def __init__(self, use_scale: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self.use_scale = use_scale

    def build(self, input_shape) -> None:
        dim = input_shape[0][-1]
        self.scale = _kernel((dim,), self.param_dtype) if self.use_scale else None

    def score(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        hidden = torch.tanh(query.unsqueeze(2) + key.unsqueeze(1))  # (B, Tq, Tv, D)
        if self.scale is not None:
            hidden = hidden * self.scale
        return hidden.sum(-1)

    def get_config(self) -> dict:
        return {**super().get_config(), "use_scale": self.use_scale}


# -- validation ---------------------------------------------------------------------------------
def _check_units(units) -> None:
    if not isinstance(units, int) or isinstance(units, bool) or units <= 0:
        raise ValueError(f"units: expected a positive integer, got {units!r}")


def _check_attention_inputs(query, values, key=None) -> None:
    for name, tensor in (("query", query), ("values", values), ("key", key)):
        if tensor is not None and not tensor.is_floating_point():
            raise TypeError(f"{name}: expected a floating-point tensor, got dtype {tensor.dtype}")
    if query.dim() not in (2, 3):
        raise ValueError(f"query: expected shape (batch, dim) or (batch, Tq, dim), "
                         f"got {tuple(query.shape)}")
    _checks.check_rank(values, "values", 3, "(batch, source_steps, dim)")
    if query.shape[0] != values.shape[0]:
        raise ValueError(f"values: expected batch size {query.shape[0]} (the query's), "
                         f"got {values.shape[0]}")
    if key is not None and tuple(key.shape[:2]) != tuple(values.shape[:2]):
        raise ValueError(f"key: expected (batch, source_steps) = {tuple(values.shape[:2])} "
                         f"like values, got {tuple(key.shape[:2])}")


def _unpack_keras_inputs(inputs, layer_name: str):
    if not isinstance(inputs, (list, tuple)) or len(inputs) not in (2, 3):
        got = f"a list of {len(inputs)}" if isinstance(inputs, (list, tuple)) else type(inputs)
        raise ValueError(f"inputs: {layer_name} expects a list [query, value] or "
                         f"[query, value, key], got {got}")
    query, value = inputs[0], inputs[1]
    key = inputs[2] if len(inputs) == 3 else value
    return query, value, key


def _unpack_keras_masks(mask, query: torch.Tensor, value: torch.Tensor):
    if mask is None:
        return None, None
    if not isinstance(mask, (list, tuple)) or len(mask) not in (2, 3):
        raise ValueError("mask: expected a list [query_mask, value_mask], "
                         f"got {type(mask).__name__}")
    batch, device = query.shape[0], query.device
    query_mask = _checks.check_mask(mask[0], batch, query.shape[1], device)
    value_mask = _checks.check_mask(mask[1], batch, value.shape[1], device)
    return query_mask, value_mask
