"""Truncated backpropagation through time: ``fit(..., tbptt_steps=k)``.

Each batch ``x (B, T, F)`` is cut into chunks of ``k`` timesteps. Every RNN layer of the model is
made stateful for the batch, so a chunk starts from the state the previous chunk ended in; that
state is stored detached, so gradients stop at chunk boundaries. States are reset at the start of
each batch and the layers' own ``stateful``/``states`` are restored afterwards.

- Targets with a time axis (``y (B, T, ...)`` against outputs ``(B, k, ...)``) are cut alongside:
  every chunk has a loss and the weights are updated after each chunk.
- Targets without one (many-to-one, ``y (B, ...)``): earlier chunks only advance the state
  (forward without gradient); the last chunk carries the loss and the single update.

See docs/training.md for when to use it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch

from rnnkit.layers.rnn import RNN


class TruncatedBPTT:
    """Runs the training step of ``fit`` chunk by chunk; see the module docstring."""

    def __init__(self, model, steps: int) -> None:
        if not isinstance(steps, int) or steps < 1:
            raise ValueError(f"tbptt_steps: expected a positive integer, got {steps!r}")
        self.layers = [m for m in model.modules() if isinstance(m, RNN)]
        if not self.layers:
            raise ValueError("tbptt_steps: the model has no rnnkit RNN layer whose state could be "
                             "carried between chunks")
        backwards = [layer.name for layer in self.layers if layer.go_backwards]
        if backwards:
            raise ValueError(f"tbptt_steps: layer(s) {backwards} read the sequence from its end "
                             "(go_backwards or Bidirectional); truncated BPTT can only carry a "
                             "state forward in time")
        self.model = model
        self.steps = steps
        self.time_distributed: bool | None = None  # decided on the first chunk

    @contextmanager
    def stateful(self) -> Iterator[None]:
        """Make every RNN layer stateful, from zero state; restore the layers afterwards."""
        saved = [(layer.stateful, layer.states) for layer in self.layers]
        try:
            for layer in self.layers:
                layer.stateful = True
                layer.states = None
            yield
        finally:
            for layer, (stateful, states) in zip(self.layers, saved):
                layer.stateful = stateful
                layer.states = states

    def chunks(self, x: torch.Tensor) -> list[slice]:
        if not isinstance(x, torch.Tensor) or x.dim() < 3:
            raise ValueError("tbptt_steps: expects one input of shape (batch, timesteps, "
                             f"features), got {_describe(x)}")
        length = x.shape[1]
        return [slice(start, min(start + self.steps, length))
                for start in range(0, length, self.steps)]

    def run_batch(self, x, y, sample_weight, train_chunk: Callable) -> None:
        """Call ``train_chunk(x, y, sample_weight, weight)`` on each chunk that carries a loss."""
        if isinstance(y, list):
            if len(y) != 1:
                raise ValueError("tbptt_steps: supports models with one output")
            y = y[0]
        spans = self.chunks(x)
        length = x.shape[1]
        with self.stateful():
            for number, span in enumerate(spans):
                last = number == len(spans) - 1
                x_chunk = x[:, span]
                if self.time_distributed is None:
                    self.time_distributed = self._decide(x_chunk, y, length, len(spans))
                if self.time_distributed:
                    train_chunk(x_chunk, y[:, span], _chunk_weight(sample_weight, span, length),
                                x.shape[0] * (span.stop - span.start) / length)
                elif last:
                    train_chunk(x_chunk, y, sample_weight, x.shape[0])
                else:
                    with torch.no_grad():
                        self.model(x_chunk, training=True)  # only advances the carried state

    def _decide(self, x_chunk, y, length: int, count: int) -> bool:
        """Whether targets carry a time axis matched by the model's output."""
        if count == 1 or y is None or y.dim() < 2 or y.shape[1] != length:
            return False
        states = [layer.states for layer in self.layers]
        with torch.no_grad():
            output = self.model(x_chunk[:1], training=False)
        for layer, state in zip(self.layers, states):
            layer.states = state
        output = output[0] if isinstance(output, (list, tuple)) else output
        return output.dim() >= 2 and output.shape[1] == x_chunk.shape[1]


def _chunk_weight(sample_weight, span: slice, length: int):
    if sample_weight is not None and sample_weight.dim() >= 2 and sample_weight.shape[1] == length:
        return sample_weight[:, span]  # per-timestep weights follow the chunk
    return sample_weight


def _describe(x) -> str:
    if isinstance(x, torch.Tensor):
        return f"shape {tuple(x.shape)}"
    return f"{type(x).__name__} of {len(x)} inputs" if isinstance(x, list) else type(x).__name__
