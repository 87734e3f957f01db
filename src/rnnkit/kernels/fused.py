"""Which fused kernel, if any, runs a cell, and the one ``autograd.Function`` that runs it.

A kernel applies to a built-in cell (or a :class:`~rnnkit.cells.base.BoundCell` of one) whose step
is the library's own, on CPU float32/float64 tensors, with activations the kernels know. Anything
else (user cells or callables, CUDA, other dtypes, mismatched shapes) is declined here: the
dispatch point (:mod:`rnnkit.kernels.dispatch`) sends CUDA calls of the cells cuDNN has to torch's
fused RNN (:mod:`rnnkit.kernels.cudnn`), and the rest to the reference loop, which runs it or
raises the precise error.

Each family module (:mod:`~rnnkit.kernels.lstm`, :mod:`~rnnkit.kernels.gru`,
:mod:`~rnnkit.kernels.rnn`) offers the same array-level interface, driven from here:
``STATES`` (the recurrent states' names), ``supports(spec, weights)``,
``weight_tensors(spec, weights)`` (the tensors it reads, ``None`` where an option is off),
``prepare(spec, tensors, dtype)`` (their arrays),
``forward(plan, x, states, prepared) -> (outputs, finals, saved)`` and
``backward(plan, saved, d_outputs, d_finals, needs)`` (gradients of ``(x, *states, *tensors)``).

A :class:`BoundCell`'s spec and tensor objects are fixed, so its decision and its weights' arrays
are kept in ``cell.kernel_cache`` and reused while every tensor keeps its dtype, device, shape,
strides, storage and version (in-place updates such as an optimizer step bump the version).

Every call first tries the native call (:meth:`BoundKernel.native_run`,
:mod:`rnnkit.kernels.native`): the same loops behind one C++ autograd function, with no Python
between, masks and recurrent-dropout masks included. The ``autograd.Function`` here runs what it
refuses (tensors its recipe cannot take as they are, e.g. a non-contiguous state) and every call
in processes without its build.

With two torch threads the native call uses both cores. A call of a batch of 2, or of at least
8 rows, large enough splits its batch in two halves, each a call of its own on one core (see
:func:`rnnkit.kernels._entries.recipe`): the rows of a recurrence do not depend on each other.
Other calls large enough run their GEMMs over all steps (the input projection; the weight and
input gradients) on the second core, chunk by chunk, next to the recurrence
(:mod:`rnnkit.kernels._sync`). The Python path runs the whole batch as one call, the chunks one
after the other, with the same results (the halves' to the order of the weight gradients' sums).
"""

from __future__ import annotations

import operator
import weakref
from itertools import compress

import numpy as np
import torch
from torch.autograd.function import once_differentiable

from rnnkit.cells import CELL_CLASSES
from rnnkit.cells.base import GATES, WEIGHT_NAMES, BoundCell, BuiltinCell, CellWeights
from rnnkit.kernels import _entries, gru, lstm, native, rnn
from rnnkit.kernels._common import (
    NUMPY_DTYPES,
    Plan,
    as_array,
    blas_available,
    blas_threads,
    codes_of,
    plan_of,
    run_inputs_fit,
    tensors_fit,
)
from rnnkit.kernels.reference import run_reference

KERNELS = {"rnn": rnn, "lstm": lstm, "gru": gru}

STEP_METHODS = ("step", "step_with_gates")


def _same_step(cls: type, reference: type) -> bool:
    """True when ``cls`` inherits ``reference``'s step functions unchanged."""

    def function(owner, name):
        attribute = getattr(owner, name, None)
        return getattr(attribute, "__func__", attribute)  # unwrap classmethods

    return all(function(cls, name) is function(reference, name) for name in STEP_METHODS)


def _is_builtin_step(cell) -> bool:
    """True when ``cell`` computes exactly its family's reference step (no user override)."""
    reference = CELL_CLASSES.get(getattr(cell, "family", None))
    if reference is None:
        return False
    if isinstance(cell, BoundCell):
        return _same_step(cell.cell_class, reference) and (
            type(cell).__call__ is BoundCell.__call__
        )
    if isinstance(cell, BuiltinCell):
        return (
            cell.built
            and _same_step(type(cell), reference)
            and (type(cell).forward is BuiltinCell.forward)
        )
    return False


