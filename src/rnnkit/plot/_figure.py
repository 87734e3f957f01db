"""Shared figure handling: a non-interactive backend, and saving PNGs atomically."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402


def new_figure(width: float = 9.0, height: float = 5.0):
    return plt.subplots(figsize=(width, height))


def save(figure, path: str | os.PathLike | None) -> Path | None:
    """Write ``figure`` to ``path`` as PNG (atomically) and close it; return the path."""
    if path is None:
        return None
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"path: expected a file name ending in .png, got {str(path)!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".png", delete=False) as handle:
        figure.savefig(handle, format="png", dpi=110)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(handle.name, path)
    plt.close(figure)
    return path
