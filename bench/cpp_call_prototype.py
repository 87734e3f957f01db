"""A measurement prototype, not part of the library: how fast SimpleRNN's call would be with no
Python between the module call and the compiled loops.

rnnkit's call path is Python: the module's checks, the kernel's selection and plan, a Python
``autograd.Function`` and the array wrappers around the numba loops. This prototype replaces all
of it, for the plain case only (float32, batch-first, no initial state, no mask, tanh), with one
C++ autograd function (``bench/cpp_call_prototype.cpp``, built by
``torch.utils.cpp_extension``) that allocates the tensors and calls rnnkit's own compiled loops
(``rnnkit.kernels.rnn.rnn_forward`` / ``rnn_backward``) through numba ``cfunc`` pointers. It
checks that its outputs and gradients equal rnnkit's, then times it beside ``rnnkit.nn.RNN`` and
``torch.nn.RNN`` over the speed targets' small grid, interleaved as ``bench/run.py`` does.

Its own costs are left in: it allocates its work arrays and transposes ``W_hh`` on every call,
and has no pool for large arrays, so at B=32, T=100, H=128 it is slower than rnnkit.

Usage (needs a C++ compiler; the first run builds the extension, about 45 s)::

    python bench/cpp_call_prototype.py
"""

from __future__ import annotations

import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from numba import carray, cfunc, types

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import contenders as cs  # noqa: E402
import run as bench_run  # noqa: E402

import rnnkit.nn  # noqa: E402
from rnnkit.kernels._numba import jit  # noqa: E402
from rnnkit.kernels._step_loops import _pointer  # noqa: E402
from rnnkit.kernels.rnn import rnn_backward, rnn_forward  # noqa: E402

F32 = np.float32
TANH = 0  # the activation code of tanh (rnnkit.kernels._common.codes_of)


@jit
def _forward(a):
    """``a``: B, T, I, H, then the addresses of x, h0, W_ih, W_hh, b_ih, b_hh, outputs, h_T and
    the saved x_t, new, h_all (see the .cpp file)."""
    batch, steps, features, hidden = a[0], a[1], a[2], a[3]
    x = carray(_pointer(a[4]), (batch, steps, features), F32)
    h0 = carray(_pointer(a[5]), (batch, hidden), F32)
    w_ih = carray(_pointer(a[6]), (hidden, features), F32)
    w_hh = carray(_pointer(a[7]), (hidden, hidden), F32)
    b_ih = carray(_pointer(a[8]), (hidden,), F32)
    b_hh = carray(_pointer(a[9]), (hidden,), F32)
    outputs = carray(_pointer(a[10]), (batch, steps, hidden), F32)
    h_final = carray(_pointer(a[11]), (batch, hidden), F32)
    x_t = carray(_pointer(a[12]), (steps, batch, features), F32)
    new = carray(_pointer(a[13]), (steps, batch, hidden), F32)
    h_all = carray(_pointer(a[14]), (steps + 1, batch, hidden), F32)
    keep = np.ones((batch, steps), np.bool_)
    rnn_forward(x, h0, w_ih.T, np.ascontiguousarray(w_hh.T), b_ih, b_hh, keep,
                np.empty((0, 0), F32), False, TANH, outputs, h_final, x_t, new, h_all,
                np.empty((0, batch, hidden), F32))


@jit
def _backward(a):
    """``a``: B, T, I, H, then the addresses of d_outputs, d_h (in: the final state's gradient),
    the saved x_t, new, h_all, W_ih, W_hh and the four weight gradients."""
    batch, steps, features, hidden = a[0], a[1], a[2], a[3]
    d_outputs = carray(_pointer(a[4]), (batch, steps, hidden), F32)
    d_h = carray(_pointer(a[5]), (batch, hidden), F32)
    x_t = carray(_pointer(a[6]), (steps, batch, features), F32)
    new = carray(_pointer(a[7]), (steps, batch, hidden), F32)
    h_all = carray(_pointer(a[8]), (steps + 1, batch, hidden), F32)
    w_ih = carray(_pointer(a[9]), (hidden, features), F32)
    w_hh = carray(_pointer(a[10]), (hidden, hidden), F32)
    d_w_ih = carray(_pointer(a[11]), (hidden, features), F32)
    d_w_hh = carray(_pointer(a[12]), (hidden, hidden), F32)
    d_b_ih = carray(_pointer(a[13]), (hidden,), F32)
    d_b_hh = carray(_pointer(a[14]), (hidden,), F32)
    rows = batch * steps
    rnn_backward(d_outputs, d_h, x_t, new, h_all, np.empty((0, batch, hidden), F32), w_ih, w_hh,
                 np.ones((batch, steps), np.bool_), np.empty((0, 0), F32), False, TANH,
                 np.array([False, True, True, True, True]), np.empty((steps, batch, hidden), F32),
                 np.empty((rows, features + hidden), F32),
                 np.empty((hidden, features + hidden), F32), np.empty((0, batch, features), F32),
                 np.empty((0, steps, features), F32), d_w_ih, d_w_hh, d_b_ih, d_b_hh)


