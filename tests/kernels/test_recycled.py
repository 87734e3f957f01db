"""The pool of large arrays the kernels hand on (``recycled``): a buffer is reused only once
nothing views it, so results and saved arrays of earlier calls are never overwritten."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

import rnnkit.nn
from rnnkit.kernels import _common
from rnnkit.kernels._common import POOLED_MIN_BYTES, recycled

LARGE = (POOLED_MIN_BYTES // 4,)  # float32 elements of the smallest pooled size


def pooled(dtype) -> list[np.ndarray]:
    """This thread's pool of ``dtype`` buffers."""
    return _common._pools.__dict__.get(np.dtype(dtype), [])


def test_small_arrays_are_not_pooled():
    small = recycled((16,), np.float32)
    assert small.base is None  # an array of its own
    assert not any(np.shares_memory(small, buffer) for buffer in pooled(np.float32))


@pytest.mark.parametrize(
    "keep",
    [
        lambda array: array,
        lambda array: array[3:7],  # a view of the array
        torch.from_numpy,  # a tensor sharing its memory
        lambda array: torch.from_numpy(array)[1:].numpy(),  # the tensor's own numpy view
    ],
    ids=["array", "view", "tensor", "tensor view"],
)
def test_a_viewed_buffer_is_not_handed_out_and_a_released_one_is(keep):
    first = recycled(LARGE, np.float32)
    holder = keep(first)
    del first
    second = recycled(LARGE, np.float32)
    assert not np.shares_memory(second, np.asarray(holder))
    del holder
    third = recycled(LARGE, np.float32)
    assert not np.shares_memory(third, second)
    del third
    fourth = recycled((LARGE[0] // 2, 2), np.float32)  # a smaller size fits a free buffer
    assert fourth.shape == (LARGE[0] // 2, 2) and fourth.flags.c_contiguous
    assert any(np.shares_memory(fourth, buffer) for buffer in pooled(np.float32))


def test_another_threads_array_keeps_its_buffer():
    held = []

    def take():
        held.append(recycled(LARGE, np.float64))

    worker = threading.Thread(target=take)
    worker.start()
    worker.join()
    mine = recycled(LARGE, np.float64)  # this thread's pool never holds the worker's buffer
    assert not np.shares_memory(mine, held[0])


def test_past_the_cap_arrays_are_allocated_but_not_kept(monkeypatch):
    monkeypatch.setattr(_common, "POOL_MAX_BYTES", POOLED_MIN_BYTES)
    monkeypatch.setattr(_common, "_pools", threading.local())
    first = recycled(LARGE, np.float32)
    second = recycled(LARGE, np.float32)  # the first is in use and the pool is full
    assert len(pooled(np.float32)) == 1
    assert not np.shares_memory(first, second)


@pytest.mark.parametrize("family", ["RNN", "GRU", "LSTM"])
def test_two_calls_in_one_graph_keep_their_own_saved_arrays(family):
    """Arrays over the pool's threshold: the second forward must not reuse the first's saved
    arrays, which the backward still reads."""
    torch.manual_seed(0)
    fused = getattr(rnnkit.nn, family)(8, 128, batch_first=True, dtype=torch.float64)
    reference = getattr(rnnkit.nn, family)(8, 128, batch_first=True, dtype=torch.float64,
                                           backend="reference")
    reference.load_state_dict(fused.state_dict())
    first, second = torch.randn(2, 32, 50, 8, dtype=torch.float64)
    grads = []
    for module in (fused, reference):
        out_first, _ = module(first)
        out_second, _ = module(second)
        (out_first.square().sum() + out_second.sum()).backward()
        grads.append([p.grad.clone() for p in module.parameters()])
        fused_again, _ = module(first)  # after the backward: the pool may now hand buffers out
        torch.testing.assert_close(fused_again, out_first, rtol=0, atol=0)
    for ours, theirs in zip(*grads):
        torch.testing.assert_close(ours, theirs, rtol=1e-9, atol=1e-9)
