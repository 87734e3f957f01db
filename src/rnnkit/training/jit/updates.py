"""The optimizers' update rules as compiled loops over one weight, on arrays that share memory
with the torch parameters and with the optimizer's own state tensors.

Each rule repeats, operation by operation, the ``torch._foreach_*`` sequence of its class in
:mod:`rnnkit.training.optimizers` (Keras's maths), in the weight's precision: the scalars come in
as an array of the weight's dtype, as torch casts a Python scalar to the tensor's dtype. So the
compiled and the torch step agree to rounding, and either can take over from the other at any
step (the state they update is the same).

Per step the Python side reads the learning rate from the optimizer's parameter group (where
``ReduceLROnPlateau``, ``LearningRateScheduler`` and schedules put it) and counts ``iterations``.
One compiled call then updates every weight: it reads the weights and their slots from a table
of sizes and addresses (``Update.table``), and the gradients from a tuple of flat arrays. Unboxing
six arrays for a call per weight cost more than the arithmetic at seed 002's size: its five
weights' update (``apply``) took 11-20 us a step that way, and 8-16 us in one call (five pairs of
runs side by side on a loaded machine; new gradient arrays and kept ones alike).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from numba import carray, njit

from rnnkit.kernels._step_loops import _pointer
from rnnkit.training import optimizers

# error_model="numpy": division without a zero check, so that the loops vectorise (7x faster
# measured on Adam); no fastmath, so that each operation rounds as torch's does.
jit = njit(cache=True, nogil=True, error_model="numpy")


@jit
def _lerp(start, end, weight, rest):
    """torch's ``lerp_`` of ``start`` in place: ``start + w (end - start)`` for ``w < 0.5``, else
    ``end - (end - start)(1 - w)``; ``rest`` is ``1 - w``, rounded to the dtype as torch does."""
    if weight < 0.5:
        for k in range(start.size):
            start[k] = start[k] + weight * (end[k] - start[k])
    else:
        for k in range(start.size):
            start[k] = end[k] - (end[k] - start[k]) * rest


@jit
def _scale(param, decay):
    """Decoupled weight decay, ``w *= 1 - weight_decay * lr``."""
    if decay != 1:
        for k in range(param.size):
            param[k] = param[k] * decay


@jit
def adam_update(param, grad, momentum, velocity, velocity_hat, scalars):
    """Keras's Adam on flat arrays; ``scalars`` = ``(decay, 1 - beta_1, its 1 - w, beta_2,
    1 - beta_2, epsilon, -alpha)``; ``velocity_hat`` is empty unless ``amsgrad``.

    One pass over the weight (the momentum's lerp as :func:`_lerp` computes it), rounding each
    value where a pass per operation would: the same results, 15% faster at seed 002's size
    (5.6 against 6.6 µs for its five weights, measured)."""
    weight, rest = scalars[1], scalars[2]
    beta_2, one_minus_beta_2, epsilon, step = scalars[3], scalars[4], scalars[5], scalars[6]
    _scale(param, scalars[0])
    amsgrad = velocity_hat.size > 0
    low = weight < 0.5
    for k in range(param.size):
        g, m = grad[k], momentum[k]
        m = m + weight * (g - m) if low else g - (g - m) * rest
        momentum[k] = m
        v = velocity[k] * beta_2 + one_minus_beta_2 * g * g
        velocity[k] = v
        if amsgrad:
            v = max(velocity_hat[k], v)
            velocity_hat[k] = v
        param[k] = param[k] + step * m / (np.sqrt(v) + epsilon)


@jit
def sgd_update(param, grad, velocity, scalars, nesterov):
    """Keras's SGD on flat arrays; ``scalars`` = ``(decay, -lr, momentum)``; ``velocity`` is
    empty without momentum."""
    minus_lr, momentum = scalars[1], scalars[2]
    _scale(param, scalars[0])
    if velocity.size == 0:
        for k in range(param.size):
            param[k] = param[k] + minus_lr * grad[k]
    elif nesterov:
        for k in range(param.size):
            v = velocity[k] * momentum + minus_lr * grad[k]
            velocity[k] = v
            param[k] = (param[k] + momentum * v) + minus_lr * grad[k]
    else:
        for k in range(param.size):
            v = velocity[k] * momentum + minus_lr * grad[k]
            velocity[k] = v
            param[k] = param[k] + v


@jit
def rmsprop_update(param, grad, velocity, momentum, average, scalars):
    """Keras's RMSprop on flat arrays; ``scalars`` = ``(decay, rho, 1 - rho, its 1 - w, epsilon,
    lr, momentum)``; ``momentum`` and ``average`` (centered) are empty when off."""
    rho, one_minus_rho, epsilon, lr, momentum_rate = (
        scalars[1], scalars[2], scalars[4], scalars[5], scalars[6])
    _scale(param, scalars[0])
    for k in range(param.size):
        velocity[k] = velocity[k] * rho + one_minus_rho * grad[k] * grad[k]
    denominator = np.empty_like(param)
    if average.size > 0:  # centered
        _lerp(average, grad, one_minus_rho, scalars[3])
        for k in range(param.size):
            denominator[k] = np.sqrt((velocity[k] - average[k] * average[k]) + epsilon)
    else:
        for k in range(param.size):
            denominator[k] = np.sqrt(velocity[k] + epsilon)
    if momentum.size > 0:
        for k in range(param.size):
            momentum[k] = momentum[k] * momentum_rate + lr * grad[k] / denominator[k]
            param[k] = param[k] - momentum[k]
    else:
        for k in range(param.size):
            param[k] = param[k] + -lr * grad[k] / denominator[k]


# The columns of an update's table: each weight's size, then the addresses of the weight and of
# the rule's slots (0 for an absent slot).
SIZE, PARAM, SLOTS = 0, 1, 2


@jit
def _row_array(table, row, column, empty):
    """The flat array at ``table[row, column]``, of the row's size; ``empty`` for address 0."""
    address = table[row, column]
    if address == 0:
        return empty
    return carray(_pointer(address), (table[row, SIZE],), empty.dtype)


