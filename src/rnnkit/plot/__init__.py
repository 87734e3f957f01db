"""Figures people would rather look at than read, saved as PNG with matplotlib."""

from rnnkit.plot.curves import history, predictions
from rnnkit.plot.inspection import gates, gradient_flow

__all__ = ["gates", "gradient_flow", "history", "predictions"]
