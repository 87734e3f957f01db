"""Keras's callbacks (``rnnkit.callbacks.EarlyStopping``...).

See :mod:`rnnkit.training.callbacks` and :mod:`rnnkit.training.monitor`.
"""

from rnnkit.training.callbacks import (
                                       Callback,
                                       CallbackList,
                                       CSVLogger,
                                       History,
                                       LambdaCallback,
                                       LearningRateScheduler,
                                       ProgbarLogger,
                                       TerminateOnNaN,
)
from rnnkit.training.monitor import EarlyStopping, ModelCheckpoint, ReduceLROnPlateau

__all__ = ["CSVLogger", "Callback", "CallbackList", "EarlyStopping", "History", "LambdaCallback",
           "LearningRateScheduler", "ModelCheckpoint", "ProgbarLogger", "ReduceLROnPlateau",
           "TerminateOnNaN"]
