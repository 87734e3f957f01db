"""Fused GRU over a whole sequence, in both of Keras's forms, forward and BPTT.

With ``x̂_t = W x_t + b_ih`` (plus the parts of ``b_hh`` that add straight to it) and
``ĥ = m ⊙ h_{t-1}`` (``m`` the recurrent-dropout mask)::

    r_t = σ(x̂_r + U_r ĥ)          z_t = σ(x̂_z + U_z ĥ)
    reset_after=True:   n_t = tanh(x̂_n + r_t ⊙ (U_n ĥ + b_hn))
    reset_after=False:  n_t = tanh(x̂_n + U_n (r_t ⊙ ĥ))
    h_t = z_t ⊙ h_{t-1} + (1 - z_t) ⊙ n_t

The forward is one compiled call: ``x̂`` for all steps as one GEMM, then per step the recurrent
GEMM (two when the reset gate comes first) and one fused elementwise pass. The backward is one
compiled call too, ending with one GEMM per weight gradient; its ``(T, B, 3H)`` work arrays are
kept between calls (fresh memory that size costs a page fault per 4 kB on every call). In float32
at B > 1 the step GEMMs of both passes run on their weights packed once per call, where MKL is
found (:mod:`rnnkit.kernels._mkl`). The ``autograd.Function`` of :mod:`rnnkit.kernels.fused`
drives them through this module's array-level interface.
"""

from __future__ import annotations

import functools

import numpy as np

from rnnkit.kernels import _mkl
from rnnkit.kernels._blas import gemm_tn_into
from rnnkit.kernels._common import (
    Plan,
    arrays_of,
    gate_gradient_shapes,
    recycled,
    workspace,
)
from rnnkit.kernels._mkl import pack, pack_transposed, packed_product, restore, serial
from rnnkit.kernels._numba import (
    ONE_32,
    SIGMOID,
    TANH,
    activate,
    derivative,
    jit,
    sigmoid_t,
    tanh_t,
)
from rnnkit.kernels._rows import (
    column_blocks,
    copy,
    dot_column_blocks,
    emit_outputs,
    input_x_gradient_into,
    masked_state_grad,
    project_steps,
    recurrent_rows,
    route_output_grads,
    split_columns,
    sum_rows,
)
from rnnkit.kernels._sync import chunk_count, project_in_chunks, publish, wait_for


@jit
def _after_row(g, p, bias, bias_n, h_prev, act, rec_act, a, h_new):
    """One reset-after row. ``g (3H,)`` holds ``x̂`` (without biases) on entry and the activated
    ``r, z, n`` on exit; ``p (3H,)`` is ``U ĥ``, ``bias (3H,)`` the biases that add straight in
    and ``bias_n (H,)`` is ``b_hn``. Writes ``a = U_n ĥ + b_hn`` and the unmasked ``h_new``.

    A function per row rather than a loop over the batch around it: LLVM vectorises the row's
    loop here, and not inside the nest (7x slower measured at B=32, H=128).
    """
    hidden = h_new.shape[0]
    two_h = 2 * hidden
    if act == TANH and rec_act == SIGMOID:
        # One pass, every activation inlined.
        for j in range(hidden):
            a_j = p[two_h + j] + bias_n[j]
            r = sigmoid_t(p[j] + (g[j] + bias[j]))
            z = sigmoid_t(p[hidden + j] + (g[hidden + j] + bias[hidden + j]))
            n = tanh_t(g[two_h + j] + bias[two_h + j] + r * a_j)
            g[j], g[hidden + j], g[two_h + j] = r, z, n
            a[j] = a_j
            h_new[j] = z * h_prev[j] + (ONE_32 - z) * n
        return
    for j in range(two_h):
        g[j] = p[j] + (g[j] + bias[j])
    activate(rec_act, g[:two_h], g[:two_h])
    for j in range(hidden):
        a[j] = p[two_h + j] + bias_n[j]
        g[two_h + j] = g[two_h + j] + bias[two_h + j] + g[j] * a[j]
    activate(act, g[two_h:], g[two_h:])
    _blend(g, h_prev, h_new)


@jit
def _blend(g, h_prev, h_new):
    """``h_new = z ⊙ h_prev + (1 - z) ⊙ n`` for one row of activated gates ``g (3H,)``."""
    hidden = h_new.shape[0]
    for j in range(hidden):
        z = g[hidden + j]
        h_new[j] = z * h_prev[j] + (ONE_32 - z) * g[2 * hidden + j]


