"""The fused LSTM's four ways of running a step GEMM, its reused work arrays and the layout
of the arrays it carves from one block, against the reference loop.

In float32 at B > 1 the step GEMMs run on U packed once per call, where MKL is found (see
``rnnkit.kernels._mkl``). Otherwise small problems run them batch-major in one piece, mid-sized
ones in column blocks and large ones batch-minor (see ``rnnkit.kernels.lstm.step_gemm``); the
property tests elsewhere draw small problems, so here packing is turned off and the thresholds
are moved to run the other two paths on every option.
"""

from __future__ import annotations

import contextlib
import math
from unittest import mock

import numpy as np
import pytest
import torch
from hypothesis import given, settings

from rnnkit.cells import LSTMCell
from rnnkit.kernels import lstm as lstm_kernels
from rnnkit.kernels._common import ALIGN_ITEMS, block_layout
from rnnkit.kernels._lstm_loops import (
    _backward_scratch,
    _forward_scratch,
    _saved_views,
    _work_views,
)

from ._harness import (
    assert_backends_agree,
    build_problem,
    gradcheck_fused,
    make_problem,
    sequence_settings,
)
from .test_fused_lstm import OPTIONS, units_and_projection


def never_packed():
    return mock.patch.object(lstm_kernels, "packing", lambda *sizes: False)


@contextlib.contextmanager
def batch_minor_everywhere():
    with never_packed(), mock.patch.object(lstm_kernels, "BATCH_MINOR_MIN_MACS", 0):
        yield


def most_column_blocks(rows, depth, width):
    """As many column blocks (up to 4) as divide ``width``, whatever the size."""
    return next(blocks for blocks in (4, 3, 2, 1) if width % blocks == 0)


@contextlib.contextmanager
def column_blocks_everywhere():
    with never_packed(), mock.patch.object(lstm_kernels, "column_blocks", most_column_blocks):
        yield


@contextlib.contextmanager
def packed_everywhere():
    """The default where MKL is found; asserted, so that the path is not silently skipped."""
    assert lstm_kernels.packing(np.float32, 2, 8, 8), "MKL's packed GEMM was not found (see _mkl)"
    yield


@pytest.mark.parametrize(
    "path", [packed_everywhere, column_blocks_everywhere, batch_minor_everywhere],
    ids=["packed", "column blocks", "batch minor"],
)
@settings(max_examples=40, deadline=None)
@given(shape=units_and_projection(), options=OPTIONS, sequence=sequence_settings())
def test_step_gemm_paths_match_reference(path, shape, options, sequence):
    units, proj_size = shape
    # as in test_fused_lstm: layer norm over one unit is degenerate
    options = {**options, "proj_size": proj_size, "layer_norm": options["layer_norm"] and units > 1}
    with path():
        assert_backends_agree(build_problem("lstm", units, options, sequence))


@pytest.mark.parametrize("options", [{}, {"peephole": True, "layer_norm": True, "proj_size": 2}])
def test_batch_minor_gradcheck(options):
    cell = LSTMCell(3, input_size=2, dtype=torch.float64, **options)
    problem = make_problem(
        cell, batch=3, steps=4, mask_kind="random", recurrent=True, zero_output=False, seed=11
    )
    with batch_minor_everywhere():
        assert gradcheck_fused(problem)


# U is packed in float32 only (libtorch_cpu exports no packed DGEMM)
@pytest.mark.parametrize(("dtype", "packing"), [(torch.float32, True), (torch.float32, False),
                                                (torch.float64, False)],
                         ids=["float32-packed", "float32", "float64"])
@pytest.mark.parametrize(
    ("batch", "minor", "blocks"), [(32, False, 4), (64, True, 1)], ids=["column_blocks", "minor"]
)
def test_large_enough_for_blocks_or_batch_minor(dtype, packing, batch, minor, blocks):
    """Problems the default thresholds send to column blocks (B=32) and batch-minor (B=64), in
    both directions, with masks and every option (in float32, also on U packed)."""
    units, input_size = 128, 24
    for depth, width in ((units, 4 * units), (4 * units, units)):  # forward, backward
        assert lstm_kernels.step_gemm(batch, depth, width) == (minor, blocks)
    with contextlib.nullcontext() if packing else never_packed():
        assert lstm_kernels.packing(np.float32, batch, units, units) == packing
        for options in ({}, {"peephole": True, "layer_norm": True, "recurrent_bias": True}):
            cell = LSTMCell(units, input_size=input_size, dtype=dtype, **options)
            problem = make_problem(
                cell, batch=batch, steps=5, mask_kind="random", recurrent=True,
                zero_output=True, seed=3,
            )
            assert_backends_agree(problem)


