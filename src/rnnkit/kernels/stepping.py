"""One step of a built-in cell for streaming inference, without autograd: ``fused_step``.

``RNN.step`` calls :func:`fused_step` under ``torch.no_grad()``; it returns ``None`` (and the
caller takes its usual path) unless everything is the plain case: a built-in cell whose step is
the library's own, known activations, no layer norm or projection, and contiguous CPU tensors of
the cell's dtype with the right shapes.

What a cell's steps need (its weights transposed and its biases summed, as arrays; its activation
codes) is worked out once and kept; each call only confirms, cheaply, that the cell still holds
the same tensors, unchanged (same storage, same version counter), and rebuilds it otherwise.

This module imports numba lazily (on the first step), so ``import rnnkit`` stays light.
"""

from __future__ import annotations

import weakref

import numpy as np
import torch

_ENTRIES: dict[int, _Entry | None] = {}  # by id(cell); an entry holds a weak reference to its cell
_loops = None  # rnnkit.kernels._step_loops, once imported


class _Entry:
    """What one cell's steps need, and what must not have changed for it to stay valid."""

    __slots__ = ("cell", "family", "dtype", "np_dtype", "features", "sizes", "params", "arrays",
                 "codes", "activations", "reset_after", "like", "__weakref__")

    def valid(self, cell) -> bool:
        if self.cell() is not cell:
            return False
        parameters = cell._parameters
        for name, parameter, address, version in self.params:
            if (parameters.get(name) is not parameter or parameter._version != version
                    or parameter.data_ptr() != address):
                return False
        return (cell.activation, cell.recurrent_activation) == self.activations


def _forget(key: int) -> None:
    _ENTRIES.pop(key, None)


def _summed(dtype, *biases) -> np.ndarray:
    """The sum of the present biases as an array (empty when none is)."""
    present = [b.detach().numpy().astype(dtype) for b in biases if b is not None]
    return np.sum(present, axis=0, dtype=dtype) if present else np.empty(0, dtype)


def _build(cell) -> _Entry | None:
    """The entry for ``cell``, or ``None`` when the single-step kernel does not apply to it."""
    global _loops
    from rnnkit.kernels import fused

    if not fused._is_builtin_step(cell) or not fused.blas_available():
        return None
    spec = cell.spec
    if spec.family == "lstm" and (spec.layer_norm or spec.proj_size):
        return None
    codes = fused.codes_of(spec)
    weights = cell.weights()
    dtype = weights.weight_ih.dtype
    if codes is None or dtype not in fused.NUMPY_DTYPES:
        return None
    if not fused._weights_fit(spec, weights, torch.empty(0, 0, spec.input_size, dtype=dtype)):
        return None
    names = [name for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_peephole")
             if getattr(weights, name, None) is not None]
    tensors = {name: getattr(weights, name) for name in names}
    if any(cell._parameters.get(name) is not tensor for name, tensor in tensors.items()):
        return None  # a weight that is not a registered parameter could change unseen
    if _loops is None:
        from rnnkit.kernels import _step_loops

        _loops = _step_loops
    np_dtype = fused.NUMPY_DTYPES[dtype]
    hidden = spec.hidden_size
    entry = _Entry()
    entry.cell = weakref.ref(cell)
    entry.family, entry.dtype, entry.features = spec.family, dtype, spec.input_size
    entry.np_dtype = np_dtype
    entry.sizes = tuple(cell.state_size)
    entry.params = tuple((name, t, t.data_ptr(), t._version) for name, t in tensors.items())
    weight_ih_t = np.ascontiguousarray(tensors["weight_ih"].detach().numpy().T)
    weight_hh_t = np.ascontiguousarray(tensors["weight_hh"].detach().numpy().T)
    bias_ih, bias_hh = tensors.get("bias_ih"), tensors.get("bias_hh")
    if spec.family == "gru":
        reset_after = bool(spec.reset_after)
        if reset_after and bias_hh is not None:
            bias_x = _summed(np_dtype, bias_ih, torch.cat([bias_hh[: 2 * hidden],
                                                           torch.zeros(hidden, dtype=dtype)]))
            bias_h = bias_hh[2 * hidden :].detach().numpy().copy()
        else:
            bias_x, bias_h = _summed(np_dtype, bias_ih, bias_hh), np.empty(0, np_dtype)
        entry.arrays = (weight_ih_t, weight_hh_t, bias_x, bias_h)
        entry.reset_after = reset_after
    else:
        entry.arrays = (weight_ih_t, weight_hh_t, _summed(np_dtype, bias_ih, bias_hh))
        if spec.family == "lstm":
            peephole = tensors.get("weight_peephole")
            entry.arrays += (peephole.detach().numpy().copy() if peephole is not None
                             else np.empty((0, 0), np_dtype),)
    entry.codes = codes
    entry.activations = (cell.activation, cell.recurrent_activation)
    entry.like = weight_ih_t
    return entry


def _fits(tensor, dtype, batch, width) -> bool:
    return (
        type(tensor) is torch.Tensor
        and tensor.dtype == dtype
        and tensor.shape == (batch, width)
        and tensor.is_contiguous()
        and not tensor.is_cuda
    )


def _entry(cell) -> _Entry | None:
    key = id(cell)
    entry = _ENTRIES.get(key, False)
    if entry is False or (entry is not None and not entry.valid(cell)):
        entry = _build(cell)
        if key not in _ENTRIES:
            weakref.finalize(cell, _forget, key)
        _ENTRIES[key] = entry
    return entry


def fused_step(cell, inputs, state):
    """``(output, new_state list)`` of one step of ``cell``, or ``None`` if the kernel declines.

    Only under ``torch.no_grad()`` (or inference mode); ``state`` is a sequence of ``(B, s)``
    tensors, or ``None`` for zeros.
    """
    if torch.is_grad_enabled():
        return None
    entry = _entry(cell)
    if entry is None or type(inputs) is not torch.Tensor or inputs.dim() != 2:
        return None
    dtype = entry.dtype
    batch = inputs.shape[0]
    if batch == 0 or not _fits(inputs, dtype, batch, entry.features):
        return None
    sizes = entry.sizes
    if state is None:
        state = [torch.zeros(batch, size, dtype=dtype) for size in sizes]
    elif not isinstance(state, (list, tuple)) or len(state) != len(sizes):
        return None
    for tensor, size in zip(state, sizes):
        if not _fits(tensor, dtype, batch, size):
            return None
    arrays, codes = entry.arrays, entry.codes
    h = np.empty((batch, sizes[0]), entry.np_dtype)  # np.empty + from_numpy: cheaper than torch's
    if entry.family == "lstm":
        c = np.empty((batch, sizes[1]), entry.np_dtype)
        _loops.lstm_step(inputs.data_ptr(), state[0].data_ptr(), state[1].data_ptr(), h, c,
                         batch, entry.like, *arrays, *codes)
        h = torch.from_numpy(h)
        return h, [h, torch.from_numpy(c)]
    if entry.family == "gru":
        _loops.gru_step(inputs.data_ptr(), state[0].data_ptr(), h, batch, entry.like, *arrays,
                        entry.reset_after, *codes)
    else:
        _loops.rnn_step(inputs.data_ptr(), state[0].data_ptr(), h, batch, entry.like, *arrays,
                        codes[0])
    h = torch.from_numpy(h)
    return h, [h]
