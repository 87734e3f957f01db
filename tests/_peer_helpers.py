"""Comparison helpers shared by the peer-parity tests (rnnkit against Keras, torch, onnxruntime)."""

from __future__ import annotations

import numpy as np
import torch

ATOL = 1e-5


def as_numpy(value):
    """A tensor (rnnkit, torch or Keras), or a list of them, as NumPy arrays."""
    if isinstance(value, (list, tuple)):
        return [as_numpy(item) for item in value]
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def assert_close(ours, theirs, atol: float = ATOL) -> None:
    """Same structure, shapes and values (within ``atol``)."""
    ours, theirs = as_numpy(ours), as_numpy(theirs)
    if isinstance(theirs, list):
        assert isinstance(ours, list) and len(ours) == len(theirs)
        for a, b in zip(ours, theirs, strict=True):
            assert_close(a, b, atol)
        return
    assert ours.shape == theirs.shape, f"shape {ours.shape} != expected {theirs.shape}"
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=atol)
