"""Keras's losses in torch: the same names, formulas, clipping and reduction.

A loss function ``fn(y_true, y_pred)`` returns one value per sample (and per timestep for sequence
targets): it reduces over the last axis only. A :class:`Loss` object adds Keras's reduction
("sum_over_batch_size" by default): values are multiplied by ``sample_weight`` and summed, then
divided by the number of values, so a zero weight still counts in the denominator, as in Keras.

As in Keras, ``y_true`` and ``y_pred`` whose ranks differ by one trailing axis of size 1 are aligned
(``(B,)`` against ``(B, 1)``) rather than broadcast. Crossentropy on probabilities clips them to
``[1e-7, 1 - 1e-7]``; ``from_logits=True`` uses the numerically stable log-softmax/log-sigmoid.

Example:
    >>> MeanSquaredError()(np.array([[0.0], [1.0]]), torch.tensor([[0.5], [0.5]]))
    tensor(0.2500)
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from rnnkit._checks import as_tensor
from rnnkit.layers.base import _snake

EPSILON = 1e-7
REDUCTIONS = ("sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", "none", None)


def align(y_true, y_pred) -> tuple[torch.Tensor, torch.Tensor]:
    """Tensors of ``y_pred``'s dtype, with Keras's squeeze-or-expand of a trailing size-1 axis."""
    y_pred = as_tensor(y_pred, "y_pred")
    if not y_pred.is_floating_point():
        y_pred = y_pred.to(torch.get_default_dtype())
    y_true = as_tensor(y_true, "y_true").to(y_pred.dtype)
    return same_rank(y_true, y_pred)


def same_rank(x1: torch.Tensor, x2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Keras's ``squeeze_or_expand_to_same_rank``: fix a rank difference of one trailing 1-axis."""
    if x1.dim() == x2.dim() + 1 and x1.shape[-1] == 1:
        return (x1, x2.unsqueeze(-1)) if x2.dim() == 1 else (x1.squeeze(-1), x2)
    if x2.dim() == x1.dim() + 1 and x2.shape[-1] == 1:
        return (x1.unsqueeze(-1), x2) if x1.dim() == 1 else (x1, x2.squeeze(-1))
    return x1, x2


def target_kind(y_true: torch.Tensor, y_pred: torch.Tensor) -> str:
    """Keras's reading of classification shapes: "binary", "sparse" or "categorical".

    One prediction column is binary; targets without the class axis (or with a size-1 one
    against several columns) are sparse labels; anything else is one-hot.
    """
    if y_pred.shape[-1] == 1:
        return "binary"
    if y_true.dim() < y_pred.dim() or y_true.shape[-1] == 1:
        return "sparse"
    return "categorical"


def reduce_weighted(values: torch.Tensor, sample_weight=None,
                    reduction: str | None = "sum_over_batch_size") -> torch.Tensor:
    """Multiply by ``sample_weight`` (broadcast over trailing axes) and reduce as Keras does."""
    if sample_weight is not None:
        sample_weight = as_tensor(sample_weight, "sample_weight").to(values.dtype)
        values, sample_weight = same_rank(values, sample_weight)
        while sample_weight.dim() < values.dim():  # (B,) weights on (B, T) values
            sample_weight = sample_weight.unsqueeze(-1)
        values = values * sample_weight
    if reduction in (None, "none") or values.dim() == 0:
        return values
    if sample_weight is None and reduction != "sum":
        return values.mean() if values.numel() else values.sum()
    total = values.sum()
    if reduction == "sum":
        return total
    if reduction == "mean_with_sample_weight" and sample_weight is not None:
        divisor = sample_weight.expand_as(values).sum()
    else:
        divisor = values.numel()
    return total / divisor if values.numel() else total


# -- loss functions: (y_true, y_pred) -> values over all but the last axis -------------------------
def mean_squared_error(y_true, y_pred) -> torch.Tensor:
    y_true, y_pred = align(y_true, y_pred)
    return (y_true - y_pred).square().mean(-1)


def mean_absolute_error(y_true, y_pred) -> torch.Tensor:
    y_true, y_pred = align(y_true, y_pred)
    return (y_true - y_pred).abs().mean(-1)


def mean_absolute_percentage_error(y_true, y_pred) -> torch.Tensor:
    y_true, y_pred = align(y_true, y_pred)
    ratio = (y_true - y_pred) / y_true.abs().clamp(min=EPSILON)
    return 100.0 * ratio.abs().mean(-1)


