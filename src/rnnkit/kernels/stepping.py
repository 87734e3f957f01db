"""One step of a built-in cell for streaming inference, without autograd: ``fused_step``.

``RNN.step`` calls :func:`fused_step` under ``torch.no_grad()``, and so does a stateful ``RNN``
called on one timestep; it returns ``None`` (and the caller takes its usual, fully checked path)
unless everything is the plain case: a built-in cell whose step is the library's own, known
activations, no layer norm or projection, and contiguous CPU tensors of the cell's dtype with the
right shapes.

A step at batch 1 costs a few microseconds, so each call does only what cannot be known in
advance. What a cell's steps need (its weights packed into one array, see
:mod:`rnnkit.kernels._step_loops`) is worked out once per cell and kept in a *stepper*; each call
confirms cheaply that the cell still holds the same tensors, unchanged (same object, storage and
version counter), and rebuilds it otherwise. There are two steppers, with the same checks and
results:

- With the native build (:mod:`rnnkit.kernels.native`), the C++ ``Stepper`` of ``_native.cpp``:
  the whole call, checks included, is C++, and the compiled step is reached through its
  ``cfunc`` entry. It alternates between two slots of outputs (one allocation of one step's
  tensors each), a slot handed out again only when nothing outside holds its tensors or its
  storage (the same conditions as :meth:`_Block.free`), else replaced by a new one. An LSTM step
  at H=64, B=1 took 3.9 against 6.5 us through the Python stepper, side by side in
  ``bench/step.py`` (4.6 us with a new allocation at every step).
- Without it, :class:`_Stepper`, in Python. A state that the previous step returned is
  recognised by identity, so its checks are not repeated. The outputs are views handed out from
  a block allocated for many steps (a view costs a third of a tensor of its own in Python, and a
  block once built is reused). When a block runs out, the one before it is taken again if
  nothing outside can still see its memory, else a new block is allocated (see
  :meth:`_Block.free`): a stream that drops each state once the next step has returned it never
  allocates, and an output kept, or any tensor sharing its memory, is never written again.

What is not seen: a write through a weight's ``.data`` (``p.data.mul_(2)``), which bumps no version
counter. Write to the parameter itself (``p.mul_(2)`` under ``no_grad``, as optimizers and
``load_state_dict`` do) or assign ``p.data = ...``.

This module imports numba lazily (on the first step), so ``import rnnkit`` stays light.
"""

from __future__ import annotations

import functools
import sys
import threading
import weakref

import numpy as np
import torch

# By id(cell), the C++ Stepper or a _Stepper; dropped when the cell dies (see _install), so a
# stepper never outlives its cell (the Python one holds a weak ref to it, the C++ one its address).
_STEPPERS: dict[int, object] = {}
_loops = None  # rnnkit.kernels._step_loops, once imported
BLOCK_ELEMENTS = 4096  # values per block of outputs: 32 LSTM steps at B=1, H=64
MAX_POOLS = 8  # batch sizes with blocks kept, per cell and form
KERNEL_INTEGERS = 8  # features, mode, batch and five addresses (see _step_loops)
STEP, TIMESTEP, TIMESTEP_SEQUENCE = 0, 1, 2  # the forms of fused_step
_grad_enabled = torch.is_grad_enabled
_refcount, _weakrefs = sys.getrefcount, weakref.getweakrefcount
_tensor_uses, _storage_uses = torch.Tensor._use_count, torch._C._storage_Use_Count


