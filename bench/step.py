"""Streaming benchmark: one step at a time, B=1, I=32, H=64, under ``torch.no_grad()``.

Contenders per family: rnnkit's ``layer.step(x, state)`` (the single-step kernel; through the
native build's C++ stepper when it is built, and through the Python stepper that runs without it),
a stateful rnnkit layer called on one timestep ``(1, 1, I)``, torch.nn's cell (``nn.LSTMCell``
etc.) and rnnkit's reference cell (a few torch ops). Time per step is the median over many
samples, each a run of batches of steps that fills about the same time for every contender,
interleaved across contenders, in CPU time of the calling thread (so time other processes hold
the core is left out).
"""

from __future__ import annotations

import statistics
import time

import torch

import rnnkit.layers
from rnnkit.kernels import native

FEATURES, HIDDEN = 32, 64
LAYERS = {"lstm": rnnkit.layers.LSTM, "gru": rnnkit.layers.GRU, "rnn": rnnkit.layers.SimpleRNN}
TORCH_CELLS = {"lstm": torch.nn.LSTMCell, "gru": torch.nn.GRUCell, "rnn": torch.nn.RNNCell}


def _contenders(family: str):
    x = torch.randn(1, FEATURES)
    n_state = 2 if family == "lstm" else 1
    state0 = [torch.zeros(1, HIDDEN) for _ in range(n_state)]

    layer = LAYERS[family](HIDDEN)
    layer.build((1, 1, FEATURES))
    layer.built = True
    stateful = LAYERS[family](HIDDEN, stateful=True)
    stateful.build((1, 1, FEATURES))
    stateful.built = True
    python_stepped = LAYERS[family](HIDDEN)
    python_stepped.build((1, 1, FEATURES))
    python_stepped.built = True
    if native.available():  # build this layer's stepper as the process would without the build
        extension, native.extension = native.extension, lambda: None
        try:
            with torch.no_grad():
                python_stepped.step(x, state0)
        finally:
            native.extension = extension
    reference = LAYERS[family](HIDDEN, backend="reference")
    reference.build((1, 1, FEATURES))
    reference.built = True
    cell = TORCH_CELLS[family](FEATURES, HIDDEN)
    x3 = x[:, None]

    def layer_step():
        state = state0
        for _ in range(STEPS):
            _, state = layer.step(x, state)

    def python_step():
        state = state0
        for _ in range(STEPS):
            _, state = python_stepped.step(x, state)

    def reference_step():
        state = state0
        for _ in range(STEPS):
            _, state = reference.step(x, state)

    def stateful_call():
        for _ in range(STEPS):
            stateful(x3)

    if family == "lstm":
        def torch_cell():
            h, c = state0
            for _ in range(STEPS):
                h, c = cell(x, (h, c))
    else:
        def torch_cell():
            h = state0[0]
            for _ in range(STEPS):
                h = cell(x, h)

    runs = {"rnnkit layer.step": layer_step, "rnnkit stateful layer(x[:, None])": stateful_call,
            "torch.nn cell": torch_cell, "rnnkit reference cell step": reference_step}
    if native.available():
        runs["rnnkit layer.step, Python stepper"] = python_step
    return runs


# Steps per timed batch: a multiple of the steps one block of the step kernel's outputs serves
# (rnnkit.kernels.stepping.BLOCK_ELEMENTS values: 32 LSTM or 64 GRU/RNN steps here), so that every
# batch carries its share of block changes (a stream that drops its states reuses two blocks).
STEPS = 64


def run(quick: bool = False, families=("lstm", "gru", "rnn")) -> list[dict]:
    batches = 40 if quick else 120
    rows = []
    with torch.no_grad():
        for family in families:
            runs = _contenders(family)
            repeats = _repeats(runs)
            samples = {name: [] for name in runs}
            for _ in range(batches):
                for name, function in runs.items():
                    start = time.thread_time()
                    for _ in range(repeats[name]):
                        function()
                    samples[name].append((time.thread_time() - start) / (STEPS * repeats[name]))
            for name, values in samples.items():
                rows.append({"family": family, "contender": name,
                             "us": 1e6 * statistics.median(values),
                             "us_p10": 1e6 * sorted(values)[len(values) // 10]})
    return rows


# Seconds per sample, for every contender alike (as in bench/run.py, which explains why): the
# first steps after another contender has run are slow, and a sample of one batch of 64 fast
# steps would carry that whole where a slow contender's spreads it over a longer time.
SAMPLE_SECONDS = 0.02


def _repeats(runs: dict) -> dict:
    """Batches of STEPS steps per sample for each contender: as many as fill about the same
    time, ``SAMPLE_SECONDS`` or the slowest contender's single batch if longer."""
    walls = {}
    for name, function in runs.items():
        function()  # warm up: compile or load, first blocks
        start = time.perf_counter()
        function()
        walls[name] = time.perf_counter() - start
    span = max(SAMPLE_SECONDS, *walls.values())
    return {name: max(1, round(span / max(wall, 1e-9))) for name, wall in walls.items()}