def _expected_shapes(spec, features: int) -> dict[str, tuple[int, ...]]:
    """The shape each weight of ``spec``'s cell must have, when present."""
    width, hidden = GATES[spec.family] * spec.hidden_size, spec.hidden_size
    shapes = {
        "weight_ih": (width, features),
        "weight_hh": (width, spec.recurrent_size),
        "bias_ih": (width,),
        "bias_hh": (width,),
    }
    if spec.family == "lstm":
        shapes.update(
            weight_hr=(spec.proj_size, hidden),
            weight_peephole=(3, hidden),
            ln_ih_weight=(width,),
            ln_ih_bias=(width,),
            ln_hh_weight=(width,),
            ln_hh_bias=(width,),
            ln_c_weight=(hidden,),
            ln_c_bias=(hidden,),
        )
    return shapes


def _weights_fit(spec, weights, inputs: torch.Tensor) -> bool:
    """Every weight on CPU in the inputs' dtype, with the shape the spec and inputs imply.

    The compiled loops do not check bounds, so a mismatch must be caught here (the reference loop
    then raises torch's error).
    """
    shapes = _expected_shapes(spec, inputs.shape[-1])
    return tensors_fit(weights, inputs.dtype) and all(
        tensor is None or tuple(tensor.shape) == shapes.get(name)
        for name, tensor in weights._asdict().items()
    )


def select(cell, inputs: torch.Tensor):
    """The runner for ``cell`` on ``inputs (B, T, I)``, or ``None`` when no kernel applies.

    The runner is called as ``runner(cell, inputs, state, mask, recurrent_mask,
    zero_output_for_mask, stacked)`` (see :func:`~rnnkit.kernels.dispatch.run_sequence`).
    """
    if not isinstance(inputs, torch.Tensor) or inputs.dim() != 3 or 0 in inputs.shape:
        return None
    if type(cell) is BoundCell:
        kernel = _cached_kernel(cell, inputs)
    elif _keeps_its_definition(cell):
        kernel = _cached_layer_kernel(cell, inputs)
    else:
        kernel = _bind_kernel(cell, inputs)
    return None if kernel is None else kernel.run


def native_call(cell: BoundCell, inputs: torch.Tensor, state=None):
    """``(outputs (B, T, O), *finals (1, B, s))`` of ``cell``'s plain call on ``inputs (B, T, I)``
    from ``state`` (``(1, B, s)`` or ``(B, s)`` tensors, or ``None`` for zeros), through the
    native call (:meth:`BoundKernel.native_run`); ``None`` when it does not apply, and the caller
    runs :func:`~rnnkit.kernels.dispatch.run_sequence`.
    """
    if inputs.dim() != 3 or 0 in inputs.shape:
        return None
    cached = cell.kernel_cache
    known = None if cached is None else cached[2]
    if known is not None:
        # The native call checks the inputs' and weights' dtypes and sizes itself, and refuses a
        # call whose layout its recipe does not fit: only then is the kernel bound again.
        result = known.native_run(inputs, state, True, cell.state_size)
        if result is not None:
            return result
    kernel = _cached_kernel(cell, inputs, arrays=False)
    if kernel is None or kernel is known:
        return None
    return kernel.native_run(inputs, state, True, cell.state_size)


def _keeps_its_definition(cell) -> bool:
    """True for a built-in cell whose spec, weights and call are the base class's (its weights
    are its registered parameters): its kernel can then be kept, keyed on spec and parameters."""
    kind = type(cell)
    return (
        isinstance(cell, BuiltinCell)
        and kind.spec is BuiltinCell.spec
        and kind.weights is BuiltinCell.weights
        and kind.forward is BuiltinCell.forward
    )


