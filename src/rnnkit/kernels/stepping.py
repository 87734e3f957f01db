"""One step of a built-in cell for streaming inference, without autograd: ``fused_step``.

``RNN.step`` calls :func:`fused_step` under ``torch.no_grad()``, and so does a stateful ``RNN``
called on one timestep; it returns ``None`` (and the caller takes its usual, fully checked path)
unless everything is the plain case: a built-in cell whose step is the library's own, known
activations, no layer norm or projection, and contiguous CPU tensors of the cell's dtype with the
right shapes.

A step at batch 1 costs a few microseconds, so each call does only what cannot be known in
advance. What a cell's steps need (its weights packed into one array, see
:mod:`rnnkit.kernels._step_loops`) is worked out once per cell and kept in a :class:`_Stepper`;
each call confirms cheaply that the cell still holds the same tensors, unchanged (same object,
storage and version counter), and rebuilds it otherwise. The outputs are views handed out from a
block allocated for many steps (one torch allocation per block instead of per tensor), and a state
that the previous step returned is recognised by identity, so its checks are not repeated.

What is not seen: a write through a weight's ``.data`` (``p.data.mul_(2)``), which bumps no version
counter. Write to the parameter itself (``p.mul_(2)`` under ``no_grad``, as optimizers and
``load_state_dict`` do) or assign ``p.data = ...``.

This module imports numba lazily (on the first step), so ``import rnnkit`` stays light.
"""

from __future__ import annotations

import functools
import itertools
import weakref

import numpy as np
import torch

_STEPPERS: dict[int, _Stepper | None] = {}  # by id(cell); a stepper holds a weak ref to its cell
_loops = None  # rnnkit.kernels._step_loops, once imported
BLOCK_ELEMENTS = 4096  # values per block of outputs: 32 LSTM steps at B=1, H=64
MAX_POOLS = 8  # batch sizes with a block in use, per cell and form
KERNEL_INTEGERS = 8  # features, mode, batch and five addresses (see _step_loops)
STEP, TIMESTEP, TIMESTEP_SEQUENCE = 0, 1, 2  # the forms of fused_step
_grad_enabled = torch.is_grad_enabled


def fused_step(cell, inputs, state, form: int = STEP):
    """``(output, new_state list)`` of one step of ``cell``, or ``None`` if it declines.

    Only under ``torch.no_grad()`` (or inference mode); ``state`` is a sequence of ``(B, s)``
    tensors, or ``None`` for zeros. ``form`` says what goes in and out:

    - ``STEP`` (``RNN.step``): ``inputs (B, I)``; the output is the new state's ``h``.
    - ``TIMESTEP`` or ``TIMESTEP_SEQUENCE`` (a layer's call on one timestep): ``inputs (B, 1, I)``;
      the output, ``(B, H)`` or ``(B, 1, H)``, is a copy of ``h``, so that writing to it leaves
      the state alone.
    """
    if _grad_enabled():
        return None
    stepper = _STEPPERS.get(id(cell), False)
    if stepper is False or (stepper is not None and not stepper.valid(cell)):
        stepper = _install(cell)
    return None if stepper is None else stepper.step(inputs, state, form)


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

    A slot (see :meth:`_refill`) is ``(result, state, h, c, h_address, c_address, y_address,
    shape, form)``: the ``(output, state)`` a step returns, the state list in it and the tensors
    it holds (``c`` is ``h`` for one state), where the kernel writes them and the output's copy
    (``y_address`` 0 for none), and the inputs' shape and form it is handed out for. ``last`` is
    the slot the previous step returned: when the next step receives that slot's state,
    unchanged, with inputs of the same shape and form, its checks are done.
    """

    __slots__ = (
        "cell",
        "params",
        "storages",
        "activations",
        "dtype",
        "features",
        "hidden",
        "n_state",
        "call",
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

    def step(self, inputs, state, form: int):
        """See :func:`fused_step`."""
        if (
            type(inputs) is not torch.Tensor
            or inputs.dtype is not self.dtype
            or not inputs.is_cpu
            or not inputs.is_contiguous()
        ):
            return None
        shape = inputs.shape
        last = self.last
        if state is last[1] and shape == last[7] and form == last[8] and _untouched(last):
            # The state the previous step returned, as it returned it: its checks are done.
            h_address, c_address = last[4], last[5]
        else:
            if not self._takes(shape, form):
                return None
            addresses = self._addresses(state, shape[0])
            if addresses is None:
                return None
            h_address, c_address = addresses
        slot = next(self.pools[form].get(shape, _EMPTY), None) or next(self._refill(shape, form))
        self.call(shape[0], inputs.data_ptr(), h_address, c_address, slot[4], slot[6])
        self.last = slot
        return slot[0]

    def _takes(self, shape, form: int) -> bool:
        """Whether inputs of ``shape`` fit ``form``: ``(B, I)``, or ``(B, 1, I)`` for a timestep."""
        rank = 2 if form == STEP else 3
        return (
            len(shape) == rank
            and shape[-1] == self.features
            and shape[0] > 0
            and (rank == 2 or shape[1] == 1)
        )

    def _addresses(self, state, batch: int) -> tuple[int, int] | None:
        """The state's ``(h, c)`` addresses (0 for zeros or no ``c``), or ``None`` if it does not
        fit: ``None`` (zeros) or a sequence of contiguous ``(batch, H)`` CPU tensors."""
        if state is None:
            return 0, 0
        if not isinstance(state, (list, tuple)) or len(state) != self.n_state:
            return None
        for tensor in state:
            if not _fits(tensor, self.dtype, batch, self.hidden):
                return None
        return state[0].data_ptr(), 0 if self.n_state == 1 else state[1].data_ptr()

    def _refill(self, shape, form: int):
        """A new block of outputs for inputs of ``shape`` and ``form``, as an iterator over its
        slots.

        Each slot is handed out once (``next`` on the iterator is atomic, so concurrent steps never
        share one). A view of a block costs about a third of a tensor of its own (0.4-0.5 against
        1.3-1.7 us measured, ``unbind`` against ``torch.empty``); the price is that a view kept
        alive keeps its block (16 KB in float32) alive, and ``torch.save`` of one writes the block.
        """
        batch, n_state, hidden, dtype = shape[0], self.n_state, self.hidden, self.dtype
        steps = max(1, BLOCK_ELEMENTS // (n_state * batch * hidden))
        block = torch.empty(steps * n_state, batch, hidden, dtype=dtype)
        views = block.unbind(0)
        size = batch * hidden * block.element_size()  # bytes per state tensor
        hs, cs = views[::n_state], views[n_state - 1 :: n_state]
        h_addresses = _addresses_in(block, 0, steps, n_state * size)
        c_addresses = _addresses_in(block, (n_state - 1) * size, steps, n_state * size)
        if form == STEP:
            outputs, y_addresses = hs, itertools.repeat(0)
        else:
            width = (1, hidden) if form == TIMESTEP_SEQUENCE else (hidden,)
            copies = torch.empty(steps, batch, *width, dtype=dtype)
            outputs, y_addresses = copies.unbind(0), _addresses_in(copies, 0, steps, size)
        states = [[h] for h in hs] if n_state == 1 else [[h, c] for h, c in zip(hs, cs)]
        slots = [
            ((output, state), state, h, c, h_address, c_address, y_address, shape, form)
            for output, state, h, c, h_address, c_address, y_address in zip(
                outputs, states, hs, cs, h_addresses, c_addresses, y_addresses
            )
        ]
        pools = self.pools[form]
        if len(pools) >= MAX_POOLS:
            pools.clear()
        pool = pools[shape] = iter(slots)
        return pool


_EMPTY = iter(())  # the pool of a shape not seen yet
# The last slot before any step: its state is a list no caller holds.
_NO_SLOT = (None, [], None, None, 0, 0, 0, None, -1)


def _addresses_in(block, offset: int, steps: int, stride: int) -> range:
    """The address of each of ``block``'s ``steps`` slots: ``offset`` bytes in, ``stride`` apart."""
    start = block.data_ptr() + offset
    return range(start, start + steps * stride, stride)


