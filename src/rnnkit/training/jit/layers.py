"""Forward and backward of each supported layer on NumPy arrays, for the compiled training step.

A layer step wraps one built layer: ``forward(x)`` returns its output and keeps what the backward
needs; ``backward(d_output, need_input)`` returns the input's gradient (or ``None``) and
``grads``, one array per entry of ``params`` (the layer's torch parameters, whose memory the
step's arrays share, so that an update written there is the model's).

The recurrent layers run the fused kernels' array-level functions, the same compiled loops the
torch path runs through its ``autograd.Function``; Dense, the loss and the metrics are the small
compiled functions below. Shapes: recurrent inputs ``(B, T, I)``; Dense works on rows ``(N, F)``,
``N = B`` or ``B * T``.
"""

from __future__ import annotations

import numpy as np
import torch
from numba import njit

from rnnkit import activations
from rnnkit.cells.base import GATES
from rnnkit.kernels import gru as gru_kernels
from rnnkit.kernels import lstm as lstm_kernels
from rnnkit.kernels import rnn as rnn_kernels
from rnnkit.kernels._common import Plan, codes_of, gemm_threads
from rnnkit.training import losses

jit = njit(cache=True, nogil=True)

LINEAR, RELU, TANH, SIGMOID = 0, 1, 2, 3
DENSE_ACTIVATIONS = {activations.linear: LINEAR, torch.relu: RELU, torch.tanh: TANH,
                     torch.sigmoid: SIGMOID}
SQUARED, ABSOLUTE = 0, 1
LOSS_KINDS = {losses.mean_squared_error: SQUARED, losses.mean_absolute_error: ABSOLUTE}


def _array(tensor: torch.Tensor | None, dtype: np.dtype, empty_shape=(0,)) -> np.ndarray:
    """``tensor``'s memory as an array, or an empty array for an absent option."""
    return np.empty(empty_shape, dtype) if tensor is None else tensor.detach().numpy()


# -- Dense --------------------------------------------------------------------------------------
@jit
def dense_forward(x, kernel, bias, activation, out):
    """``out (N, U) = act(x (N, F) @ kernel (F, U) + bias (U,))``; ``bias`` may be empty."""
    np.dot(x, kernel, out)
    rows, units = out.shape
    for n in range(rows):
        for j in range(units):
            if bias.size > 0:
                out[n, j] = out[n, j] + bias[j]
            value = out[n, j]
            if activation == RELU:
                if value < 0:
                    out[n, j] = 0
            elif activation == TANH:
                out[n, j] = np.tanh(value)
            elif activation == SIGMOID:
                out[n, j] = 1 / (1 + np.exp(-value))


@jit
def dense_backward(x, kernel, out, d_out, activation, d_pre, d_kernel, d_bias, d_x):
    """Gradients of :func:`dense_forward` from ``d_out (N, U)``; the derivative of the
    activation comes from its output. ``d_bias``/``d_x`` may be empty (not needed)."""
    rows, units = out.shape
    for n in range(rows):
        for j in range(units):
            y = out[n, j]
            if activation == RELU:
                d_pre[n, j] = d_out[n, j] if y > 0 else 0
            elif activation == TANH:
                d_pre[n, j] = d_out[n, j] * (1 - y * y)
            elif activation == SIGMOID:
                d_pre[n, j] = d_out[n, j] * (y * (1 - y))
            else:
                d_pre[n, j] = d_out[n, j]
    np.dot(x.T, d_pre, d_kernel)
    if d_bias.size > 0:
        for j in range(units):
            d_bias[j] = 0
        for n in range(rows):
            for j in range(units):
                d_bias[j] += d_pre[n, j]
    if d_x.size > 0:
        np.dot(d_pre, kernel.T, d_x)


class DenseStep:
    """A ``Dense`` layer on the last axis: ``(B, F)`` or ``(B, T, F)`` in, same rank out.

    Its output and gradients are arrays kept between batches of the same row count, not
    allocated at each batch: each batch's backward has run, and the update has read the
    gradients, before the next forward."""

    def __init__(self, layer) -> None:
        self.params = [p for p in (layer.kernel, layer.bias) if p is not None]
        self.kernel = layer.kernel.detach().numpy()  # (F, U)
        self.bias = _array(layer.bias, self.kernel.dtype)
        self.activation = DENSE_ACTIVATIONS[layer.activation]
        self.input_size, self.output_size = self.kernel.shape
        self.recurrent = False
        self.d_kernel, self.d_bias = np.empty_like(self.kernel), np.empty_like(self.bias)
        self.kept_rows, self.out, self.d_pre = -1, None, None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.x = x.reshape(-1, x.shape[-1])  # (N, F)
        rows = self.x.shape[0]
        if rows != self.kept_rows:
            self.kept_rows = rows
            self.out = np.empty((rows, self.kernel.shape[1]), self.kernel.dtype)
            self.d_pre = np.empty_like(self.out)
        dense_forward(self.x, self.kernel, self.bias, self.activation, self.out)
        return self.out.reshape(*x.shape[:-1], self.kernel.shape[1])

    def backward(self, d_output: np.ndarray, need_input: bool):
        d_x = np.empty(self.x.shape if need_input else (0, 0), self.kernel.dtype)
        d_out = d_output.reshape(self.out.shape)
        dense_backward(self.x, self.kernel, self.out, d_out, self.activation, self.d_pre,
                       self.d_kernel, self.d_bias, d_x)
        grads = [self.d_kernel, self.d_bias] if self.bias.size else [self.d_kernel]
        if not need_input:
            return None, grads
        return d_x.reshape(*d_output.shape[:-1], self.x.shape[1]), grads