# The Keras face's cells (BuiltinCell modules) -> their kernel cache; weak, so a cell's lifetime
# and its pickled or copied form are untouched by it.
_LAYER_CACHES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _cached_layer_kernel(cell: BuiltinCell, inputs: torch.Tensor):
    """The kernel of a Keras-face cell: like :func:`_cached_kernel`, through a
    :class:`BoundCell` of the cell's spec and parameters kept while neither changes (a changed
    option, a reassigned parameter or a rebuild makes a new one)."""
    if not cell.built:
        return None
    parameters = cell._parameters
    tensors = tuple(parameters.get(name) for name in WEIGHT_NAMES)
    spec = cell.spec
    cached = _LAYER_CACHES.get(cell)
    if (
        cached is None
        or cached[0] != spec
        or not all(a is b for a, b in zip(cached[1], tensors, strict=True))
    ):
        weights = CellWeights(*tensors)
        cached = (spec, tensors, BoundCell(type(cell), spec, weights))
        _LAYER_CACHES[cell] = cached
    return _cached_kernel(cached[2], inputs)


def _bind_kernel(cell, inputs: torch.Tensor) -> BoundKernel | None:
    """The kernel bound to ``cell``'s tensors, or ``None`` when none applies to ``inputs``."""
    if inputs.device.type != "cpu" or inputs.dtype not in NUMPY_DTYPES or not blas_available():
        return None
    if not _is_builtin_step(cell):
        return None
    spec, weights = cell.spec, cell.weights()
    family = KERNELS[cell.family]
    codes = codes_of(spec)
    if codes is None or not _weights_fit(spec, weights, inputs):
        return None
    if not family.supports(spec, weights):
        return None
    return BoundKernel(family, spec, codes, family.weight_tensors(spec, weights), inputs.dtype)


# C-level getters for the per-call checks of :func:`_cached_kernel` (``map`` over them builds
# each tuple without a Python frame per tensor).
_LAYOUT = operator.attrgetter("dtype", "device", "shape")
_VERSION = operator.attrgetter("_version")
_stride, _data_ptr = torch.Tensor.stride, torch.Tensor.data_ptr
_REQUIRES_GRAD = operator.attrgetter("requires_grad")
_SHAPE = operator.attrgetter("shape")


def _cached_kernel(cell: BoundCell, inputs: torch.Tensor, arrays: bool = True):
    """The kernel of a :class:`BoundCell` for ``inputs``, or ``None``, through its
    ``kernel_cache``.

    The decision depends on the inputs' dtype, device and width and on each tensor's dtype,
    device and shape; the arrays also on its strides, storage and version. Keeping the arrays
    keeps the old storage alive, so a new tensor cannot reuse its address unnoticed. The native
    call reads the tensors themselves on every call (``arrays=False``): it needs the decision
    and the recipes, not arrays bound to the tensors' current storage and version.
    """
    tensors = cell.tensors
    layout = (inputs.dtype, inputs.device, inputs.shape[2], *map(_LAYOUT, tensors),
              *map(_stride, tensors))
    cached = cell.kernel_cache
    if cached is not None and cached[0] == layout:
        kernel = cached[2]
        if not arrays:
            return kernel
        contents = (*map(_data_ptr, tensors), *map(_VERSION, tensors))
        if kernel is not None and cached[1] != contents:
            kernel = kernel.refreshed()
            cell.kernel_cache = (layout, contents, kernel)
    else:
        kernel = _bind_kernel(cell, inputs)
        contents = (*map(_data_ptr, tensors), *map(_VERSION, tensors))
        cell.kernel_cache = (layout, contents, kernel)
    return kernel


# Plans kept per bound kernel, one per (batch, steps, zero_output, threads) seen lately.
MAX_PLANS = 8