def fused_step(cell, inputs, state, form: int = STEP):
    """``(output, new_state list)`` of one step of ``cell``, or ``None`` if it declines.

    Only under ``torch.no_grad()`` (or inference mode); ``state`` is a sequence of ``(B, s)``
    tensors, or ``None`` for zeros. ``form`` says what goes in and out:

    - ``STEP`` (``RNN.step``): ``inputs (B, I)``; the output is the new state's ``h``.
    - ``TIMESTEP`` or ``TIMESTEP_SEQUENCE`` (a layer's call on one timestep): ``inputs (B, 1, I)``;
      the output, ``(B, H)`` or ``(B, 1, H)``, is a copy of ``h``, so that writing to it leaves
      the state alone.
    """
    stepper = _STEPPERS.get(id(cell), False)
    if stepper:
        # A stepper's step returns False when the cell has changed since it was built.
        result = stepper.step(cell, inputs, state, form)
        if result is not False:
            return result
    elif stepper is None:
        return None
    if _grad_enabled():
        return None
    stepper = _install(cell)
    return None if stepper is None else stepper.step(cell, inputs, state, form) or None


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

    ``last`` is ``(state, slot, pool, shape, form)`` of the previous step: the state list it
    returned, the :class:`_Block` slot that list holds, and the inputs' shape and form. When the
    next step receives that list, unchanged, with inputs of the same shape and form, its checks
    are done.
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
        "lock",
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

    def step(self, cell, inputs, state, form: int):
        """See :func:`fused_step`; ``False`` if ``cell`` has changed since this was built."""
        if _grad_enabled():
            return None
        if not self.valid(cell):
            return False
        if (
            type(inputs) is not torch.Tensor
            or inputs.dtype is not self.dtype
            or not inputs.is_cpu
            or not inputs.is_contiguous()
        ):
            return None
        shape = inputs.shape
        last_state, slot, pool, last_shape, last_form = self.last
        if (
            state is last_state
            and shape == last_shape
            and form == last_form
            and _untouched(state, slot)
        ):
            # The state the previous step returned, as it returned it: its checks are done.
            h_address, c_address = slot[3], slot[4]
        else:
            if not self._takes(shape, form):
                return None
            addresses = self._addresses(state, shape[0])
            if addresses is None:
                return None
            h_address, c_address = addresses
            pool = self._pool(shape, form)
        slots = pool.slots
        slot = next(slots, None)
        if slot is None or slot[1].data_ptr() != slot[3]:  # used up, or its block's memory moved
            slot = self._next_block(pool, slots)
        output, _, tensors, out_address, _, y_address = slot
        self.call(shape[0], inputs.data_ptr(), h_address, c_address, out_address, y_address)
        new_state = list(tensors)
        self.last = (new_state, slot, pool, shape, form)
        return output, new_state

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

    def _pool(self, shape, form: int) -> _Pool:
        """The blocks of outputs for inputs of ``shape`` and ``form``."""
        pools = self.pools[form]
        pool = pools.get(shape)
        if pool is None:
            if len(pools) >= MAX_POOLS:
                pools.clear()
            pool = pools[shape] = _Pool(shape, form)
        return pool

    def _next_block(self, pool: _Pool, slots):
        """A slot of another block than ``slots``', which is used up or whose memory has moved
        (``share_memory_`` or a storage's ``resize_`` on one of its tensors): the block before
        it if :meth:`_Block.free`, else a new one."""
        while True:
            with self.lock:
                if pool.slots is slots:  # else another thread has just renewed it
                    spare = pool.spare
                    if spare is None or not spare.free():
                        spare = _Block(self, pool.shape, pool.form)
                    pool.spare, pool.block = pool.block, spare
                    pool.slots = iter(spare.slots)
                slots = pool.slots
            slot = next(slots, None)
            if slot is not None and slot[1].data_ptr() == slot[3]:
                return slot


# The previous step before any: its state is a list no caller holds.
_NO_STEP = ([], None, None, None, -1)


class _Pool:
    """The output blocks of one stepper for one shape and form of inputs: ``slots`` iterates over
    the current block's slots; ``spare`` is the block before it, taken again when free."""

    __slots__ = ("shape", "form", "slots", "block", "spare")

    def __init__(self, shape, form: int) -> None:
        self.shape, self.form = shape, form
        self.slots, self.block, self.spare = iter(()), None, None