def mean_squared_logarithmic_error(y_true, y_pred) -> torch.Tensor:
    y_true, y_pred = align(y_true, y_pred)
    first = torch.log(y_pred.clamp(min=EPSILON) + 1.0)
    second = torch.log(y_true.clamp(min=EPSILON) + 1.0)
    return (first - second).square().mean(-1)


def huber(y_true, y_pred, delta: float = 1.0) -> torch.Tensor:
    y_true, y_pred = align(y_true, y_pred)
    error = y_pred - y_true
    abs_error = error.abs()
    quadratic = 0.5 * error.square()
    linear = delta * abs_error - 0.5 * delta**2
    return torch.where(abs_error <= delta, quadratic, linear).mean(-1)


def log_cosh(y_true, y_pred) -> torch.Tensor:
    y_true, y_pred = align(y_true, y_pred)
    error = y_pred - y_true
    return (error + F.softplus(-2.0 * error) - math.log(2.0)).mean(-1)


def binary_crossentropy(y_true, y_pred, from_logits: bool = False,
                        label_smoothing: float = 0.0) -> torch.Tensor:
    y_true, y_pred = align(y_true, y_pred)
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + 0.5 * label_smoothing
    if from_logits:
        values = F.binary_cross_entropy_with_logits(y_pred, y_true, reduction="none")
    else:
        y_pred = y_pred.clamp(EPSILON, 1.0 - EPSILON)
        values = -(y_true * torch.log(y_pred) + (1.0 - y_true) * torch.log(1.0 - y_pred))
    return values.mean(-1)


def categorical_crossentropy(y_true, y_pred, from_logits: bool = False,
                             label_smoothing: float = 0.0) -> torch.Tensor:
    y_pred = as_tensor(y_pred, "y_pred")
    y_true = as_tensor(y_true, "y_true").to(y_pred.dtype)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true: categorical_crossentropy expects one-hot targets of the "
                         f"predictions' shape {tuple(y_pred.shape)}, got {tuple(y_true.shape)} "
                         "(integer labels need sparse_categorical_crossentropy)")
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + label_smoothing / y_true.shape[-1]
    return -(y_true * _log_probabilities(y_pred, from_logits)).sum(-1)


def sparse_categorical_crossentropy(y_true, y_pred, from_logits: bool = False,
                                    ignore_class: int | None = None) -> torch.Tensor:
    y_pred = as_tensor(y_pred, "y_pred")
    labels = as_tensor(y_true, "y_true")
    if labels.dim() == y_pred.dim() and labels.shape[-1] == 1:
        labels = labels.squeeze(-1)
    if tuple(labels.shape) != tuple(y_pred.shape[:-1]):
        raise ValueError(f"y_true: sparse_categorical_crossentropy expects integer labels of "
                         f"shape {tuple(y_pred.shape[:-1])} for predictions "
                         f"{tuple(y_pred.shape)}, got {tuple(labels.shape)}")
    labels = labels.long()
    valid = None if ignore_class is None else labels != ignore_class
    if valid is not None:
        labels = labels.where(valid, 0)
    log_probs = _log_probabilities(y_pred, from_logits)
    values = -log_probs.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    return values if valid is None else values.where(valid, 0.0)


def _log_probabilities(y_pred: torch.Tensor, from_logits: bool) -> torch.Tensor:
    if from_logits:
        return F.log_softmax(y_pred, dim=-1)
    probabilities = y_pred / y_pred.sum(-1, keepdim=True)
    return torch.log(probabilities.clamp(EPSILON, 1.0 - EPSILON))


def kl_divergence(y_true, y_pred) -> torch.Tensor:
    y_true, y_pred = align(y_true, y_pred)
    y_true = y_true.clamp(EPSILON, 1.0)
    y_pred = y_pred.clamp(EPSILON, 1.0)
    return (y_true * torch.log(y_true / y_pred)).sum(-1)


def hinge(y_true, y_pred) -> torch.Tensor:
    y_true, y_pred = align(y_true, y_pred)
    if bool(((y_true == 0) | (y_true == 1)).all()):
        y_true = 2.0 * y_true - 1.0  # 0/1 labels become -1/1, as Keras
    return (1.0 - y_true * y_pred).clamp(min=0.0).mean(-1)


