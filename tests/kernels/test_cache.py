"""The kernels' disk cache carries one stamp of all their sources (rnnkit.kernels._cache)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rnnkit.kernels import _blas, _cache, _lstm_loops, _rows

KERNELS = Path(_rows.__file__).resolve().parent


def test_every_kernel_module_shares_the_package_stamp():
    stamp = ("rnnkit-shared-stamp", _cache.source_stamp(KERNELS))
    for dispatcher in (_rows.row_moments, _blas.piece_rows, _lstm_loops.lstm_forward):
        locator = dispatcher._cache._impl.locator
        assert isinstance(locator, _cache._SharedStamp), type(locator)
        assert locator.get_source_stamp() == stamp


def test_stamp_follows_every_source_file(tmp_path):
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "b.py").write_text("y = 2\n")
    first = _cache.source_stamp.__wrapped__(tmp_path)
    (tmp_path / "notes.txt").write_text("not a source")
    assert _cache.source_stamp.__wrapped__(tmp_path) == first
    (tmp_path / "b.py").write_text("y = 3\n")
    changed = _cache.source_stamp.__wrapped__(tmp_path)
    assert changed != first
    (tmp_path / "c.py").write_text("")
    assert _cache.source_stamp.__wrapped__(tmp_path) != changed


_CALLER = """
from pathlib import Path
from rnnkit.kernels import _cache
{share}
from numba import njit
from callee import value

@njit(cache=True)
def twice():
    return 2 * value()

print(twice())
"""


def _run(directory: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env["PYTHONPATH"] = os.pathsep.join([str(directory), *sys.path])
    done = subprocess.run([sys.executable, str(directory / "caller.py")], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.parametrize("shared", [True, False], ids=["shared stamp", "numba's own stamps"])
def test_a_changed_callee_is_compiled_again(tmp_path, shared):
    """A cached caller in one file, its callee in another: after the callee's file changes, the
    caller runs the new callee with the shared stamp; with numba's own stamps it runs the copy
    of the old one compiled into its cache (the reason for the shared stamp)."""
    share = "_cache.share_stamp(Path(__file__).parent)" if shared else ""
    (tmp_path / "caller.py").write_text(textwrap.dedent(_CALLER.format(share=share)))
    callee = "from numba import njit\n\n@njit(cache=True)\ndef value():\n    return {}\n"
    (tmp_path / "callee.py").write_text(callee.format(1))
    assert _run(tmp_path) == "2"
    assert list((tmp_path / "__pycache__").glob("caller.twice-*.nbi"))  # it was cached
    (tmp_path / "callee.py").write_text(callee.format(5))
    assert _run(tmp_path) == ("10" if shared else "2")
