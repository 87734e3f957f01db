"""One step of a built-in cell for streaming inference, without autograd: ``fused_step``.

``RNN.step`` calls :func:`fused_step` under ``torch.no_grad()``; it returns ``None`` (and the
caller takes its usual, fully checked path) unless everything is the plain case: a built-in cell
whose step is the library's own, known activations, no layer norm or projection, and contiguous
CPU tensors of the cell's dtype with the right shapes.

A step at batch 1 costs a few microseconds, so each call does only what cannot be known in
advance. What a cell's steps need (its weights packed into one array, see
:mod:`rnnkit.kernels._step_loops`) is worked out once per cell and kept in a :class:`_Stepper`;
each call confirms cheaply that the cell still holds the same tensors, unchanged (same object,
storage and version counter), and rebuilds it otherwise. The outputs are views handed out from a
block allocated for many steps (one torch allocation per block instead of per tensor), and a state
that the previous step returned is recognised by identity, so its checks are not repeated.

This module imports numba lazily (on the first step), so ``import rnnkit`` stays light.
"""

from __future__ import annotations

import weakref

import numpy as np
import torch

_STEPPERS: dict[int, _Stepper | None] = {}  # by id(cell); a stepper holds a weak ref to its cell
_loops = None  # rnnkit.kernels._step_loops, once imported
BLOCK_ELEMENTS = 4096  # values per block of outputs: 32 LSTM steps at B=1, H=64
MAX_POOLS = 8  # batch sizes with a block in use, per cell


def fused_step(cell, inputs, state):
    """``(output (B, H), new_state list)`` of one step of ``cell``, or ``None`` if it declines.

    Only under ``torch.no_grad()`` (or inference mode); ``inputs`` is ``(B, I)``, ``state`` a
    sequence of ``(B, s)`` tensors, or ``None`` for zeros. The output is the new state's ``h``.
    """
    if torch.is_grad_enabled():
        return None
    stepper = _STEPPERS.get(id(cell), False)
    if stepper is False or (stepper is not None and not stepper.valid(cell)):
        stepper = _install(cell)
    return None if stepper is None else stepper.step(inputs, state)


def _install(cell) -> _Stepper | None:
    key = id(cell)
    if key not in _STEPPERS:
        weakref.finalize(cell, _STEPPERS.pop, key, None)
    stepper = _STEPPERS[key] = _build(cell)
    return stepper


def _fits(tensor, dtype, batch, width) -> bool:
    """A contiguous CPU ``torch.Tensor`` of ``dtype`` and shape ``(batch, width)``."""
    return (
        type(tensor) is torch.Tensor
        and tensor.dtype is dtype
        and tensor.is_cpu
        and tensor.shape == (batch, width)
        and tensor.is_contiguous()
    )


