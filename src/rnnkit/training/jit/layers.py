"""Forward and backward of each supported layer on NumPy arrays, for the compiled training step.

A layer step wraps one built layer: ``forward(x)`` returns its output and keeps what the backward
needs; ``backward(d_output, need_input)`` returns the input's gradient (or ``None``) and
``grads``, one array per entry of ``params`` (the layer's torch parameters, whose memory the
arrays in ``weights`` share, so that an update written there is the model's).

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
from rnnkit.cells.base import WEIGHT_NAMES
from rnnkit.kernels._common import Plan, codes_of, gemm_threads
from rnnkit.kernels._lstm_loops import lstm_backward_arrays, lstm_forward_arrays
from rnnkit.kernels.gru import gru_backward, gru_forward_arrays
from rnnkit.kernels.rnn import rnn_backward, rnn_forward_arrays
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
    """A ``Dense`` layer on the last axis: ``(B, F)`` or ``(B, T, F)`` in, same rank out."""

    def __init__(self, layer) -> None:
        self.params = [p for p in (layer.kernel, layer.bias) if p is not None]
        self.kernel = layer.kernel.detach().numpy()  # (F, U)
        self.bias = _array(layer.bias, self.kernel.dtype)
        self.activation = DENSE_ACTIVATIONS[layer.activation]
        self.input_size, self.output_size = self.kernel.shape
        self.recurrent = False

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.x = x.reshape(-1, x.shape[-1])  # (N, F)
        self.out = np.empty((self.x.shape[0], self.kernel.shape[1]), self.kernel.dtype)
        dense_forward(self.x, self.kernel, self.bias, self.activation, self.out)
        return self.out.reshape(*x.shape[:-1], self.kernel.shape[1])

    def backward(self, d_output: np.ndarray, need_input: bool):
        dtype = self.kernel.dtype
        d_kernel = np.empty_like(self.kernel)
        d_bias = np.empty_like(self.bias)
        d_x = np.empty(self.x.shape if need_input else (0, 0), dtype)
        d_out = d_output.reshape(self.out.shape)
        dense_backward(self.x, self.kernel, self.out, d_out, self.activation,
                       np.empty_like(self.out), d_kernel, d_bias, d_x)
        grads = [d_kernel, d_bias] if self.bias.size else [d_kernel]
        if not need_input:
            return None, grads
        return d_x.reshape(*d_output.shape[:-1], self.x.shape[1]), grads


# -- recurrent layers -------------------------------------------------------------------------
class RecurrentStep:
    """A built-in recurrent layer without masks, dropout or state carried over; subclasses run
    one family. ``(B, T, I)`` in; ``(B, T, R)`` out with ``return_sequences``, else the last
    step ``(B, R)``. BLAS threads are the caller's to set (:meth:`threads`)."""

    def __init__(self, layer) -> None:
        cell = layer.cell
        self.spec = cell.spec
        self.codes = codes_of(self.spec)
        self.return_sequences = layer.return_sequences
        weights = cell.weights()
        self.names = [name for name in WEIGHT_NAMES if getattr(weights, name) is not None]
        self.params = [getattr(weights, name) for name in self.names]
        self.weights = {name: p.detach().numpy() for name, p in zip(self.names, self.params)}
        self.dtype = self.weights["weight_ih"].dtype
        self.input_size, self.output_size = self.spec.input_size, self.spec.recurrent_size
        self.recurrent = True
        self._plans: dict[tuple[int, int], Plan] = {}

    def threads(self, batch: int) -> int:
        """BLAS threads for this layer's per-step GEMMs at ``batch`` rows (as the torch path)."""
        gates = {"rnn": 1, "gru": 3, "lstm": 4}[self.spec.family]
        return gemm_threads(batch, gates * self.spec.hidden_size, self.spec.recurrent_size)

    def _plan(self, batch: int, steps: int) -> Plan:
        """The kernels' settings for a ``(batch, steps)`` input: every step real, no dropout."""
        plan = self._plans.get((batch, steps))
        if plan is None:
            plan = Plan(np.ones((batch, steps), np.bool_), np.empty((0, 0), self.dtype), False,
                        self.codes, self.threads(batch), self.spec)
            self._plans[(batch, steps)] = plan
        return plan

    def _weight(self, name: str, empty_shape=(0,)) -> np.ndarray:
        array = self.weights.get(name)
        return np.empty(empty_shape, self.dtype) if array is None else array

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.x = x
        self.plan = self._plan(x.shape[0], x.shape[1])
        outputs = self._forward(x)  # (B, T, R)
        self.output_shape = outputs.shape
        return outputs if self.return_sequences else np.ascontiguousarray(outputs[:, -1])

    def backward(self, d_output: np.ndarray, need_input: bool):
        if self.return_sequences:
            d_outputs = np.ascontiguousarray(d_output)
        else:
            d_outputs = np.zeros(self.output_shape, self.dtype)
            d_outputs[:, -1] = d_output
        return self._backward(d_outputs, need_input)


