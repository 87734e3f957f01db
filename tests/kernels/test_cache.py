"""The compiled code's disk cache carries one stamp of all the kernels' sources and of the host
facts they bake in (rnnkit.kernels._cache), such as whether the GEMMs run in pieces."""

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
    added = _cache.source_stamp.__wrapped__(tmp_path)
    assert added != changed
    assert _cache.source_stamp.__wrapped__(tmp_path, (("blas_small_gemm", False),)) != added


_CALLEE = """
from pathlib import Path
from rnnkit.kernels import _cache
{share}
from numba import njit

@njit(cache=True)
def value():
    return {value}
"""

_CALLER = """
from pathlib import Path
from rnnkit.kernels import _cache
import callee
{share}
from numba import njit
from callee import value

@njit(cache=True)
def twice():
    return 2 * value()

print(twice())
"""

_SHARE = "_cache.share_stamp(Path(__file__).parent{})"
# how the caller's and the callee's directories are stamped: (caller's share, callee's share)
_LAYOUTS = {
    "numba's own stamps": ("", ""),
    "one shared directory": (_SHARE.format(""), _SHARE.format("")),
    "depends_on another": (_SHARE.format(", depends_on=(Path(callee.__file__).parent,)"),
                           _SHARE.format("")),
}


def _run(caller: Path, callee: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env["PYTHONPATH"] = os.pathsep.join([str(caller), str(callee), *sys.path])
    done = subprocess.run([sys.executable, str(caller / "caller.py")], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.parametrize("layout", list(_LAYOUTS))
def test_a_changed_callee_is_compiled_again(tmp_path, layout):
    """A cached caller in one file, its callee in another (in the caller's directory, or in
    another): after the callee's file changes, the caller runs the new callee with a shared
    stamp; with numba's own stamps it runs the copy of the old one compiled into its cache (the
    reason for the shared stamp)."""
    caller_share, callee_share = _LAYOUTS[layout]
    caller = tmp_path / "app"
    callee = caller if layout == "one shared directory" else tmp_path / "lib"
    caller.mkdir(), callee.mkdir(exist_ok=True)
    (caller / "caller.py").write_text(textwrap.dedent(_CALLER.format(share=caller_share)))
    (callee / "callee.py").write_text(_CALLEE.format(share=callee_share, value=1))
    assert _run(caller, callee) == "2"
    assert list((caller / "__pycache__").glob("caller.twice-*.nbi"))  # it was cached
    (callee / "callee.py").write_text(_CALLEE.format(share=callee_share, value=5))
    assert _run(caller, callee) == ("2" if layout == "numba's own stamps" else "10")


def test_training_steps_share_a_stamp_that_includes_the_kernels():
    from rnnkit.training.jit import small_lstm, updates

    steps = Path(updates.__file__).resolve().parent
    assert _cache._SHARED[steps][1] == (KERNELS,)
    for dispatcher in (updates.adam_update, small_lstm.lstm_forward):
        locator = dispatcher._cache._impl.locator
        assert locator.get_source_stamp() == ("rnnkit-shared-stamp", _cache.stamp_of(steps))
    assert _cache.stamp_of(steps) != _cache.stamp_of(KERNELS)


def test_a_dependency_must_be_shared_first(tmp_path):
    with pytest.raises(ValueError, match="depends_on .* is not shared yet"):
        _cache.share_stamp(tmp_path / "app", depends_on=(tmp_path / "lib",))


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
