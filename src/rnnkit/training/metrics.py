"""Keras's stateful metrics: ``update_state`` per batch, ``result()`` over everything seen since
``reset_state()``.

Results accumulate totals and counts (in float64 tensors, without a host sync per batch), so an
epoch's accuracy is the fraction over all its samples, not a mean of batch means. Sample weights
multiply each value and add to the count, as Keras's ``Mean`` does.

``direction`` ("up" or "down") tells monitoring callbacks in "auto" mode which way is better.

Example:
    >>> metric = BinaryAccuracy()
    >>> metric.update_state([[1], [0]], [[0.9], [0.8]]); float(metric.result())
    0.5
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from rnnkit._checks import as_tensor
from rnnkit.layers.base import _snake
from rnnkit.training import losses
from rnnkit.training.losses import same_rank


class Metric:
    """Base class: subclasses define ``update_state``, ``result`` and ``reset_state``."""

    direction = "down"

    def __init__(self, name: str | None = None) -> None:
        self.name = name or _snake(type(self).__name__)
        self.reset_state()

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        raise NotImplementedError

    def result(self) -> torch.Tensor:
        raise NotImplementedError

    def reset_state(self) -> None:
        raise NotImplementedError

    def __call__(self, y_true, y_pred, sample_weight=None) -> torch.Tensor:
        """Update with one batch and return the running result (Keras's ``metric(...)``)."""
        self.update_state(y_true, y_pred, sample_weight)
        return self.result()

    def get_config(self) -> dict:
        return {"name": self.name}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name}>"


class Mean(Metric):
    """The weighted mean of every value given to ``update_state(values, sample_weight)``."""

    def reset_state(self) -> None:
        self.total = torch.zeros((), dtype=torch.float64)
        self.count: float | torch.Tensor = 0.0  # a tensor once weights are given

    def update_state(self, values, sample_weight=None) -> None:
        with torch.no_grad():
            self._accumulate(as_tensor(values, "values"), sample_weight)

    def _accumulate(self, values: torch.Tensor, sample_weight) -> None:
        if sample_weight is None:
            self.total += values.sum()
            self.count += values.numel()
            return
        weights = as_tensor(sample_weight, "sample_weight").to(values.dtype)
        values, weights = same_rank(values, weights)
        while weights.dim() < values.dim():  # (B,) weights on (B, T) values
            weights = weights.unsqueeze(-1)
        weights = weights.expand_as(values)
        self.total += (values * weights).sum()
        self.count = self.count + weights.sum()

    def result(self) -> torch.Tensor:
        return (self.total / self.count).float() if self.count > 0 else self.total.float()


class MeanMetricWrapper(Mean):
    """The running weighted mean of ``fn(y_true, y_pred, **kwargs)`` over every sample."""

    def __init__(self, fn: Callable, name: str | None = None, direction: str | None = None,
                 **fn_kwargs) -> None:
        self.fn = fn
        self.fn_kwargs = fn_kwargs
        if direction is not None:
            self.direction = direction
        super().__init__(name=name or getattr(fn, "__name__", None))

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        with torch.no_grad():
            self._accumulate(self.fn(y_true, y_pred, **self.fn_kwargs), sample_weight)

    def get_config(self) -> dict:
        return {"name": self.name, **self.fn_kwargs}


# -- per-sample metric functions ------------------------------------------------------------------
def binary_accuracy(y_true, y_pred, threshold: float = 0.5) -> torch.Tensor:
    y_true, y_pred = losses.align(y_true, y_pred)
    return (y_true == (y_pred > threshold).to(y_true.dtype)).float()


def categorical_accuracy(y_true, y_pred) -> torch.Tensor:
    y_true = as_tensor(y_true, "y_true")
    y_pred = as_tensor(y_pred, "y_pred")
    return (y_true.argmax(-1) == y_pred.argmax(-1)).float()


def sparse_categorical_accuracy(y_true, y_pred) -> torch.Tensor:
    labels = _labels(y_true, y_pred)
    return (labels == y_pred.argmax(-1)).float()


def top_k_categorical_accuracy(y_true, y_pred, k: int = 5) -> torch.Tensor:
    y_true = as_tensor(y_true, "y_true")
    return _in_top_k(y_true.argmax(-1), as_tensor(y_pred, "y_pred"), k)


def sparse_top_k_categorical_accuracy(y_true, y_pred, k: int = 5) -> torch.Tensor:
    return _in_top_k(_labels(y_true, y_pred), as_tensor(y_pred, "y_pred"), k)


def _labels(y_true, y_pred) -> torch.Tensor:
    """Integer labels ``(...)`` from ``(...)`` or ``(..., 1)`` targets."""
    labels = as_tensor(y_true, "y_true")
    if labels.dim() == as_tensor(y_pred, "y_pred").dim() and labels.shape[-1] == 1:
        labels = labels.squeeze(-1)
    return labels.long()


