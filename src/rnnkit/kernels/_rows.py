"""Numba building blocks of the compiled sequence loops: rows, masks, layer norm, gradient GEMMs.

Shared by the LSTM, GRU and SimpleRNN loops (activations are in :mod:`rnnkit.kernels._numba`).
Each works on rows or whole ``(B, ·)`` blocks of time-major arrays, in place, without allocating
unless a caller's scratch array does not fit.
"""

from __future__ import annotations

import numpy as np

from rnnkit.kernels._blas import SMALL_GEMM_MACS, dot_rows, gemm_tn_into
from rnnkit.kernels._numba import as_dtype_of, at_row, jit, jit_sums


@jit_sums
def row_moments(x):
    """``(shift, mean, var)`` of row ``x``, in one pass: ``shift`` is its first value, ``mean``
    the mean of its deviations from it (the row's mean is ``shift + mean``) and ``var`` its
    variance, both summed in float64.

    The sums are of the deviations from the first value, so the variance (their mean square less
    their squared mean) does not cancel away when the mean is large against the spread, and a
    value centred as ``(x - shift) - mean`` loses nothing to the mean's size in the row's own
    precision. One pass instead of two: 90 against 110 µs for 3200 rows of 128 (measured)."""
    shift = x[0]
    total = 0.0
    squares = 0.0
    for j in range(x.size):
        d = x[j] - shift
        total += d
        squares += d * d
    mean = total / x.size
    var = max(squares / x.size - mean * mean, 0.0)
    return shift, mean, var


@jit
def row_mean_rstd(x, eps):
    """``(shift, mean, rstd)`` of row ``x`` in its own precision: layer norm's normalised value
    is ``((x - shift) - mean) * rstd``, with ``rstd = 1 / sqrt(variance + eps)`` (see
    :func:`row_moments`).

    Callers centre in that order, in a loop compiled without ``reassoc`` (which would let LLVM
    fold ``shift + mean`` into one rounded centre). In float32 the loop runs in float32: with a
    float64 mean every element went through float64, and layer norm's forward took 0.45-0.7
    against 0.3-0.46 ns an element (rows of 256 to 64, measured)."""
    shift, mean, var = row_moments(x)
    return shift, as_dtype_of(mean, x), as_dtype_of(1.0 / np.sqrt(var + eps), x)


@jit
def layer_norm_row(x, eps, x_hat):
    """Normalise row ``x`` into ``x_hat`` (mean 0, variance 1); returns ``1 / std``."""
    shift, mean, rstd = row_mean_rstd(x, eps)
    for j in range(x.size):
        x_hat[j] = ((x[j] - shift) - mean) * rstd
    return rstd


@jit_sums
def layer_norm_rows_backward(d_y, x_hat, rstd, weight, d_x, d_weight, d_bias):
    """Backward of ``y = x_hat * weight + bias`` for each row of ``d_y (N, W)``: writes ``d_x
    (N, W)``, accumulates the parameters' gradients ``d_weight`` and ``d_bias (W,)``. ``rstd``
    holds each row's ``1 / std``, ``(N,)`` (or one scalar for every row).

    ``d_x = rstd * (d_y * weight - mean(g) - x_hat * mean(g * x_hat))`` for ``g = d_y * weight``,
    with the means summed in float64 and computed as ``rstd * d_y * weight - a - x_hat * b``, ``a``
    and ``b`` taken once per row in the row's precision. With the float64 means inside the loop,
    ``reassoc`` (which vectorises the sums) let LLVM move their divisions into it: two vector
    divisions per 16 elements, and a row of 512 took 283 against 147 ns (measured).

    One call for a block of rows: a call per row created a view of each of its arrays, and numba
    counts references to every view (``NRT_incref``/``NRT_decref``: 9% of the layer-norm LSTM's
    backward at B=32, T=100, H=64, perf).

    ``d_x`` may be ``d_y``.
    """
    width = d_y.shape[1]
    for n in range(d_y.shape[0]):
        sum_g = 0.0
        sum_gx = 0.0
        for j in range(width):
            g = d_y[n, j] * weight[j]
            sum_g += g
            sum_gx += g * x_hat[n, j]
            d_weight[j] += d_y[n, j] * x_hat[n, j]
            d_bias[j] += d_y[n, j]
        row_rstd = at_row(rstd, n)
        scale = as_dtype_of(row_rstd, d_x)
        a = as_dtype_of(row_rstd * sum_g / width, d_x)
        b = as_dtype_of(row_rstd * sum_gx / width, d_x)
        for j in range(width):
            d_x[n, j] = scale * (d_y[n, j] * weight[j]) - a - x_hat[n, j] * b


