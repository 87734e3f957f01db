"""Whole-sequence execution: the one place that decides between the fused kernels and the loop.

:func:`run_sequence` is called by every sequence layer (``rnnkit.layers.RNN`` and the
``rnnkit.nn`` drop-ins). ``backend="reference"`` always loops over the cell; ``"fused"`` requires a
fused kernel and raises if none applies; ``"auto"`` uses a fused kernel when one applies.
"""

from rnnkit.kernels.dispatch import BACKENDS, run_sequence

__all__ = ["BACKENDS", "run_sequence"]