_SIGNATURE = types.void(types.CPointer(types.int64))


@cfunc(_SIGNATURE)
def forward_entry(a):
    _forward(a)


@cfunc(_SIGNATURE)
def backward_entry(a):
    _backward(a)


class Prototype(torch.nn.Module):
    """The C++ call on the weights of an ``rnnkit.nn.RNN`` (shared, not copied)."""

    def __init__(self, extension, reference: rnnkit.nn.RNN) -> None:
        super().__init__()
        self.extension, self.reference = extension, reference

    def forward(self, x):
        r = self.reference
        return tuple(self.extension.simple_rnn(x, r.weight_ih_l0, r.weight_hh_l0, r.bias_ih_l0,
                                               r.bias_hh_l0))


def build():
    from torch.utils.cpp_extension import load

    extension = load("rnnkit_cpp_call_prototype", [str(HERE / "cpp_call_prototype.cpp")],
                     extra_cflags=["-O2"], verbose=False)
    extension.set_kernels(forward_entry.address, backward_entry.address)
    return extension


def check(extension) -> float:
    """The largest difference from rnnkit's outputs and gradients."""
    module = rnnkit.nn.RNN(16, 32, batch_first=True)
    prototype = Prototype(extension, module)
    x = torch.randn(4, 7, 16)
    worst = 0.0
    results = []
    for candidate in (module, prototype):
        output, h_n = candidate(x)
        loss = (output**2).sum() + h_n.sum()
        results.append((output, *torch.autograd.grad(loss, list(module.parameters()))))
    for ours, theirs in zip(*results, strict=True):
        worst = max(worst, (ours - theirs).abs().max().item())
    return worst


def main() -> int:
    start = time.time()
    extension = build()
    print(f"built and compiled in {time.time() - start:.0f} s; largest difference from rnnkit: "
          f"{check(extension):.2g}", flush=True)
    torch.set_num_threads(1)
    bench_run.CLOCK = bench_run.clock_for(1)
    speedups = {"rnnkit": [], "prototype": []}
    grid = bench_run.SMALL_GRID
    for batch in grid["batch"]:
        for steps in grid["steps"]:
            for hidden in grid["hidden"]:
                features = bench_run.input_size(hidden)
                x = torch.randn(batch, steps, features)
                module = rnnkit.nn.RNN(features, hidden, batch_first=True)
                peer = torch.nn.RNN(features, hidden, batch_first=True)
                prototype = Prototype(extension, module)

                def timed(candidate, parameters, x=x):
                    def call():
                        for parameter in parameters:
                            parameter.grad = None
                        output, _ = candidate(x)
                        output.sum().backward()

                    return call

                runs = [cs.Contender("rnnkit", timed(module, list(module.parameters()))),
                        cs.Contender("prototype", timed(prototype, list(module.parameters()))),
                        cs.Contender("torch.nn", timed(peer, list(peer.parameters())))]
                times = bench_run.interleaved(runs, 9, 3.0)
                ms = {name: 1e3 * statistics.median(c for c, _ in values)
                      for name, values in times.items()}
                for name in speedups:
                    speedups[name].append(ms["torch.nn"] / ms[name])
                print(f"B={batch:<3d} T={steps:<4d} H={hidden:<4d} "
                      + "  ".join(f"{name} {value:7.3f} ms" for name, value in ms.items())
                      + f" | rnnkit {speedups['rnnkit'][-1]:5.2f}x"
                      f"  prototype {speedups['prototype'][-1]:5.2f}x", flush=True)
    for name, values in speedups.items():
        mean = math.exp(sum(map(math.log, values)) / len(values))
        print(f"{name}: geometric mean {mean:.2f}x nn.RNN", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