@pytest.mark.parametrize("norm", [False, True], ids=["gate-major", "layer norm"])
def test_packed_layouts_hold_u_packed_per_gate_or_whole(norm):
    """The gate-major cell packs each gate's rows of U, layer norm's row-major step U whole, and
    the backward U itself; float64 and B=1 pack nothing."""
    batch, hidden, rec = 8, 16, 16
    size, layout, minor = lstm_kernels._forward_shape(
        batch, 5, 3, hidden, rec, norm, False, False, True, True)
    rows, columns = layout[-1, 1:3]
    assert not minor
    assert (rows, columns) == ((1, lstm_kernels._mkl.packed_size(batch, 4 * hidden, rec)) if norm
                               else (4, lstm_kernels._mkl.packed_size(batch, hidden, rec)))
    *_, work_layout, _ = lstm_kernels._backward_shape(
        batch, 5, 3, hidden, rec, norm, False, (True,) * 15, True, True)
    assert work_layout[-1, 1] == lstm_kernels._mkl.packed_size(batch, rec, 4 * hidden) > 0
    assert lstm_kernels.packing(np.float32, batch, rec, hidden)
    assert not lstm_kernels.packing(np.float64, batch, rec, hidden)
    assert not lstm_kernels.packing(np.float32, 1, rec, hidden)
    # the large size's step GEMM runs faster on OpenBLAS
    assert not lstm_kernels.packing(np.float32, 64, 512, 512)


@pytest.mark.parametrize(("batch", "units", "plan"), [(1, 512, (True, 1)), (2, 512, (False, 4))])
def test_one_row_is_never_split_in_column_blocks(batch, units, plan):
    for depth, width in ((units, 4 * units), (4 * units, units)):  # forward, backward
        assert lstm_kernels.step_gemm(batch, depth, width) == plan


@pytest.mark.parametrize("extra_steps", [0, 1])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_single_row_on_either_side_of_stored_u(extra_steps, dtype):
    """B=1: up to ``STORED_U_MAX_STEPS`` steps multiply by U as stored, beyond by a copy of U^T."""
    steps = lstm_kernels.STORED_U_MAX_STEPS + extra_steps
    for options in ({}, {"peephole": True, "layer_norm": True, "proj_size": 2}):
        cell = LSTMCell(5, input_size=3, dtype=dtype, **options)
        problem = make_problem(
            cell, batch=1, steps=steps, mask_kind="random", recurrent=True, zero_output=False,
            seed=5,
        )
        assert_backends_agree(problem)


def test_work_arrays_reused_across_shapes():
    """Backward passes of several sizes in turn: each reuses (or grows) the same work arrays."""
    sizes = [(4, 6, 5), (2, 3, 2), (5, 7, 6), (4, 6, 5)]  # (batch, steps, units)
    for seed, (batch, steps, units) in enumerate(sizes):
        for dtype in (torch.float32, torch.float64):
            cell = LSTMCell(units, input_size=3, dtype=dtype)
            problem = make_problem(
                cell, batch=batch, steps=steps, mask_kind="right_padded", recurrent=False,
                zero_output=False, seed=seed,
            )
            assert_backends_agree(problem)


@pytest.mark.parametrize(
    "shapes",
    [((3, 2, 5), (0, 4), (7,), (2, 1, 16)), ((1,),), ((0, 3, 2), (4, 4), (5, 3, 1))],
)
def test_layout_gives_each_array_an_aligned_span_of_its_own(shapes):
    size, layout = block_layout(shapes)
    end = 0
    for (start, *dims), shape in zip(layout.tolist(), shapes):
        assert start % ALIGN_ITEMS == 0 and start >= end
        assert tuple(dims) == shape + (1,) * (3 - len(shape))
        end = start + math.prod(shape)
    assert size >= end