@jit
def _misfit(table, grads):
    """The first row whose gradient in ``grads`` is not of its weight's size, else -1."""
    for row in range(table.shape[0]):
        if grads[row].size != table[row, SIZE]:
            return row
    return -1


@jit
def adam_all(table, grads, scalars, empty):
    """:func:`adam_update` on every row of ``table`` (slots: momentum, velocity, velocity_hat),
    with the gradients ``grads``; returns :func:`_misfit`'s row, updating nothing, for a gradient
    of the wrong size."""
    bad = _misfit(table, grads)
    for row in range(table.shape[0] if bad < 0 else 0):
        adam_update(_row_array(table, row, PARAM, empty), grads[row],
                    _row_array(table, row, SLOTS, empty), _row_array(table, row, SLOTS + 1, empty),
                    _row_array(table, row, SLOTS + 2, empty), scalars)
    return bad


@jit
def sgd_all(table, grads, scalars, empty, nesterov):
    """:func:`sgd_update` on every row of ``table`` (slot: momentum); as :func:`adam_all`."""
    bad = _misfit(table, grads)
    for row in range(table.shape[0] if bad < 0 else 0):
        sgd_update(_row_array(table, row, PARAM, empty), grads[row],
                   _row_array(table, row, SLOTS, empty), scalars, nesterov)
    return bad


@jit
def rmsprop_all(table, grads, scalars, empty):
    """:func:`rmsprop_update` on every row of ``table`` (slots: velocity, momentum, average); as
    :func:`adam_all`."""
    bad = _misfit(table, grads)
    for row in range(table.shape[0] if bad < 0 else 0):
        rmsprop_update(_row_array(table, row, PARAM, empty), grads[row],
                       _row_array(table, row, SLOTS, empty),
                       _row_array(table, row, SLOTS + 1, empty),
                       _row_array(table, row, SLOTS + 2, empty), scalars)
    return bad


def _flat(tensor: torch.Tensor) -> np.ndarray:
    """A flat array sharing ``tensor``'s memory (the tensor must be contiguous)."""
    return tensor.detach().numpy().reshape(-1)


_EMPTY = {torch.float32: np.empty(0, np.float32), torch.float64: np.empty(0, np.float64)}


