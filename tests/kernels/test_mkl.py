"""MKL's packed GEMM (``rnnkit.kernels._mkl``), the LSTM's step product in float32 at B > 1,
against NumPy's product."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import numpy as np
import pytest

from rnnkit.kernels import _mkl


def test_found_in_torchs_x86_build():
    # torch's x86-64 CPU wheels carry MKL; elsewhere the loops keep their OpenBLAS paths.
    if platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip("torch links MKL on x86-64 only")
    assert _mkl.available()
    assert _mkl.packed_size(8, 256, 64) > 0
    assert _mkl.packed_size(8, 256, 64) % 16 == 0


@pytest.mark.parametrize(("rows", "depth", "width"), [(2, 1, 1), (3, 17, 40), (8, 64, 256),
                                                      (32, 128, 512)])
def test_packed_products_match_numpy(rows, depth, width):
    assert _mkl.available()
    rng = np.random.default_rng(0)
    a = rng.standard_normal((rows, depth)).astype(np.float32)
    matrix = rng.standard_normal((depth, width)).astype(np.float32)
    expected = a.astype(np.float64) @ matrix.astype(np.float64)
    size = _mkl.packed_size(rows, width, depth)
    for packer, operand in ((_mkl.pack, matrix), (_mkl.pack_transposed, matrix.T.copy())):
        packed = np.full(size, np.nan, np.float32)
        packer(operand, packed)
        out = np.full((rows, width), np.nan, np.float32)
        _mkl.packed_product(a, packed, out)
        np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5 * np.sqrt(depth))
        # the packed copy is reused: a second product on new rows needs no packing
        out2 = np.empty_like(out)
        _mkl.packed_product(2 * a, packed, out2)
        np.testing.assert_allclose(out2, 2 * expected, rtol=1e-5, atol=2e-5 * np.sqrt(depth))


def test_switched_off_by_the_environment(monkeypatch):
    monkeypatch.setenv("RNNKIT_MKL", "0")
    assert _mkl._functions() is None


def test_without_mkl_the_loops_link_and_run_their_openblas_paths():
    """In a process without MKL the loops' compiled code still links (its symbols point at a
    stub), no family packs, and each matches the reference, on OpenBLAS."""
    script = (
        "import numpy, torch, rnnkit.nn as rnn\n"
        "from rnnkit.kernels import _mkl, gru, lstm, rnn as simple\n"
        "assert not _mkl.available() and not lstm.packing(numpy.float32, 3, 8, 8)\n"
        "assert not gru.packing(numpy.float32, 3, 8) and not simple.packing(numpy.float32, 3, 8)\n"
        "for layer in (rnn.LSTM, rnn.GRU, rnn.RNN):\n"
        "    torch.manual_seed(0)\n"
        "    fused = layer(4, 8, batch_first=True, backend='fused')\n"
        "    reference = layer(4, 8, batch_first=True, backend='reference')\n"
        "    reference.load_state_dict(fused.state_dict())\n"
        "    x = torch.randn(3, 5, 4)\n"
        "    for module in (fused, reference):\n"
        "        module(x)[0].square().sum().backward()\n"
        "    assert torch.allclose(fused(x)[0], reference(x)[0], atol=1e-6)\n"
        "    for a, b in zip(fused.parameters(), reference.parameters()):\n"
        "        assert torch.allclose(a.grad, b.grad, atol=1e-5), (a.grad - b.grad).abs().max()\n"
        "print('ok')\n"
    )
    environment = {**os.environ, "RNNKIT_MKL": "0"}
    done = subprocess.run([sys.executable, "-c", script], env=environment, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok"


@pytest.fixture
def fresh_timing(monkeypatch):
    """No preference set, and :func:`_mkl.packed_is_faster` timing again (then forgetting it)."""
    monkeypatch.setattr(_mkl, "PREFERENCE", None)
    _mkl.packed_is_faster.cache_clear()
    yield
    _mkl.packed_is_faster.cache_clear()


@pytest.mark.parametrize(("dot_seconds", "packed_seconds", "expected"), [
    (2e-3, 0.0, True),  # packed much faster
    (0.0, 2e-3, False),  # OpenBLAS much faster
    (1e-3, 0.95e-3, False),  # packed faster, but within the margin: OpenBLAS is kept
])
def test_the_faster_product_is_chosen_by_timing(dot_seconds, packed_seconds, expected,
                                                fresh_timing, monkeypatch):
    """Without a preference the loops pack where the packed product timed faster, by the
    margin, than OpenBLAS's; the decision is taken once per process."""
    import time

    def waits(seconds):
        def repeat(*arguments):
            end = time.perf_counter() + seconds
            while time.perf_counter() < end:
                pass
        return repeat

    monkeypatch.setattr(_mkl, "_repeat_dot", waits(dot_seconds))
    monkeypatch.setattr(_mkl, "_repeat_packed", waits(packed_seconds))
    assert _mkl.packed_is_faster() is expected
    assert _mkl.worthwhile(np.float32, 8, 8 * 64 * 256) is expected
    monkeypatch.setattr(_mkl, "_repeat_dot", waits(packed_seconds))  # no second timing
    monkeypatch.setattr(_mkl, "_repeat_packed", waits(dot_seconds))
    assert _mkl.packed_is_faster() is expected


def test_the_real_timing_gives_an_answer_and_a_preference_overrides_it(fresh_timing,
                                                                        monkeypatch):
    answer = _mkl.packed_is_faster()
    assert isinstance(answer, bool)
    assert _mkl.worthwhile(np.float32, 8, 8 * 64 * 256) is answer
    for preference in (True, False):
        monkeypatch.setattr(_mkl, "PREFERENCE", preference)
        assert _mkl.worthwhile(np.float32, 8, 8 * 64 * 256) is preference
        # float64, one row and the large sizes never pack
        assert not _mkl.worthwhile(np.float64, 8, 8 * 64 * 256)
        assert not _mkl.worthwhile(np.float32, 1, 64 * 256)
        assert not _mkl.worthwhile(np.float32, 64, 64 * 512 * 2048)
