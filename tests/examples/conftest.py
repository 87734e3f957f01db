"""Fixtures for the example tests: ``examples/`` on the path, figures in a temp dir, closed."""

from __future__ import annotations

import sys

import matplotlib
import pytest

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

from ._runner import EXAMPLES  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _examples_on_path(tmp_path_factory):
    """The scripts import ``_example_settings`` from their own folder; figures go to a temp dir."""
    sys.path.insert(0, str(EXAMPLES))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RNNKIT_EXAMPLE_FIGURES", str(tmp_path_factory.mktemp("figures")))
        patch.delenv("RNNKIT_EXAMPLE_EPOCHS", raising=False)
        yield
    sys.path.remove(str(EXAMPLES))


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")
