"""Fixtures for the torch.nn drop-in tests; the comparison harness lives in ``nn_peer``."""

import pytest
import torch
from nn_peer import BACKENDS


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture(params=[torch.float32, torch.float64], ids=["float32", "float64"])
def dtype(request) -> torch.dtype:
    return request.param