@jit
def layer_norm_row_backward(d_y, x_hat, rstd, weight, d_x, d_weight, d_bias):
    """:func:`layer_norm_rows_backward` for one row ``d_y (W,)`` whose ``1 / std`` is ``rstd``."""
    width = d_y.size
    layer_norm_rows_backward(d_y.reshape((1, width)), x_hat.reshape((1, width)), rstd, weight,
                             d_x.reshape((1, width)), d_weight, d_bias)


@jit
def copy(src, dst):
    """``dst[:] = src`` for 1-D rows (numba's slice assignment checks overlap: 4x slower)."""
    for j in range(src.shape[0]):
        dst[j] = src[j]


@jit
def emit_outputs(outputs, h_all, h_new, t, keep, zero_output):
    """Step ``t``'s carried state ``h_all[t + 1]`` and ``outputs[:, t]``: ``h_new`` on real steps;
    on masked ones the state is carried and the previous output repeated (zeros before the first
    real step, or always zeros with ``zero_output``).

    Indexed element by element, without a view per row: numba counts references to every view,
    and at B=32, H=32 a row copy through views made this 2.4x slower (measured alone)."""
    batch, width = h_new.shape
    for b in range(batch):
        if keep[b, t]:
            for j in range(width):
                value = h_new[b, j]
                h_all[t + 1, b, j] = value
                outputs[b, t, j] = value
            continue
        for j in range(width):
            h_all[t + 1, b, j] = h_all[t, b, j]
        if zero_output or t == 0:
            for j in range(width):
                outputs[b, t, j] = 0.0
        else:
            for j in range(width):
                outputs[b, t, j] = outputs[b, t - 1, j]


@jit
def route_output_grads(d_outputs, carry, t, keep, zero_output, d_h, d_new):
    """Gradient reaching each row's new h at step ``t`` (``d_new (B, O)``).

    ``d_h`` holds the gradient of the carried state after step ``t``. On a real step the row gets
    it plus the output's gradient (and any carried from later masked steps); on a masked step the
    row gets zero, the state gradient passes through untouched, and the output's gradient flows
    to the previous output unless masked outputs are zeros."""
    width = d_new.shape[1]
    for b in range(d_new.shape[0]):
        if keep[b, t]:
            for j in range(width):
                d_new[b, j] = d_h[b, j] + d_outputs[b, t, j] + carry[b, j]
                carry[b, j] = 0.0
        else:
            d_new[b] = 0.0
            if zero_output:
                carry[b] = 0.0
            else:
                for j in range(width):
                    carry[b, j] += d_outputs[b, t, j]


@jit
def masked_state_grad(d_rec, recurrent_mask, t, keep, d_h):
    """``d_h[b] = d_rec[b] * recurrent_mask[b]`` on rows real at step ``t`` (others carry).

    ``d_rec (B, O)`` may be a transposed view (of the batch-minor product ``(O, B)``)."""
    has_mask = recurrent_mask.size > 0
    for b in range(d_h.shape[0]):
        if keep[b, t]:
            if has_mask:
                for j in range(d_h.shape[1]):
                    d_h[b, j] = d_rec[b, j] * recurrent_mask[b, j]
            else:
                copy(d_rec[b], d_h[b])


@jit
def transpose_into(src, dst):
    """``dst[:] = src.T`` for ``src (M, N)``, ``dst (N, M)``.

    The per-step GEMMs run faster in OpenBLAS with the batch as the product's minor dimension,
    ``(G, B) = W (G, R) @ h.T`` (72 against 61 GFLOP/s forward and 79 against 52 backward,
    measured at B=64, R=512, G=2048): this turns such a product back into ``(B, G)`` rows. Writing
    ``dst`` row by row measured fastest (90 us at 2048x64, 8x faster than column by column).
    """
    rows, cols = src.shape
    for i in range(cols):
        for j in range(rows):
            dst[i, j] = src[j, i]