def _in_top_k(labels: torch.Tensor, y_pred: torch.Tensor, k: int) -> torch.Tensor:
    """1.0 where the label's score is among the ``k`` largest (ties count as in, as TF's)."""
    k = min(k, y_pred.shape[-1])
    kth_largest = y_pred.topk(k, dim=-1).values[..., -1]
    return (y_pred.gather(-1, labels.unsqueeze(-1)).squeeze(-1) >= kth_largest).float()


# -- metric classes -------------------------------------------------------------------------------
class BinaryAccuracy(MeanMetricWrapper):
    """Fraction of predictions on the right side of ``threshold``."""

    direction = "up"

    def __init__(self, name: str = "binary_accuracy", threshold: float = 0.5) -> None:
        super().__init__(binary_accuracy, name=name, threshold=threshold)


class CategoricalAccuracy(MeanMetricWrapper):
    """Fraction where ``argmax(y_pred)`` matches ``argmax(y_true)`` (one-hot targets)."""

    direction = "up"

    def __init__(self, name: str = "categorical_accuracy") -> None:
        super().__init__(categorical_accuracy, name=name)


class SparseCategoricalAccuracy(MeanMetricWrapper):
    """Fraction where ``argmax(y_pred)`` matches the integer label."""

    direction = "up"

    def __init__(self, name: str = "sparse_categorical_accuracy") -> None:
        super().__init__(sparse_categorical_accuracy, name=name)


class TopKCategoricalAccuracy(MeanMetricWrapper):
    """Fraction where the one-hot target is among the ``k`` highest scores."""

    direction = "up"

    def __init__(self, k: int = 5, name: str = "top_k_categorical_accuracy") -> None:
        super().__init__(top_k_categorical_accuracy, name=name, k=k)


class SparseTopKCategoricalAccuracy(MeanMetricWrapper):
    """Fraction where the integer label is among the ``k`` highest scores."""

    direction = "up"

    def __init__(self, k: int = 5, name: str = "sparse_top_k_categorical_accuracy") -> None:
        super().__init__(sparse_top_k_categorical_accuracy, name=name, k=k)


class MeanSquaredError(MeanMetricWrapper):
    def __init__(self, name: str = "mean_squared_error") -> None:
        super().__init__(losses.mean_squared_error, name=name)


class MeanAbsoluteError(MeanMetricWrapper):
    def __init__(self, name: str = "mean_absolute_error") -> None:
        super().__init__(losses.mean_absolute_error, name=name)


class MeanAbsolutePercentageError(MeanMetricWrapper):
    def __init__(self, name: str = "mean_absolute_percentage_error") -> None:
        super().__init__(losses.mean_absolute_percentage_error, name=name)


class MeanSquaredLogarithmicError(MeanMetricWrapper):
    def __init__(self, name: str = "mean_squared_logarithmic_error") -> None:
        super().__init__(losses.mean_squared_logarithmic_error, name=name)


class RootMeanSquaredError(Mean):
    """``sqrt`` of the weighted mean of squared errors over every element."""

    def __init__(self, name: str = "root_mean_squared_error") -> None:
        super().__init__(name=name)

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        with torch.no_grad():
            y_true, y_pred = losses.align(y_true, y_pred)
            self._accumulate((y_pred - y_true).square(), sample_weight)

    def result(self) -> torch.Tensor:
        return super().result().sqrt()


class AUC(Metric):
    """Area under the ROC curve from confusion counts at ``num_thresholds`` thresholds.

    Thresholds are spread evenly over [0, 1] as Keras's (with ``-1e-7`` and ``1 + 1e-7`` at the
    ends) and the curve is integrated with the trapezoidal rule. Expects probabilities.
    """

    direction = "up"

    def __init__(self, num_thresholds: int = 200, name: str = "auc") -> None:
        if num_thresholds < 2:
            raise ValueError(f"num_thresholds: expected at least 2, got {num_thresholds}")
        inner = [(i + 1) / (num_thresholds - 1) for i in range(num_thresholds - 2)]
        self.thresholds = torch.tensor([-1e-7, *inner, 1.0 + 1e-7], dtype=torch.float64)
        super().__init__(name=name)

    def reset_state(self) -> None:
        size = self.thresholds.numel()
        self.true_positives = torch.zeros(size, dtype=torch.float64)
        self.false_positives = torch.zeros(size, dtype=torch.float64)
        self.positives = torch.zeros((), dtype=torch.float64)
        self.negatives = torch.zeros((), dtype=torch.float64)

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        with torch.no_grad():
            y_true, y_pred = losses.align(y_true, y_pred)
            weights = torch.ones_like(y_pred, dtype=torch.float64)
            if sample_weight is not None:
                sample_weight = as_tensor(sample_weight, "sample_weight").to(torch.float64)
                while sample_weight.dim() < y_pred.dim():
                    sample_weight = sample_weight.unsqueeze(-1)
                weights = weights * sample_weight
            labels = y_true.reshape(-1).to(torch.float64)
            weights = weights.reshape(-1)
            above = y_pred.reshape(-1, 1).to(torch.float64) > self.thresholds  # (N, K)
            self.true_positives += (above * (labels * weights)[:, None]).sum(0)
            self.false_positives += (above * ((1 - labels) * weights)[:, None]).sum(0)
            self.positives += (labels * weights).sum()
            self.negatives += ((1 - labels) * weights).sum()

    def result(self) -> torch.Tensor:
        tpr = self.true_positives / self.positives.clamp(min=1e-12)
        fpr = self.false_positives / self.negatives.clamp(min=1e-12)
        return ((fpr[:-1] - fpr[1:]) * (tpr[:-1] + tpr[1:]) / 2).sum().float()


