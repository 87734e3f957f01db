"""The GEMMs over all steps in small-kernel pieces (rnnkit.kernels._blas) against NumPy."""

import contextlib

import numpy as np
import pytest
import torch

from rnnkit.kernels import _common
from rnnkit.kernels._blas import (
    MIN_PIECE_ROWS,
    SMALL_GEMM_MACS,
    dot_rows,
    gemm_tn_into,
    output_halves,
    piece_rows,
)

from ._harness import CELL_CLASSES, assert_backends_agree, make_problem, two_core_pipeline

TOLERANCE = {np.float32: dict(rtol=2e-5, atol=2e-4), np.float64: dict(rtol=1e-12, atol=1e-11)}


def _random(generator, shape, dtype):
    return generator.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("row_macs, rows, expected", [
    (256 * 64, 3200, 56),        # 10^6 // 16384 = 61 -> 56, a multiple of 8
    (256 * 64, 40, 40),          # a piece would cover every row: one piece
    (512 * 192, 3200, 3200),     # 10 rows a piece, fewer than MIN_PIECE_ROWS: whole
    (16 * 16, 100_000, 3904),    # 10^6 // 256 = 3906 -> 3904
    (0, 5, 5),
    (10, 0, 1),                  # no rows: one (empty) piece
])
def test_piece_rows_keeps_each_piece_within_the_small_kernel(row_macs, rows, expected):
    got = piece_rows(row_macs, rows)
    assert got == expected
    if got < rows:
        assert got % 8 == 0 and got >= MIN_PIECE_ROWS and got * row_macs <= SMALL_GEMM_MACS


@pytest.mark.parametrize("width, depth, rows, expected", [
    (512, 128, 3200, 2),    # the LSTM's d(U) at H=128: 15 rows a piece whole, 30 in halves
    (512, 192, 3200, 2),
    (1024, 256, 3200, 1),   # half of it still too wide: whole
    (510, 130, 3200, 2),    # halves of an odd 255 rows
    (511, 128, 3200, 1),    # odd: no halves
    (256, 64, 3200, 1),     # pieces already
    (512, 128, 10, 1),      # within the small kernel's limit whole
])
def test_output_halves_only_for_rows_too_wide_for_pieces(width, depth, rows, expected):
    assert output_halves(width, depth, rows) == expected
    if expected == 2:
        assert piece_rows(width * depth, rows) == rows
        assert MIN_PIECE_ROWS <= piece_rows(width // 2 * depth, rows) < rows


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows, width, depth", [
    (3200, 256, 64),   # 56-row pieces, the last one short
    (101, 128, 32),    # 240-row pieces: one
    (57, 2048, 64),    # rows too wide for pieces: one GEMM
    (640, 512, 128),   # too wide for pieces, but not half of them: two halves of 24-row pieces
    (1, 4, 3),
])
@pytest.mark.parametrize("accumulate", [False, True])
def test_gemm_tn_into_matches_numpy(dtype, rows, width, depth, accumulate):
    generator = np.random.default_rng(rows + width)
    a, b = _random(generator, (rows, width), dtype), _random(generator, (rows, depth), dtype)
    start = _random(generator, (width, depth), dtype)
    out = start.copy()
    gemm_tn_into(a, b, out, accumulate)
    expected = a.astype(np.float64).T @ b.astype(np.float64) + (start if accumulate else 0.0)
    np.testing.assert_allclose(out, expected, **TOLERANCE[dtype])


def test_gemm_tn_into_reads_and_writes_rows_with_a_stride():
    """Row blocks of wider arrays (the GRU writes d(U)'s rows in two blocks): the GEMM reads
    and writes them by their row stride and leaves the other columns alone."""
    generator = np.random.default_rng(1)
    wide_a = _random(generator, (300, 40), np.float64)
    wide_b = _random(generator, (300, 24), np.float64)
    wide_out = _random(generator, (30, 50), np.float64)
    before = wide_out.copy()
    a, b, out = wide_a[:, 5:35], wide_b[:, :16], wide_out[:, 10:26]
    gemm_tn_into(a, b, out, True)
    np.testing.assert_allclose(out, before[:, 10:26] + a.T @ b, rtol=1e-12, atol=1e-11)
    untouched = np.ones(wide_out.shape, bool)
    untouched[:, 10:26] = False
    np.testing.assert_array_equal(wide_out[untouched], before[untouched])


def test_gemm_tn_into_without_rows_zeroes_or_keeps_out():
    out = np.ones((3, 2))
    gemm_tn_into(np.empty((0, 3)), np.empty((0, 2)), out, True)
    np.testing.assert_array_equal(out, 1.0)
    gemm_tn_into(np.empty((0, 3)), np.empty((0, 2)), out, False)
    np.testing.assert_array_equal(out, 0.0)


