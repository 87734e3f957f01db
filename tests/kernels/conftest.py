"""Fixtures of the kernel tests."""

from __future__ import annotations

import pytest

from rnnkit.kernels import native


@pytest.fixture(params=["native", "python"])
def step_path(request, monkeypatch):
    """Each way a streaming step runs: the C++ stepper of the native build, or the Python one
    that runs without it. Yields the path's name."""
    if request.param == "python":
        monkeypatch.setattr(native, "extension", lambda: None)
    else:
        assert native.available(), (
            "the native call is not built: run `python -m rnnkit.kernels.native build`"
        )
    return request.param


@pytest.fixture
def python_step_path(monkeypatch):
    """The Python stepper only (its output blocks)."""
    monkeypatch.setattr(native, "extension", lambda: None)
