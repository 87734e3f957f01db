"""Figures people would rather look at than read, saved as PNG with matplotlib."""

from rnnkit.plot.attention import attention
from rnnkit.plot.curves import history, predictions
from rnnkit.plot.inspection import gates, gradient_flow

__all__ = ["attention", "gates", "gradient_flow", "history", "predictions"]
