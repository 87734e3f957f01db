"""Figures for :mod:`rnnkit.inspect`: gate heatmaps and gradient-flow curves."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from rnnkit.plot._figure import new_figure, plt, save


def gates(trace: Mapping[str, np.ndarray], path=None, sample: int = 0,
          title: str = "Gate activations"):
    """One heatmap per gate (units × time) for one ``sample`` of a :func:`trace_gates` result."""
    names = [name for name in trace if name != "h"]
    if not names:
        raise ValueError("trace: expected gate arrays (B, T, H), got none")
    figure, axes = plt.subplots(len(names), 1, figsize=(9, 1.9 * len(names) + 0.6), squeeze=False)
    for axis, name in zip(axes[:, 0], names):
        values = np.asarray(trace[name])[sample].T  # (H, T)
        bounded = name in ("input", "forget", "output", "reset", "update")
        image = axis.imshow(values, aspect="auto", cmap="viridis" if bounded else "coolwarm",
                            vmin=0.0 if bounded else None, vmax=1.0 if bounded else None,
                            interpolation="nearest")
        axis.set_ylabel(f"{name}\nunit")
        figure.colorbar(image, ax=axis, fraction=0.025)
    axes[-1, 0].set_xlabel("timestep")
    figure.suptitle(title)
    return save(figure, path) if path is not None else figure


def gradient_flow(norms: Mapping[str, np.ndarray], path=None,
                  title: str = "Gradient flow: ‖∂L/∂h_t‖ for a loss on the last step"):
    """Overlay ``‖∂L/∂h_t‖`` against ``t`` for several cells, on a log scale."""
    figure, axes = new_figure()
    for label, values in norms.items():
        values = np.asarray(values, dtype=float)
        axes.plot(np.arange(1, len(values) + 1), values, label=label, linewidth=1.5)
    axes.set_yscale("log")
    axes.set_xlabel("timestep t")
    axes.set_ylabel("mean ‖∂L/∂h_t‖")
    axes.set_title(title)
    axes.legend()
    axes.grid(alpha=0.3, which="both")
    return save(figure, path) if path is not None else figure
