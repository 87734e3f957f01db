"""How fast the fused kernels are without the call around them: rnnkit's array-level forward and
backward against the whole ``torch.nn`` call, over the small grid of the speed targets.

Five contenders per size (the last two where the no-op node builds), interleaved, medians (the
method of ``bench/run.py``):

- ``module``: ``out, _ = m(x); out.sum().backward()`` through an ``rnnkit.nn`` drop-in, the call
  ``bench/run.py`` times;
- ``peer``: the same through ``torch.nn``;
- ``array``: the family's compiled forward then backward on NumPy arrays
  (``rnnkit.kernels.<family>.forward/backward``), the same gradients, with no torch tensors,
  autograd or Python glue around them;
- ``floor``: the module's run with a torch autograd node in its place that computes nothing: a
  C++ ``torch::autograd::Function`` (:func:`no_op_extension`) taking the module's input and
  parameters, returning uninitialised outputs of the module's shapes, saving its inputs, and
  returning uninitialised gradients for the parameters. It pays what any autograd node pays in
  that run (the node's creation, ``sum()``, torch's backward engine, the gradients' accumulation
  into ``.grad``, resetting them), and nothing else;
- ``floor+array``: the two above, one after the other, in each call. Apart, each runs with its own
  code warm in the core's caches; together, each evicts the other's. ``interplay``, its time less
  the two apart, is what running the kernels between torch's ops costs beyond both.

``peer / array`` is what the speedup would be if rnnkit's call path cost nothing: the ceiling for
any work on the kernels' callers. The gap between it and ``peer / module`` is the call path.
``module - floor`` is what rnnkit's call adds to the least an autograd node costs, and
``peer / (array + floor)`` the ceiling for a call that is an autograd node (``array`` includes
numba's unboxing of the arrays from Python, a few µs the native call does not pay).

Usage::

    python bench/ceiling.py [--variants lstm,gru,rnn] [--sizes B,T,H ...]

The no-op node is compiled once (about 40 s; a C++ compiler and ``ninja``, as for
``python -m rnnkit.kernels.native build``) into ``~/.cache/rnnkit/bench``; without them the
``floor`` column is left out.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import math
import os
import statistics
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import contenders as cs  # noqa: E402
from run import SMALL_GRID, input_size, interleaved  # noqa: E402

from rnnkit.kernels import fused  # noqa: E402
from rnnkit.kernels._common import blas_threads  # noqa: E402


def module_and_input(variant: str, batch: int, steps: int, features: int, hidden: int):
    """A fresh ``rnnkit.nn`` module of ``variant`` and its input ``x (B, T, I)``, as
    :func:`contenders.torch_contenders` builds them."""
    spec = cs.VARIANTS[variant]
    module = cs.RNNKIT_NN[spec["family"]](features, hidden, batch_first=True, **spec["options"])
    x = torch.randn(batch, steps, features, generator=torch.Generator().manual_seed(0))
    return module, x


def one_after_the_other(first, second):
    """A ``run()`` of ``first()`` then ``second()``."""
    def run():
        first()
        second()

    return run


def array_level(variant: str, batch: int, steps: int, features: int, hidden: int):
    """A ``run()`` of the family's compiled forward and backward on arrays, for the cell of the
    ``rnnkit.nn`` module :func:`contenders.torch_contenders` builds (same weights and inputs)."""
    module, x = module_and_input(variant, batch, steps, features, hidden)
    cell = module._bound_cell(0, 0)
    kernel = fused.select(cell, x).__self__  # the BoundKernel whose run() the module calls
    plan = kernel.plan(x, None, None, True)
    family, inputs = kernel.family, x.numpy()
    states = kernel.zero_state(batch, cell.state_size)
    # The gradients the module's backward computes: every weight's, not the inputs' or states'.
    needs = [False] * (1 + len(states)) + [t is not None for t in kernel.tensors]
    outputs, finals, _ = family.forward(plan, inputs, states, kernel.prepared)
    d_outputs, d_finals = np.ones_like(outputs), [np.zeros_like(f) for f in finals]

    def run():
        with blas_threads(plan.threads):
            _, _, saved = family.forward(plan, inputs, states, kernel.prepared)
            family.backward(plan, saved, d_outputs, d_finals, needs)

    return run


NO_OP_SOURCE = r"""
#include <torch/extension.h>

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// An autograd node that computes nothing: outputs of the given shapes, the inputs saved, and
// gradients (uninitialised) for the inputs that need them.
struct NoOp : public torch::autograd::Function<NoOp> {
  static variable_list forward(AutogradContext* ctx, at::TensorList inputs,
                               std::vector<std::vector<int64_t>> shapes) {
    ctx->save_for_backward(inputs.vec());
    ctx->set_materialize_grads(false);
    variable_list outputs;
    for (const auto& shape : shapes) outputs.push_back(at::empty(shape, inputs[0].options()));
    return outputs;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    variable_list saved = ctx->get_saved_variables();
    variable_list result;
    for (size_t i = 0; i < saved.size(); ++i) {
      result.push_back(ctx->needs_input_grad(i) ? at::empty_like(saved[i]) : at::Tensor());
    }
    result.push_back(at::Tensor());  // the shapes
    return result;
  }
};