def test_gemm_tn_into_refuses_rows_that_are_not_contiguous():
    a = np.ones((10, 8))[:, ::2]
    with pytest.raises(ValueError, match="rows are contiguous"):
        gemm_tn_into(a, np.ones((10, 3)), np.zeros((4, 3)), False)


def test_gemm_tn_into_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match="shapes do not match"):
        gemm_tn_into(np.ones((10, 4)), np.ones((9, 3)), np.zeros((4, 3)), False)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows, depth, width", [(3200, 32, 256), (100, 64, 512), (7, 3, 5)])
def test_dot_rows_matches_numpy(dtype, rows, depth, width):
    generator = np.random.default_rng(rows)
    a, b = _random(generator, (rows, depth), dtype), _random(generator, (depth, width), dtype)
    out = np.full((rows, width), np.nan, dtype)
    dot_rows(a, b, out)
    expected = a.astype(np.float64) @ b.astype(np.float64)
    np.testing.assert_allclose(out, expected, **TOLERANCE[dtype])


def test_dot_rows_takes_a_transposed_right_hand_side():
    """``x W^T`` with ``W^T`` a view of the ``(M, K)`` weight, in pieces (copied row-major)."""
    generator = np.random.default_rng(3)
    a = _random(generator, (3200, 32), np.float32)
    weight = _random(generator, (256, 32), np.float32)
    out = np.empty((3200, 256), np.float32)
    dot_rows(a, weight.T, out)
    np.testing.assert_allclose(out, a.astype(np.float64) @ weight.T.astype(np.float64),
                               **TOLERANCE[np.float32])


def _assert_kernels_match_reference(family, options, dtype, pipelined, units, monkeypatch):
    """B=8, T=64 (512 rows over all steps), inputs of ``units // 2``, against the reference;
    pipelined, on two threads with the batch never split in halves, the companion adds up the
    weight gradients chunk by chunk (see rnnkit.kernels._sync)."""
    batch, steps, gates = 8, 64, GATES[family]
    features = units // 2
    cell = CELL_CLASSES[family](units, input_size=features, dtype=dtype, **options)
    problem = make_problem(cell, batch=batch, steps=steps, mask_kind="random", recurrent=True,
                           zero_output=False, seed=11)
    with torch.no_grad():  # gates off saturation: every path's gradient matters
        for param in cell.parameters():
            param.mul_(units**-0.5)
    if pipelined:
        monkeypatch.setattr(_common, "HALVES_MIN_MACS", 1 << 62)
    with two_core_pipeline() if pipelined else contextlib.nullcontext():
        if pipelined:
            assert _common.pipeline_chunk(family, batch, steps, features, gates * units,
                                          units) > 0
        assert_backends_agree(problem)


GATES = {"lstm": 4, "gru": 3, "rnn": 1}
FAMILIES = pytest.mark.parametrize(("family", "options"), [
    ("lstm", {}),
    ("lstm", {"peephole": True, "layer_norm": True}),
    ("gru", {"reset_after": True}),
    ("gru", {"reset_after": False}),
    ("rnn", {}),
], ids=["lstm", "lstm-peephole-layer_norm", "gru", "gru-reset-before", "rnn"])


@pytest.mark.parametrize("pipelined", [False, True], ids=["one-core", "pipelined"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@FAMILIES
def test_kernels_with_their_gemms_in_pieces_match_reference(family, options, dtype, pipelined,
                                                            monkeypatch):
    """Units such that the weight gradients, the input projection and d(x) each run in several
    pieces (the hypothesis draws are too small for any)."""
    units = {"lstm": 32, "gru": 48, "rnn": 64}[family]
    rows, gates = 8 * 64, GATES[family]
    for row_macs in (gates * units * units, gates * units * units // 2):
        assert piece_rows(row_macs, rows) < rows
    _assert_kernels_match_reference(family, options, dtype, pipelined, units, monkeypatch)


@pytest.mark.parametrize("pipelined", [False, True], ids=["one-core", "pipelined"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize(("family", "options"), [
    ("lstm", {}),
    ("lstm", {"peephole": True, "layer_norm": True}),
    ("gru", {"reset_after": True}),  # reset-before's d(U) is two narrower GEMMs
    ("rnn", {}),
], ids=["lstm", "lstm-peephole-layer_norm", "gru", "rnn"])
def test_kernels_with_d_u_in_two_halves_match_reference(family, options, dtype, pipelined,
                                                        monkeypatch):
    """Units such that d(U), ``(G H, N) @ (N, H)``, is too wide for pieces and runs in two
    halves of its rows, each in pieces (see rnnkit.kernels._blas.output_halves)."""
    units = {"lstm": 128, "gru": 160, "rnn": 256}[family]
    gates = GATES[family]
    assert output_halves(gates * units, units, 8 * 64) == 2
    _assert_kernels_match_reference(family, options, dtype, pipelined, units, monkeypatch)
