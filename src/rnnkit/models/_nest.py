"""Nested structures of lists, tuples and dicts, walked in a fixed order (dict keys sorted)."""

from __future__ import annotations

from collections.abc import Callable


def flatten(structure) -> list:
    """The leaves of ``structure`` in order; ``None`` is a leaf."""
    if isinstance(structure, (list, tuple)):
        return [leaf for item in structure for leaf in flatten(item)]
    if isinstance(structure, dict):
        return [leaf for key in sorted(structure) for leaf in flatten(structure[key])]
    return [structure]


def map_structure(function: Callable, structure):
    """``structure`` with each leaf replaced by ``function(leaf)``, in :func:`flatten` order.

    Lists and tuples keep their type; dicts come back with their keys sorted.
    """
    if isinstance(structure, (list, tuple)):
        return type(structure)(map_structure(function, item) for item in structure)
    if isinstance(structure, dict):
        return {key: map_structure(function, structure[key]) for key in sorted(structure)}
    return function(structure)


def pack_like(structure, leaves: list):
    """Rebuild ``structure`` with ``leaves`` (in :func:`flatten` order) in place of its leaves."""
    remaining = iter(leaves)
    return map_structure(lambda _: next(remaining), structure)