std::vector<at::Tensor> run(std::vector<at::Tensor> inputs,
                            std::vector<std::vector<int64_t>> shapes) {
  return NoOp::apply(at::TensorList(inputs), shapes);
}
"""


@functools.cache
def no_op_extension():
    """The no-op node's extension (built on first use), or ``None`` when it cannot be built."""
    from torch.utils.cpp_extension import load_inline

    tag = hashlib.sha256((NO_OP_SOURCE + torch.__version__).encode()).hexdigest()[:12]
    directory = Path.home() / ".cache" / "rnnkit" / "bench" / f"no_op-{tag}"
    directory.mkdir(parents=True, exist_ok=True)
    try:
        return load_inline(f"rnnkit_bench_no_op_{tag}", cpp_sources=NO_OP_SOURCE,
                           functions=["run"], extra_cflags=["-O2"],
                           build_directory=str(directory))
    except Exception as error:  # noqa: BLE001  (no compiler or ninja: leave the column out)
        print(f"no floor column: the no-op node did not build ({error})", flush=True)
        return None


def floor_run(variant: str, batch: int, steps: int, features: int, hidden: int):
    """A ``run()`` of the module's run with the no-op node in place of the module's call (its
    input and parameters in, outputs of its shapes out), or ``None`` without the extension."""
    extension = no_op_extension()
    if extension is None:
        return None
    module, x = module_and_input(variant, batch, steps, features, hidden)
    parameters = list(module.parameters())
    states = 2 if cs.VARIANTS[variant]["family"] == "lstm" else 1
    shapes = [[batch, steps, hidden]] + [[1, batch, hidden]] * states

    def run():
        for parameter in parameters:
            parameter.grad = None
        output = extension.run([x, *parameters], shapes)[0]
        output.sum().backward()

    return run


def measure(variant, batch, steps, hidden, reps: int = 9, budget: float = 3.0) -> dict:
    """Median seconds per call of ``module``, ``peer``, ``array``, ``floor`` and ``floor+array``
    (thread CPU time; the last two only where the no-op node builds)."""
    features = input_size(hidden)
    module, peer = cs.torch_contenders(variant, batch, steps, features, hidden)
    array = cs.Contender("array", array_level(variant, batch, steps, features, hidden))
    contenders = [cs.Contender("module", module.run), cs.Contender("peer", peer.run), array]
    floor = floor_run(variant, batch, steps, features, hidden)
    if floor is not None:
        contenders += [cs.Contender("floor", floor),
                       cs.Contender("floor+array", one_after_the_other(floor, array.run))]
    times = interleaved(contenders, reps, budget)
    return {name: statistics.median(clock for clock, _ in values)
            for name, values in times.items()}


def geomean(values) -> float:
    return math.exp(sum(map(math.log, values)) / len(values))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", default="lstm,gru,rnn",
                        help="comma-separated subset of " + ",".join(cs.VARIANTS))
    parser.add_argument("--sizes", nargs="+", metavar="B,T,H",
                        help="sizes to measure (default: the small grid of the speed targets)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.sizes:
        sizes = [tuple(int(n) for n in size.split(",")) for size in args.sizes]
    else:
        sizes = [(b, t, h) for b in SMALL_GRID["batch"] for t in SMALL_GRID["steps"]
                 for h in SMALL_GRID["hidden"]]
    print(f"load average {tuple(round(v, 2) for v in os.getloadavg())}; "
          "ms per forward+backward (medians); speedup over the peer", flush=True)
    for variant in args.variants.split(","):
        whole, ceiling, node_ceiling = [], [], []
        for batch, steps, hidden in sizes:
            ms = {k: 1e3 * v for k, v in measure(variant, batch, steps, hidden).items()}
            whole.append(ms["peer"] / ms["module"])
            ceiling.append(ms["peer"] / ms["array"])
            line = (f"{variant:15s} B={batch:<3d} T={steps:<4d} H={hidden:<4d} "
                    f"module {ms['module']:8.3f}  peer {ms['peer']:8.3f}  "
                    f"array {ms['array']:8.3f}")
            if "floor" in ms:
                node_ceiling.append(ms["peer"] / (ms["array"] + ms["floor"]))
                interplay = ms["floor+array"] - ms["floor"] - ms["array"]
                line += (f"  floor {ms['floor']:8.3f}  module-floor "
                         f"{ms['module'] - ms['floor']:8.3f}  interplay {interplay:8.3f}")
            line += f" | {whole[-1]:6.2f}x  ceiling {ceiling[-1]:6.2f}x"
            if node_ceiling:
                line += f"  as a node {node_ceiling[-1]:6.2f}x"
            print(line, flush=True)
        summary = (f"{variant}: geometric mean {geomean(whole):.2f}x through the module, "
                   f"{geomean(ceiling):.2f}x at the array level")
        if node_ceiling:
            summary += f", {geomean(node_ceiling):.2f}x at the array level plus the floor"
        print(summary, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
