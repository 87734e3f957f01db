"""A plain LSTM's forward and backward for one sample, each one compiled call without BLAS.

Why a second LSTM next to the fused kernels: at seed 002's size (``B = 1``, ``T = 10``,
``H = 50``) each step's GEMM is a 50x200 product, and the kernels' per-step BLAS calls, their
buffers and a 40-argument dispatch cost several times the arithmetic (measured: 130 µs of a
190 µs training step). Here every product is a loop that LLVM vectorises, so a whole forward or
backward costs little more than its multiply-adds. It covers the plain cell only (Keras's
defaults: sigmoid gates, tanh, biases, no peepholes, layer norm or projection); the equations
are :mod:`rnnkit.kernels.lstm`'s, with gates ``i, f, g, o`` in torch's layout::

    [a_i a_f a_g a_o] = W x_t + U h_{t-1} + b_ih + b_hh
    i, f, o = σ(a_i), σ(a_f), σ(a_o)      g = tanh(a_g)
    c_t = f ⊙ c_{t-1} + i ⊙ g              h_t = o ⊙ tanh(c_t)

The tests hold it to the torch step (which runs the fused kernels) within 1e-5 in float32.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from rnnkit.kernels._common import codes_of
from rnnkit.kernels._numba import activation_code, sigmoid_t, tanh_t

PLAIN_CODES = (activation_code("tanh"), activation_code("sigmoid"))

# "reassoc" lets the dot products vectorise (the order of their sums is BLAS's business too);
# "contract" fuses multiply-adds. The activations are the kernels' own branch-free ones, which
# vectorise where libm's would not.
jit = njit(cache=True, nogil=True, error_model="numpy", fastmath={"reassoc", "contract"})

# One sample at a time, with a recurrent product of at most this many multiply-adds (4H * H),
# runs here. Measured forward + backward (T = 10, 8 features, one thread, loaded machine): the
# loops take 0.7x the kernels' time at B = 1, H = 50, about the same at B = 1, H = 100..128 or
# B = 2, H = 50, and 1.2-2x at B = 4 (H = 32..64), where BLAS reuses each weight over the rows.
MAX_STEP_MACS = 4 * 100 * 100

_NO_BIAS = {np.dtype(np.float32): np.empty(0, np.float32),
            np.dtype(np.float64): np.empty(0, np.float64)}


@jit
def lstm_forward(x, weight_ih, weight_hh, bias_ih, bias_hh, weight_hh_t, h_all, c_all, gates,
                 tanh_c):
    """Forward over ``x (B, T, I)`` from zero states.

    ``weight_ih (4H, I)``, ``weight_hh (4H, H)``, ``bias_ih`` and ``bias_hh (4H,)`` (either may
    be empty). Fills ``weight_hh_t (H, 4H)`` with ``U`` transposed (each step's product is then
    passes over ``4H`` contiguous values, four rows of ``U^T`` a pass, and the backward reads it
    too: 17.8 against 20.5 us a forward at seed 002's size with one row a pass), ``h_all``,
    ``c_all (T + 1, B, H)`` (index 0: the zero initial states), the activated ``gates (T, B,
    4H)`` and ``tanh_c (T, B, H)``.
    """
    batch, steps, features = x.shape
    hidden = weight_hh.shape[1]
    for j in range(4 * hidden):
        for k in range(hidden):
            weight_hh_t[k, j] = weight_hh[j, k]
    h_all[0] = 0
    c_all[0] = 0
    bias = np.zeros(4 * hidden, x.dtype)  # both biases, summed once
    if bias_ih.size > 0:
        bias += bias_ih
    if bias_hh.size > 0:
        bias += bias_hh
    pre = np.empty(4 * hidden, x.dtype)
    quads = hidden - hidden % 4
    for t in range(steps):
        for b in range(batch):
            for j in range(4 * hidden):
                pre[j] = bias[j]
            for i in range(features):
                value = x[b, t, i]
                for j in range(4 * hidden):
                    pre[j] += weight_ih[j, i] * value
            h_prev = h_all[t, b]
            for k in range(0, quads, 4):  # four rows of U^T a pass: a quarter of pre's traffic
                v0, v1, v2, v3 = h_prev[k], h_prev[k + 1], h_prev[k + 2], h_prev[k + 3]
                r0, r1 = weight_hh_t[k], weight_hh_t[k + 1]
                r2, r3 = weight_hh_t[k + 2], weight_hh_t[k + 3]
                for j in range(4 * hidden):
                    pre[j] += (r0[j] * v0 + r1[j] * v1) + (r2[j] * v2 + r3[j] * v3)
            for k in range(quads, hidden):
                value = h_prev[k]
                row = weight_hh_t[k]
                for j in range(4 * hidden):
                    pre[j] += row[j] * value
            g = gates[t, b]
            for j in range(2 * hidden):
                g[j] = sigmoid_t(pre[j])
            for j in range(2 * hidden, 3 * hidden):
                g[j] = tanh_t(pre[j])
            for j in range(3 * hidden, 4 * hidden):
                g[j] = sigmoid_t(pre[j])
            for k in range(hidden):
                c = g[hidden + k] * c_all[t, b, k] + g[k] * g[2 * hidden + k]
                c_all[t + 1, b, k] = c
                tanh_c[t, b, k] = tanh_t(c)
                h_all[t + 1, b, k] = g[3 * hidden + k] * tanh_c[t, b, k]


@jit
def lstm_backward(d_outputs, x, weight_ih, weight_hh_t, h_all, c_all, gates, tanh_c, d_pre,
                  d_x, d_weight_ih, d_weight_hh, d_bias):
    """Gradients from ``d_outputs (B, T, H)`` (the final states' gradients are zero).

    ``weight_hh_t`` is :func:`lstm_forward`'s ``U`` transposed, and ``d_pre (T, B, 4H)`` work.
    Fills ``d_weight_ih (4H, I)``, ``d_weight_hh (4H, H)``, ``d_bias (4H,)`` and, unless it is
    empty, ``d_x (B, T, I)``. Each step's ``d(h_{t-1}) = U^T d(pre)`` is ``H`` dot products
    over ``4H`` contiguous values, four a pass over ``d(pre)`` (15.0 against 18.0 us a backward
    at seed 002's size with one a pass), and ``d_weight_hh`` one product over all steps at the
    end: loops over ``H`` values (50 at seed 002's size) ran 3x slower than over ``4H``
    (measured).
    """
    batch, steps, features = x.shape
    hidden = weight_hh_t.shape[0]
    d_weight_ih[:] = 0
    d_bias[:] = 0
    d_h = np.zeros((batch, hidden), x.dtype)
    d_c = np.zeros((batch, hidden), x.dtype)
    zero = d_h.dtype.type(0)
    quads = hidden - hidden % 4
    for t in range(steps - 1, -1, -1):
        for b in range(batch):
            g = gates[t, b]
            dp_row = d_pre[t, b]
            for k in range(hidden):
                dh = d_h[b, k] + d_outputs[b, t, k]
                i, f, cand, o = g[k], g[hidden + k], g[2 * hidden + k], g[3 * hidden + k]
                tc = tanh_c[t, b, k]
                dc = d_c[b, k] + dh * o * (1 - tc * tc)
                dp_row[k] = dc * cand * i * (1 - i)
                dp_row[hidden + k] = dc * c_all[t, b, k] * f * (1 - f)
                dp_row[2 * hidden + k] = dc * i * (1 - cand * cand)
                dp_row[3 * hidden + k] = dh * tc * o * (1 - o)
                d_c[b, k] = dc * f
            for j in range(4 * hidden):
                d_bias[j] += dp_row[j]
            for i in range(features):  # d_W_ih += d_pre ⊗ x_t
                value = x[b, t, i]
                for j in range(4 * hidden):
                    d_weight_ih[j, i] += dp_row[j] * value
            for k in range(0, quads, 4):  # d_h_{t-1} = d_pre @ U, summed in the dtype
                r0, r1 = weight_hh_t[k], weight_hh_t[k + 1]
                r2, r3 = weight_hh_t[k + 2], weight_hh_t[k + 3]
                s0, s1, s2, s3 = zero, zero, zero, zero
                for j in range(4 * hidden):  # four dot products a pass over d_pre
                    d = dp_row[j]
                    s0 += d * r0[j]
                    s1 += d * r1[j]
                    s2 += d * r2[j]
                    s3 += d * r3[j]
                d_h[b, k], d_h[b, k + 1], d_h[b, k + 2], d_h[b, k + 3] = s0, s1, s2, s3
            for k in range(quads, hidden):
                row = weight_hh_t[k]
                total = zero
                for j in range(4 * hidden):
                    total += dp_row[j] * row[j]
                d_h[b, k] = total
            if d_x.size > 0:
                for i in range(features):
                    total = 0.0
                    for j in range(4 * hidden):
                        total += dp_row[j] * weight_ih[j, i]
                    d_x[b, t, i] = total
    # d_W_hh = sum over steps and rows of d_pre ⊗ h_{t-1}, as one product
    rows = steps * batch
    np.dot(d_pre.reshape(rows, 4 * hidden).T, h_all[:steps].reshape(rows, hidden), d_weight_hh)


def supports(layer) -> bool:
    """Whether ``layer`` (an ``LSTM`` that has a fused kernel) is the plain cell this module
    computes."""
    cell = layer.cell
    spec = cell.spec
    return (codes_of(spec) == PLAIN_CODES and cell.use_bias
            and not (spec.peephole or spec.layer_norm or spec.proj_size))


class SmallLSTMStep:
    """The layer step (see :mod:`rnnkit.training.jit.layers`) of a plain ``LSTM``: batches small
    enough run the loops above, larger ones the fused kernels (``kernel_step``)."""

    def __init__(self, layer, kernel_step) -> None:
        self.kernel_step = kernel_step
        cell = layer.cell
        self.return_sequences = layer.return_sequences
        weights = cell.weights()
        self.names = [name for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
                      if getattr(weights, name) is not None]
        self.params = [getattr(weights, name) for name in self.names]
        self.weights = {name: p.detach().numpy() for name, p in zip(self.names, self.params)}
        self.dtype = self.weights["weight_ih"].dtype
        self.hidden = cell.units
        self.input_size, self.output_size = cell.input_size, cell.units
        self.recurrent = True
        self.kept_shape, self.kept = None, {}

    def _small(self, batch: int) -> bool:
        return batch == 1 and 4 * self.hidden * self.hidden <= MAX_STEP_MACS

    def threads(self, batch: int) -> int:
        return 1 if self._small(batch) else self.kernel_step.threads(batch)

    def _buffers(self, batch: int, steps: int) -> dict:
        """The arrays of one step's forward and backward, kept between batches of one shape:
        each training step's backward has run before the next forward refills them, and the
        gradients are read by the update before the next backward. Also sets the argument
        tuples of the two compiled calls and the list of gradients, made once per shape."""
        key = (batch, steps)
        if self.kept_shape != key:
            hidden, dtype, weights = self.hidden, self.dtype, self.weights
            w_ih, w_hh = weights["weight_ih"], weights["weight_hh"]
            self.kept_shape = key
            self.kept = kept = {
                "weight_hh_t": np.empty((hidden, 4 * hidden), dtype),
                "h_all": np.empty((steps + 1, batch, hidden), dtype),
                "c_all": np.empty((steps + 1, batch, hidden), dtype),
                "gates": np.empty((steps, batch, 4 * hidden), dtype),
                "tanh_c": np.empty((steps, batch, hidden), dtype),
                "d_pre": np.empty((steps, batch, 4 * hidden), dtype),
                "d_outputs": np.zeros((batch, steps, hidden), dtype),
                "d_weight_ih": np.empty_like(w_ih),
                "d_weight_hh": np.empty_like(w_hh),
                "d_bias": np.empty(w_ih.shape[0], dtype),
            }
            saved = tuple(kept[name] for name in ("weight_hh_t", "h_all", "c_all", "gates",
                                                  "tanh_c"))
            self.forward_arrays = (w_ih, w_hh, weights["bias_ih"],
                                   weights.get("bias_hh", _NO_BIAS[dtype]), *saved)
            self.backward_arrays = (w_ih, *saved, kept["d_pre"])
            self.grad_arrays = (kept["d_weight_ih"], kept["d_weight_hh"], kept["d_bias"])
            grads = {"weight_ih": kept["d_weight_ih"], "weight_hh": kept["d_weight_hh"],
                     "bias_ih": kept["d_bias"], "bias_hh": kept["d_bias"]}
            self.grads = [grads[name] for name in self.names]
        return self.kept

    def forward(self, x: np.ndarray) -> np.ndarray:
        batch, steps = x.shape[:2]
        self.small = self._small(batch)
        if not self.small:
            return self.kernel_step.forward(x)
        kept = self._buffers(batch, steps)
        self.x = x
        lstm_forward(x, *self.forward_arrays)
        h_all = kept["h_all"]
        if not self.return_sequences:
            return h_all[-1].copy()
        return np.ascontiguousarray(h_all[1:].transpose(1, 0, 2))  # (B, T, H)

    def backward(self, d_output: np.ndarray, need_input: bool):
        if not self.small:
            return self.kernel_step.backward(d_output, need_input)
        x = self.x
        batch, steps, features = x.shape
        kept = self._buffers(batch, steps)
        if self.return_sequences:
            d_outputs = np.ascontiguousarray(d_output)
        else:
            d_outputs = kept["d_outputs"]  # zero but for the last step, which each call sets
            d_outputs[:, -1] = d_output
        d_x = np.empty((batch, steps, features) if need_input else (0, 0, 0), self.dtype)
        lstm_backward(d_outputs, x, *self.backward_arrays, d_x, *self.grad_arrays)
        return (d_x if need_input else None), self.grads