@jit
def repeat_rows(vector, batch, out):
    """``out (G, B*H)``: each of ``vector (G*H,)``'s ``G`` parts repeated ``batch`` times."""
    width = vector.size // out.shape[0]
    for g in range(out.shape[0]):
        for b in range(batch):
            copy(vector[g * width : (g + 1) * width], out[g, b * width : (b + 1) * width])


@jit
def recurrent_rows(h_all, h_rec_all, recurrent_mask, t):
    """``ĥ = m ⊙ h_{t-1}`` for step ``t``: ``h_all[t]`` itself without a mask, else written into
    ``h_rec_all[t]``."""
    if recurrent_mask.size == 0:
        return h_all[t]
    h_rec = h_rec_all[t]
    for b in range(h_rec.shape[0]):
        for j in range(h_rec.shape[1]):
            h_rec[b, j] = h_all[t, b, j] * recurrent_mask[b, j]
    return h_rec


@jit
def sum_rows(d, out, accumulate):
    """``out[:] = d.sum(0)`` for ``d (N, W)``, ``out (W,)``, or ``out += d.sum(0)`` with
    ``accumulate`` (zero-size ``out`` skips)."""
    if out.size == 0:
        return
    if not accumulate:
        out[:] = 0.0
    for n in range(d.shape[0]):
        for j in range(d.shape[1]):
            out[j] += d[n, j]


@jit
def project_steps(x, weight_ih_t, x_t, out, t0, t1):
    """The inputs of steps ``t0 .. t1 - 1``: ``x (B, T, I)`` copied time-major into ``x_t (T, B,
    I)`` and projected into ``out (T, B, W)`` (``x_t W^T``, no bias), one GEMM for the steps."""
    batch, steps, features = x.shape
    width = out.shape[2]
    for t in range(t0, t1):
        for b in range(batch):
            copy(x[b, t], x_t[t, b])
    rows = (t1 - t0) * batch
    dot_rows(x_t[t0:t1].reshape((rows, features)), weight_ih_t, out[t0:t1].reshape((rows, width)))


def both_weights_at_once() -> bool:
    """Whether callers give :func:`weight_gradients_into` the work arrays of one GEMM for both
    weight gradients: only where the GEMMs over all steps run whole (no small-matrix kernel, see
    :mod:`rnnkit.kernels._blas`)."""
    return SMALL_GEMM_MACS == 0


@jit
def weight_gradients_into(d, x2, h2, need_ih, need_hh, both, result, d_weight_ih, d_weight_hh,
                          accumulate):
    """``d_weight_ih = d^T x2`` and ``d_weight_hh = d^T h2`` for ``d (N, G)``, ``x2 (N, I)``,
    ``h2 (N, R)`` (added to them with ``accumulate``).

    When both are needed and the caller passes work arrays ``both (N, I+R)`` and ``result (G,
    I+R)``, they are one GEMM over ``[x2 | h2]``: where the GEMMs run whole (see
    :func:`both_weights_at_once`), a wider GEMM runs faster (70 against 50 GFLOP/s measured at
    N=3200, G=512, I=64, R=128), and fresh arrays this large would cost page faults on every
    call (work arrays of another number of rows are replaced by fresh ones). Work arrays with
    no columns ask for two GEMMs, faster in pieces than the copy and one: 6.2 against 6.7 ms
    there, 0.35 against 0.38 ms at N=3200, G=64, I=32, R=64 (1 thread, measured)."""
    rows, features, rec = x2.shape[0], x2.shape[1], h2.shape[1]
    if need_ih and need_hh and both.shape[1] > 0:
        if both.shape != (rows, features + rec):
            both = np.empty((rows, features + rec), d.dtype)
        if result.shape != (d.shape[1], features + rec):
            result = np.empty((d.shape[1], features + rec), d.dtype)
        for n in range(rows):
            for j in range(features):
                both[n, j] = x2[n, j]
            for j in range(rec):
                both[n, features + j] = h2[n, j]
        gemm_tn_into(d, both, result, False)  # (G, I+R)
        for g in range(d.shape[1]):
            if accumulate:
                for j in range(features):
                    d_weight_ih[g, j] += result[g, j]
                for j in range(rec):
                    d_weight_hh[g, j] += result[g, features + j]
            else:
                for j in range(features):
                    d_weight_ih[g, j] = result[g, j]
                for j in range(rec):
                    d_weight_hh[g, j] = result[g, features + j]
        return
    if need_ih:
        gemm_tn_into(d, x2, d_weight_ih, accumulate)
    if need_hh:
        gemm_tn_into(d, h2, d_weight_hh, accumulate)