@jit
def _reset_gates_before(product, bias, h_rec, rec_act, gates, reset_h):
    """A reset-before step's first half: ``r, z`` into ``gates (B, 3H)`` (which holds ``x̂`` on
    entry) from ``product = U_rz ĥ (B, 2H)``, and ``reset_h = r ⊙ ĥ (B, H)``."""
    batch, hidden = h_rec.shape
    two_h = 2 * hidden
    for b in range(batch):
        g = gates[b]
        for j in range(two_h):
            g[j] = product[b, j] + (g[j] + bias[j])
        activate(rec_act, g[:two_h], g[:two_h])
        for j in range(hidden):
            reset_h[b, j] = g[j] * h_rec[b, j]


@jit
def _candidate_before(n_pre, bias, h_prev, act, gates, h_new):
    """A reset-before step's second half: ``n`` from ``n_pre = U_n (r ⊙ ĥ) (B, H)``, then
    ``h_new (B, H)``."""
    batch, hidden = h_new.shape
    two_h = 2 * hidden
    for b in range(batch):
        g = gates[b]
        for j in range(hidden):
            g[two_h + j] = n_pre[b, j] + (g[two_h + j] + bias[two_h + j])
        activate(act, g[two_h:], g[two_h:])
        _blend(g, h_prev[b], h_new[b])


@jit
def _step_weights(first, n_block, reset_after, blocks, packed, transpose):
    """What the step GEMMs multiply by, as ``(first', its column blocks, n_block')``.

    When ``packed`` has columns, ``first`` (and, reset-before, ``n_block``) are packed into its
    rows, transposed for the forward (``transpose``) or as stored for the backward, and the three
    returned arrays are empty. Otherwise ``first'`` and ``n_block'`` are transposed copies for
    the forward and the arrays as given for the backward, and the column blocks are ``first'``
    split in ``blocks`` (empty for one block)."""
    if packed.shape[1] > 0:
        if transpose:
            pack_transposed(first, packed[0])
            if not reset_after:
                pack_transposed(n_block, packed[1])
        else:
            pack(first, packed[0])
            if not reset_after:
                pack(n_block, packed[1])
        none = np.empty((0, 0), first.dtype)
        return none, np.empty((0, 0, 0), first.dtype), none
    if transpose:
        first_t = np.ascontiguousarray(first.T)
        return first_t, split_columns(first_t, blocks), np.ascontiguousarray(n_block.T)
    return first, split_columns(first, blocks), n_block


