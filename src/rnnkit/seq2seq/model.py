"""``Seq2Seq``: a recurrent encoder-decoder with attention and input feeding.

The encoder embeds the source and runs stacked (optionally bidirectional) LSTM or GRU layers over
it under the source mask ``src != pad_id``. The final states of its top layer start the decoder
(through a ``tanh`` Dense "bridge" when bidirectional, since the two directions are concatenated).
Each decoder step follows Luong et al. (2015), with either attention score::

    h_t, s_t   = cell([E y_{t-1}; h̃_{t-1}], s_{t-1})       input feeding: h̃_{t-1} joins the input
    c_t, a_t   = attention(h_t, memory, source_mask)      context (B, D), weights (B, S)
    h̃_t        = tanh(W_c [c_t; h_t])                      attentional state (B, H)
    logits_t   = W_o h̃_t                                   (B, V)

Without attention ``h̃_t = h_t`` and input feeding is off. In training, the token fed at step t is
the gold ``tgt_in[:, t]`` with probability ``teacher_forcing`` and the model's own previous argmax
otherwise (scheduled sampling, Bengio et al. 2015); see :mod:`rnnkit.seq2seq.schedules` to decay it.

Example:
    >>> model = Seq2Seq(src_vocab=40, tgt_vocab=14, embedding_dim=16, units=32)
    >>> logits = model([src, tgt_in])            # (B, S) and (B, T) ints -> (B, T, 14)
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from rnnkit.kernels.dispatch import check_backend
from rnnkit.layers.attention import BahdanauAttention, LuongAttention, _SourceAttention
from rnnkit.layers.bidirectional import Bidirectional
from rnnkit.layers.core import Dense
from rnnkit.layers.embedding import Embedding, token_ids
from rnnkit.layers.recurrent import GRU, LSTM
from rnnkit.models import Model, register_serializable

CELLS = {"lstm": LSTM, "gru": GRU}
ATTENTIONS = ("bahdanau", "luong", None)


class Encoded(NamedTuple):
    """The encoder's output, read by every decoder step."""

    memory: torch.Tensor  # (B, S, D) top-layer outputs
    keys: torch.Tensor | None  # (B, S, K) the attention's projection of memory, computed once
    mask: torch.Tensor  # (B, S) bool, True on real source tokens

    def index_select(self, index: torch.Tensor) -> Encoded:
        """Rows ``index`` of the batch (beam search repeats and reorders them)."""
        keys = None if self.keys is None else self.keys.index_select(0, index)
        return Encoded(self.memory.index_select(0, index), keys, self.mask.index_select(0, index))


class DecoderState(NamedTuple):
    """What one decoder step hands to the next."""

    cell_state: tuple[torch.Tensor, ...]  # each (B, H): (h, c) for LSTM, (h,) for GRU
    feed: torch.Tensor  # (B, H) attentional state h̃_{t-1}, fed back with input feeding

    def index_select(self, index: torch.Tensor) -> DecoderState:
        return DecoderState(tuple(s.index_select(0, index) for s in self.cell_state),
                            self.feed.index_select(0, index))


