"""A prototype, not used by the library: does smaller compiled code cost less beside torch's
autograd? A plain LSTM forward and backward at B=1 (float32, two short compiled loops), against
rnnkit's kernels, each alone and each after bench/ceiling.py's no-op autograd node.

bench/ceiling.py measures an *interplay*: the no-op node (``floor``) and rnnkit's array-level
path, run one after the other in each call, take 36-52 µs more at B=1 than the two apart, as
each evicts the other's code from the core's caches. That path is rnnkit's Python around the
kernels (plans, pooled arrays, numba's unboxing of some thirty arrays) and compiled code that
covers every option and batch size of a family. This script times the same pairing with two
short compiled loops called from Python in its place (``lean``), and rnnkit's own compiled loops
called again with the arguments one array-level call gave them, without the Python around them
(``direct``). It checks the short loops against ``torch.nn.LSTM`` (outputs and the weights' and
bias's gradients) first.

The loops are not tuned: at T=100 they take up to twice the kernels' time per step. What the
prototype measures is how small the interplay can be for a small call path::

    python bench/lean_b1_prototype.py
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

import numpy as np
import torch
from numba import njit

sys.path.insert(0, str(Path(__file__).resolve().parent))

import contenders as cs  # noqa: E402
from ceiling import array_level, floor_run, one_after_the_other  # noqa: E402
from run import interleaved  # noqa: E402

from rnnkit.kernels._numba import sigmoid_t, tanh_t  # noqa: E402

OPTIONS = {"cache": False, "error_model": "numpy",
           "fastmath": {"contract", "reassoc", "nsz", "arcp"}}


@njit(**OPTIONS)
def lean_forward(x, w_ih, w_hh, b_ih, b_hh, gates, c_all, tanh_c, h_all, out):
    """``x (T, I)`` from zero states; keeps the activated ``gates (T, 4H)``, ``c_all (T+1, H)``,
    ``tanh_c (T, H)`` and ``h_all (T+1, H)`` (row 0 zeros) for the backward."""
    steps, features = x.shape
    four_h = w_ih.shape[0]
    hidden = four_h // 4
    for t in range(steps):
        pre = gates[t]
        for g in range(four_h):  # one dot product per gate row, on the weights as stored
            s = b_ih[g] + b_hh[g]
            for k in range(features):
                s += w_ih[g, k] * x[t, k]
            for k in range(hidden):
                s += w_hh[g, k] * h_all[t, k]
            pre[g] = s
        for j in range(hidden):
            i = sigmoid_t(pre[j])
            f = sigmoid_t(pre[hidden + j])
            cell = tanh_t(pre[2 * hidden + j])
            o = sigmoid_t(pre[3 * hidden + j])
            pre[j], pre[hidden + j], pre[2 * hidden + j], pre[3 * hidden + j] = i, f, cell, o
            c_all[t + 1, j] = f * c_all[t, j] + i * cell
        for j in range(hidden):
            tc = tanh_t(c_all[t + 1, j])
            tanh_c[t, j] = tc
            h_all[t + 1, j] = pre[3 * hidden + j] * tc
            out[t, j] = h_all[t + 1, j]


@njit(**OPTIONS)
def lean_backward(x, w_hh, gates, c_all, tanh_c, h_all, d_out, d_gates, d_w_ih, d_w_hh, d_b,
                  d_h, d_c):
    """The gradients of ``W_ih``, ``W_hh`` and the bias (both biases have it) for ``d_out``."""
    steps, features = x.shape
    four_h = w_hh.shape[0]
    hidden = four_h // 4
    one = np.float32(1.0)
    d_h[:] = 0
    d_c[:] = 0
    for t in range(steps - 1, -1, -1):
        g, dg = gates[t], d_gates[t]
        for j in range(hidden):
            i, f, cell, o = g[j], g[hidden + j], g[2 * hidden + j], g[3 * hidden + j]
            tc = tanh_c[t, j]
            dh = d_h[j] + d_out[t, j]
            dc = d_c[j] + dh * o * (one - tc * tc)
            dg[j] = dc * cell * i * (one - i)
            dg[hidden + j] = dc * c_all[t, j] * f * (one - f)
            dg[2 * hidden + j] = dc * i * (one - cell * cell)
            dg[3 * hidden + j] = dh * tc * o * (one - o)
            d_c[j] = dc * f
        d_h[:] = 0
        for r in range(four_h):
            d = dg[r]
            for j in range(hidden):
                d_h[j] += d * w_hh[r, j]
    d_w_ih[:] = 0
    d_w_hh[:] = 0
    for r in range(four_h):
        s = np.float32(0.0)
        for t in range(steps):
            s += d_gates[t, r]
        d_b[r] = s
    for t in range(steps):
        for r in range(four_h):
            d = d_gates[t, r]
            for k in range(features):
                d_w_ih[r, k] += d * x[t, k]
            for k in range(hidden):
                d_w_hh[r, k] += d * h_all[t, k]


def lean_run(module: torch.nn.LSTM, x: np.ndarray):
    """``(run, arrays)``: ``run()`` does the forward and backward of ``module``'s weights on
    ``x (T, I)`` with ``d_out`` ones; ``arrays`` holds the outputs and gradients."""
    w_ih, w_hh, b_ih, b_hh = (p.detach().numpy() for p in module.parameters())
    steps, hidden = x.shape[0], module.hidden_size
    f32 = np.float32
    a = {"gates": np.empty((steps, 4 * hidden), f32), "c_all": np.zeros((steps + 1, hidden), f32),
         "tanh_c": np.empty((steps, hidden), f32), "h_all": np.zeros((steps + 1, hidden), f32),
         "out": np.empty((steps, hidden), f32), "d_out": np.ones((steps, hidden), f32),
         "d_gates": np.empty((steps, 4 * hidden), f32), "d_w_ih": np.empty_like(w_ih),
         "d_w_hh": np.empty_like(w_hh), "d_b": np.empty(4 * hidden, f32),
         "d_h": np.empty(hidden, f32), "d_c": np.empty(hidden, f32)}

    def run():
        lean_forward(x, w_ih, w_hh, b_ih, b_hh, a["gates"], a["c_all"], a["tanh_c"], a["h_all"],
                     a["out"])
        lean_backward(x, w_hh, a["gates"], a["c_all"], a["tanh_c"], a["h_all"], a["d_out"],
                      a["d_gates"], a["d_w_ih"], a["d_w_hh"], a["d_b"], a["d_h"], a["d_c"])

    return run, a


def largest_error(steps: int, features: int, hidden: int) -> float:
    """The loops' largest difference from ``torch.nn.LSTM`` (outputs, d W_ih, d W_hh, d b)."""
    reference = torch.nn.LSTM(features, hidden, batch_first=True)
    x = np.random.default_rng(0).standard_normal((steps, features)).astype(np.float32)
    run, a = lean_run(reference, x)
    run()
    out, _ = reference(torch.from_numpy(x)[None])
    out.sum().backward()
    pairs = [(a["out"], out[0].detach()), (a["d_w_ih"], reference.weight_ih_l0.grad),
             (a["d_w_hh"], reference.weight_hh_l0.grad), (a["d_b"], reference.bias_ih_l0.grad)]
    return max(float(np.abs(mine - theirs.numpy()).max()) for mine, theirs in pairs)


