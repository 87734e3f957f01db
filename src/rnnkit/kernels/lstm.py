"""Fused LSTM over a whole sequence (peepholes, layer norm, projection), forward and BPTT.

With ``x̂_t = LN_ih(W x_t) + b_ih + b_hh`` (LN only with ``layer_norm``) and ``ĥ = m ⊙ h_{t-1}``::

    [a_i a_f a_g a_o] = x̂_t + LN_hh(U ĥ)
    i_t = σ(a_i + p_i ⊙ c_{t-1})      f_t = σ(a_f + p_f ⊙ c_{t-1})      g_t = tanh(a_g)
    c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t
    o_t = σ(a_o + p_o ⊙ c_t)
    h_t = W_hr (o_t ⊙ tanh(LN_c(c_t)))        (W_hr only with ``proj_size``)

Forward and backward are one compiled call each (:mod:`rnnkit.kernels._lstm_loops`), input
projection and weight gradients included, behind the ``autograd.Function`` of
:mod:`rnnkit.kernels.fused`, which drives this module's array-level interface.
"""

from __future__ import annotations

import functools

import numpy as np

from rnnkit.kernels import _mkl
from rnnkit.kernels._common import (
    Plan,
    arrays_of,
    block_layout,
    optional_matrix,
    recycled,
    workspace,
)
from rnnkit.kernels._lstm_loops import (
    lstm_backward,
    lstm_backward_weights,
    lstm_forward,
    lstm_forward_inputs,
)
from rnnkit.kernels._numba import SIGMOID, TANH
from rnnkit.kernels._rows import both_weights_at_once, column_blocks

# -- array level: allocation around the compiled loops ---------------------------------------
# forward/backward below (and through them the autograd Function and the compiled training step)
# exchange plain arrays with these two functions, which alone know the loops' buffers. BLAS
# threads are the caller's to set.


# Step GEMMs that column blocks cannot bring under OpenBLAS's small-kernel limit (see
# :func:`rnnkit.kernels._rows.column_blocks`) and of at least this many multiply-adds run as
# ``(4H, B) = U ĥ^T`` (see :func:`rnnkit.kernels._rows.transpose_into`); below it the transposes
# cost more than they save.
BATCH_MINOR_MIN_MACS = 1 << 20


# At B=1 and up to this many steps, each step's ``U ĥ`` is a matrix-vector product on U as
# stored, which spares the copy of U transposed that the batch-major product reads. The copy
# costs more than it saves over so few steps: skipping it makes the forward 8% (H=32) to 38%
# (H=128) faster at T=10, where the product on U as stored makes it 5-30% slower at T=100
# (measured).
STORED_U_MAX_STEPS = 10


def step_gemm(batch: int, depth: int, width: int) -> tuple[bool, int]:
    """How a step GEMM ``(batch, depth) @ (depth, width)`` runs: ``(batch_minor, blocks)``, the
    number of column blocks being 1 when it runs whole or batch-minor.

    One row is never split: its product is a matrix-vector product to OpenBLAS, which the
    small-matrix kernel's limit does not concern; at B=1, H=512 the two column blocks
    :func:`~rnnkit.kernels._rows.column_blocks` asks for ran 1.2x (forward) and 2x (backward)
    slower than batch-minor (measured).
    """
    blocks = column_blocks(batch, depth, width) if batch > 1 else 1
    return blocks == 1 and batch * depth * width >= BATCH_MINOR_MIN_MACS, blocks


def packing(dtype, batch: int, rec: int, hidden: int) -> bool:
    """Whether the step GEMMs ``(B, R) @ (R, 4H)`` run on U packed once per call (see
    :func:`rnnkit.kernels._mkl.worthwhile`)."""
    return _mkl.worthwhile(dtype, batch, batch * rec * 4 * hidden)


