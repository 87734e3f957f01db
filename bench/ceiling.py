"""How fast the fused kernels are without the call around them: rnnkit's array-level forward and
backward against the whole ``torch.nn`` call, over the small grid of the speed targets.

Three contenders per size, interleaved, medians (the method of ``bench/run.py``):

- ``module``: ``out, _ = m(x); out.sum().backward()`` through an ``rnnkit.nn`` drop-in, the call
  ``bench/run.py`` times;
- ``peer``: the same through ``torch.nn``;
- ``array``: the family's compiled forward then backward on NumPy arrays
  (``rnnkit.kernels.<family>.forward/backward``), the same gradients, with no torch tensors,
  autograd or Python glue around them.

``peer / array`` is what the speedup would be if rnnkit's call path cost nothing: the ceiling for
any work on the kernels' callers. The gap between it and ``peer / module`` is the call path.

Usage::

    python bench/ceiling.py [--variants lstm,gru,rnn]
"""

from __future__ import annotations

import argparse
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


def array_level(variant: str, batch: int, steps: int, features: int, hidden: int):
    """A ``run()`` of the family's compiled forward and backward on arrays, for the cell of the
    ``rnnkit.nn`` module :func:`contenders.torch_contenders` builds (same weights and inputs)."""
    spec = cs.VARIANTS[variant]
    module = cs.RNNKIT_NN[spec["family"]](features, hidden, batch_first=True, **spec["options"])
    x = torch.randn(batch, steps, features, generator=torch.Generator().manual_seed(0))
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


def measure(variant, batch, steps, hidden, reps: int = 9, budget: float = 3.0) -> dict:
    """Median seconds per call of ``module``, ``peer`` and ``array`` (thread CPU time)."""
    features = input_size(hidden)
    module, peer = cs.torch_contenders(variant, batch, steps, features, hidden)
    array = cs.Contender("array", array_level(variant, batch, steps, features, hidden))
    times = interleaved([cs.Contender("module", module.run), cs.Contender("peer", peer.run), array],
                        reps, budget)
    return {name: statistics.median(clock for clock, _ in values)
            for name, values in times.items()}


def geomean(values) -> float:
    return math.exp(sum(map(math.log, values)) / len(values))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", default="lstm,gru,rnn",
                        help="comma-separated subset of " + ",".join(cs.VARIANTS))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print(f"load average {tuple(round(v, 2) for v in os.getloadavg())}; "
          "ms per forward+backward (medians); speedup over the peer", flush=True)
    for variant in args.variants.split(","):
        whole, ceiling = [], []
        for batch in SMALL_GRID["batch"]:
            for steps in SMALL_GRID["steps"]:
                for hidden in SMALL_GRID["hidden"]:
                    ms = {k: 1e3 * v for k, v in measure(variant, batch, steps, hidden).items()}
                    whole.append(ms["peer"] / ms["module"])
                    ceiling.append(ms["peer"] / ms["array"])
                    print(f"{variant:15s} B={batch:<3d} T={steps:<4d} H={hidden:<4d} "
                          f"module {ms['module']:8.3f}  peer {ms['peer']:8.3f}  "
                          f"array {ms['array']:8.3f} | {whole[-1]:6.2f}x  ceiling "
                          f"{ceiling[-1]:6.2f}x", flush=True)
        print(f"{variant}: geometric mean {geomean(whole):.2f}x through the module, "
              f"{geomean(ceiling):.2f}x at the array level", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