def _compiled_entry(kernel, packed, *constants):
    """``kernel`` compiled for ``packed``'s array type then int64 arguments, as its compiled entry
    point with ``packed`` and ``constants`` bound: the call skips the dispatcher's type
    resolution (0.15 us of a 5 us step measured). ``kernel`` itself if numba exposes no entry.

    Every call passes this same ``packed`` and plain integers, so the signature cannot change."""
    from numba import typeof, types

    signature = (typeof(packed),) + (types.int64,) * KERNEL_INTEGERS
    kernel.compile(signature)  # loads it from numba's cache when there
    compiled = kernel.overloads.get(signature)
    return functools.partial(getattr(compiled, "entry_point", kernel), packed, *constants)


def _untouched(slot) -> bool:
    """The list ``slot`` returned as the new state still holds its tensors, unchanged since.

    A write or a metadata change through any view of the block bumps the shared version counter;
    ``.data =`` assignment does not, but moves the data, which the address check sees."""
    _, state, h, c, h_address, c_address, _, _, _ = slot
    return (
        len(state) == (1 if c is h else 2)
        and state[0] is h
        and state[-1] is c
        and h._version == 0
        and h.data_ptr() == h_address
        and (c is h or c.data_ptr() == c_address)
    )


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
    stepper.params = tuple((name, t, t.data_ptr(), t._version) for name, t in tensors.items())
    # Holding the storages keeps them alive, so that no new tensor can take their addresses (a
    # tensor's own storage can be swapped by `.data =`).
    stepper.storages = [t.untyped_storage() for t in tensors.values()]
    stepper.activations = (cell.activation, cell.recurrent_activation)
    stepper.dtype = dtype
    stepper.features, stepper.hidden = spec.input_size, spec.hidden_size
    stepper.n_state = len(cell.state_size)
    mode = _loops.mode_of(*codes, reset_after=spec.family == "gru" and spec.reset_after)
    packed = _pack(spec, tensors, fused.NUMPY_DTYPES[dtype])
    stepper.call = _compiled_entry(_loops.KERNELS[spec.family], packed, spec.input_size, mode)
    stepper.pools, stepper.last = ({}, {}, {}), _NO_SLOT
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