@functools.lru_cache(maxsize=64)
def _forward_shape(batch, steps, features, hidden, rec, norm, masked, proj, gate_major=False,
                   packed=False):
    """What a forward of these sizes needs besides its arrays: ``(size, layout)`` of its saved
    block (see :func:`lstm_forward`'s docstring) and whether each step's GEMM runs batch-minor
    (kept per sizes, as the layouts are). How the other step GEMMs run is in the layout: the
    column blocks of U^T it has room for, and no U^T at all where the loops multiply by U as
    stored.

    ``gate_major`` (the tanh/sigmoid cell, see :func:`gate_major`) computes each step's product
    per gate without layer norm, so its blocks are then the four gates' whenever it is not
    batch-minor and B > 1; with layer norm the product is row-major, for LN_hh's rows.

    ``packed`` (see :func:`packing`) runs each step's product on U packed once (per gate for the
    gate-major cell, else whole) and needs neither ``U^T`` nor its blocks.
    """
    four_h = 4 * hidden
    per_gate = gate_major and not norm and batch > 1
    if packed:  # one packed copy of U per gate, or of U whole
        minor, blocks = False, 1
        packs = (4, _mkl.packed_size(batch, hidden, rec)) if per_gate else (
            1, _mkl.packed_size(batch, four_h, rec))
    else:
        minor, blocks = step_gemm(batch, rec, four_h)
        if per_gate and not minor:
            blocks = 4
        packs = (1, 0)
    # U^T is read by the batch-major products that are neither packed nor on U as stored
    needs_u_t = not (minor or packed or (batch == 1 and steps <= STORED_U_MAX_STEPS))
    split = blocks if blocks > 1 else 0
    size, layout = block_layout((
        (steps, batch, features),  # x_t
        (steps * batch if norm else 0, four_h),  # x_hat
        (steps * batch if norm else 0,),  # rstd_ih
        (steps, batch, four_h),  # gates
        (steps + 1, batch, hidden),  # c_all
        (steps, batch, hidden),  # tanh_c
        (steps + 1, batch, rec),  # h_all
        (steps if masked else 0, batch, rec),  # h_rec_all
        (steps if proj else 0, batch, hidden),  # m_all
        (steps if norm else 0, batch, four_h),  # h_hat
        (steps if norm else 0, batch, hidden),  # c_hat
        (steps if norm else 0, batch, 2),  # rstd
        # the scratch arrays (see _lstm_loops._forward_scratch)
        (four_h,),  # bias
        (3 if gate_major and batch > 1 else 0, batch * hidden),  # peep_rows
        (hidden,),  # c_new
        (batch, hidden),  # m
        (hidden,),  # c_ln
        (batch if proj else 0, rec),  # h_new
        (batch, four_h),  # product
        (four_h if minor else 0, batch),  # product_t
        (split, batch, four_h // blocks),  # product_blocks
        (rec if needs_u_t else 0, four_h),  # U^T
        (split, rec, four_h // blocks),  # U^T's column blocks
        (4 if gate_major and norm and batch > 1 else 0, batch * hidden),  # normed
        packs,  # U packed
    ))
    return size, layout, minor


def gate_major(codes) -> bool:
    """Whether the loops keep the gates gate-major at B > 1 (:mod:`rnnkit.kernels.
    _lstm_gate_major`): the tanh/sigmoid cell, with or without peepholes and layer norm."""
    return tuple(codes) == (TANH, SIGMOID)


@functools.lru_cache(maxsize=64)
def _backward_shape(batch, steps, features, hidden, rec, norm, proj, needs, gate_major=False,
                    packed=False):
    """What a backward of these sizes and ``needs`` needs besides its arrays: the shapes of the
    15 gradients' arrays (see :func:`lstm_backward_arrays`), the ``need`` flags the loops take,
    ``(size, layout)`` of its work block (see :func:`lstm_backward`'s docstring), and whether its
    step GEMMs run batch-minor (their column blocks, if any, are in the layout). ``gate_major`` and
    ``packed`` as for :func:`_forward_shape`."""
    four_h = 4 * hidden
    both_weights = needs[3] and needs[4] and not norm and both_weights_at_once()
    minor, blocks = (False, 1) if packed else step_gemm(batch, four_h, rec)
    split = blocks if blocks > 1 else 0
    gate_rows = gate_major and batch > 1
    size, layout = block_layout((
        (steps, batch, four_h),  # d_gates
        (steps if norm else 0, batch, four_h),  # d_proj
        (steps * batch if norm else 0, four_h),  # d_x_proj
        (steps if proj else 0, batch, rec),  # d_h_new
        (steps * batch, features + rec) if both_weights else (0, 0),  # both
        (four_h, features + rec) if both_weights else (0, 0),  # result
        (steps if needs[0] else 0, batch, features),  # d_x_t
        # the scratch arrays (see _lstm_loops._backward_scratch)
        (3 if gate_rows else 0, batch * hidden),  # peep_rows
        (3 if gate_rows else 0, batch * hidden),  # d_peep_rows
        (4 if gate_rows else 0, batch * hidden),  # gate_work
        (batch, rec),  # carry
        (batch, rec),  # d_new
        (batch if proj else 0, hidden),  # d_m
        (batch * hidden if gate_rows and norm else hidden,),  # d_out
        (batch * hidden if gate_rows and norm else hidden,),  # d_c_from_h
        (batch, rec),  # d_rec
        (rec if minor else 0, batch),  # d_rec_t
        (split, batch, rec // blocks),  # rec_blocks
        (four_h,),  # sums
        (rec if minor else 0, four_h),  # U^T
        (split, four_h, rec // blocks),  # U's column blocks
        (_mkl.packed_size(batch, rec, four_h) if packed else 0,),  # U packed
    ))
    shapes = (
        (batch if needs[0] else 0, steps, features),  # d_x
        (four_h, features) if needs[3] else (0, 0),  # d_w_ih
        (four_h, rec) if needs[4] else (0, 0),  # d_w_hh
        four_h if needs[5] else 0,  # d_b_ih
        four_h if needs[6] else 0,  # d_b_hh
        (rec, hidden) if needs[7] and proj else (0, 0),  # d_w_hr
    )
    need = np.array([needs[0], needs[3], needs[4], needs[5], needs[6], needs[7]])
    return shapes, need, size, layout, minor


def lstm_forward_arrays(plan: Plan, x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, peep, ln):
    """Forward over ``x (B, T, I)`` from ``h0 (B, R)``, ``c0 (B, H)``, with ``plan``'s masks and
    activations.

    Weights are in torch's layout (``w_ih (4H, I)``, ...); absent options are empty arrays
    (``w_hr``, ``peep`` ``(0, 0)``; ``ln`` six empty vectors).
    Returns ``(outputs (B, T, R), h_T (B, R), c_T (B, H), saved)``; ``saved`` is what
    :func:`lstm_backward_arrays` needs.
    """
    batch, steps, features = x.shape
    hidden, rec = c0.shape[1], h0.shape[1]
    dtype = x.dtype
    norm = ln[0].size > 0
    size, layout, minor = _forward_shape(
        batch, steps, features, hidden, rec, norm, plan.recurrent.size > 0, w_hr.shape[0] > 0,
        gate_major((plan.activation, plan.recurrent_activation)),
        packing(dtype, batch, rec, hidden),
    )
    outputs = recycled((batch, steps, rec), dtype)
    h_final, c_final = np.empty((batch, rec), dtype), np.empty((batch, hidden), dtype)
    block = recycled((size,), dtype)
    eps = float(plan.spec.layer_norm_epsilon)
    # Here the companion runs first, then the recurrence; the native call runs them at once.
    sync = np.zeros(1, np.int64)
    if plan.chunk > 0:
        lstm_forward_inputs(x, w_ih.T, b_ih, b_hh, ln[0], ln[1], ln[3], eps, plan.activation,
                            plan.recurrent_activation, block, layout, plan.chunk, sync)
    # W_hr^T as a view, as the native entry takes it: at B=1 its product is a matrix-vector
    # product to OpenBLAS, whose kernels for the two layouts sum in different orders.
    lstm_forward(
        x, h0, c0, w_ih.T, w_hh, b_ih, b_hh, w_hr.T, peep, *ln, eps, plan.keep,
        plan.recurrent, plan.zero_output, plan.activation, plan.recurrent_activation, minor,
        outputs, h_final, c_final, block, layout, plan.chunk, sync,
    )
    return outputs, h_final, c_final, (block, layout)


def lstm_backward_arrays(plan: Plan, saved, arrays, d_outputs, d_h_final, d_c_final, needs):
    """Gradients from ``d_outputs (B, T, R)``, ``d_h_final (B, R)``, ``d_c_final (B, H)``.

    ``arrays`` are the forward's inputs ``(x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, peep, ln)``;
    ``needs`` flags the 15 gradients in that order (``ln`` counting six). Returns the 15
    gradients as arrays; those not needed are empty or unspecified.
    """
    x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, peep, ln = arrays
    dtype = x.dtype
    batch, steps, features = x.shape
    hidden = c0.shape[1]
    norm = ln[0].size > 0
    shapes, need, size, layout, minor = _backward_shape(
        batch, steps, features, hidden, h0.shape[1], norm, w_hr.shape[0] > 0, tuple(needs),
        gate_major((plan.activation, plan.recurrent_activation)),
        packing(dtype, batch, h0.shape[1], hidden),
    )
    d_x, d_w_ih, d_w_hh, d_b_ih, d_b_hh, d_w_hr = (np.empty(shape, dtype) for shape in shapes)
    d_h = np.array(d_h_final, dtype, order="C")  # copies: filled in place
    d_c = np.array(d_c_final, dtype, order="C")
    d_peep, d_ln = np.empty_like(peep), np.empty((6, 4 * hidden), dtype)
    work = workspace("work", (size,), dtype)
    sync = np.zeros(1, np.int64)
    lstm_backward(
        d_outputs, *saved, w_ih, w_hh, w_hr, peep, ln[0], ln[2], ln[4], plan.keep, plan.recurrent,
        plan.zero_output, plan.activation, plan.recurrent_activation, minor, need, work, layout,
        d_x, d_h, d_c, d_w_ih, d_w_hh, d_b_ih, d_b_hh, d_w_hr, d_peep, d_ln, plan.chunk, sync,
    )
    if plan.chunk > 0:  # the companion, after the recurrence here (at once in the native call)
        lstm_backward_weights(*saved, w_ih, ln[0], plan.recurrent.size > 0, need, work, layout,
                              d_x, d_w_ih, d_w_hh, d_b_ih, d_b_hh, d_w_hr, d_ln, plan.chunk,
                              sync)
    return (d_x, d_h, d_c, d_w_ih, d_w_hh, d_b_ih, d_b_hh, d_w_hr, d_peep, d_ln[0], d_ln[1],
            d_ln[2], d_ln[3], d_ln[4, :hidden], d_ln[5, :hidden])


STATES = ("h", "c")  # the recurrent states, in the order calls give them
# The weights the kernel reads, in the order of the loops' arguments (and of their gradients).
FIELDS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr", "weight_peephole",
          "ln_ih_weight", "ln_ih_bias", "ln_hh_weight", "ln_hh_bias", "ln_c_weight", "ln_c_bias")
LAYER_NORM_FIELDS = FIELDS[6:]


def supports(spec, weights) -> bool:
    """Every LSTM option has a kernel, given the tensors the spec's options call for."""
    return all(getattr(weights, name) is not None for name in _option_fields(spec))


def _option_fields(spec) -> tuple[str, ...]:
    """The optional weights ``spec`` uses."""
    return (
        (("weight_hr",) if spec.proj_size else ())
        + (("weight_peephole",) if spec.peephole else ())
        + (LAYER_NORM_FIELDS if spec.layer_norm else ())
    )


def weight_tensors(spec, weights) -> tuple:
    """The tensors in :data:`FIELDS` order; ``None`` for absent biases and options that are off."""
    used = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", *_option_fields(spec))
    return tuple(getattr(weights, name) if name in used else None for name in FIELDS)


def prepare(spec, tensors, dtype) -> tuple:
    """The weights as the loops take them: ``(w_ih, w_hh, b_ih, b_hh, w_hr, peep, ln)``, views of
    the tensors where they are contiguous, empty arrays for absent ones (``ln``: six vectors)."""
    w_ih, w_hh, b_ih, b_hh, w_hr, peep, *ln = tensors
    w_ih_, w_hh_, b_ih_, b_hh_, *ln_ = arrays_of(dtype, w_ih, w_hh, b_ih, b_hh, *ln)
    return (w_ih_, w_hh_, b_ih_, b_hh_, optional_matrix(w_hr, dtype),
            optional_matrix(peep, dtype), ln_)


def forward(plan: Plan, x, states, prepared):
    """``x (B, T, I)``, ``states = [h0 (B, R), c0 (B, H)]`` -> ``(outputs (B, T, R),
    [h_T, c_T], saved)``."""
    arrays = (x, *states, *prepared)
    outputs, h_final, c_final, saved = lstm_forward_arrays(plan, *arrays)
    return outputs, (h_final, c_final), (saved, arrays)


def backward(plan: Plan, saved, d_outputs, d_finals, needs) -> tuple:
    """The gradients of ``(x, h0, c0, *FIELDS)`` flagged in ``needs`` (others unspecified)."""
    loop_saved, arrays = saved
    return lstm_backward_arrays(plan, loop_saved, arrays, d_outputs, *d_finals, needs)