@register_serializable
class Seq2Seq(Model):
    """Encoder-decoder over token ids. See the module docstring for the equations.

    Called on ``[src (B, S) int, tgt_in (B, T) int]`` it returns logits ``(B, T, tgt_vocab)`` (pass
    ``return_attention=True`` for the weights ``(B, T, S)`` too), so it trains with a
    sparse categorical cross-entropy ``from_logits=True`` against ``tgt_out``. ``tgt_in`` is
    ``[bos, y_1, ..., y_n]`` and ``tgt_out`` is ``[y_1, ..., y_n, eos]``, both padded with
    ``pad_id``; :meth:`compute_mask` gives the matching loss mask ``tgt_in != pad_id``.

    ``attention`` is "bahdanau", "luong" (the "general" score), None, or an attention layer
    (:class:`~rnnkit.layers.BahdanauAttention`, :class:`~rnnkit.layers.LuongAttention`).
    ``dropout`` applies to embeddings, between encoder layers and before the output projection.
    ``backend`` chooses the encoder's kernels ("auto", "fused", "reference"; see
    :func:`rnnkit.kernels.run_sequence`).
    For decoding see :mod:`rnnkit.seq2seq.decoding`, which drives :meth:`encode` and
    :meth:`decode_step`.
    """

    def __init__(self, src_vocab: int, tgt_vocab: int, embedding_dim: int, units: int,
                 cell: str = "lstm", encoder_layers: int = 1, bidirectional: bool = False,
                 attention: str | _SourceAttention | None = "bahdanau",
                 input_feeding: bool = True, dropout: float = 0.0, teacher_forcing: float = 1.0,
                 pad_id: int = 0, bos_id: int = 1, eos_id: int = 2, backend: str = "auto",
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.backend = check_backend(backend)
        for name, value in (("src_vocab", src_vocab), ("tgt_vocab", tgt_vocab),
                            ("embedding_dim", embedding_dim), ("units", units),
                            ("encoder_layers", encoder_layers)):
            _check_positive(name, value)
        if cell not in CELLS:
            raise ValueError(f"cell: expected one of {sorted(CELLS)}, got {cell!r}")
        if isinstance(attention, dict):
            attention = _attention_from_config(attention)
        if not (attention in ATTENTIONS or isinstance(attention, _SourceAttention)):
            raise ValueError(f"attention: expected one of {ATTENTIONS} or an attention layer, "
                             f"got {attention!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout: expected a rate in [0, 1), got {dropout!r}")
        for name, value in (("pad_id", pad_id), ("bos_id", bos_id), ("eos_id", eos_id)):
            if not 0 <= value < tgt_vocab:
                raise ValueError(f"{name}: expected a token id in [0, tgt_vocab={tgt_vocab}), "
                                 f"got {value!r}")
        self.src_vocab, self.tgt_vocab = src_vocab, tgt_vocab
        self.embedding_dim, self.units, self.cell_type = embedding_dim, units, cell
        self.encoder_layers, self.bidirectional = encoder_layers, bidirectional
        self.input_feeding = bool(input_feeding) and attention is not None
        self.dropout = float(dropout)
        self.teacher_forcing = teacher_forcing
        self.pad_id, self.bos_id, self.eos_id = pad_id, bos_id, eos_id
        self._build_encoder()
        self._build_decoder(attention)
        self.built = True

    @property
    def teacher_forcing(self) -> float:
        """Probability of feeding the gold token in training; 1.0 is plain teacher forcing."""
        return self._teacher_forcing

    @teacher_forcing.setter
    def teacher_forcing(self, value: float) -> None:
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"teacher_forcing: expected a probability in [0, 1], got {value!r}")
        self._teacher_forcing = float(value)

    # -- construction -------------------------------------------------------------------------
    def _build_encoder(self) -> None:
        layer_class = CELLS[self.cell_type]
        self.source_embedding = Embedding(self.src_vocab, self.embedding_dim,
                                          name="source_embedding")
        self.encoder = nn.ModuleList()
        width = self.embedding_dim
        for index in range(self.encoder_layers):
            shape, name = (None, width), f"encoder_{index}"
            layer = layer_class(self.units, return_sequences=True, return_state=True,
                                input_shape=shape, backend=self.backend, name=name)
            if self.bidirectional:
                layer = Bidirectional(layer, input_shape=shape, name=f"bidirectional_{name}")
            self.encoder.append(layer)
            width = self.units * (2 if self.bidirectional else 1)
        self.memory_size = width
        state_count = 2 if self.cell_type == "lstm" else 1
        self.bridge = nn.ModuleList(
            Dense(self.units, activation="tanh", input_shape=(2 * self.units,),
                  name=f"bridge_{index}")
            for index in range(state_count if self.bidirectional else 0))

    def _build_decoder(self, attention) -> None:
        self._attention_name = attention if attention is None or isinstance(attention, str) \
            else None
        layer_class = CELLS[self.cell_type]
        feed_width = self.units if self.input_feeding else 0
        self.target_embedding = Embedding(self.tgt_vocab, self.embedding_dim,
                                          name="target_embedding")
        # A recurrent layer for its name and Keras weight layout; decoding steps its cell.
        self.decoder = layer_class(self.units, input_shape=(None, self.embedding_dim + feed_width),
                                   name="decoder")
        if attention == "bahdanau":
            attention = BahdanauAttention(self.units, name="attention")
        elif attention == "luong":
            attention = LuongAttention("general", name="attention")
        self.attention = attention
        if attention is not None:
            if not attention.built:
                attention.build([(None, self.units), (None, None, self.memory_size)])
                attention.built = True
            self.attention_combine = Dense(self.units, activation="tanh", use_bias=False,
                                           input_shape=(self.memory_size + self.units,),
                                           name="attention_combine")
        self.output_projection = Dense(self.tgt_vocab, input_shape=(self.units,),
                                       name="output_projection")

    # -- encoder ------------------------------------------------------------------------------
    def encode(self, src, training: bool = False) -> tuple[Encoded, DecoderState]:
        """Encode ``src (B, S)``; returns the memory and the decoder's initial state."""
        src = token_ids(src, self.src_vocab)
        _check_rank(src, "src", "(batch, source_steps)")
        mask = src != self.pad_id  # (B, S)
        outputs = self._dropout(self.source_embedding(src), training)  # (B, S, E)
        for index, layer in enumerate(self.encoder):
            if index:
                outputs = self._dropout(outputs, training)
            outputs, *states = layer(outputs, mask=mask, training=training)  # (B, S, D)
        cell_state = tuple(self._bridge_states(states))
        keys = None if self.attention is None else self.attention.project_keys(outputs)
        feed = outputs.new_zeros(src.shape[0], self.units)  # (B, H)
        return Encoded(outputs, keys, mask), DecoderState(cell_state, feed)

    def _bridge_states(self, states: list[torch.Tensor]) -> list[torch.Tensor]:
        if not self.bidirectional:
            return states
        half = len(states) // 2
        return [dense(torch.cat([forward, backward], dim=-1))  # (B, H)
                for dense, forward, backward in zip(self.bridge, states[:half], states[half:],
                                                         strict=True)]

    # -- decoder ------------------------------------------------------------------------------
    def decode_step(self, tokens: torch.Tensor, state: DecoderState, encoded: Encoded,
                    training: bool = False):
        """One step on ``tokens (B,)``: ``(logits (B, V), state, weights (B, S) or None)``."""
        embedded = self._dropout(self.target_embedding(tokens), training)  # (B, E)
        if self.input_feeding:
            embedded = torch.cat([embedded, state.feed], dim=-1)  # (B, E + H)
        output, cell_state = self.decoder.cell(embedded, state.cell_state)  # (B, H)
        weights = None
        attentional = output
        if self.attention is not None:
            context, weights = self.attention.attend(output, encoded.memory, encoded.keys,
                                                     encoded.mask)  # (B, D), (B, S)
            attentional = self.attention_combine(torch.cat([context, output], dim=-1))  # (B, H)
        logits = self.output_projection(self._dropout(attentional, training))  # (B, V)
        return logits, DecoderState(tuple(cell_state), attentional), weights

    def call(self, inputs, mask=None, training=None, return_attention: bool = False):
        src, tgt_in = self._split_inputs(inputs)
        encoded, state = self.encode(src, training)
        step_logits, step_weights = [], []
        tokens = tgt_in[:, 0]  # (B,)
        for step in range(tgt_in.shape[1]):
            if step:
                tokens = self._next_tokens(tgt_in[:, step], step_logits[-1], training)
            logits, state, weights = self.decode_step(tokens, state, encoded, training)
            step_logits.append(logits)
            step_weights.append(weights)
        logits = torch.stack(step_logits, dim=1)  # (B, T, V)
        if not return_attention:
            return logits
        if self.attention is None:
            raise ValueError("return_attention: this model has no attention (attention=None)")
        return logits, torch.stack(step_weights, dim=1)  # (B, T, S)

    def _next_tokens(self, gold: torch.Tensor, previous_logits: torch.Tensor, training: bool):
        """Scheduled sampling: the gold token with probability ``teacher_forcing``, else argmax."""
        if not training or self.teacher_forcing >= 1.0:
            return gold
        use_gold = torch.rand(gold.shape, device=gold.device) < self.teacher_forcing
        return torch.where(use_gold, gold, previous_logits.detach().argmax(-1))

    def _dropout(self, tensor: torch.Tensor, training: bool) -> torch.Tensor:
        return F.dropout(tensor, self.dropout, bool(training)) if self.dropout else tensor

    def _split_inputs(self, inputs):
        if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
            raise ValueError("inputs: expected a list [src (batch, source_steps), "
                             f"tgt_in (batch, target_steps)], got {type(inputs).__name__}")
        src = token_ids(inputs[0], self.src_vocab)
        tgt_in = token_ids(inputs[1], self.tgt_vocab)
        _check_rank(src, "src", "(batch, source_steps)")
        _check_rank(tgt_in, "tgt_in", "(batch, target_steps)")
        if src.shape[0] != tgt_in.shape[0]:
            raise ValueError(f"tgt_in: expected batch size {src.shape[0]} (src's), "
                             f"got {tgt_in.shape[0]}")
        if tgt_in.shape[1] == 0:
            raise ValueError("tgt_in: expected at least one step (the bos token)")
        return src, tgt_in

    # -- Keras protocol -----------------------------------------------------------------------
    def compute_mask(self, inputs, mask=None):
        """The loss mask ``(B, T)``: True where ``tgt_in`` (hence ``tgt_out``) is not padding."""
        return token_ids(inputs[1], self.tgt_vocab) != self.pad_id

    def compute_output_shape(self, input_shape):
        return (input_shape[1][0], input_shape[1][1], self.tgt_vocab)

    def _attention_config(self):
        if self.attention is None or self._attention_name is not None:
            return self._attention_name
        return {"class_name": type(self.attention).__name__,
                "config": self.attention.get_config()}

    def get_config(self) -> dict:
        config = {"name": self.name, "trainable": self.trainable}
        config.update(src_vocab=self.src_vocab, tgt_vocab=self.tgt_vocab,
                      embedding_dim=self.embedding_dim, units=self.units, cell=self.cell_type,
                      encoder_layers=self.encoder_layers, bidirectional=self.bidirectional,
                      attention=self._attention_config(), input_feeding=self.input_feeding,
                      dropout=self.dropout, teacher_forcing=self.teacher_forcing,
                      pad_id=self.pad_id, bos_id=self.bos_id, eos_id=self.eos_id,
                      backend=self.backend)
        return config


def _attention_from_config(config: dict) -> _SourceAttention:
    classes = {"BahdanauAttention": BahdanauAttention, "LuongAttention": LuongAttention}
    if config.get("class_name") not in classes:
        raise ValueError(f"attention: expected a config with class_name in {sorted(classes)}, "
                         f"got {config.get('class_name')!r}")
    return classes[config["class_name"]].from_config(config["config"])


def _check_positive(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}: expected a positive integer, got {value!r}")


def _check_rank(tensor: torch.Tensor, name: str, layout: str) -> None:
    if tensor.dim() != 2:
        raise ValueError(f"{name}: expected a rank-2 tensor {layout} of token ids, "
                         f"got shape {tuple(tensor.shape)}")
