"""Attention weights as a heatmap: output tokens down, source tokens across.

Example:
    >>> decoded = greedy_decode(model, src[:1], max_len=12)                 # doctest: +SKIP
    >>> rnnkit.plot.attention(decoded.attention[0], list("3 March 2021"),   # doctest: +SKIP
    ...                       list("2021-03-03") + ["<eos>"], path="attention.png")
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rnnkit.plot._figure import new_figure, save


def attention(weights, src_tokens: Sequence[str], tgt_tokens: Sequence[str], path=None,
              title: str | None = None):
    """Plot ``weights (T_out, S)`` of one example as a heatmap labelled with the tokens.

    Only the first ``len(tgt_tokens)`` rows and ``len(src_tokens)`` columns are drawn, so padded
    weights from a batch can be passed as they are. Returns the saved path, or the figure when
    ``path`` is None.
    """
    if hasattr(weights, "detach"):
        weights = weights.detach().cpu().numpy()
    weights = np.asarray(weights, dtype=float)
    if weights.ndim != 2:
        raise ValueError(f"weights: expected one example's (target_steps, source_steps) array, "
                         f"got shape {weights.shape}")
    src_tokens, tgt_tokens = [str(t) for t in src_tokens], [str(t) for t in tgt_tokens]
    if not src_tokens or len(src_tokens) > weights.shape[1]:
        raise ValueError(f"src_tokens: expected 1 to {weights.shape[1]} tokens (weights' source "
                         f"axis), got {len(src_tokens)}")
    if not tgt_tokens or len(tgt_tokens) > weights.shape[0]:
        raise ValueError(f"tgt_tokens: expected 1 to {weights.shape[0]} tokens (weights' target "
                         f"axis), got {len(tgt_tokens)}")
    shown = weights[:len(tgt_tokens), :len(src_tokens)]
    figure, axes = new_figure(width=max(4.0, 0.35 * len(src_tokens) + 2),
                              height=max(3.0, 0.35 * len(tgt_tokens) + 1.5))
    image = axes.imshow(shown, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    rotation = 90 if max(len(t) for t in src_tokens) > 2 else 0
    axes.set_xticks(np.arange(len(src_tokens)), labels=[_visible(t) for t in src_tokens],
                    rotation=rotation)
    axes.set_yticks(np.arange(len(tgt_tokens)), labels=[_visible(t) for t in tgt_tokens])
    axes.set_xlabel("source")
    axes.set_ylabel("output")
    axes.set_title(title or "Attention")
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
    return save(figure, path) if path is not None else figure


def _visible(token: str) -> str:
    """Spaces would leave a blank tick label; show them as an open box."""
    return "␣" if token == " " else token