def poisson(y_true, y_pred) -> torch.Tensor:
    y_true, y_pred = align(y_true, y_pred)
    return (y_pred - y_true * torch.log(y_pred + EPSILON)).mean(-1)


def cosine_similarity(y_true, y_pred) -> torch.Tensor:
    y_true, y_pred = align(y_true, y_pred)
    y_true = F.normalize(y_true, dim=-1, eps=1e-12)
    y_pred = F.normalize(y_pred, dim=-1, eps=1e-12)
    return -(y_true * y_pred).sum(-1)


# -- Loss objects ----------------------------------------------------------------------------------
class Loss:
    """Keras's ``Loss``: ``loss(y_true, y_pred, sample_weight=None)`` returns the reduced loss.

    Subclasses define ``call(y_true, y_pred)`` returning unreduced values.
    """

    def __init__(self, name: str | None = None,
                 reduction: str | None = "sum_over_batch_size") -> None:
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction: expected one of {list(REDUCTIONS)}, got {reduction!r}")
        self.name = name or _snake(type(self).__name__)
        self.reduction = reduction

    def __call__(self, y_true, y_pred, sample_weight=None) -> torch.Tensor:
        try:
            values = self.call(y_true, y_pred)
        except RuntimeError as error:  # shapes torch cannot combine: name both, not torch's op
            raise ValueError(
                f"y: targets of shape {tuple(y_true.shape)} do not fit the model's output of "
                f"shape {tuple(y_pred.shape)} for loss {self.name!r} ({error})") from None
        return reduce_weighted(values, sample_weight, self.reduction)

    def call(self, y_true, y_pred) -> torch.Tensor:
        raise NotImplementedError

    def get_config(self) -> dict:
        return {"name": self.name, "reduction": self.reduction}

    @classmethod
    def from_config(cls, config: dict) -> Loss:
        return cls(**config)


class LossFunctionWrapper(Loss):
    """A :class:`Loss` around a loss function and its keyword arguments."""

    def __init__(self, fn: Callable, reduction: str | None = "sum_over_batch_size",
                 name: str | None = None, **fn_kwargs) -> None:
        super().__init__(name=name or getattr(fn, "__name__", None), reduction=reduction)
        self.fn = fn
        self.fn_kwargs = fn_kwargs

    def call(self, y_true, y_pred) -> torch.Tensor:
        return self.fn(y_true, y_pred, **self.fn_kwargs)

    def get_config(self) -> dict:
        return {**super().get_config(), **self.fn_kwargs}


def _loss_class(class_name: str, fn: Callable, default_name: str, doc: str,
                **defaults) -> type[Loss]:
    """A Keras loss class whose constructor takes ``defaults``' keywords (e.g. ``from_logits``)."""

    def __init__(self, reduction="sum_over_batch_size", name=default_name, **kwargs):
        unknown = set(kwargs) - set(defaults)
        if unknown:
            raise TypeError(f"{type(self).__name__}: unexpected keyword argument(s) "
                            f"{sorted(unknown)}")
        LossFunctionWrapper.__init__(self, fn, reduction=reduction, name=name,
                                     **{**defaults, **kwargs})

    def get_config(self):
        return {"name": self.name, "reduction": self.reduction, **self.fn_kwargs}

    return type(class_name, (LossFunctionWrapper,),
                {"__init__": __init__, "get_config": get_config, "__doc__": doc,
                 "__module__": __name__})


MeanSquaredError = _loss_class(
    "MeanSquaredError", mean_squared_error, "mean_squared_error",
    "``mean((y_true - y_pred)^2)`` over the last axis.")
MeanAbsoluteError = _loss_class(
    "MeanAbsoluteError", mean_absolute_error, "mean_absolute_error",
    "``mean(|y_true - y_pred|)`` over the last axis.")
MeanAbsolutePercentageError = _loss_class(
    "MeanAbsolutePercentageError", mean_absolute_percentage_error,
    "mean_absolute_percentage_error",
    "``100 * mean(|(y_true - y_pred) / max(|y_true|, 1e-7)|)``.")
MeanSquaredLogarithmicError = _loss_class(
    "MeanSquaredLogarithmicError", mean_squared_logarithmic_error,
    "mean_squared_logarithmic_error",
    "``mean((log(y_pred + 1) - log(y_true + 1))^2)``, values clipped at 1e-7.")