@jit
def input_x_gradient_into(d_pre, weight_ih, d_x_t, d_x, t0, t1):
    """``d_x[:, t0:t1]`` (``d_x (B, T, I)``, batch-major like the inputs) from ``d_pre``, the
    ``(t1 - t0) * B`` rows of steps ``t0 .. t1 - 1`` of the pre-activation gradients, through
    the caller's work array ``d_x_t (T, B, I)``: one GEMM for the steps."""
    batch, features = d_x_t.shape[1], d_x_t.shape[2]
    dot_rows(d_pre, weight_ih, d_x_t[t0:t1].reshape(((t1 - t0) * batch, features)))
    for t in range(t0, t1):
        for b in range(batch):
            copy(d_x_t[t, b], d_x[b, t])


# Views of one block of memory that holds several arrays (fewer allocations and fewer arguments
# per compiled call): ``layout (n, 4)`` has a row ``(start, *shape)`` per array, the shape padded
# with ones; ``k`` picks the row.
@jit
def block_view1(block, layout, k):
    """Array ``k`` of ``block``, 1-D."""
    start = layout[k, 0]
    return block[start : start + layout[k, 1]]


@jit
def block_view2(block, layout, k):
    """Array ``k`` of ``block``, 2-D."""
    start, rows, cols = layout[k, 0], layout[k, 1], layout[k, 2]
    return block[start : start + rows * cols].reshape((rows, cols))


@jit
def block_view3(block, layout, k):
    """Array ``k`` of ``block``, 3-D."""
    start, d0, d1, d2 = layout[k, 0], layout[k, 1], layout[k, 2], layout[k, 3]
    return block[start : start + d0 * d1 * d2].reshape((d0, d1, d2))


# OpenBLAS (scipy's build, AVX-512 kernels) runs an SGEMM of at most 10^6 multiply-adds through
# its small-matrix kernel and larger ones through the general path, which at the size of a
# recurrent step runs much slower: 113 GFLOP/s at (32, 128) @ (128, 160) against 69 at
# (32, 128) @ (128, 256), and (32, 128) @ (128, 384) took 52 us as one GEMM, 34 us as three of 128
# columns (measured on 1 thread of an AMD EPYC, Zen 4). A step GEMM over the limit runs faster in
# column blocks.
# (SMALL_GEMM_MACS, from rnnkit.kernels._blas, which cuts the GEMMs over all steps the same way.)
MAX_COLUMN_BLOCKS = 4


def column_blocks(rows: int, depth: int, width: int) -> int:
    """How many equal column blocks a step GEMM ``(rows, depth) @ (depth, width)`` runs in: the
    fewest (up to :data:`MAX_COLUMN_BLOCKS`) that bring each block under :data:`SMALL_GEMM_MACS`,
    else 1."""
    for blocks in range(1, MAX_COLUMN_BLOCKS + 1):
        if width % blocks == 0 and rows * depth * (width // blocks) <= SMALL_GEMM_MACS:
            return blocks
    return 1


@jit
def split_columns(matrix, blocks):
    """``matrix (K, N)`` as ``(blocks, K, N / blocks)``, its column blocks each C-contiguous, for
    :func:`dot_column_blocks`; for one block an empty ``(0, K, N)`` array (``matrix`` is used
    whole, in one GEMM)."""
    depth, width = matrix.shape
    if blocks == 1:
        return np.empty((0, depth, width), matrix.dtype)
    part = width // blocks
    out = np.empty((blocks, depth, part), matrix.dtype)
    for k in range(blocks):
        out[k] = matrix[:, k * part : (k + 1) * part]
    return out


@jit
def dot_column_blocks(a, b_blocks, work, out):
    """``out (M, N) = a (M, K) @ b`` from ``b``'s column blocks ``b_blocks (P, K, N/P)``: one GEMM
    per block, through ``work (P, M, N/P)``.

    Callers test for blocks themselves and call ``np.dot`` when there are none: a compiled call
    passing arrays costs about 80 ns (measured), a sixth of a whole GRU step at B=1, H=32.
    """
    blocks, _, width = b_blocks.shape
    for k in range(blocks):
        np.dot(a, b_blocks[k], work[k])
        for i in range(a.shape[0]):
            copy(work[k, i], out[i, k * width : (k + 1) * width])