class _Stepper:
    """One cell's single steps: its packed weights, what must not change, and its output blocks.

    ``last`` is the slot (see :meth:`_refill`) handed out by the previous step: when the next step
    receives that slot's state tensors, unchanged, their addresses and shape are already known.
    """

    __slots__ = (
        "cell",
        "params",
        "activations",
        "family",
        "dtype",
        "features",
        "hidden",
        "n_state",
        "call",
        "mode",
        "packed",
        "pools",
        "last",
        "__weakref__",
    )

    def valid(self, cell) -> bool:
        """Whether ``cell`` still holds the tensors and activations this stepper was built from."""
        if self.cell() is not cell:
            return False
        parameters = cell._parameters
        for name, parameter, address, version in self.params:
            if (
                parameters.get(name) is not parameter
                or parameter._version != version
                or parameter.data_ptr() != address
            ):
                return False
        # Identity: the objects were read from this cell, and any assignment since rebuilds.
        activation, recurrent_activation = self.activations
        return cell.activation is activation and cell.recurrent_activation is recurrent_activation

    def step(self, inputs, state):
        """See :func:`fused_step`."""
        if type(inputs) is not torch.Tensor or inputs.dtype is not self.dtype or not inputs.is_cpu:
            return None
        last = self.last
        if last is not None and last[0][1] is state and _untouched(last):
            # The state the previous step returned, as it returned it: its checks are done.
            shape, addresses = last[1], last[3]
            if inputs.shape != shape or not inputs.is_contiguous():
                return None
        else:
            shape = inputs.shape
            if len(shape) != 2 or shape[1] != self.features or shape[0] == 0:
                return None
            addresses = self._addresses(state, shape[0])
            if addresses is None or not inputs.is_contiguous():
                return None
        pool = self.pools.get(shape[0])
        slot = None if pool is None else next(pool, None)
        if slot is None:
            slot = next(self._refill(shape))
        out = slot[3]
        if self.n_state == 2:
            self.call(
                inputs.data_ptr(),
                addresses[0],
                addresses[1],
                out[0],
                out[1],
                shape[0],
                shape[1],
                self.mode,
                self.packed,
            )
        else:
            self.call(
                inputs.data_ptr(), addresses[0], out[0], shape[0], shape[1], self.mode, self.packed
            )
        self.last = slot
        return slot[0]

    def _addresses(self, state, batch: int) -> list[int] | tuple[int, ...] | None:
        """The state tensors' addresses (0 for ``None``: zeros), or ``None`` if they do not fit."""
        if state is None:
            return (0,) * self.n_state
        if not isinstance(state, (list, tuple)) or len(state) != self.n_state:
            return None
        addresses = []
        for tensor in state:
            if not _fits(tensor, self.dtype, batch, self.hidden):
                return None
            addresses.append(tensor.data_ptr())
        return addresses

    def _refill(self, shape):
        """A new block of outputs for inputs of ``shape``, as an iterator over its slots.

        A slot is ``(result, input shape, its state tensors, their addresses)``, ``result`` being
        the ``(output, [state...])`` a step returns. Each slot is handed out once (``next`` on the
        iterator is atomic, so concurrent steps never share one). A view of a block costs about
        half what a tensor of its own does (0.5-0.7 against 1.3-1.7 us measured, ``unbind``
        against ``torch.empty``); the price is that a view kept alive keeps its block (16 KB in
        float32) alive, and ``torch.save`` of one writes the block.
        """
        batch, n_state, hidden = shape[0], self.n_state, self.hidden
        steps = max(1, BLOCK_ELEMENTS // (n_state * batch * hidden))
        block = torch.empty(steps, n_state, batch, hidden, dtype=self.dtype)
        start, size = block.data_ptr(), block.stride(1) * block.element_size()
        views = block.view(steps * n_state, batch, hidden).unbind(0)
        if n_state == 1:
            slots = [((h, [h]), shape, (h,), (start + size * k,)) for k, h in enumerate(views)]
        else:
            pairs = zip(views[0::2], views[1::2])
            slots = [
                ((h, [h, c]), shape, (h, c), (start + size * 2 * k, start + size * (2 * k + 1)))
                for k, (h, c) in enumerate(pairs)
            ]
        if len(self.pools) >= MAX_POOLS:
            self.pools.clear()
        pool = self.pools[batch] = iter(slots)
        return pool


def _compiled_entry(kernel, integers: int, packed):
    """``kernel`` compiled for ``integers`` int64 arguments then ``packed``'s array type, as its
    compiled entry point, which skips the dispatcher's type resolution (0.25 us of a 5 us step
    measured); ``kernel`` itself if numba does not expose one.

    Every call passes plain integers and this same ``packed``, so the signature cannot change."""
    from numba import typeof, types

    signature = (types.int64,) * integers + (typeof(packed),)
    kernel.compile(signature)  # loads it from numba's cache when there
    compiled = kernel.overloads.get(signature)
    return getattr(compiled, "entry_point", kernel)


def _untouched(slot) -> bool:
    """The list ``slot`` returned as the new state still holds its tensors, unchanged since.

    A write or a metadata change through any view of the block bumps the shared version counter;
    ``.data =`` assignment does not, but moves the data, which the address check sees."""
    (_, state), _, tensors, addresses = slot
    h = tensors[0]
    if len(state) != len(tensors) or state[0] is not h or h._version != 0:
        return False
    if h.data_ptr() != addresses[0]:
        return False
    return len(tensors) == 1 or (state[1] is tensors[1] and tensors[1].data_ptr() == addresses[1])


def _build(cell) -> _Stepper | None:
    """The stepper for ``cell``, or ``None`` when the single-step kernel does not apply to it."""
    global _loops
    from rnnkit.kernels import fused

    if not fused._is_builtin_step(cell):
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
    names = [
        name
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_peephole")
        if getattr(weights, name, None) is not None
    ]
    tensors = {name: getattr(weights, name) for name in names}
    if any(cell._parameters.get(name) is not tensor for name, tensor in tensors.items()):
        return None  # a weight that is not a registered parameter could change unseen
    if _loops is None:
        from rnnkit.kernels import _step_loops

        _loops = _step_loops
    stepper = _Stepper()
    stepper.cell = weakref.ref(cell)
    # Holding the tensors keeps their storage alive, so no new tensor can take their address.
    stepper.params = tuple((name, t, t.data_ptr(), t._version) for name, t in tensors.items())
    stepper.activations = (cell.activation, cell.recurrent_activation)
    stepper.family, stepper.dtype = spec.family, dtype
    stepper.features, stepper.hidden = spec.input_size, spec.hidden_size
    stepper.n_state = len(cell.state_size)
    stepper.mode = _loops.mode_of(*codes, reset_after=spec.family == "gru" and spec.reset_after)
    stepper.packed = _pack(spec, tensors, fused.NUMPY_DTYPES[dtype])
    integers = 8 if stepper.n_state == 2 else 6  # addresses, sizes and mode: see step()
    stepper.call = _compiled_entry(_loops.KERNELS[spec.family], integers, stepper.packed)
    stepper.pools, stepper.last = {}, None
    return stepper


def _pack(spec, tensors, np_dtype) -> np.ndarray:
    """The weights in the layout of :mod:`rnnkit.kernels._step_loops`, ``(I + H + extra, G*H)``."""

    def array(name):
        tensor = tensors.get(name)
        return None if tensor is None else tensor.detach().numpy().astype(np.float64)

    weight_ih, weight_hh = array("weight_ih"), array("weight_hh")
    width, hidden = weight_ih.shape[0], spec.hidden_size
    bias_ih, bias_hh = array("bias_ih"), array("bias_hh")
    bias = np.zeros(width) if bias_ih is None else bias_ih
    rows = [weight_ih.T, weight_hh.T]
    if spec.family == "gru":
        inside_reset = np.zeros(width)  # b_hn, which the reset gate multiplies (reset after)
        if bias_hh is not None and spec.reset_after:
            inside_reset[2 * hidden :] = bias_hh[2 * hidden :]
            bias = bias + np.concatenate([bias_hh[: 2 * hidden], np.zeros(hidden)])
        elif bias_hh is not None:
            bias = bias + bias_hh
        rows += [bias[None], inside_reset[None]]
    else:
        if bias_hh is not None:
            bias = bias + bias_hh
        rows.append(bias[None])
        peephole = array("weight_peephole")
        if peephole is not None:
            rows.append(np.concatenate([peephole.reshape(-1), np.zeros(hidden)])[None])
    return np.ascontiguousarray(np.concatenate(rows), dtype=np_dtype)
