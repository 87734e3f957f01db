"""Synthetic sequence tasks from the seeds, generated deterministically from a seed."""

from __future__ import annotations

import numpy as np

from rnnkit.data._arrays import positive_int


def xor_task(samples: int, steps: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Seed 001's long-term dependency task: the XOR of the first two of ``steps`` inputs.

    Every step after the second is 0, so the answer must be carried across ``steps - 2`` steps.
    Returns ``x (samples, steps, 1)`` float32 and ``y (samples, 1)`` float32.

    Example:
        >>> x, y = xor_task(4, 10)
        >>> x.shape, y.shape
        ((4, 10, 1), (4, 1))
    """
    samples = positive_int(samples, "samples")
    steps = positive_int(steps, "steps", minimum=2)
    rng = np.random.default_rng(seed)
    x = np.zeros((samples, steps, 1), np.float32)
    x[:, :2, 0] = rng.integers(0, 2, size=(samples, 2))
    y = np.logical_xor(x[:, 0, 0], x[:, 1, 0]).astype(np.float32)[:, None]
    return x, y
