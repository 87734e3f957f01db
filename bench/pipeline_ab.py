"""The two-core pipeline's thresholds, the old against the current, on two threads.

Until 4bc84de a call was pipelined (its GEMMs over all steps on the second core, chunk by chunk,
next to the recurrence; see ``rnnkit.kernels._sync``) only from an input projection of 2^22
multiply-adds for the LSTM, 2^20 for the GRU and 2^18 for SimpleRNN, in chunks of 32 rows or
more. For each variant and each size of the small grid whose plan those thresholds change (the
halves take the others), this builds two modules with the same weights, one planned under each
setting (``rnnkit.kernels._common`` is read when a call's recipe is made), and times forward and
backward (``out.sum().backward()``, float32, I = H/2, wall time), alternating samples of about
30 ms; it prints the medians in ms and old/new::

    .venv/bin/python bench/pipeline_ab.py [lstm,gru,rnn,lstm_peephole,lstm_layernorm]
"""

from __future__ import annotations

import itertools
import math
import statistics
import sys
import time

import numpy as np
import torch

import rnnkit.nn
from rnnkit.kernels import _common

OLD = ({"lstm": 1 << 22, "gru": 1 << 20, "rnn": 1 << 18}, 32)
NEW = (dict(_common.PIPELINE_MIN_MACS), _common.PIPELINE_MIN_ROWS)
GATES = {"lstm": 4, "gru": 3, "rnn": 1}
SMALL_GRID = list(itertools.product((1, 8, 32), (10, 100), (32, 64, 128)))


def use(setting) -> None:
    _common.PIPELINE_MIN_MACS, _common.PIPELINE_MIN_ROWS = dict(setting[0]), setting[1]


def module(variant: str, hidden: int):
    if variant == "gru":
        return rnnkit.nn.GRU(hidden // 2, hidden, batch_first=True)
    if variant == "rnn":
        return rnnkit.nn.RNN(hidden // 2, hidden, batch_first=True)
    options = {"lstm_peephole": {"peephole": True}, "lstm_layernorm": {"layer_norm": True}}
    return rnnkit.nn.LSTM(hidden // 2, hidden, batch_first=True, **options.get(variant, {}))


def call(model, x) -> None:
    output, _ = model(x)
    output.sum().backward()
    for parameter in model.parameters():
        parameter.grad = None


def compare(variant: str, rounds: int = 11) -> list[float]:
    family = variant.split("_")[0]
    gains = []
    for batch, steps, hidden in SMALL_GRID:
        sizes = (batch, steps, hidden // 2, GATES[family] * hidden, hidden)
        chunks = []
        for setting in (OLD, NEW):
            use(setting)
            chunks.append(_common.pipeline_chunk(family, *sizes))
        if _common.halves_rows(*sizes, np.float32) or chunks[0] == chunks[1]:
            continue
        torch.manual_seed(0)
        old, new = module(variant, hidden), module(variant, hidden)
        new.load_state_dict(old.state_dict())
        x = torch.randn(batch, steps, hidden // 2)
        use(OLD)
        call(old, x)  # its recipes are made now, under the old thresholds
        use(NEW)
        call(new, x)
        samples = {"old": [], "new": []}
        for _ in range(rounds):
            for name, model in (("old", old), ("new", new)):
                call(model, x)
                count, start = 0, time.perf_counter()
                while time.perf_counter() - start < 0.03:
                    call(model, x)
                    count += 1
                samples[name].append((time.perf_counter() - start) / count * 1e3)
        before, after = statistics.median(samples["old"]), statistics.median(samples["new"])
        gains.append(before / after)
        print(f"{variant:15s} B={batch:<3d}T={steps:<4d}H={hidden:<4d}chunk {chunks[0]:2d} -> "
              f"{chunks[1]:2d}   old {before:.3f} ms   new {after:.3f} ms   {before / after:.2f}x",
              flush=True)
    return gains


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    variants = (argv[0] if argv else "lstm,gru,rnn,lstm_peephole,lstm_layernorm").split(",")
    torch.set_num_threads(2)
    for variant in variants:
        gains = compare(variant)
        moved = math.prod(gains) ** (1 / len(SMALL_GRID)) if gains else 1.0
        print(f"{variant}: {len(gains)} sizes changed; the geometric mean over the "
              f"{len(SMALL_GRID)} small sizes moves by {moved:.3f}x", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
