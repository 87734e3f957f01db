"""What the task pipelines share: seeded random splits and the recurrent layer of a given cell."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CELLS = ("lstm", "gru", "rnn")


@dataclass(frozen=True)
class IndexSplit:
    """Row indices of the ``train``, ``val`` and ``test`` parts, each an int64 array."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}


def random_split(
    n: int, val_fraction: float, test_fraction: float, seed: int, labels=None
) -> IndexSplit:
    """Shuffle ``n`` rows with ``seed`` and cut them into train | val | test.

    With ``labels`` (one per row) the split is stratified: each class is cut in the same
    proportions, so rare classes reach every part. Raises ``ValueError`` if a part is empty.
    """
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 < value < 1.0:
            raise ValueError(f"{name}: expected a fraction in (0, 1), got {value}")
    if val_fraction + test_fraction >= 1.0:
        raise ValueError(
            f"val_fraction + test_fraction: expected less than 1, got "
            f"{val_fraction + test_fraction}"
        )
    rng = np.random.default_rng(seed)
    if labels is None:
        groups = [np.arange(n)]
    else:
        labels = np.asarray(labels)
        if len(labels) != n:
            raise ValueError(f"labels: expected {n} labels (one per row), got {len(labels)}")
        groups = [np.flatnonzero(labels == value) for value in np.unique(labels)]
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    for group in groups:
        group = rng.permutation(group)
        n_test = int(round(len(group) * test_fraction))
        n_val = int(round(len(group) * val_fraction))
        parts["test"].append(group[:n_test])
        parts["val"].append(group[n_test : n_test + n_val])
        parts["train"].append(group[n_test + n_val :])
    split = IndexSplit(
        **{
            name: rng.permutation(np.concatenate(arrays)).astype(np.int64)
            for name, arrays in parts.items()
        }
    )
    empty = [name for name, size in split.sizes().items() if size == 0]
    if empty:
        raise ValueError(
            f"data: {n} rows leave the {' and '.join(empty)} part(s) empty; "
            "give more rows or larger fractions"
        )
    return split


def subsample(n: int, limit: int | None, seed: int) -> np.ndarray:
    """Sorted indices of ``limit`` of ``n`` rows drawn with ``seed``; every row if it is None."""
    if limit is None or limit >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))


def recurrent_layer(cell: str, units: int, bidirectional: bool = False, **kwargs):
    """``LSTM``/``GRU``/``SimpleRNN(units, **kwargs)``, wrapped in ``Bidirectional`` if asked."""
    from rnnkit.layers import GRU, LSTM, Bidirectional, SimpleRNN

    if cell not in CELLS:
        raise ValueError(f"cell: expected one of {CELLS}, got {cell!r}")
    layer = {"lstm": LSTM, "gru": GRU, "rnn": SimpleRNN}[cell](units, **kwargs)
    return Bidirectional(layer) if bidirectional else layer