def direct_run(array):
    """``run()`` of the compiled LSTM loops that one call of ``array`` (bench/ceiling.py's
    array-level run) made, called again with the same arguments: numba's dispatch and the
    kernels' code, without rnnkit's Python around them."""
    from rnnkit.kernels import lstm

    calls = []
    names = ("lstm_forward", "lstm_forward_inputs", "lstm_backward", "lstm_backward_weights")
    originals = {name: getattr(lstm, name) for name in names}

    def recorder(function):
        def record(*args):
            calls.append((function, args))
            return function(*args)

        return record

    for name, function in originals.items():
        setattr(lstm, name, recorder(function))
    try:
        array()
    finally:
        for name, function in originals.items():
            setattr(lstm, name, function)

    def run():
        for function, args in calls:
            function(*args)

    return run


def main() -> int:
    torch.set_num_threads(1)
    print("B=1, I=H/2; µs per forward+backward (thread CPU time, medians); interplay: the pair's "
          "time less its two parts apart", flush=True)
    for steps in (1, 10, 100):
        for hidden in (32, 64, 128):
            features = hidden // 2
            error = largest_error(steps, features, hidden)
            module, _ = cs.torch_contenders("lstm", 1, steps, features, hidden)
            array = array_level("lstm", 1, steps, features, hidden)
            floor = floor_run("lstm", 1, steps, features, hidden)
            if floor is None:
                return 1
            x = np.random.default_rng(1).standard_normal((steps, features)).astype(np.float32)
            lean, _ = lean_run(torch.nn.LSTM(features, hidden), x)
            direct = direct_run(array)
            runs = [cs.Contender(name, run) for name, run in (
                ("module", module.run), ("floor", floor), ("array", array), ("direct", direct),
                ("lean", lean), ("floor+array", one_after_the_other(floor, array)),
                ("floor+direct", one_after_the_other(floor, direct)),
                ("floor+lean", one_after_the_other(floor, lean)))]
            us = {name: 1e6 * statistics.median(clock for clock, _ in values)
                  for name, values in interleaved(runs, 9, 3.0).items()}
            print(f"T={steps:<4d} H={hidden:<4d} largest error {error:.1e}  "
                  + "  ".join(f"{name} {value:.1f}" for name, value in us.items())
                  + "  | interplay: " + ", ".join(
                      f"{name} {us['floor+' + name] - us['floor'] - us[name]:.1f}"
                      for name in ("array", "direct", "lean")), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
