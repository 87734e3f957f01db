"""Figures people would rather look at than read, saved as PNG with matplotlib."""

from rnnkit.plot.curves import history, predictions

__all__ = ["history", "predictions"]
