"""Inputs of fit/evaluate/predict turned into batches of tensors.

Arrays (NumPy, torch, pandas, nested lists; a list or dict of them for several inputs or outputs)
are checked and converted to tensors once: floating data takes the model's dtype (float32 by
default, as Keras casts float64), integer labels stay integers. Each epoch then shuffles them with
one gather and yields batches as slices, so a batch costs no conversion.

Checks, each a ``ValueError`` naming the array:

- every array has the same number of samples (the message gives each size);
- floating arrays hold no NaN or infinity (the message gives the first bad index). A NaN in the
  data would otherwise turn the loss into NaN at some batch; ``TerminateOnNaN`` is for losses that
  become NaN in training, not for bad data. Data from a DataLoader is not scanned.

A ``torch.utils.data.DataLoader`` (or a ``Dataset``, batched here) yields ``x``, ``(x, y)`` or
``(x, y, sample_weight)``, as Keras's datasets do.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset

from rnnkit._checks import as_tensor

Batch = tuple  # (x, y, sample_weight); x and y are a tensor or a list of tensors


def tree_map(fn: Callable, value):
    """Apply ``fn`` to every tensor in ``value`` (a tensor, None, or a list/tuple of them)."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return type(value)([tree_map(fn, item) for item in value])
    return fn(value)


def rebuild(template, leaves: Iterator):
    """``template``'s structure (a tensor, None, or a list/tuple of them) with its tensors taken
    in order from ``leaves``: the inverse of :func:`flatten`."""
    if template is None:
        return None
    if isinstance(template, (list, tuple)):
        return type(template)([rebuild(item, leaves) for item in template])
    return next(leaves)


def flatten(value) -> list[torch.Tensor]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [t for item in value for t in flatten(item)]
    return [value]


# -- conversion and checks ----------------------------------------------------------------------
def _is_structure(value) -> bool:
    """A list/tuple of arrays (several inputs), as opposed to a nested list of numbers."""
    return isinstance(value, (list, tuple)) and len(value) > 0 and all(
        _is_array(item) or isinstance(item, dict) or _is_structure(item) for item in value)


def _is_array(value) -> bool:
    return isinstance(value, torch.Tensor) or (hasattr(value, "shape")
                                                and not isinstance(value, np.generic))


def convert(value, name: str, float_dtype: torch.dtype, names: list[str] | None = None):
    """Tensors from arrays, a list of arrays, or a dict of arrays keyed by ``names``."""
    if value is None:
        return None
    if isinstance(value, dict):
        if names is None or set(value) - set(names) or len(value) != len(names):
            raise ValueError(f"{name}: a dict needs keys matching the model's names {names}, got "
                             f"{sorted(value)}")
        return [convert(value[key], f"{name}[{key!r}]", float_dtype) for key in names]
    if _is_structure(value):
        return [convert(v, f"{name}[{i}]", float_dtype) for i, v in enumerate(value)]
    tensor = as_tensor(value, name)
    if tensor.dtype == torch.bool or tensor.is_floating_point() and tensor.dtype != float_dtype:
        tensor = tensor.to(float_dtype)
    if tensor.dim() == 0:
        raise ValueError(f"{name}: expected an array with a leading samples axis, got a scalar")
    return tensor


def check_finite(value, name: str) -> None:
    """Raise a ValueError naming the first NaN or infinite entry of a floating tensor."""
    if isinstance(value, list):
        for i, item in enumerate(value):
            check_finite(item, f"{name}[{i}]")
        return
    if value is None or not value.is_floating_point():
        return
    if value.device.type == "meta":
        raise ValueError(f"{name}: expected a tensor with data, got one on the 'meta' device")
    finite = torch.isfinite(value)
    if bool(finite.all()):
        return
    index = tuple(int(i) for i in (~finite).nonzero()[0])
    kind = "NaN" if bool(torch.isnan(value[index])) else "an infinite value"
    raise ValueError(f"{name}: contains {kind} at index {index} (sample {index[0]}); remove or "
                     "impute missing values before training (see docs/training.md)")


def check_lengths(**arrays) -> int:
    """The common number of samples; a ValueError naming every size when they differ."""
    sizes = {}
    for name, value in arrays.items():
        for i, tensor in enumerate(flatten(value)):
            label = name if not isinstance(value, list) else f"{name}[{i}]"
            sizes[label] = tensor.shape[0]
    if len(set(sizes.values())) > 1:
        given = ", ".join(name for name, value in arrays.items() if value is not None)
        listed = ", ".join(f"{k}: {v}" for k, v in sizes.items())
        raise ValueError(f"{given}: expected the same number of samples in every array, got "
                         f"{listed}")
    return next(iter(sizes.values()))


def class_weights(y: torch.Tensor, class_weight: dict) -> torch.Tensor:
    """Per-sample (or per-timestep) weights ``class_weight[label]``; absent classes weigh 1.

    One-hot targets ``(..., C)`` give their argmax; a trailing axis of 1 is squeezed.
    """
    if y.is_floating_point() and y.shape[-1] > 1 and y.dim() >= 2:
        labels = y.argmax(-1)
    else:
        labels = y.squeeze(-1) if y.dim() >= 2 and y.shape[-1] == 1 else y
        labels = labels.round().long() if labels.is_floating_point() else labels.long()
    largest = max([int(k) for k in class_weight] + [int(labels.max()) if labels.numel() else 0])
    table = torch.ones(largest + 1, dtype=torch.get_default_dtype())
    for label, weight in class_weight.items():
        table[int(label)] = float(weight)
    return table[labels]


