"""Keras's optimizers (``rnnkit.optimizers.Adam``...), with Keras's arguments, defaults and math.

See :mod:`rnnkit.training.optimizers`.
"""

from rnnkit.training.optimizers import (
                                        SGD,
                                        Adadelta,
                                        Adagrad,
                                        Adam,
                                        Adamax,
                                        AdamW,
                                        Nadam,
                                        Optimizer,
                                        RMSprop,
                                        get,
)

__all__ = ["SGD", "Adadelta", "Adagrad", "Adam", "AdamW", "Adamax", "Nadam", "Optimizer",
           "RMSprop", "get"]