Huber = _loss_class(
    "Huber", huber, "huber_loss", "Quadratic below ``delta``, linear above.", delta=1.0)
LogCosh = _loss_class(
    "LogCosh", log_cosh, "log_cosh", "``mean(log(cosh(y_pred - y_true)))``.")
BinaryCrossentropy = _loss_class(
    "BinaryCrossentropy", binary_crossentropy, "binary_crossentropy",
    "Sigmoid crossentropy; probabilities clipped to [1e-7, 1 - 1e-7] unless ``from_logits``.",
    from_logits=False, label_smoothing=0.0)
CategoricalCrossentropy = _loss_class(
    "CategoricalCrossentropy", categorical_crossentropy, "categorical_crossentropy",
    "Softmax crossentropy on one-hot targets ``(..., C)``.",
    from_logits=False, label_smoothing=0.0)
SparseCategoricalCrossentropy = _loss_class(
    "SparseCategoricalCrossentropy", sparse_categorical_crossentropy,
    "sparse_categorical_crossentropy",
    "Softmax crossentropy on integer labels ``(...)`` or ``(..., 1)``.",
    from_logits=False, ignore_class=None)
KLDivergence = _loss_class(
    "KLDivergence", kl_divergence, "kl_divergence",
    "``sum(y_true * log(y_true / y_pred))``, both clipped to [1e-7, 1].")
Hinge = _loss_class(
    "Hinge", hinge, "hinge", "``mean(max(1 - y_true * y_pred, 0))``; 0/1 labels -> -1/1.")
Poisson = _loss_class(
    "Poisson", poisson, "poisson", "``mean(y_pred - y_true * log(y_pred + 1e-7))``.")
CosineSimilarity = _loss_class(
    "CosineSimilarity", cosine_similarity, "cosine_similarity",
    "``-sum(l2_normalize(y_true) * l2_normalize(y_pred))``.")

_FUNCTIONS = {
    "mean_squared_error": mean_squared_error, "mse": mean_squared_error,
    "mean_absolute_error": mean_absolute_error, "mae": mean_absolute_error,
    "mean_absolute_percentage_error": mean_absolute_percentage_error,
    "mape": mean_absolute_percentage_error,
    "mean_squared_logarithmic_error": mean_squared_logarithmic_error,
    "msle": mean_squared_logarithmic_error,
    "huber": huber, "huber_loss": huber, "log_cosh": log_cosh, "logcosh": log_cosh,
    "binary_crossentropy": binary_crossentropy,
    "categorical_crossentropy": categorical_crossentropy,
    "sparse_categorical_crossentropy": sparse_categorical_crossentropy,
    "kl_divergence": kl_divergence, "kld": kl_divergence,
    "kullback_leibler_divergence": kl_divergence,
    "hinge": hinge, "poisson": poisson, "cosine_similarity": cosine_similarity,
}
_CLASSES = {cls.__name__: cls for cls in (
    MeanSquaredError, MeanAbsoluteError, MeanAbsolutePercentageError, MeanSquaredLogarithmicError,
    Huber, LogCosh, BinaryCrossentropy, CategoricalCrossentropy, SparseCategoricalCrossentropy,
    KLDivergence, Hinge, Poisson, CosineSimilarity)}


def get(identifier) -> Callable:
    """A loss from a Keras name ("mse", "binary_crossentropy"...) or class name, or a callable.

    Callables (functions, :class:`Loss` objects) are returned unchanged. A torch loss module
    (``torch.nn.MSELoss()``, called ``(input, target)``) is wrapped to take ``(y_true, y_pred)``.
    """
    if isinstance(identifier, torch.nn.modules.loss._Loss):
        module = identifier
        return LossFunctionWrapper(lambda y_true, y_pred: module(y_pred, y_true),
                                   reduction="none", name=_snake(type(module).__name__))
    if callable(identifier):
        return identifier
    if isinstance(identifier, str):
        if identifier in _FUNCTIONS:
            return _FUNCTIONS[identifier]
        if identifier in _CLASSES:
            return _CLASSES[identifier]()
        raise ValueError(f"loss: unknown name {identifier!r}; expected one of "
                         f"{sorted(_FUNCTIONS)} or a callable")
    raise TypeError(f"loss: expected a name or a callable, got {type(identifier).__name__}")
