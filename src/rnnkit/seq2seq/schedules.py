"""Scheduled sampling: decaying ``Seq2Seq.teacher_forcing`` over training (Bengio et al. 2015).

``TeacherForcingSchedule(schedule)`` is a callback that sets the model's ``teacher_forcing`` to
``schedule(epoch)`` before each epoch. The three decays of the paper are provided; ``epoch``
counts from 0, and each starts at 1.0 (pure teacher forcing).

Example:
    >>> model.fit([src, tgt_in], tgt_out, epochs=20,                          # doctest: +SKIP
    ...           callbacks=[TeacherForcingSchedule(inverse_sigmoid_decay(5.0))])
"""

from __future__ import annotations

import math
from collections.abc import Callable

from rnnkit.training.callbacks import Callback


def linear_decay(epochs: int, floor: float = 0.0) -> Callable[[int], float]:
    """From 1.0 down to ``floor`` in a straight line over ``epochs`` epochs, then ``floor``."""
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs: expected a positive integer, got {epochs!r}")
    _check_probability(floor, "floor")
    return lambda epoch: max(floor, 1.0 - (1.0 - floor) * epoch / epochs)


def exponential_decay(rate: float) -> Callable[[int], float]:
    """``rate ** epoch`` for ``rate`` in (0, 1]."""
    if not 0.0 < rate <= 1.0:
        raise ValueError(f"rate: expected a number in (0, 1], got {rate!r}")
    return lambda epoch: rate ** epoch


def inverse_sigmoid_decay(k: float) -> Callable[[int], float]:
    """``k / (k + exp(epoch / k))``, rescaled to start at 1.0; larger ``k`` decays later."""
    if not k >= 1.0:
        raise ValueError(f"k: expected a number >= 1, got {k!r}")
    start = k / (k + 1.0)
    return lambda epoch: k / (k + math.exp(epoch / k)) / start


class TeacherForcingSchedule(Callback):
    """Set ``model.teacher_forcing = schedule(epoch)`` at the start of every epoch."""

    def __init__(self, schedule: Callable[[int], float]) -> None:
        super().__init__()
        if not callable(schedule):
            raise TypeError(f"schedule: expected a function epoch -> probability, "
                            f"got {type(schedule).__name__}")
        self.schedule = schedule

    def on_epoch_begin(self, epoch, logs=None):
        if not hasattr(self.model, "teacher_forcing"):
            raise TypeError(f"TeacherForcingSchedule: the model ({type(self.model).__name__}) "
                            "has no teacher_forcing attribute; use it with a Seq2Seq")
        value = float(self.schedule(epoch))
        _check_probability(value, f"schedule({epoch})")
        self.model.teacher_forcing = value


def _check_probability(value: float, name: str) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name}: expected a probability in [0, 1], got {value!r}")