class BoundKernel:
    """One family's kernel bound to one cell's tensors (in ``weight_tensors`` order) and their
    arrays; :meth:`run` is the runner :func:`select` returns."""

    def __init__(self, family, spec, codes: tuple[int, int], tensors: tuple, dtype) -> None:
        self.family, self.spec, self.codes, self.dtype = family, spec, codes, dtype
        self.tensors = tensors
        self.weights = tuple(t for t in tensors if t is not None)
        # Their positions in a call's (inputs, *state, *tensors).
        first = 1 + len(family.STATES)
        self.weight_positions = tuple(
            first + k for k, tensor in enumerate(tensors) if tensor is not None
        )
        self.prepared = family.prepare(spec, tensors, dtype)
        # The arrays are views of the tensors' memory when every tensor is contiguous (else some
        # are copies): an in-place update then reaches them without a new kernel.
        self.views = all(t.is_contiguous() for t in self.weights)
        self.addresses = tuple(map(_data_ptr, self.weights))
        self.plans: dict[tuple, Plan] = {}
        self.zeros: dict[int, list[np.ndarray]] = {}
        self.recipes: dict[tuple, object] = {}

    def refreshed(self) -> BoundKernel:
        """This kernel for the tensors' current values: itself when its arrays view the tensors'
        memory where it still is (an in-place update, such as an optimizer step, changed only
        their values), else a kernel whose arrays are taken again. Plans and zeros carry over:
        they depend on the spec and shapes alone."""
        if self.views and tuple(map(_data_ptr, self.weights)) == self.addresses:
            return self
        kernel = BoundKernel(self.family, self.spec, self.codes, self.tensors, self.dtype)
        kernel.plans, kernel.zeros, kernel.recipes = self.plans, self.zeros, self.recipes
        return kernel

    def native(self, *call):
        """The native recipe of the :class:`~rnnkit.kernels._entries.Call` of these fields
        (kept), or ``None`` (see :func:`rnnkit.kernels._entries.recipe`)."""
        key = (*call, torch.get_num_threads())
        try:
            return self.recipes[key]
        except KeyError:
            pass
        if len(self.recipes) >= MAX_PLANS:
            self.recipes.clear()
        made = self.recipes[key] = _entries.recipe(self, _entries.Call(*call))
        if made is not None:  # the layout of x (B, T, I) and of the weights, checked per call
            batch, steps = call[0], call[1]
            sizes = [[batch, steps, self.tensors[0].shape[1]],
                     *map(list, map(_SHAPE, self.weights))]
            made.expect(torch.empty(0, dtype=self.dtype), sizes)
        return made

    def native_run(self, inputs: torch.Tensor, state, stacked: bool, sizes, mask=None,
                   zero_output: bool = False, recurrent_mask=None):
        """``(outputs, *finals)`` of a call through the native call (:mod:`rnnkit.kernels.
        native`): finals ``(1, B, s)`` if ``stacked``, else ``(B, s)``. ``state`` is ``None``
        (zeros) or a tuple of contiguous ``(B, s)`` or ``(1, B, s)`` tensors of the inputs' dtype
        on the CPU (``sizes`` gives each ``s``); ``mask`` is ``None`` or the steps each row
        keeps, ``(B, T)`` booleans, whose masked steps output zeros (``zero_output``) or repeat
        the previous output; ``recurrent_mask`` is ``None`` or the recurrent-dropout mask, a
        contiguous ``(B, s_0)`` tensor of the inputs' dtype. ``None`` when the native call does
        not apply: no build, non-contiguous weights, states or masks other than these, or inputs
        or weights whose dtype, sizes or contiguity differ from those its recipe was laid out for
        (the C++ side checks those on every call)."""
        extension = native.extension()
        if extension is None or not self.views:
            return None
        batch = inputs.shape[0]
        if mask is not None and not (
            type(mask) is torch.Tensor and mask.dtype == torch.bool
            and mask.shape == inputs.shape[:2] and mask.device.type == "cpu"
            and mask.is_contiguous()
        ):
            return None
        if recurrent_mask is not None and not (
            type(recurrent_mask) is torch.Tensor and recurrent_mask.dtype == inputs.dtype
            and recurrent_mask.shape == (batch, sizes[0])
            and recurrent_mask.device.type == "cpu" and recurrent_mask.is_contiguous()
            and not recurrent_mask.requires_grad
        ):
            return None
        if state is not None:
            if len(state) != len(sizes):
                return None
            given = []
            for tensor, size in zip(state, sizes):
                if not (type(tensor) is torch.Tensor and tensor.shape[-2:] == (batch, size)
                        and tensor.dim() <= 3 and tensor.numel() == batch * size
                        and tensor.dtype == inputs.dtype and tensor.device.type == "cpu"
                        and tensor.is_contiguous()):
                    return None
                if tensor.dim() != (3 if stacked else 2):  # the finals' shape, as recipes take
                    tensor = tensor.view((1, batch, size) if stacked else (batch, size))
                given.append(tensor)
            state = given
        masked = mask is not None
        recipe = self.native(batch, inputs.shape[1], state is not None, stacked, masked,
                             masked and bool(zero_output), recurrent_mask is not None)
        if recipe is None:
            return None
        given = [inputs, *self.weights]
        if state is not None:
            given += state
        if mask is not None:
            given.append(mask)
        if recurrent_mask is not None:
            given.append(recurrent_mask)
        return extension.run(recipe, given) or None  # no tensors: refused (see native_call)

    def plan(self, inputs: torch.Tensor, mask, recurrent_mask, zero_output: bool) -> Plan:
        """The call's :class:`Plan`; without masks it depends on the shapes alone and is kept."""
        if mask is not None or recurrent_mask is not None:
            return plan_of(self.spec, inputs, mask, recurrent_mask, zero_output, self.codes)
        key = (inputs.shape[0], inputs.shape[1], bool(zero_output), torch.get_num_threads())
        plan = self.plans.get(key)
        if plan is None:
            if len(self.plans) >= MAX_PLANS:
                self.plans.clear()
            plan = plan_of(self.spec, inputs, None, None, zero_output, self.codes)
            self.plans[key] = plan
        return plan

    def zero_state(self, batch: int, sizes) -> list[np.ndarray]:
        """Zero ``(batch, size)`` arrays, kept per batch size: the initial state of a call given
        none, and the gradient of a final state that was not used. The kernels only read them."""
        arrays = self.zeros.get(batch)
        if arrays is None:
            if len(self.zeros) >= MAX_PLANS:
                self.zeros.clear()
            arrays = [np.zeros((batch, size), NUMPY_DTYPES[self.dtype]) for size in sizes]
            self.zeros[batch] = arrays
        return arrays

    def run(
        self,
        cell,
        inputs: torch.Tensor,
        state,
        mask=None,
        recurrent_mask=None,
        zero_output_for_mask: bool = False,
        stacked: bool = False,
    ):
        """``inputs (B, T, I)`` -> ``(outputs (B, T, O), final_state)``, the final state's
        tensors ``(B, s)``, or ``(1, B, s)`` if ``stacked``. ``state`` may be ``None`` (zeros);
        arguments the kernel cannot take (e.g. a state of another dtype) go to the reference
        loop."""
        sizes = cell.state_size
        if state is not None:
            state = (state,) if isinstance(state, torch.Tensor) else tuple(state)
        result = self.native_run(inputs, state, stacked, sizes, mask, zero_output_for_mask,
                                 recurrent_mask)
        if result is not None:
            outputs, *finals = result
            return outputs, tuple(finals)
        if (state is not None or mask is not None or recurrent_mask is not None) and not (
            run_inputs_fit(inputs, state, sizes, mask, recurrent_mask)
        ):
            return run_reference(cell, inputs, state, mask, recurrent_mask, zero_output_for_mask,
                                 stacked)
        plan = self.plan(inputs, mask, recurrent_mask, zero_output_for_mask)
        if state is None:
            state, state_arrays = (None,) * len(sizes), self.zero_state(inputs.shape[0], sizes)
        else:
            state_arrays = [as_array(s) for s in state]
        call = FusedCall(self, plan, as_array(inputs), state_arrays, (), stacked)
        if torch.is_grad_enabled():
            # The tensors that need gradients, and their positions in (inputs, *state, *tensors).
            given = (inputs, *state)
            flags = [t is not None and t.requires_grad for t in given]
            flags += map(_REQUIRES_GRAD, self.weights)
            positions = (*range(len(given)), *self.weight_positions)
            call.tracked = tuple(compress(positions, flags))
            if call.tracked:
                needing = compress((*given, *self.weights), flags)
                outputs, *finals = FusedSequence.apply(call, *needing)
                return outputs, tuple(finals)
        outputs, finals, _ = forward_call(call)
        return outputs, tuple(finals)