@jit
def gru_forward(x, h0, weight_ih_t, first, n_block, blocks, bias_ih, bias_hh, reset_after, keep,
                recurrent_mask, zero_output, act, rec_act, outputs, h_final, x_t, gates, aux,
                h_all, h_rec_all, packed, chunk, sync):
    """Run the recurrence on ``x (B, T, I)`` from ``h0 (B, H)``.

    ``first`` is ``U (3H, H)`` when ``reset_after``, else ``U_rz (2H, H)`` with ``n_block =
    U_n (H, H)``, as stored (C-contiguous). Each step's product by ``first^T`` runs on it packed
    into ``packed (1 or 2, P)`` where that has columns (:func:`packing`), else on a transposed
    copy in ``blocks`` column blocks (see :func:`~rnnkit.kernels._rows.column_blocks`). Fills
    ``outputs (B, T, H)``, ``h_final`` and, for the backward pass, ``x_t (T, B, I)``, ``gates
    (T, B, 3H)`` (activated ``r, z, n``), ``aux (T, B, H)`` (``U_n ĥ + b_hn`` if
    ``reset_after``, else ``r ⊙ ĥ``), the carried ``h_all (T+1, B, H)`` and, with a recurrent
    mask, ``h_rec_all (T, B, H)``. With a ``chunk``, the companion
    (:func:`~rnnkit.kernels._sync.project_in_chunks`) projects the inputs.
    """
    batch, steps, features = x.shape
    hidden = h0.shape[1]
    two_h, three_h = 2 * hidden, 3 * hidden
    # Written straight into the saved gates (a fresh (T*B, 3H) array costs page faults); the
    # biases join each step's row pass below, while the rows are in cache.
    if chunk == 0:
        project_steps(x, weight_ih_t, x_t, gates, 0, steps)
    bias = np.zeros(three_h, x.dtype)  # b_ih, and the parts of b_hh that add straight in
    bias_n = np.zeros(hidden, x.dtype)  # b_hn, inside the reset product
    if bias_ih.size > 0:
        bias += bias_ih
    if bias_hh.size > 0:
        straight = two_h if reset_after else three_h
        bias[:straight] += bias_hh[:straight]
        if reset_after:
            bias_n += bias_hh[two_h:]
    for b in range(batch):
        copy(h0[b], h_all[0, b])
    packs = packed.shape[1] > 0
    threads = serial(packs)
    first_t, first_t_blocks, n_t = _step_weights(first, n_block, reset_after, blocks, packed,
                                                 True)
    product = np.empty((batch, first.shape[0]), x.dtype)  # U ĥ
    product_blocks = np.empty((first_t_blocks.shape[0], batch, first_t_blocks.shape[2]), x.dtype)
    h_new = np.empty_like(h0)
    n_pre = np.empty_like(h0)
    for t in range(steps):
        if chunk > 0 and t % chunk == 0:
            wait_for(sync, 0, t // chunk + 1)
        h_rec = recurrent_rows(h_all, h_rec_all, recurrent_mask, t)
        if packs:
            packed_product(h_rec, packed[0], product)
        elif first_t_blocks.shape[0] == 0:
            np.dot(h_rec, first_t, product)
        else:
            dot_column_blocks(h_rec, first_t_blocks, product_blocks, product)
        if reset_after:
            for b in range(batch):
                _after_row(gates[t, b], product[b], bias, bias_n, h_all[t, b], act, rec_act,
                           aux[t, b], h_new[b])
        else:
            _reset_gates_before(product, bias, h_rec, rec_act, gates[t], aux[t])
            if packs:
                packed_product(aux[t], packed[1], n_pre)
            else:
                np.dot(aux[t], n_t, n_pre)
            _candidate_before(n_pre, bias, h_all[t], act, gates[t], h_new)
        emit_outputs(outputs, h_all, h_new, t, keep, zero_output)
    restore(threads)
    for b in range(batch):
        copy(h_all[steps, b], h_final[b])


@jit
def _grad_row(dn, g, a, h_prev, reset_after, act, rec_act, dp, dq):
    """One row's gate gradients from ``dn (H,)``, the gradient reaching the unmasked ``h_new``:
    ``dp (3H,)`` of the pre-activations and ``dq (width,)`` of ``U ĥ`` (the same for ``r, z``;
    ``d_n ⊙ r`` for ``n``). Reset-before leaves ``r``'s to :func:`_reset_grads_before`. A
    function per row, as :func:`_after_row`, for LLVM to vectorise it."""
    hidden = dn.shape[0]
    two_h = 2 * hidden
    plain = act == TANH and rec_act == SIGMOID
    for j in range(hidden):
        reset, update, cand = g[j], g[hidden + j], g[two_h + j]
        if plain:
            d_z = dn[j] * (h_prev[j] - cand) * (update * (ONE_32 - update))
            d_n = dn[j] * (ONE_32 - update) * (ONE_32 - cand * cand)
        else:
            d_z = dn[j] * (h_prev[j] - cand) * derivative(rec_act, update)
            d_n = dn[j] * (ONE_32 - update) * derivative(act, cand)
        dp[hidden + j] = d_z
        dp[two_h + j] = d_n
        dq[hidden + j] = d_z
        if reset_after:
            if plain:
                d_r = d_n * a[j] * (reset * (ONE_32 - reset))
            else:
                d_r = d_n * a[j] * derivative(rec_act, reset)
            dp[j] = d_r
            dq[j] = d_r
            dq[two_h + j] = d_n * reset


@jit
def _reset_grads_before(d_reset_h, gates, h_rec, rec_act, d_pre, d_proj):
    """Reset-before: ``r``'s gradient from ``d_reset_h = d(r ⊙ ĥ) (B, H)`` into ``d_pre`` and
    ``d_proj``."""
    batch, hidden = d_reset_h.shape
    for b in range(batch):
        for j in range(hidden):
            d_r = d_reset_h[b, j] * h_rec[b, j] * derivative(rec_act, gates[b, j])
            d_pre[b, j] = d_r
            d_proj[b, j] = d_r


@jit
def gru_backward(d_outputs, d_h, x_t, gates, aux, h_all, h_rec_all, packed, weight_ih, first,
                 n_block, blocks, reset_after, keep, recurrent_mask, zero_output, act, rec_act,
                 need, d_pre, d_proj, d_x_t, d_x, d_weight_ih, d_weight_hh, d_bias_ih, d_bias_hh,
                 chunk, sync):
    """Backpropagate through time. ``first`` and ``n_block`` are ``gru_forward``'s.

    The step products by them run on them packed into the forward's ``packed`` buffer where it
    has columns, else on ``first`` in ``blocks`` column blocks (see
    :func:`~rnnkit.kernels._rows.column_blocks`). ``d_h`` holds the final state's gradient on
    entry and the initial state's on exit. ``need`` flags ``(dX, dW_ih, dW_hh, db_ih, db_hh)``;
    the arrays of unneeded gradients may be empty. ``d_pre (T, B, 3H)``, ``d_proj (T, B, width)``
    and (for ``dX``) ``d_x_t (T, B, I)`` are work arrays, kept by the caller between calls.
    With a ``chunk``, the companion (:func:`gru_backward_weights`) computes the gradients that
    are GEMMs over all steps.
    """
    steps, batch, three_h = gates.shape
    hidden = three_h // 3
    two_h = 2 * hidden
    packs = packed.shape[1] > 0
    threads = serial(packs)
    first, first_blocks, n_block = _step_weights(first, n_block, reset_after, blocks, packed,
                                                 False)
    rec_blocks = np.empty((first_blocks.shape[0], batch, first_blocks.shape[2]), d_h.dtype)
    carry = np.zeros_like(d_h)
    d_new = np.empty_like(d_h)
    d_rec = np.empty_like(d_h)
    d_reset_h = np.empty_like(d_h)
    d_n = np.empty_like(d_h)  # reset-before: d_pre's n part, contiguous for its GEMM
    for t in range(steps - 1, -1, -1):
        route_output_grads(d_outputs, carry, t, keep, zero_output, d_h, d_new)
        h_rec = h_all[t] if recurrent_mask.size == 0 else h_rec_all[t]
        for b in range(batch):
            _grad_row(d_new[b], gates[t, b], aux[t, b], h_all[t, b], reset_after, act, rec_act,
                      d_pre[t, b], d_proj[t, b])
        if not reset_after:
            for b in range(batch):
                copy(d_pre[t, b, two_h:], d_n[b])
            if packs:
                packed_product(d_n, packed[1], d_reset_h)
            else:
                np.dot(d_n, n_block, d_reset_h)
            _reset_grads_before(d_reset_h, gates[t], h_rec, rec_act, d_pre[t], d_proj[t])
        if packs:
            packed_product(d_proj[t], packed[0], d_rec)
        elif first_blocks.shape[0] == 0:
            np.dot(d_proj[t], first, d_rec)
        else:
            dot_column_blocks(d_proj[t], first_blocks, rec_blocks, d_rec)
        if not reset_after:
            for b in range(batch):
                for j in range(hidden):
                    d_rec[b, j] += d_reset_h[b, j] * gates[t, b, j]
        masked_state_grad(d_rec, recurrent_mask, t, keep, d_h)
        for b in range(batch):
            if keep[b, t]:
                for j in range(hidden):
                    d_h[b, j] += d_new[b, j] * gates[t, b, hidden + j]
        if chunk > 0 and t % chunk == 0:  # the chunk's gradients, for the companion
            publish(sync, 0, chunk_count(steps, chunk) - t // chunk)
    restore(threads)
    if chunk == 0:
        gru_step_gradients(x_t, aux, h_all, h_rec_all, recurrent_mask.size > 0, weight_ih,
                           reset_after, need, d_pre, d_proj, d_x_t, d_x, d_weight_ih,
                           d_weight_hh, d_bias_ih, d_bias_hh, 0, steps, False)


@jit
def gru_step_gradients(x_t, aux, h_all, h_rec_all, has_mask, weight_ih, reset_after, need, d_pre,
                       d_proj, d_x_t, d_x, d_weight_ih, d_weight_hh, d_bias_ih, d_bias_hh, t0,
                       t1, accumulate):
    """What steps ``t0 .. t1 - 1`` give, from their gate gradients, to the weights' and biases'
    gradients (added to the other steps' with ``accumulate``) and to ``x``'s: a GEMM (or a sum)
    each over the steps' rows. (Arguments as for :func:`gru_backward`.)"""
    steps, batch, three_h = d_pre.shape
    hidden = three_h // 3
    two_h = 2 * hidden
    width = d_proj.shape[2]
    features = x_t.shape[2]
    total = steps * batch
    n0, n1 = t0 * batch, t1 * batch
    d_pre2 = d_pre.reshape(total, three_h)[n0:n1]
    d_proj2 = d_proj.reshape(total, width)[n0:n1]
    if need[2]:
        h_rec2 = (h_rec_all if has_mask else h_all[:steps]).reshape(total, hidden)[n0:n1]
        if reset_after:
            gemm_tn_into(d_proj2, h_rec2, d_weight_hh, accumulate)
        else:
            gemm_tn_into(d_proj2, h_rec2, d_weight_hh[:two_h], accumulate)
            d_n2 = np.ascontiguousarray(d_pre2[:, two_h:])
            gemm_tn_into(d_n2, aux.reshape(total, hidden)[n0:n1], d_weight_hh[two_h:],
                         accumulate)
    sum_rows(d_pre2, d_bias_ih, accumulate)
    # b_hh adds straight in, but for b_hn inside the reset product (whose gradient d_proj has)
    sum_rows(d_proj2 if reset_after else d_pre2, d_bias_hh, accumulate)
    x2 = x_t.reshape(total, features)[n0:n1]
    if need[1]:
        gemm_tn_into(d_pre2, x2, d_weight_ih, accumulate)
    if need[0]:
        input_x_gradient_into(d_pre2, weight_ih, d_x_t, d_x, t0, t1)


@jit
def gru_backward_weights(x_t, aux, h_all, h_rec_all, has_mask, weight_ih, reset_after, need,
                         d_pre, d_proj, d_x_t, d_x, d_weight_ih, d_weight_hh, d_bias_ih,
                         d_bias_hh, chunk, sync):
    """The backward's companion (see :mod:`rnnkit.kernels._sync`): :func:`gru_step_gradients`
    chunk by chunk, last chunk first, each once :func:`gru_backward` has published it."""
    steps = d_pre.shape[0]
    count = chunk_count(steps, chunk)
    for k in range(count - 1, -1, -1):
        wait_for(sync, 0, count - k)
        gru_step_gradients(x_t, aux, h_all, h_rec_all, has_mask, weight_ih, reset_after, need,
                           d_pre, d_proj, d_x_t, d_x, d_weight_ih, d_weight_hh, d_bias_ih,
                           d_bias_hh, k * chunk, min(steps, (k + 1) * chunk), k != count - 1)


def _recurrent_blocks(weight_hh: np.ndarray, reset_after: bool):
    """``(U, empty)`` when ``reset_after``, else ``(U_rz, U_n)``: C-contiguous views."""
    if reset_after:
        return weight_hh, np.empty((0, 0), weight_hh.dtype)
    hidden = weight_hh.shape[1]
    return weight_hh[: 2 * hidden], weight_hh[2 * hidden :]


def packing(dtype, batch: int, hidden: int) -> bool:
    """Whether the step GEMMs run on the recurrent weights packed once per call (see
    :func:`rnnkit.kernels._mkl.worthwhile`)."""
    return _mkl.worthwhile(dtype, batch, batch * hidden * 3 * hidden)


def saved_shapes(batch, steps, features, hidden, masked, reset_after, packs) -> tuple:
    """The shapes of the forward's saved arrays ``x_t, gates, aux, h_all, h_rec_all, packed`` (see
    :func:`gru_forward`; ``h_rec_all`` is empty without a recurrent mask, ``packed`` without
    ``packs``). ``packed`` has a row per step GEMM (``U``, or ``U_rz`` and ``U_n``), each with
    room for its weight packed for the forward or, later, for the backward."""
    width = 3 * hidden if reset_after else 2 * hidden
    room = 0
    if packs:
        room = max(_mkl.packed_size(batch, width, hidden), _mkl.packed_size(batch, hidden, width),
                   _mkl.packed_size(batch, hidden, hidden))
    return ((steps, batch, features), (steps, batch, 3 * hidden), (steps, batch, hidden),
            (steps + 1, batch, hidden), (steps if masked else 0, batch, hidden),
            (1 if reset_after else 2, room))


def gru_forward_arrays(plan: Plan, x_, h0_, w_ih, w_hh, b_ih, b_hh):
    """Run the compiled forward (on the caller's BLAS threads); returns ``(outputs, h_T, saved,
    blocks)`` as arrays."""
    batch, steps, features = x_.shape
    hidden, dtype = h0_.shape[1], x_.dtype
    reset_after = bool(plan.spec.reset_after)
    first, n_block = _recurrent_blocks(w_hh, reset_after)
    outputs = recycled((batch, steps, hidden), dtype)
    h_final = np.empty((batch, hidden), dtype)
    shapes = saved_shapes(batch, steps, features, hidden, plan.recurrent.size > 0, reset_after,
                          packing(dtype, batch, hidden))
    saved = tuple(recycled(shape, dtype) for shape in shapes)
    # Here the companion runs first, then the recurrence; the native call runs them at once.
    sync = np.zeros(1, np.int64)
    if plan.chunk > 0:
        project_in_chunks(x_, w_ih.T, saved[0], saved[1], plan.chunk, sync)
    gru_forward(x_, h0_, w_ih.T, first, n_block, column_blocks(batch, hidden, first.shape[0]),
                b_ih, b_hh, reset_after, plan.keep, plan.recurrent, plan.zero_output,
                plan.activation, plan.recurrent_activation, outputs, h_final, *saved, plan.chunk,
                sync)
    return outputs, h_final, saved, (first, n_block)


STATES = ("h",)  # the recurrent states, in the order calls give them
FIELDS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def supports(spec, weights) -> bool:
    """Both GRU forms have a kernel."""
    return True


def weight_tensors(spec, weights) -> tuple:
    """The tensors in :data:`FIELDS` order (``None`` for absent biases)."""
    return tuple(getattr(weights, name) for name in FIELDS)


def prepare(spec, tensors, dtype) -> tuple:
    """The weights as arrays (views where the tensors are contiguous; absent biases empty)."""
    return tuple(arrays_of(dtype, *tensors))


def forward(plan: Plan, x, states, prepared):
    """``x (B, T, I)``, ``states = [h0 (B, H)]`` -> ``(outputs (B, T, H), [h_T], saved)``."""
    outputs, h_final, saved, blocks = gru_forward_arrays(plan, x, states[0], *prepared)
    return outputs, (h_final,), (saved, blocks, x, prepared[0])


@functools.lru_cache(maxsize=64)
def _backward_shape(batch, steps, features, hidden, width, needs):
    """What a backward of these sizes and ``needs`` needs besides its arrays (kept per sizes):
    the shapes of the gradients of ``(x, *FIELDS)``, the ``need`` flags the loops take, the
    shapes of the work arrays ``d_pre``, ``d_proj``, ``d_x_t``, and the column blocks of the step
    GEMM over ``first (width, H)``."""
    three_h = 3 * hidden
    shapes, need = gate_gradient_shapes(batch, steps, features, three_h, hidden, needs)
    work = ((steps, batch, three_h), (steps, batch, width),
            (steps if needs[0] else 0, batch, features))
    return shapes, need, work, column_blocks(batch, width, hidden)


WORK_NAMES = ("gru_d_pre", "gru_d_proj", "gru_d_x_t")


def backward(plan: Plan, saved, d_outputs, d_finals, needs) -> tuple:
    """The gradients of ``(x, h0, *FIELDS)`` flagged in ``needs`` (others empty)."""
    loop_saved, (first, n_block), x, weight_ih = saved
    dtype = x.dtype
    batch, steps, features = x.shape
    shapes, need, work, blocks = _backward_shape(
        batch, steps, features, first.shape[1], first.shape[0], tuple(needs)
    )
    d_x, d_weight_ih, d_weight_hh, d_bias_ih, d_bias_hh = (np.empty(s, dtype) for s in shapes)
    d_h = np.array(d_finals[0], dtype, order="C")  # a copy: filled in place
    reset_after = bool(plan.spec.reset_after)
    works = tuple(map(workspace, WORK_NAMES, work, (dtype,) * 3))
    gradients = (d_x, d_weight_ih, d_weight_hh, d_bias_ih, d_bias_hh)
    sync = np.zeros(1, np.int64)
    gru_backward(d_outputs, d_h, *loop_saved, weight_ih, first, n_block, blocks, reset_after,
                 plan.keep, plan.recurrent, plan.zero_output, plan.activation,
                 plan.recurrent_activation, need, *works, *gradients, plan.chunk, sync)
    if plan.chunk > 0:  # the companion, after the recurrence here (at once in the native call)
        x_t, _, aux, h_all, h_rec_all, _ = loop_saved
        gru_backward_weights(x_t, aux, h_all, h_rec_all, plan.recurrent.size > 0, weight_ih,
                             reset_after, need, *works, *gradients, plan.chunk, sync)
    return d_x, d_h, d_weight_ih, d_weight_hh, d_bias_ih, d_bias_hh
