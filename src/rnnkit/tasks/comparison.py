"""SimpleRNN, LSTM and GRU on one task with one budget: the pipeline behind ``rnnkit compare``.

Every cell gets the same data, the same seed, the same number of units, epochs, batch size and
learning rate, and the same head (``recurrent layer -> Dense(1)``). Each is timed, and its best
validation metric over the epochs is reported with its parameter count.

The tasks, from seed 001:

- ``xor``: the long-term dependency task. Each sequence is ``sequence_length`` steps of zeros
  except the first two, which are random bits; the target is their XOR, so the network must
  carry two bits across the whole sequence. Metric: validation accuracy (0.5 is chance).
- ``sine``: ``sin(1.5 x) + N(0, 0.1)`` on ``[0, 4 pi]``; predict the next value from a window of
  ``sequence_length`` values. The last 20 % of windows validate. Metric: validation MSE.
- ``forecast``: the monthly Mauna Loa CO2 series (``rnnkit.data.load_series("co2")``), scaled
  on its training part, differenced; predict the next month's change from a window. Metric:
  validation MSE (in scaled units).

Example:
    >>> result = run_comparison(CompareConfig(task="xor", epochs=5))         # doctest: +SKIP
    >>> {cell: row["best_val_metric"] for cell, row in result.cells.items()} # doctest: +SKIP
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from rnnkit.tasks._common import CELLS, recurrent_layer

TASKS = ("xor", "sine", "forecast")
CELL_NAMES = {"rnn": "SimpleRNN", "lstm": "LSTM", "gru": "GRU"}


@dataclass
class CompareConfig:
    """The shared budget; the CLI's flags have the same names."""

    task: str = "xor"
    cells: tuple[str, ...] = ("rnn", "lstm", "gru")
    bidirectional: bool = False
    units: int = 32
    samples: int = 4000
    sequence_length: int = 20
    epochs: int = 15
    batch_size: int = 32
    learning_rate: float = 3e-3

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task: expected one of {TASKS}, got {self.task!r}")
        self.cells = tuple(self.cells)
        unknown = [cell for cell in self.cells if cell not in CELLS]
        if unknown or not self.cells:
            raise ValueError(f"cells: expected some of {CELLS}, got {list(self.cells)}")
        if len(set(self.cells)) != len(self.cells):
            raise ValueError(f"cells: expected each cell once, got {list(self.cells)}")


@dataclass
class TaskData:
    """Arrays of one task and how to score it."""

    x_train: np.ndarray  # (N, T, 1)
    y_train: np.ndarray  # (N, 1)
    x_val: np.ndarray
    y_val: np.ndarray
    loss: str
    metric: str  # the logged name of the validation metric, e.g. "val_accuracy"
    higher_is_better: bool
    output_activation: str | None = None


@dataclass
class ComparisonResult:
    cells: dict  # cell -> {parameters, train_seconds, best_val_metric, best_epoch, ...}
    histories: dict  # display name -> History
    metric: str
    data: TaskData
    models: dict = field(default_factory=dict)  # cell -> trained model


def xor_task(samples: int, sequence_length: int, rng: np.random.Generator) -> TaskData:
    """Seed 001's ``generate_long_term_data``: XOR of the first two steps; 80 / 20 split."""
    if sequence_length < 2:
        raise ValueError(
            f"sequence_length: expected at least 2 for the xor task, got {sequence_length}"
        )
    x = np.zeros((samples, sequence_length, 1), np.float32)  # (N, T, 1)
    x[:, :2, 0] = rng.integers(0, 2, size=(samples, 2))
    y = np.logical_xor(x[:, 0, 0], x[:, 1, 0]).astype(np.float32)[:, None]  # (N, 1)
    cut = _cut(samples)
    return TaskData(
        x[:cut], y[:cut], x[cut:], y[cut:], "binary_crossentropy", "val_accuracy", True, "sigmoid"
    )