class FusedCall:
    """One call of a bound kernel: the kernel, plan, input and state arrays, the positions in
    ``(x, *states, *tensors)`` of the tensors autograd tracks (empty when it tracks none), and
    whether the finals are ``(1, B, s)`` (``stacked``) or ``(B, s)``. A ``FusedSequence`` takes
    it besides the tracked tensors."""

    __slots__ = ("kernel", "plan", "x", "states", "tracked", "stacked")

    def __init__(self, kernel: BoundKernel, plan: Plan, x, states, tracked, stacked) -> None:
        self.kernel, self.plan, self.x, self.states = kernel, plan, x, states
        self.tracked, self.stacked = tracked, stacked


def forward_call(call: FusedCall) -> tuple:
    """``(outputs, finals, saved)`` of ``call``'s compiled forward, with or without autograd:
    the outputs and finals as tensors viewing the kernel's arrays, ``saved`` what its backward
    needs."""
    kernel, plan = call.kernel, call.plan
    with blas_threads(plan.threads):
        outputs, finals, saved = kernel.family.forward(plan, call.x, call.states, kernel.prepared)
    if call.stacked:
        finals = [final[None] for final in finals]
    return torch.from_numpy(outputs), list(map(torch.from_numpy, finals)), saved


class FusedSequence(torch.autograd.Function):
    """``(call, *tracked)`` -> ``(outputs (B, T, O), *finals (B, s) or (1, B, s))``.

    Only the tensors that need gradients go through autograd (each one costs it time); the
    others reach the kernel as the arrays in ``call``.
    """

    @staticmethod
    def forward(ctx, call: FusedCall, *tracked):
        outputs, finals, saved = forward_call(call)
        ctx.call, ctx.saved = call, saved
        ctx.set_materialize_grads(False)
        # The arrays view the weights' memory: the version check catches in-place updates.
        ctx.save_for_backward(*call.kernel.weights)
        return outputs, *finals

    @staticmethod
    def backward(ctx, d_outputs, *d_finals):
        if torch.is_grad_enabled():
            # create_graph=True: the gradients carry a node that refuses a second backward.
            return _gradients_once(ctx, d_outputs, *d_finals)
        return _gradients(ctx, d_outputs, *d_finals)


