"""The kernels' disk cache carries one stamp of all their sources (rnnkit.kernels._cache)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rnnkit.kernels import _blas, _cache, _lstm_loops, _numba, _rows

KERNELS = Path(_rows.__file__).resolve().parent


def test_every_kernel_module_shares_the_package_stamp():
    facts = (("blas_small_gemm", _numba.BLAS_SMALL_GEMM),)
    stamp = ("rnnkit-shared-stamp", _cache.source_stamp(KERNELS, facts))
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


def _kernel_facts(**env) -> list[str]:
    """``SMALL_GEMM_MACS``, a step GEMM's column blocks and the kernels' stamp, from a process
    with ``env`` added."""
    code = ("from rnnkit.kernels import _blas, _rows; "
            "print(_blas.SMALL_GEMM_MACS, _rows.column_blocks(32, 128, 512), "
            "_rows.row_moments._cache._impl.locator.get_source_stamp()[1])")
    full = {k: v for k, v in os.environ.items() if k != "RNNKIT_BLAS_SMALL_GEMM"} | env
    done = subprocess.run([sys.executable, "-c", code], env=full, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_pieces_only_where_openblas_has_its_small_kernel():
    """OpenBLAS's Haswell kernels have no small-matrix kernel: every GEMM runs whole there, and
    the kernels compiled so carry another stamp than those with pieces."""
    skylake = _kernel_facts(RNNKIT_BLAS_SMALL_GEMM="1")
    haswell = _kernel_facts(OPENBLAS_CORETYPE="Haswell")
    assert skylake[:2] == ["1000000", "4"]
    assert haswell[:2] == ["0", "1"]
    assert skylake[2] != haswell[2]


@pytest.mark.parametrize(("env", "features", "expected"), [
    ({"OPENBLAS_CORETYPE": "Haswell"}, None, False),
    ({"OPENBLAS_CORETYPE": "Zen"}, None, False),
    ({"OPENBLAS_CORETYPE": "SkylakeX"}, None, True),
    ({"OPENBLAS_CORETYPE": "cooperlake"}, None, True),
    ({}, {"avx512f": True, "avx512bw": True, "avx512cd": True, "avx512dq": True,
          "avx512vl": True, "avx2": True}, True),
    ({}, {"avx512f": True, "avx2": True}, False),  # AVX-512 without BW, VL...: not SkylakeX's
    ({}, {"avx2": True}, False),
    ({"RNNKIT_BLAS_SMALL_GEMM": "0", "OPENBLAS_CORETYPE": "SkylakeX"}, None, False),
    ({"RNNKIT_BLAS_SMALL_GEMM": "1", "OPENBLAS_CORETYPE": "Haswell"}, None, True),
])
def test_blas_small_gemm_reads_the_core_and_the_cpu(monkeypatch, env, features, expected):
    for name in ("RNNKIT_BLAS_SMALL_GEMM", "OPENBLAS_CORETYPE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(_numba.llvm, "get_host_cpu_features", lambda: features)
    assert _numba.blas_small_gemm() is expected


def test_no_pieces_where_llvm_cannot_describe_the_cpu(monkeypatch):
    def unknown():
        raise RuntimeError("no host CPU features")

    monkeypatch.delenv("RNNKIT_BLAS_SMALL_GEMM", raising=False)
    monkeypatch.delenv("OPENBLAS_CORETYPE", raising=False)
    monkeypatch.setattr(_numba.llvm, "get_host_cpu_features", unknown)
    assert _numba.blas_small_gemm() is False


def test_a_bad_override_names_the_variable(monkeypatch):
    monkeypatch.setenv("RNNKIT_BLAS_SMALL_GEMM", "yes")
    with pytest.raises(ValueError, match="RNNKIT_BLAS_SMALL_GEMM must be '0' or '1', got 'yes'"):
        _numba.blas_small_gemm()
