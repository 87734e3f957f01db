"""The progress display of fit/evaluate/predict, in Keras's format.

``verbose=1`` on a terminal (or in Jupyter) redraws one line per epoch with a carriage return, at
most every ``interval`` seconds::

    Epoch 3/50
    612/791 ━━━━━━━━━━━━━━━───── 1s 4ms/step - loss: 2.2403e-04

When the output is not interactive (a log file, CI), ``verbose=1`` writes only the final line of
each epoch, so logs are not flooded with redraws. ``verbose=2`` writes one summary line per epoch::

    791/791 - 3s - 4ms/step - loss: 2.2403e-04 - val_loss: 3.1e-05
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping

BAR_WIDTH = 20


def message(text: str, stream=None) -> None:
    """Write one line to the progress stream (stdout); used for callbacks' verbose notes."""
    stream = stream or sys.stdout
    stream.write(text + "\n")
    stream.flush()


def is_interactive(stream) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) or "ipykernel" in sys.modules


def format_value(value: float) -> str:
    return f"{value:.4f}" if abs(value) > 1e-3 else f"{value:.4e}"


def format_duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{int(seconds // 3600)}:{int(seconds % 3600 // 60):02d}:{int(seconds % 60):02d}"
    if seconds >= 60:
        return f"{int(seconds // 60)}:{int(seconds % 60):02d}"
    return f"{int(round(seconds))}s"


def format_per_step(seconds: float, unit: str = "step") -> str:
    if seconds >= 1:
        return f"{seconds:.0f}s/{unit}"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.0f}ms/{unit}"
    return f"{seconds * 1e6:.0f}us/{unit}"


class Progbar:
    """One progress line over ``target`` steps (``None`` when unknown)."""

    def __init__(self, target: int | None, verbose: int = 1, stream=None,
                 interval: float = 0.05) -> None:
        self.target = target
        self.verbose = verbose
        self.stream = stream or sys.stdout
        self.interval = interval
        self.dynamic = is_interactive(self.stream)
        self.start = time.perf_counter()
        self._last_draw = 0.0
        self._width = 0

    def update(self, current: int, values: Mapping | None = None, finalize: bool = False) -> None:
        """Show ``current`` steps done; ``values`` (a mapping of floats) is read only when drawn."""
        now = time.perf_counter()
        if not finalize and (not self.dynamic or self.verbose != 1
                             or now - self._last_draw < self.interval):
            return
        self._last_draw = now
        elapsed = now - self.start
        per_step = elapsed / max(current, 1)
        metrics = "".join(f" - {k}: {format_value(v)}" for k, v in (values or {}).items()
                          if isinstance(v, (int, float)))
        if self.verbose == 2:
            line = (f"{current}/{self.target or current} - {format_duration(elapsed)} - "
                    f"{format_per_step(per_step)}{metrics}")
            self.stream.write(line + "\n")
            self.stream.flush()
            return
        if finalize or self.target is None:
            timing = format_duration(elapsed)
        else:
            timing = format_duration(per_step * (self.target - current))  # the ETA
        line = f"{self._counter(current)} {self._bar(current)} {timing} {format_per_step(per_step)}"
        line += metrics
        if self.dynamic:
            padding = " " * max(self._width - len(line), 0)
            self._width = len(line)
            self.stream.write("\r" + line + padding + ("\n" if finalize else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def _counter(self, current: int) -> str:
        if self.target is None:
            return f"{current}/Unknown"
        digits = len(str(self.target))
        return f"{current:>{digits}}/{self.target}"

    def _bar(self, current: int) -> str:
        if self.target is None:
            return ""
        done = int(BAR_WIDTH * min(current, self.target) / max(self.target, 1))
        return "━" * done + "─" * (BAR_WIDTH - done)