def _gradients(ctx, d_outputs, *d_finals):
    """:meth:`FusedSequence.backward`: ``None`` for ``call``, then the tracked tensors' gradients.

    The kernels' backward is not itself differentiable; :func:`_gradients_once` wraps this for a
    backward that builds a graph.
    """
    call = ctx.call
    ctx.saved_tensors  # noqa: B018  (raises if a weight changed in place since the forward)
    kernel, plan, tracked, states = call.kernel, call.plan, call.tracked, call.states
    needs = [False] * (1 + len(states) + len(kernel.tensors))
    for position, need in zip(tracked, ctx.needs_input_grad[1:]):
        needs[position] = need
    if d_outputs is None:
        batch, steps = call.x.shape[:2]
        d_outputs = np.zeros((batch, steps, states[0].shape[1]), call.x.dtype)
    else:
        d_outputs = as_array(d_outputs)
    # A final state that was not used has no gradient: zeros, which the backward only reads.
    # The others are (B, s), or (1, B, s) if stacked.
    zeros = kernel.zero_state(states[0].shape[0], [state.shape[1] for state in states])
    d_finals = [zero if d is None else as_array(d).reshape(zero.shape)
                for d, zero in zip(d_finals, zeros)]
    with blas_threads(plan.threads):
        grads = kernel.family.backward(plan, ctx.saved, d_outputs, d_finals, needs)
    return (None, *[torch.from_numpy(grads[p]) if needs[p] else None for p in tracked])


_gradients_once = once_differentiable(_gradients)
