"""Chronological train/validation/test splits: the past trains, the future evaluates."""

from __future__ import annotations

import math
from typing import NamedTuple

from rnnkit.data._arrays import fraction, positive_int


class TimeSplit(NamedTuple):
    """Three consecutive index ranges covering ``range(n)`` in time order."""

    train: range
    val: range
    test: range


def time_split(n: int, val_fraction: float = 0.1, test_fraction: float = 0.1) -> TimeSplit:
    """Split ``n`` time-ordered steps into ``train | val | test`` without shuffling.

    The test part takes the last ``n * test_fraction`` steps, the validation part the
    ``n * val_fraction`` steps before it (both rounded to the nearest int, halves up), and
    training the rest from step 0. A fraction of exactly 0 gives a deliberately empty part;
    any other part that would be empty is an error.

    Args:
        n: number of steps (or samples) to split, at least 1.
        val_fraction: share of ``n`` for validation, in ``[0, 1)``.
        test_fraction: share of ``n`` for testing, in ``[0, 1)``.

    Returns:
        ``TimeSplit(train, val, test)`` of ``range`` objects; index arrays or pandas objects
        with them (``series[split.train]``, ``frame.iloc[split.test]``).

    Example:
        >>> time_split(10, 0.2, 0.1)
        TimeSplit(train=range(0, 7), val=range(7, 9), test=range(9, 10))
    """
    n = positive_int(n, "n")
    val_fraction = fraction(val_fraction, "val_fraction")
    test_fraction = fraction(test_fraction, "test_fraction")
    n_test = _part_size(n, test_fraction)
    n_val = _part_size(n, val_fraction)
    _check_part(n_test, test_fraction, n, "test_fraction")
    _check_part(n_val, val_fraction, n, "val_fraction")
    n_train = n - n_val - n_test
    if n_train < 1:
        raise ValueError(
            f"val_fraction, test_fraction: expected them to leave at least one training step, "
            f"got {n_val} validation + {n_test} test steps out of n = {n}"
        )
    return TimeSplit(
        train=range(0, n_train),
        val=range(n_train, n_train + n_val),
        test=range(n_train + n_val, n),
    )


def _part_size(n: int, share: float) -> int:
    return math.floor(n * share + 0.5)


def _check_part(size: int, share: float, n: int, name: str) -> None:
    if share > 0 and size == 0:
        raise ValueError(
            f"{name}: expected a share of n = {n} that rounds to at least one step, "
            f"got {share} (an empty part); use a larger fraction or 0 to skip the part"
        )
