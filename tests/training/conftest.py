"""Fixtures of the training tests; the model stand-in is in training_standins.py."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before any test imports TensorFlow


@pytest.fixture(scope="session")
def keras():
    """TF-Keras, the peer the training behaviour is compared with (skips when absent)."""
    return pytest.importorskip("keras")