class LSTMStep(RecurrentStep):
    """LSTM through the kernels' array-level pair, which takes every option as an array."""

    _LAYER_NORM = ("ln_ih_weight", "ln_ih_bias", "ln_hh_weight", "ln_hh_bias", "ln_c_weight",
                   "ln_c_bias")

    def __init__(self, layer) -> None:
        super().__init__(layer)
        self.weight_arrays = (
            self.weights["weight_ih"], self.weights["weight_hh"], self._weight("bias_ih"),
            self._weight("bias_hh"), self._weight("weight_hr", (0, 0)),
            self._weight("weight_peephole", (0, 0)),
            [self._weight(name) for name in self._LAYER_NORM],
        )
        self.present = [name in self.weights for name in WEIGHT_NAMES]
        self._settings: dict[int, dict] = {}

    def _settings_of(self, plan: Plan) -> dict:
        settings = self._settings.get(id(plan))
        if settings is None:
            settings = dict(eps=float(self.spec.layer_norm_epsilon), keep=plan.keep,
                            recurrent=plan.recurrent, zero_output=False,
                            activation=plan.activation,
                            recurrent_activation=plan.recurrent_activation)
            self._settings[id(plan)] = settings  # plans live as long as the step
        return settings

    def _forward(self, x):
        batch = x.shape[0]
        h0 = np.zeros((batch, self.spec.recurrent_size), self.dtype)
        c0 = np.zeros((batch, self.spec.hidden_size), self.dtype)
        self.arrays = (x, h0, c0, *self.weight_arrays)
        outputs, _, _, self.saved = lstm_forward_arrays(*self.arrays,
                                                        **self._settings_of(self.plan))
        return outputs

    def _backward(self, d_outputs, need_input):
        h0, c0 = self.arrays[1:3]  # d_h_T = d_c_T = 0: only the outputs reach the loss
        grads = lstm_backward_arrays(self.saved, self.arrays, d_outputs, np.zeros_like(h0),
                                     np.zeros_like(c0), [need_input, False, False, *self.present],
                                     **self._settings_of(self.plan))
        weight_grads = [g for g, flag in zip(grads[3:], self.present) if flag]
        return (grads[0] if need_input else None), weight_grads


class _SingleStateStep(RecurrentStep):
    """GRU and SimpleRNN: the array-level forward, and the compiled backward with the buffers
    their autograd Functions allocate (``d_x, d_weight_ih, d_weight_hh, d_bias_ih,
    d_bias_hh``)."""

    def _gradient_buffers(self, need_input: bool):
        batch, steps, features = self.x.shape
        width, dtype = self.weights["weight_ih"].shape[0], self.dtype
        has_ih, has_hh = "bias_ih" in self.weights, "bias_hh" in self.weights
        grads = (
            np.empty((batch if need_input else 0, steps, features), dtype),
            np.empty((width, features), dtype),
            np.empty((width, self.weights["weight_hh"].shape[1]), dtype),
            np.empty(width if has_ih else 0, dtype),
            np.empty(width if has_hh else 0, dtype),
        )
        return grads, np.array([need_input, True, True, has_ih, has_hh])

    def _split(self, grads, need_input: bool):
        by_name = dict(zip(("weight_ih", "weight_hh", "bias_ih", "bias_hh"), grads[1:]))
        return (grads[0] if need_input else None), [by_name[name] for name in self.names]

    def _state_gradient(self) -> np.ndarray:
        """``d_h_T = 0`` (only the outputs reach the loss), filled in place by the kernel."""
        return np.zeros((self.x.shape[0], self.spec.hidden_size), self.dtype)


class GRUStep(_SingleStateStep):
    def _forward(self, x):
        h0 = np.zeros((x.shape[0], self.spec.hidden_size), self.dtype)
        outputs, _, self.saved, self.blocks = gru_forward_arrays(
            self.plan, x, h0, self.weights["weight_ih"], self.weights["weight_hh"],
            self._weight("bias_ih"), self._weight("bias_hh"))
        return outputs

    def _backward(self, d_outputs, need_input):
        plan = self.plan
        grads, need = self._gradient_buffers(need_input)
        gru_backward(d_outputs, self._state_gradient(), *self.saved, self.weights["weight_ih"],
                     *self.blocks, bool(self.spec.reset_after), plan.keep, plan.recurrent, False,
                     plan.activation, plan.recurrent_activation, need, *grads)
        return self._split(grads, need_input)


class SimpleRNNStep(_SingleStateStep):
    def _forward(self, x):
        h0 = np.zeros((x.shape[0], self.spec.hidden_size), self.dtype)
        outputs, _, self.saved = rnn_forward_arrays(
            self.plan, x, h0, self.weights["weight_ih"], self.weights["weight_hh"],
            self._weight("bias_ih"), self._weight("bias_hh"))
        return outputs

    def _backward(self, d_outputs, need_input):
        plan = self.plan
        grads, need = self._gradient_buffers(need_input)
        rnn_backward(d_outputs, self._state_gradient(), *self.saved, self.weights["weight_ih"],
                     self.weights["weight_hh"], plan.keep, plan.recurrent, False,
                     plan.activation, need, *grads)
        return self._split(grads, need_input)


RECURRENT_STEPS = {"lstm": LSTMStep, "gru": GRUStep, "rnn": SimpleRNNStep}


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