class _Block:
    """One allocation of outputs for many steps, and what :meth:`free` needs to tell that nothing
    outside can still see it.

    A slot is ``(output, h, state tensors, h address, c address, y address)``: the tensors one
    step returns, where the kernel writes the state (``c`` right after ``h``) and the output's
    copy (``y_address`` 0 for ``STEP``, whose output is ``h``). Each slot is handed out once per
    use of the block: ``next`` on an iterator over them is atomic, so concurrent steps never share
    one. A view kept alive keeps the whole block (16 KB in float32) from reuse, and ``torch.save``
    of one writes the block.
    """

    __slots__ = ("slots", "tensors", "base", "address", "storage", "unseen")

    def __init__(self, stepper: _Stepper, shape, form: int) -> None:
        batch, n_state, hidden = shape[0], stepper.n_state, stepper.hidden
        n_out = n_state if form == STEP else n_state + 1  # tensors per step, the copy of h last
        steps = max(1, BLOCK_ELEMENTS // (n_out * batch * hidden))
        # Normal tensors even under inference mode: they have the version counter free() reads.
        with torch.inference_mode(False):
            base = torch.empty(steps * n_out, batch, hidden, dtype=stepper.dtype)
            tensors = list(base.unbind(0))
            if form == TIMESTEP_SEQUENCE:
                tensors[n_state::n_out] = [y.unsqueeze(1) for y in tensors[n_state::n_out]]
        size = batch * hidden * base.element_size()  # bytes per tensor
        self.slots = [
            _slot(tensors[first : first + n_out], n_state, base.data_ptr() + first * size, size)
            for first in range(0, len(tensors), n_out)
        ]
        self.tensors = tuple(tensors)
        self.base, self.address = base, base.data_ptr()
        self.storage = base.untyped_storage()  # torch keeps one Python object per storage
        del tensors
        self.unseen = self._references()  # nothing outside holds the block yet

    def free(self) -> bool:
        """Whether nothing outside this block can see its memory, so it can be written again.

        The tensors it handed out are held by nobody else: no Python reference (a list, a
        result, a NumPy array's base), no C++ one (autograd's saved tensors, DLPack: recent torch
        counts them as Python references too, older torch only in ``_use_count``), no weak one.
        No other tensor (a view, ``.data``, ``.numpy()``) nor a Python handle holds its storage.
        No step is between taking a slot and reading it. And its memory is where it was, with no
        write or metadata change through any view (they all share one version counter): else
        the block is dropped, and a new one allocated.
        """
        return (
            self._references() == self.unseen  # first: a name bound here would count
            and max(map(_tensor_uses, self.tensors)) == 1
            and not any(map(_weakrefs, self.tensors))
            and not _weakrefs(self.storage)
            and self.base._version == 0
            and self.base.data_ptr() == self.address
        )

    def _references(self) -> tuple:
        """Python's references to the slots, the tensors and the storage, and torch's count of
        the storage's users (a tensor or a Python handle each)."""
        return (
            tuple(map(_refcount, self.slots)),
            tuple(map(_refcount, self.tensors)),
            _refcount(self.storage),
            _storage_uses(self.storage._cdata),
        )


def _slot(tensors, n_state: int, address: int, size: int) -> tuple:
    """The slot of one step's ``tensors`` (state, then the output's copy unless ``STEP``) at
    ``address``, each ``size`` bytes."""
    state, c_address = tuple(tensors[:n_state]), address + (n_state - 1) * size
    if len(tensors) == n_state:
        return state[0], state[0], state, address, c_address, 0
    return tensors[n_state], state[0], state, address, c_address, address + n_state * size


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


def _untouched(state, slot) -> bool:
    """``state``, the list the previous step returned with ``slot``'s tensors, still holds them,
    unchanged since.

    A write or a metadata change through any view of the block bumps the shared version counter;
    ``.data =`` assignment does not, but moves the data, which the address check sees."""
    _, h, tensors, h_address, c_address, _ = slot
    c = tensors[-1]
    return (
        len(state) == len(tensors)
        and state[0] is h
        and state[-1] is c
        and h._version == 0
        and h.data_ptr() == h_address
        and (c is h or c.data_ptr() == c_address)
    )


def _build(cell) -> _Stepper | None:
    """The stepper for ``cell``, or ``None`` when the single-step kernel does not apply to it."""
    global _loops
    from rnnkit.kernels import fused, native

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
    mode = _loops.mode_of(*codes, reset_after=spec.family == "gru" and spec.reset_after)
    np_dtype = fused.NUMPY_DTYPES[dtype]
    packed = _pack(spec, tensors, np_dtype)
    extension = native.extension()
    if extension is not None:
        return extension.Stepper(
            _loops.step_entry_address(spec.family, np_dtype), torch.from_numpy(packed),
            spec.input_size, spec.hidden_size, len(cell.state_size), mode, cell,
            cell._parameters, names, cell.activation, cell.recurrent_activation,
        )
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
    stepper.call = _compiled_entry(_loops.KERNELS[spec.family], packed, spec.input_size, mode)
    stepper.pools, stepper.last, stepper.lock = ({}, {}, {}), _NO_STEP, threading.Lock()
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
