"""Fixtures of the fuzz suite: kernels compiled before any timed call, the call counts, and the
layer/module/backend parameters of the hardening tables."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnkit import layers

from ._cases import BACKENDS, LAYERS, MODULES
from ._harness import TALLIES


@pytest.fixture(params=list(LAYERS))
def make_layer(request):
    return LAYERS[request.param]


@pytest.fixture(params=list(MODULES))
def module_class(request):
    return MODULES[request.param]


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


@pytest.fixture(scope="session")
def compiled_kernels():
    """Run each fused kernel once (float32, with a mask) so no timed call pays numba's compile."""
    inputs = np.zeros((2, 3, 2), "float32")
    mask = np.array([[True, True, False], [True, True, True]])
    for layer_class in (layers.LSTM, layers.GRU, layers.SimpleRNN):
        layer_class(2)(inputs)
        layer_class(2)(torch.zeros(2, 3, 2, requires_grad=True), mask=mask)


def pytest_terminal_summary(terminalreporter):
    if not TALLIES:
        return
    terminalreporter.section("fuzz calls")
    for name, tally in TALLIES.items():
        terminalreporter.write_line(f"{name}: {tally}")
    total = sum(tally.malformed for tally in TALLIES.values())
    terminalreporter.write_line(f"total malformed calls: {total}")
