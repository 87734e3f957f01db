"""Benchmark: seed 002's program (LSTM(50) + Dense(1), ``batch_size=1``, 791 steps an epoch) timed
per epoch under rnnkit and under TF-Keras.

The two frameworks train their own copy of the seed's model on the seed's data, in one process,
one epoch at a time and interleaved (rnnkit, Keras, rnnkit, ...), so that a change in the
machine's load hits both alike. Each epoch is one ``fit(epochs=1)`` call, timed end to end (wall
and process CPU). The first epoch carries one-off costs (TensorFlow's tracing, numba's
compilation) and is reported apart; the medians are over the epochs after it. On a shared
machine the wall time mostly measures waiting for a core: compare the CPU times there.

rnnkit compiles with its default ``jit_compile="auto"``, so its epochs run the compiled training
step (docs/training.md); ``--torch-step`` adds a third side, rnnkit with ``jit_compile=False``.

Usage::

    python bench/seed002_fit.py [--epochs 6] [--threads 1] [--torch-step]
                                [--output bench/results/seed002.json]

It prints a table and writes the JSON to ``--output``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

TIME_STEP = 10
RESULTS = Path(__file__).resolve().parent / "results" / "seed002.json"


def seed002_data() -> tuple[np.ndarray, ...]:
    """Seed 002's windows: a sine scaled to [0, 1], 10 steps in, the next value out; 80/20 split."""
    data = np.sin(np.linspace(0, 100, 1000))
    data = (data - data.min()) / (data.max() - data.min())  # MinMaxScaler((0, 1))
    windows = np.array([data[i : i + TIME_STEP] for i in range(len(data) - TIME_STEP - 1)])
    targets = data[TIME_STEP : len(data) - 1]
    x, y = windows[..., None], targets[:, None]  # (N, T, 1), (N, 1)
    train = int(len(x) * 0.8)
    return x[:train], y[:train], x[train:], y[train:]


class Side:
    """One framework's copy of seed 002's model, trained an epoch at a time."""

    def __init__(self, name: str, threads: int) -> None:
        self.name = name
        compile_options = {}
        if name.startswith("rnnkit"):
            import torch

            import rnnkit
            from rnnkit.layers import LSTM, Dense
            from rnnkit.models import Sequential
            from rnnkit.utils import set_random_seed

            torch.set_num_threads(threads)
            set_random_seed(0)
            self.version = f"rnnkit {rnnkit.__version__}, torch {torch.__version__}"
            if name == "rnnkit_torch_step":
                compile_options["jit_compile"] = False
        else:
            import keras
            import tensorflow as tf
            from tensorflow.keras.layers import LSTM, Dense
            from tensorflow.keras.models import Sequential

            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
            keras.utils.set_random_seed(0)
            self.version = f"tensorflow {tf.__version__}, keras {keras.__version__}"
        self.model = Sequential([LSTM(50, input_shape=(TIME_STEP, 1)), Dense(1)])
        self.model.compile(optimizer="adam", loss="mean_squared_error", **compile_options)
        self.wall: list[float] = []
        self.cpu: list[float] = []

    def epoch(self, x: np.ndarray, y: np.ndarray) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        self.model.fit(x, y, epochs=1, batch_size=1, verbose=0)
        self.wall.append(time.perf_counter() - wall)
        self.cpu.append(time.process_time() - cpu)

    def summary(self, steps: int, x_test: np.ndarray, y_test: np.ndarray) -> dict:
        wall, cpu = statistics.median(self.wall[1:]), statistics.median(self.cpu[1:])
        return {
            "version": self.version,
            "first_epoch_wall_s": self.wall[0],
            "median_epoch_wall_s": wall,
            "median_epoch_cpu_s": cpu,
            "median_step_wall_ms": 1000 * wall / steps,
            "epoch_wall_s": self.wall,
            "epoch_cpu_s": self.cpu,
            "test_loss": float(self.model.evaluate(x_test, y_test, verbose=0)),
        }


def run(epochs: int, threads: int, torch_step: bool) -> dict:
    x_train, y_train, x_test, y_test = seed002_data()
    names = ["rnnkit", "tf_keras"] + (["rnnkit_torch_step"] if torch_step else [])
    sides = [Side(name, threads) for name in names]
    load_before = os.getloadavg()
    for _ in range(epochs):
        for side in sides:
            side.epoch(x_train, y_train)
    results = {side.name: side.summary(len(x_train), x_test, y_test) for side in sides}
    for clock in ("wall", "cpu"):
        results[f"rnnkit_over_keras_{clock}"] = (
            results["rnnkit"][f"median_epoch_{clock}_s"]
            / results["tf_keras"][f"median_epoch_{clock}_s"]
        )
        results[f"keras_over_rnnkit_{clock}"] = 1 / results[f"rnnkit_over_keras_{clock}"]
    results["setup"] = {
        "epochs": epochs,
        "steps_per_epoch": len(x_train),
        "threads": threads,
        "cpus": os.cpu_count(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    return results


def print_table(results: dict) -> None:
    setup = results["setup"]
    print(
        f"seed 002 fit, batch_size=1, {setup['steps_per_epoch']} steps/epoch, "
        f"{setup['threads']} thread(s), medians of epochs 2..{setup['epochs']}"
    )
    print(
        f"{'':18}{'first epoch s':>15}{'epoch s (wall)':>16}{'epoch s (CPU)':>15}"
        f"{'ms/step':>9}{'test loss':>12}"
    )
    for name in ("rnnkit", "tf_keras", "rnnkit_torch_step"):
        if name not in results:
            continue
        side = results[name]
        print(
            f"{name:18}{side['first_epoch_wall_s']:>15.2f}{side['median_epoch_wall_s']:>16.2f}"
            f"{side['median_epoch_cpu_s']:>15.2f}{side['median_step_wall_ms']:>9.2f}"
            f"{side['test_loss']:>12.2e}"
        )
    print(
        f"rnnkit / TF-Keras, median epoch: wall {results['rnnkit_over_keras_wall']:.3f}, "
        f"CPU {results['rnnkit_over_keras_cpu']:.3f}; TF-Keras / rnnkit: wall "
        f"{results['keras_over_rnnkit_wall']:.1f}x, CPU {results['keras_over_rnnkit_cpu']:.1f}x "
        "(load average before/after: "
        f"{setup['load_average_before'][0]:.1f}/{setup['load_average_after'][0]:.1f} "
        f"on {setup['cpus']} CPUs)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6, help="epochs per framework (>= 2)")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads for both")
    parser.add_argument("--torch-step", action="store_true",
                        help="also time rnnkit with jit_compile=False")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error(
            f"--epochs: expected at least 2 (the first is reported apart), got {args.epochs}"
        )
    results = run(args.epochs, args.threads, args.torch_step)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print_table(results)


if __name__ == "__main__":
    main()
