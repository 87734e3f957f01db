"""The two-core pipeline's thresholds, the old against the current, on two threads.

Until 4bc84de a call was pipelined (its GEMMs over all steps on the second core, chunk by chunk,
next to the recurrence; see ``rnnkit.kernels._sync``) only from an input projection of 2^22
multiply-adds for the LSTM, 2^20 for the GRU and 2^18 for SimpleRNN, in chunks of 32 rows or
more. For each variant and each size of the small grid whose plan those thresholds change (the
halves take the others), this builds two modules with the same weights, one planned under each
setting (``rnnkit.kernels._common`` is read when a call's recipe is made), and times forward and
backward as ``bench/run.py`` does (its contenders' run and interleaved samples; on two threads,
so wall time); it prints the medians in ms and old/new::

    .venv/bin/python bench/pipeline_ab.py [lstm,gru,rnn,lstm_peephole,lstm_layernorm]
"""

from __future__ import annotations

import itertools
import math
import statistics
import sys
from pathlib import Path

import numpy as np
import torch

from rnnkit.kernels import _common

sys.path.insert(0, str(Path(__file__).resolve().parent))

import contenders as cs  # noqa: E402
import run as bench  # noqa: E402

OLD = ({"lstm": 1 << 22, "gru": 1 << 20, "rnn": 1 << 18}, 32)
NEW = (dict(_common.PIPELINE_MIN_MACS), _common.PIPELINE_MIN_ROWS)
SMALL_GRID = list(itertools.product(*bench.SMALL_GRID.values()))


def use(setting) -> None:
    _common.PIPELINE_MIN_MACS, _common.PIPELINE_MIN_ROWS = dict(setting[0]), setting[1]


def compare(variant: str, reps: int = 11) -> list[float]:
    family, options = cs.VARIANTS[variant]["family"], cs.VARIANTS[variant]["options"]
    gains = []
    for batch, steps, hidden in SMALL_GRID:
        features = bench.input_size(hidden)
        sizes = (batch, steps, features, cs.GATES[family] * hidden, hidden)
        chunks = []
        for setting in (OLD, NEW):
            use(setting)
            chunks.append(_common.pipeline_chunk(family, *sizes))
        if _common.halves_rows(*sizes, np.float32) or chunks[0] == chunks[1]:
            continue
        torch.manual_seed(0)
        modules = [cs.RNNKIT_NN[family](features, hidden, batch_first=True, **options)
                   for _ in range(2)]
        modules[1].load_state_dict(modules[0].state_dict())
        x = torch.randn(batch, steps, features)
        pair = []
        for name, module, setting in zip(("old", "new"), modules, (OLD, NEW)):
            contender = cs.module_contender(name, module, x)
            contender.threads = 2
            use(setting)
            contender.run()  # its recipes are made now, under this setting
            pair.append(contender)
        times = bench.interleaved(pair, reps, budget=10.0)
        before, after = (statistics.median(wall for _, wall in times[name]) * 1e3
                         for name in ("old", "new"))
        gains.append(before / after)
        print(f"{variant:15s} B={batch:<3d}T={steps:<4d}H={hidden:<4d}chunk {chunks[0]:2d} -> "
              f"{chunks[1]:2d}   old {before:.3f} ms   new {after:.3f} ms   {before / after:.2f}x",
              flush=True)
    return gains


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    variants = (argv[0] if argv else ",".join(cs.VARIANTS)).split(",")
    torch.set_num_threads(2)  # before each module's first call: recipes are kept per thread count
    for variant in variants:
        gains = compare(variant)
        moved = math.prod(gains) ** (1 / len(SMALL_GRID)) if gains else 1.0
        print(f"{variant}: {len(gains)} sizes changed; the geometric mean over the "
              f"{len(SMALL_GRID)} small sizes moves by {moved:.3f}x", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