# -- recurrent layers -------------------------------------------------------------------------
FAMILIES = {"lstm": lstm_kernels, "gru": gru_kernels, "rnn": rnn_kernels}


class RecurrentStep:
    """A built-in recurrent layer without masks, dropout or state carried over, run through its
    kernel family's array-level ``forward``/``backward`` (those the kernels' autograd Function
    drives). ``(B, T, I)`` in; ``(B, T, R)`` out with ``return_sequences``, else the last step
    ``(B, R)``. BLAS threads are the caller's to set (:meth:`threads`)."""

    def __init__(self, layer) -> None:
        cell = layer.cell
        self.spec = cell.spec
        self.codes = codes_of(self.spec)
        self.return_sequences = layer.return_sequences
        self.family = FAMILIES[self.spec.family]
        tensors = self.family.weight_tensors(self.spec, cell.weights())  # family.FIELDS order
        self.present = [t is not None for t in tensors]
        self.params = [t for t in tensors if t is not None]
        # Views of the parameters (the trainer requires them contiguous): updates show through.
        self.prepared = self.family.prepare(self.spec, tensors, self.params[0].dtype)
        self.state_sizes = tuple(cell.state_size)
        self.dtype = self.prepared[0].dtype
        self.input_size, self.output_size = self.spec.input_size, self.spec.recurrent_size
        self.recurrent = True
        self._plans: dict[tuple[int, int], Plan] = {}

    def threads(self, batch: int) -> int:
        """BLAS threads for this layer's per-step GEMMs at ``batch`` rows (as the torch path)."""
        width = GATES[self.spec.family] * self.spec.hidden_size
        return gemm_threads(batch, width, self.spec.recurrent_size)

    def _plan(self, batch: int, steps: int) -> Plan:
        """The kernels' settings for a ``(batch, steps)`` input: every step real, no dropout."""
        plan = self._plans.get((batch, steps))
        if plan is None:
            plan = Plan(np.ones((batch, steps), np.bool_), np.empty((0, 0), self.dtype), False,
                        self.codes, self.threads(batch), self.spec)
            self._plans[(batch, steps)] = plan
        return plan

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.plan = self._plan(x.shape[0], x.shape[1])
        states = [np.zeros((x.shape[0], size), self.dtype) for size in self.state_sizes]
        outputs, _, self.saved = self.family.forward(self.plan, x, states, self.prepared)
        self.output_shape = outputs.shape  # (B, T, R)
        return outputs if self.return_sequences else np.ascontiguousarray(outputs[:, -1])

    def backward(self, d_output: np.ndarray, need_input: bool):
        """``(d_x or None, gradients of :attr:`params`)`` from the output's gradient."""
        if self.return_sequences:
            d_outputs = np.ascontiguousarray(d_output)
        else:
            d_outputs = np.zeros(self.output_shape, self.dtype)
            d_outputs[:, -1] = d_output
        batch, states = d_outputs.shape[0], len(self.state_sizes)
        d_finals = [np.zeros((batch, size), self.dtype) for size in self.state_sizes]  # no loss
        needs = [need_input, *[False] * states, *self.present]
        grads = self.family.backward(self.plan, self.saved, d_outputs, d_finals, needs)
        weight_grads = [g for g, flag in zip(grads[1 + states:], self.present) if flag]
        return (grads[0] if need_input else None), weight_grads


# -- loss and metrics -----------------------------------------------------------------------------
@jit
def regression_loss(pred, target, kind, d_pred):
    """Keras's mse (``kind`` 0) or mae (1) of rows ``pred``/``target (N, O)``, mean over all.

    Fills ``d_pred`` with the loss's gradient; returns ``(loss, sum over rows of the row mean
    squared error, the same for the absolute error)`` (the last two feed the mse/mae metrics).
    """
    rows, width = pred.shape
    scale = 1 / (rows * width)
    loss = 0.0
    squared_sum = 0.0
    absolute_sum = 0.0
    for n in range(rows):
        row_squared = 0.0
        row_absolute = 0.0
        for j in range(width):
            diff = pred[n, j] - target[n, j]
            row_squared += diff * diff
            row_absolute += abs(diff)
            if kind == SQUARED:
                d_pred[n, j] = 2 * diff * scale
            else:
                d_pred[n, j] = np.sign(diff) * scale
        squared_sum += row_squared / width
        absolute_sum += row_absolute / width
    loss = (squared_sum if kind == SQUARED else absolute_sum) / rows
    return loss, squared_sum, absolute_sum