_CLASSES = {cls.__name__: cls for cls in (
    BinaryAccuracy, CategoricalAccuracy, SparseCategoricalAccuracy, TopKCategoricalAccuracy,
    SparseTopKCategoricalAccuracy, MeanSquaredError, MeanAbsoluteError,
    MeanAbsolutePercentageError, MeanSquaredLogarithmicError, RootMeanSquaredError, AUC, Mean)}
_BY_NAME: dict[str, Callable[[], Metric]] = {
    "binary_accuracy": BinaryAccuracy, "categorical_accuracy": CategoricalAccuracy,
    "sparse_categorical_accuracy": SparseCategoricalAccuracy,
    "top_k_categorical_accuracy": TopKCategoricalAccuracy,
    "sparse_top_k_categorical_accuracy": SparseTopKCategoricalAccuracy,
    "mean_squared_error": MeanSquaredError, "mse": MeanSquaredError,
    "mean_absolute_error": MeanAbsoluteError, "mae": MeanAbsoluteError,
    "mean_absolute_percentage_error": MeanAbsolutePercentageError,
    "mape": MeanAbsolutePercentageError,
    "mean_squared_logarithmic_error": MeanSquaredLogarithmicError,
    "msle": MeanSquaredLogarithmicError,
    "root_mean_squared_error": RootMeanSquaredError, "rmse": RootMeanSquaredError,
    "auc": AUC,
}
ACCURACY_NAMES = ("accuracy", "acc")


def get(identifier, name: str | None = None) -> Metric:
    """A fresh metric from a Keras name, a class name, a :class:`Metric` or a function.

    Loss names ("binary_crossentropy"...) give the running mean of that loss. A plain function
    ``fn(y_true, y_pred) -> per-sample values`` is wrapped in :class:`MeanMetricWrapper`.
    ``"accuracy"`` needs the targets' shapes; use :func:`accuracy_for`.
    """
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Metric):
        return identifier()
    if isinstance(identifier, str):
        key = identifier if identifier in _CLASSES else identifier.lower()
        factory = _CLASSES.get(key) or _BY_NAME.get(key)
        if factory is not None:
            metric = factory()
        elif key in losses._FUNCTIONS:
            metric = MeanMetricWrapper(losses._FUNCTIONS[key])
        else:
            valid = sorted({*_BY_NAME, *ACCURACY_NAMES, *losses._FUNCTIONS})
            raise ValueError(f"metrics: unknown name {identifier!r}; expected one of {valid}, "
                             "a Metric or a function")
        metric.name = name or identifier
        return metric
    if callable(identifier):
        return MeanMetricWrapper(identifier, name=name)
    raise TypeError(f"metrics: expected a name, a Metric or a function, got "
                    f"{type(identifier).__name__}")


def accuracy_for(name: str, y_true: torch.Tensor, y_pred: torch.Tensor,
                 loss=None) -> Metric:
    """The accuracy Keras's ``"accuracy"`` means for these targets, predictions and loss.

    Binary when the loss is binary crossentropy or predictions have one column; sparse when the
    loss is sparse categorical crossentropy or the targets lack the class axis; else categorical.
    """
    loss_name = getattr(getattr(loss, "fn", loss), "__name__", "")
    kind = losses.target_kind(y_true, y_pred)
    if loss_name == "binary_crossentropy" or kind == "binary":
        return BinaryAccuracy(name=name)
    if loss_name == "sparse_categorical_crossentropy" or kind == "sparse":
        return SparseCategoricalAccuracy(name=name)
    return CategoricalAccuracy(name=name)