class Update:
    """One optimizer's update of a list of parameters, given one gradient array per parameter.

    Subclasses name the optimizer's state ``slots`` (absent ones are passed empty) and define
    ``_scalars(group, step, decay)`` and ``_apply(grads, scalars, group)``, which runs the rule's
    compiled loop over :attr:`table`'s rows with ``grads``, a tuple of flat arrays.

    ``table (P, 2 + slots)`` holds each parameter's size and the addresses of its memory and of
    its slots (see ``SIZE``, ``PARAM``, ``SLOTS``), whose views :attr:`arrays` keeps alive.
    """

    slots: tuple[str, ...] = ()

    def __init__(self, optimizer: optimizers.Optimizer, params: list[torch.Tensor]) -> None:
        self.optimizer = optimizer
        self.dtype = _flat(params[0]).dtype
        self.empty = empty = _EMPTY[params[0].dtype]
        self.arrays = []  # the views whose memory the table points at
        self.table = np.zeros((len(params), SLOTS + len(self.slots)), np.int64)
        for row, param in enumerate(params):
            state = optimizer._state_of(param)  # the torch path's own state tensors
            arrays = (_flat(param), *[_flat(state[s]) if s in state else empty
                                      for s in self.slots])
            self.arrays.append(arrays)
            self.table[row, SIZE] = arrays[0].size
            self.table[row, PARAM:] = [a.ctypes.data if a.size else 0 for a in arrays]
        self._rests: dict[float, float] = {}

    def _rest(self, weight: float) -> float:
        """``1 - weight``, ``weight`` first rounded to the dtype, as torch's lerp computes it
        (remembered: NumPy's scalar arithmetic costs microseconds, and the weight is constant)."""
        rest = self._rests.get(weight)
        if rest is None:
            rest = self._rests[weight] = float(self.dtype.type(1) - self.dtype.type(weight))
        return rest

    def apply(self, group: dict, grads: list[np.ndarray]) -> None:
        """One update with ``grads`` (in ``params`` order); the torch path's bookkeeping too."""
        schedule = self.optimizer._schedule
        if schedule is not None:
            group["lr"] = float(schedule(group["iterations"]))
        decay = 1.0
        if self.optimizer.weight_decay:
            decay = 1.0 - self.optimizer.weight_decay * group["lr"]
        scalars = np.array(self._scalars(group, group["iterations"] + 1, decay), self.dtype)
        if len(grads) != len(self.arrays):
            raise ValueError(f"grads: expected {len(self.arrays)} arrays, one per parameter, "
                             f"got {len(grads)}")
        bad = self._apply(tuple([grad.reshape(-1) for grad in grads]), scalars, group)
        if bad >= 0:
            raise ValueError(f"grads[{bad}]: expected {self.arrays[bad][0].size} values, "
                             f"got {grads[bad].size}")
        group["iterations"] += 1


class AdamUpdate(Update):
    slots = ("momentum", "velocity", "velocity_hat")

    def _scalars(self, group, step, decay):
        beta_1, beta_2 = group["beta_1"], group["beta_2"]
        alpha = group["lr"] * math.sqrt(1 - beta_2**step) / (1 - beta_1**step)
        return (decay, 1 - beta_1, self._rest(1 - beta_1), beta_2, 1 - beta_2, group["epsilon"],
                -alpha)

    def _apply(self, grads, scalars, group):
        return adam_all(self.table, grads, scalars, self.empty)


class SGDUpdate(Update):
    slots = ("momentum",)

    def _scalars(self, group, step, decay):
        return decay, -group["lr"], group["momentum"]

    def _apply(self, grads, scalars, group):
        return sgd_all(self.table, grads, scalars, self.empty, bool(group["nesterov"]))


class RMSpropUpdate(Update):
    slots = ("velocity", "momentum", "average_gradient")

    def _scalars(self, group, step, decay):
        rho = group["rho"]
        return (decay, rho, 1 - rho, self._rest(1 - rho), group["epsilon"], group["lr"],
                group["momentum"])

    def _apply(self, grads, scalars, group):
        return rmsprop_all(self.table, grads, scalars, self.empty)


_RULES = {optimizers.Adam: AdamUpdate, optimizers.AdamW: AdamUpdate, optimizers.SGD: SGDUpdate,
          optimizers.RMSprop: RMSpropUpdate}


def rule_for(optimizer) -> type[Update] | None:
    """The compiled rule for ``optimizer``, or ``None`` when it must run on the torch path."""
    rule = _RULES.get(type(optimizer))
    if rule is None or not optimizer.built or len(optimizer.param_groups) != 1:
        return None
    if any(clip is not None for clip in (optimizer.clipnorm, optimizer.clipvalue,
                                         optimizer.global_clipnorm)):
        return None
    return rule