def sine_task(samples: int, sequence_length: int, rng: np.random.Generator) -> TaskData:
    """Seed 001's noisy sine wave: next value from ``sequence_length`` values, last 20 % val."""
    from rnnkit.data import make_windows

    x = np.linspace(0, 4 * np.pi, samples)
    series = np.sin(1.5 * x) + rng.normal(0.0, 0.1, samples)
    inputs, targets = make_windows(series.astype(np.float32), sequence_length)
    return _time_ordered(inputs, targets)


def forecast_task(sequence_length: int) -> TaskData:
    """Monthly CO2, standardised on the first 80 %, as month-to-month changes."""
    from rnnkit.data import StandardScaler, load_series, make_windows

    levels = load_series("co2").to_numpy()[:, None]  # (T, 1)
    changes = np.diff(levels, axis=0)
    scaler = StandardScaler().fit(changes[: _cut(len(changes))])
    series = scaler.transform(changes)[:, 0].astype(np.float32)
    inputs, targets = make_windows(series, sequence_length)
    return _time_ordered(inputs, targets)


def _cut(count: int) -> int:
    cut = int(round(count * 0.8))
    if not 0 < cut < count:
        raise ValueError(f"samples: {count} samples are too few for an 80 / 20 split")
    return cut


def _time_ordered(inputs: np.ndarray, targets: np.ndarray) -> TaskData:
    cut = _cut(len(inputs))
    return TaskData(
        inputs[:cut], targets[:cut], inputs[cut:], targets[cut:], "mse", "val_loss", False
    )


def make_task(config: CompareConfig, seed: int) -> TaskData:
    rng = np.random.default_rng(seed)
    if config.task == "xor":
        return xor_task(config.samples, config.sequence_length, rng)
    if config.task == "sine":
        return sine_task(config.samples, config.sequence_length, rng)
    return forecast_task(config.sequence_length)


def build_model(cell: str, config: CompareConfig, data: TaskData):
    """``recurrent layer -> Dense(1)``, compiled for ``data``'s loss (and accuracy for xor)."""
    from rnnkit.layers import Dense
    from rnnkit.models import Sequential
    from rnnkit.optimizers import Adam

    model = Sequential(
        [
            recurrent_layer(cell, config.units, config.bidirectional),
            Dense(1, activation=data.output_activation),
        ],
        name=f"{cell}_model",
    )
    model.build_from_batch(data.x_train[:1])
    metrics = ["accuracy"] if data.metric == "val_accuracy" else []
    model.compile(
        optimizer=Adam(learning_rate=config.learning_rate), loss=data.loss, metrics=metrics
    )
    return model


def train_cell(
    cell: str, config: CompareConfig, data: TaskData, seed: int, verbose: int, callbacks=None
) -> tuple[dict, object, object]:
    """Train one cell from ``seed``; its row of the comparison, its History and its model."""
    from rnnkit.utils import set_random_seed

    set_random_seed(seed)  # every cell starts from the same random state
    model = build_model(cell, config, data)
    start = time.perf_counter()
    history = model.fit(
        data.x_train,
        data.y_train,
        validation_data=(data.x_val, data.y_val),
        epochs=config.epochs,
        batch_size=config.batch_size,
        verbose=verbose,
        callbacks=callbacks,
    )
    seconds = time.perf_counter() - start
    curve = np.asarray(history.history[data.metric])
    best = int(curve.argmax() if data.higher_is_better else curve.argmin())
    row = {
        "parameters": model.count_params(),
        "train_seconds": seconds,
        "best_val_metric": float(curve[best]),
        "best_epoch": best + 1,
        "final_val_metric": float(curve[-1]),
    }
    return row, history, model


def run_comparison(
    config: CompareConfig, seed: int = 0, verbose: int = 1, callbacks=None
) -> ComparisonResult:
    """Train every cell of ``config.cells`` on the same task data with the same budget."""
    data = make_task(config, seed)
    rows, histories, models = {}, {}, {}
    for cell in config.cells:
        rows[cell], history, models[cell] = train_cell(cell, config, data, seed, verbose, callbacks)
        histories[CELL_NAMES[cell]] = history
    return ComparisonResult(rows, histories, data.metric, data, models)
