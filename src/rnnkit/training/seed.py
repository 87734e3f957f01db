"""``set_random_seed``: one call makes ``fit`` reproducible bit for bit on CPU."""

from __future__ import annotations

import random

import numpy as np
import torch


def set_random_seed(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch's (CPU and CUDA).

    Weight initialisation, dropout masks and fit's shuffling all draw from these, so two runs
    that start with the same seed produce identical weights on CPU (same machine, same number
    of threads). GPU kernels may still be nondeterministic; see
    ``torch.use_deterministic_algorithms``.
    """
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise TypeError(f"seed: expected an integer, got {type(seed).__name__}")
    if not 0 <= seed < 2**32:
        raise ValueError(f"seed: expected an integer in [0, 2**32), got {seed}")
    random.seed(int(seed))
    np.random.seed(int(seed))
    torch.manual_seed(int(seed))