# -- sources of batches ---------------------------------------------------------------------------
class ArraySource:
    """Samples held as tensors, batched by slicing (after one shuffle per epoch)."""

    def __init__(self, x, y, sample_weight, batch_size: int, shuffle: bool) -> None:
        self.data = (x, y, sample_weight)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.size = flatten(x)[0].shape[0]

    def __len__(self) -> int:
        return math.ceil(self.size / self.batch_size)

    def split(self, fraction: float) -> tuple[ArraySource, ArraySource]:
        """The first samples for training and the last ``fraction`` for validation, as Keras."""
        split_at = int(math.floor(self.size * (1.0 - fraction)))
        if split_at in (0, self.size):
            raise ValueError(f"validation_split: {self.size} samples cannot be split into training "
                             f"and validation sets with validation_split={fraction}")
        head = tree_map(lambda t: t[:split_at], self.data)
        tail = tree_map(lambda t: t[split_at:], self.data)
        return (ArraySource(*head, self.batch_size, self.shuffle),
                ArraySource(*tail, self.batch_size, False))

    def batches(self) -> Iterator[Batch]:
        data = self.data
        if self.shuffle:
            order = torch.randperm(self.size)
            data = tree_map(lambda t: t[order], data)
        # Every tensor split into its batches at once: half the cost of a slice per batch.
        parts = [tensor.split(self.batch_size) for tensor in flatten(data)]
        for k in range(len(self)):
            yield rebuild(data, iter([part[k] for part in parts]))


class LoaderSource:
    """Batches from a DataLoader, unpacked as Keras unpacks dataset elements."""

    def __init__(self, loader: DataLoader, float_dtype: torch.dtype) -> None:
        self.loader = loader
        self.float_dtype = float_dtype

    def __len__(self) -> int | None:
        try:
            return len(self.loader)
        except TypeError:
            return None

    def batches(self) -> Iterator[Batch]:
        for element in self.loader:
            if isinstance(element, (list, tuple)) and 1 <= len(element) <= 3:
                element = tuple(element) + (None,) * (3 - len(element))
            else:
                element = (element, None, None)
            yield tuple(convert(part, name, self.float_dtype)
                        for part, name in zip(element, ("x", "y", "sample_weight")))


def as_loader(data, batch_size: int, shuffle: bool) -> DataLoader | None:
    if isinstance(data, DataLoader):
        return data
    if isinstance(data, Dataset):
        shuffle = shuffle and not isinstance(data, IterableDataset)
        return DataLoader(data, batch_size=batch_size, shuffle=shuffle)
    return None


class BatchStream:
    """One epoch of batches per call; with ``steps``, a stream that continues across epochs.

    With ``steps_per_epoch`` an epoch is that many batches; the data restarts (reshuffled) when
    it runs out, so no batch is skipped between epochs.
    """

    def __init__(self, source, steps: int | None = None) -> None:
        self.source = source
        self.steps = steps
        self._iterator: Iterator[Batch] | None = None

    def __len__(self) -> int | None:
        return self.steps if self.steps is not None else len(self.source)

    def epoch(self) -> Iterator[Batch]:
        if self.steps is None:
            yield from self.source.batches()
            return
        for _ in range(self.steps):
            batch = next(self._iterator, None) if self._iterator is not None else None
            if batch is None:
                self._iterator = self.source.batches()
                batch = next(self._iterator, None)
                if batch is None:
                    warnings.warn("the data yielded no batch", stacklevel=3)
                    return
            yield batch


def source_from(x, y, sample_weight, *, batch_size: int | None, shuffle: bool,
                float_dtype: torch.dtype, input_names=None, output_names=None,
                class_weight: dict | None = None, need_y: bool = True):
    """An :class:`ArraySource` or :class:`LoaderSource` for these arguments, after the checks."""
    batch_size = 32 if batch_size is None else batch_size
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: expected a positive integer, got {batch_size!r}")
    loader = as_loader(x, batch_size, shuffle)
    if loader is not None:
        if y is not None or sample_weight is not None:
            raise ValueError("y, sample_weight: give them inside the dataset when x is a "
                             "Dataset or DataLoader")
        if class_weight is not None:
            raise ValueError("class_weight: not supported with a Dataset or DataLoader; yield "
                             "sample weights from the dataset instead")
        return LoaderSource(loader, float_dtype)
    if x is None:
        raise ValueError("x: expected input data, got None")
    x = convert(x, "x", float_dtype, input_names)
    y = convert(y, "y", float_dtype, output_names)
    if need_y and y is None:
        raise ValueError("y: targets are needed when x is an array (or give a Dataset)")
    sample_weight = convert(sample_weight, "sample_weight", torch.get_default_dtype())
    check_lengths(x=x, y=y, sample_weight=sample_weight)
    for value, name in ((x, "x"), (y, "y"), (sample_weight, "sample_weight")):
        check_finite(value, name)
    if class_weight is not None:
        if sample_weight is not None:
            raise ValueError("class_weight, sample_weight: give one of them, not both (as Keras)")
        if isinstance(y, list) and len(y) > 1:
            raise ValueError("class_weight: only supported for models with a single output")
        sample_weight = class_weights(y[0] if isinstance(y, list) else y, class_weight)
    return ArraySource(x, y, sample_weight, batch_size, shuffle)