def _saved_and_scratch(block, layout):
    return (*_saved_views(block, layout), *_forward_scratch(block, layout))


def _work_and_scratch(block, layout):
    return (*_work_views(block, layout), *_backward_scratch(block, layout))


@pytest.mark.parametrize("options", [(False, False, False, True), (True, True, True, False)])
def test_carved_arrays_do_not_overlap(options):
    """Filled one after the other, every array carved from a block (saved or work arrays and the
    scratch after them) keeps its own values."""
    norm, mask, proj, gate_major = options
    batch, steps, features, hidden, rec = 2, 3, 4, 5, 3 if proj else 5
    every_gradient = (True,) * 15
    carved = [
        (_saved_and_scratch, lstm_kernels._forward_shape(
            batch, steps, features, hidden, rec, norm, mask, proj, gate_major)[:2]),
        (_work_and_scratch, lstm_kernels._backward_shape(
            batch, steps, features, hidden, rec, norm, proj, every_gradient, gate_major)[2:4]),
    ]
    for views_of, (size, layout) in carved:
        views = views_of(np.zeros(size, np.float32), layout)
        assert len(views) == len(layout)  # every array the layout places has its view
        for k, view in enumerate(views):
            assert view.shape == tuple(layout[k, 1 : 1 + view.ndim])
            view[...] = k + 1
        for k, view in enumerate(views):
            assert np.all(view == k + 1)


def _nan_filled(shape, dtype):
    return np.full(shape, np.nan, dtype)


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("options", [{}, {"proj_size": 2}, {"peephole": True, "proj_size": 2},
                                     {"layer_norm": True}, {"layer_norm": True, "proj_size": 2}])
def test_no_result_reads_memory_the_loops_did_not_write(monkeypatch, batch, options):
    # The saved and work blocks are reused memory, uninitialised: filled with NaN here, any read
    # of a part no loop wrote (a masked row's m, a scratch array not reset) shows in the results.
    # (Once seen: the reverse direction's masked first steps left m unwritten, and the
    # projection's weight gradient read it as NaN * 0.)
    import rnnkit.nn
    from rnnkit.kernels import native

    monkeypatch.setattr(native, "extension", lambda: None)  # the Python path: its blocks are these
    monkeypatch.setattr(lstm_kernels, "recycled", _nan_filled)
    monkeypatch.setattr(lstm_kernels, "workspace", lambda _, *layout: _nan_filled(*layout))
    torch.manual_seed(0)
    shape = {"batch_first": True, "bidirectional": True, "dtype": torch.float64}
    ours = rnnkit.nn.LSTM(4, 6, backend="fused", **shape, **options)
    twin = rnnkit.nn.LSTM(4, 6, backend="reference", **shape, **options)
    twin.load_state_dict(ours.state_dict())
    x = torch.randn(batch, 5, 4, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([5, 2, 4][:batch])
    results = []
    for module in (ours, twin):
        output, (h_n, c_n) = module(x, lengths=lengths)
        loss = output.square().sum() + h_n.sum() + 2 * c_n.sum()
        results.append(torch.autograd.grad(loss, [x, *module.parameters()]))
    for mine, theirs in zip(*results, strict=True):
        assert torch.isfinite(mine).all()
        torch.testing.assert_close(mine, theirs, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(
    "options",
    [{}, {"peephole": True}, {"layer_norm": True}, {"proj_size": 3},
     {"peephole": True, "layer_norm": True, "recurrent_bias": True}],
    ids=["plain", "peephole", "layer_norm", "proj", "peephole-layer_norm"],
)
@pytest.mark.parametrize("mask_kind", ["none", "random"])
def test_packed_step_of_the_default_cell_matches_reference(options, mask_kind):
    """The default tanh/sigmoid cell (gate-major, U packed per gate), which the property test
    above draws rarely, in float32 at B=3."""
    assert lstm_kernels.packing(np.float32, 3, 6, 6)
    cell = LSTMCell(6, input_size=4, dtype=torch.float32, **options)
    problem = make_problem(
        cell, batch=3, steps=6, mask_kind=mask_kind, recurrent=True, zero_output=False, seed=13
    )
    assert_backends_agree(problem)
