"""What ``compile()`` sets up: the optimizer, one loss per output, the metrics, and the running
means that become the logs.

Losses and metrics are given as Keras allows: one for every output, a list (one per output) or a
dict keyed by output name; ``loss_weights`` as a list or dict. Resolution waits for the first
batch, as in Keras, because ``"accuracy"`` and ``"crossentropy"`` depend on the targets' shapes.

The logged ``loss`` is the weighted total ``sum(loss_weight_i * loss_i)``, averaged over batches
weighted by their size (so a short last batch counts for what it holds). With several outputs,
``{output}_loss`` and ``{output}_{metric}`` are logged too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping

import torch

from rnnkit.training import losses, optimizers
from rnnkit.training import metrics as metrics_module

_ACCURACY = metrics_module.ACCURACY_NAMES
_CROSSENTROPY = ("crossentropy", "ce")


class RunningMean:
    """Batch values weighted by batch size, summed in a tensor (no host sync per batch)."""

    direction = "down"

    def __init__(self, name: str) -> None:
        self.name = name
        self.reset_state()

    def reset_state(self) -> None:
        self.total = torch.zeros((), dtype=torch.float64)
        self.count = 0.0

    def update(self, value: torch.Tensor, weight: float) -> None:
        self.total.add_(value.detach(), alpha=weight)
        self.count += weight

    def result(self) -> torch.Tensor:
        return self.total / self.count if self.count else self.total


class LazyLogs(MutableMapping):
    """Batch logs computed on first access, so unread logs cost nothing."""

    def __init__(self, compute: Callable[[], dict]) -> None:
        self._compute = compute
        self._values: dict | None = None

    def _data(self) -> dict:
        if self._values is None:
            self._values = self._compute()
        return self._values

    def __getitem__(self, key):
        return self._data()[key]

    def __setitem__(self, key, value):
        self._data()[key] = value

    def __delitem__(self, key):
        del self._data()[key]

    def __iter__(self) -> Iterator:
        return iter(self._data())

    def __len__(self) -> int:
        return len(self._data())


class CompileState:
    """The compiled training configuration of one model; see the module docstring."""

    def __init__(self, optimizer="rmsprop", loss=None, metrics=None, loss_weights=None,
                 weighted_metrics=None) -> None:
        self.optimizer = optimizers.get(optimizer)
        for value in _leaves(loss):
            if not (isinstance(value, str) and value in _CROSSENTROPY):
                losses.get(value)  # an unknown name fails here, at compile time
        self.loss = loss
        self.metrics_spec = metrics
        self.weighted_metrics_spec = weighted_metrics
        self.loss_weights_spec = loss_weights
        self.loss_tracker = RunningMean("loss")
        self.built = False

    # -- resolution on the first batch --------------------------------------------------------
    def build(self, y_true: list, y_pred: list, output_names: list[str] | None) -> None:
        count = len(y_pred)
        if len(y_true) != count:
            raise ValueError(f"y: the model has {count} output(s), got {len(y_true)} target "
                             "array(s)")
        if not output_names or len(output_names) != count:
            output_names = [f"output_{i + 1}" for i in range(count)]
        self.output_names = list(output_names)
        specs = self._per_output(self.loss, "loss")
        self.losses = [self._resolve_loss(spec, y_true[i], y_pred[i])
                       for i, spec in enumerate(specs)]
        if all(fn is None for fn in self.losses):
            raise ValueError("loss: compile() was given no loss; training and evaluation need one")
        weights = self._per_output(self.loss_weights_spec, "loss_weights", single_ok=False)
        self.loss_weights = [1.0 if w is None else float(w) for w in weights]
        several = count > 1
        self.output_trackers = [(index, RunningMean(f"{name}_loss"))
                                for index, name in enumerate(self.output_names)
                                if several and self.losses[index] is not None]
        unweighted = self._build_metrics(self.metrics_spec, y_true, y_pred, several)
        weighted = self._build_metrics(self.weighted_metrics_spec, y_true, y_pred, several)
        taken = {metric.name for _, metric, _ in unweighted}
        for _, metric, _ in weighted:
            if metric.name in taken:
                metric.name = f"weighted_{metric.name}"
        self.metrics = unweighted + [(index, metric, True) for index, metric, _ in weighted]
        self.built = True

    def _per_output(self, spec, argument: str, single_ok: bool = True) -> list:
        """One entry per output from a single value, a list, or a dict keyed by output name."""
        count = len(self.output_names)
        if isinstance(spec, dict):
            unknown = set(spec) - set(self.output_names)
            if unknown:
                raise ValueError(f"{argument}: unknown output name(s) {sorted(unknown)}; the "
                                 f"outputs are {self.output_names}")
            return [spec.get(name) for name in self.output_names]
        if isinstance(spec, (list, tuple)):
            if len(spec) != count:
                raise ValueError(f"{argument}: expected {count} entries (one per output), got "
                                 f"{len(spec)}")
            return list(spec)
        if spec is not None and not single_ok:
            raise TypeError(f"{argument}: expected a list or a dict, got {type(spec).__name__}")
        return [spec] * count

    def _resolve_loss(self, spec, y_true, y_pred):
        if spec is None:
            return None
        if isinstance(spec, str) and spec in _CROSSENTROPY:
            kind = losses.target_kind(y_true, y_pred)
            spec = {"binary": "binary_crossentropy", "sparse": "sparse_categorical_crossentropy",
                    "categorical": "categorical_crossentropy"}[kind]
        fn = losses.get(spec)
        if isinstance(fn, losses.Loss):
            return fn
        return losses.LossFunctionWrapper(fn, name=spec if isinstance(spec, str) else None)

    def _build_metrics(self, spec, y_true, y_pred, several: bool) -> list:
        """``(output index, metric, weighted=False)`` triples with Keras's names."""
        if spec is None:
            return []
        per_output_form = isinstance(spec, dict) or (
            isinstance(spec, (list, tuple)) and several and len(spec) == len(y_pred)
            and all(s is None or isinstance(s, (list, tuple)) for s in spec))
        entries = (self._per_output(spec, "metrics") if per_output_form
                   else [spec] * len(y_pred))
        built = []
        for index, entry in enumerate(entries):
            for identifier in _as_list(entry):
                metric = self._resolve_metric(identifier, y_true[index], y_pred[index], index)
                if several:
                    metric.name = f"{self.output_names[index]}_{metric.name}"
                built.append((index, metric, False))
        return built

    def _resolve_metric(self, identifier, y_true, y_pred, index: int):
        if isinstance(identifier, str) and identifier.lower() in _ACCURACY:
            return metrics_module.accuracy_for(identifier, y_true, y_pred, self.losses[index])
        return metrics_module.get(identifier)

    # -- per batch ------------------------------------------------------------------------------
    def compute_loss(self, y_true: list, y_pred: list, sample_weight) -> tuple:
        """``(total, per-output losses)``; the total is what backward() runs on."""
        total = None
        per_output = []
        for fn, weight, target, prediction in zip(self.losses, self.loss_weights, y_true, y_pred):
            if fn is None:
                per_output.append(None)
                continue
            value = fn(target, prediction, sample_weight)
            per_output.append(value)
            value = value * weight if weight != 1.0 else value
            total = value if total is None else total + value
        return total, per_output

    def update(self, y_true: list, y_pred: list, sample_weight, loss, per_output: list,
               weight: float) -> None:
        """Accumulate one batch (``weight`` is its size) into the loss means and the metrics."""
        with torch.no_grad():
            self.loss_tracker.update(loss, weight)
            for index, tracker in self.output_trackers:
                tracker.update(per_output[index], weight)
            for index, metric, weighted in self.metrics:
                metric.update_state(y_true[index], y_pred[index].detach(),
                                    sample_weight if weighted else None)

    def trackers(self) -> list:
        if not self.built:
            return [self.loss_tracker]
        return [self.loss_tracker, *(m for _, m, _ in self.metrics),
                *(t for _, t in self.output_trackers)]

    def reset(self) -> None:
        for tracker in self.trackers():
            tracker.reset_state()

    def results(self) -> dict[str, float]:
        return {t.name: float(t.result()) for t in self.trackers()}

    def lazy_results(self) -> LazyLogs:
        return LazyLogs(self.results)

    @property
    def metric_names(self) -> list[str]:
        return [t.name for t in self.trackers()]

    def metric_direction(self, name: str) -> str | None:
        for tracker in self.trackers():
            if tracker.name == name:
                return tracker.direction
        return None


def _as_list(entry) -> list:
    if entry is None:
        return []
    return list(entry) if isinstance(entry, (list, tuple)) else [entry]


def _leaves(spec) -> list:
    if isinstance(spec, dict):
        return [v for v in spec.values() if v is not None]
    return [v for v in _as_list(spec) if v is not None]
