"""NumPy-side input checks shared by the ``rnnkit.data`` modules.

Like ``rnnkit._checks``, every check raises a ``ValueError`` or ``TypeError`` whose message names
the argument, what was expected and what was received.
"""

from __future__ import annotations

import numbers

import numpy as np


def numeric_array(value, name: str) -> np.ndarray:
    """``value`` as a real-valued NumPy array (ints are kept, bools, strings and objects refused).

    Accepts NumPy arrays, lists, pandas objects and CPU tensors (anything ``np.asarray`` reads).
    """
    if hasattr(value, "to_numpy"):
        value = value.to_numpy()
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"{name}: expected a numeric array, got {type(value).__name__} ({error})"
        ) from None
    if array.dtype == bool or not (
        np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)
    ):
        raise TypeError(
            f"{name}: expected numeric (integer or floating) values, got dtype {array.dtype}"
        )
    return array


def float_array(value, name: str) -> np.ndarray:
    """A numeric array as floats: floating input keeps its dtype, integers become float64."""
    array = numeric_array(value, name)
    if not np.issubdtype(array.dtype, np.floating):
        array = array.astype(np.float64)
    return array


def check_finite(array: np.ndarray, name: str) -> None:
    """Refuse NaN and infinity, naming the first bad position."""
    bad = ~np.isfinite(array)
    if bad.any():
        position = tuple(int(i) for i in np.argwhere(bad)[0])
        where = position[0] if len(position) == 1 else position
        raise ValueError(
            f"{name}: expected finite values, got {array[position]} at index {where} "
            f"({int(bad.sum())} non-finite value(s) in all)"
        )


def positive_int(value, name: str, minimum: int = 1) -> int:
    """An ``int`` (not a bool) that is at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an int >= {minimum}, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value}")
    return int(value)


def fraction(value, name: str) -> float:
    """A real number in ``[0, 1)``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a float in [0, 1), got {type(value).__name__}")
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name}: expected a float in [0, 1), got {value}")
    return float(value)


def one_of(value, name: str, choices: tuple) -> object:
    """``value`` if it is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name}: expected one of {choices}, got {value!r}")
    return value
