"""Keras's callback protocol, ``CallbackList`` and the simple callbacks.

A callback sees ``set_model``/``set_params`` and then the hooks
``on_{train,test,predict}_{begin,end}``, ``on_epoch_{begin,end}(epoch, logs)`` and
``on_{train,test,predict}_batch_{begin,end}(batch, logs)``.
Epoch ``logs`` hold Python floats (``loss``, metrics, ``val_*``). Batch ``logs`` hold the running
values since the epoch began and are computed only when a callback reads them, so callbacks that
ignore batches cost nothing per batch. Setting ``model.stop_training = True`` ends ``fit`` after
the current batch.

A callback whose progress changes the outcome of training may define ``get_state() -> dict``
(JSON values, tensors and NumPy arrays) and ``set_state(state)``: ``fit(checkpoint_dir=...)``
stores that state in each checkpoint and gives it back on resume (see
:mod:`rnnkit.training.checkpoint`).

The monitoring callbacks (EarlyStopping, ModelCheckpoint, ReduceLROnPlateau) are in
:mod:`rnnkit.training.monitor`; the progress line's format is :mod:`rnnkit.training.progress`.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Callable, Iterable, Mapping

from rnnkit.training.progress import Progbar, message

_BATCH_HOOKS = tuple(f"on_{mode}_batch_{when}" for mode in ("train", "test", "predict")
                     for when in ("begin", "end"))


class Callback:
    """Base class; every hook does nothing. ``self.model`` and ``self.params`` are set by fit."""

    def __init__(self) -> None:
        self.model = None
        self.params: dict = {}

    def set_model(self, model) -> None:
        self.model = model

    def set_params(self, params: dict) -> None:
        self.params = params

    def on_train_begin(self, logs=None): ...
    def on_train_end(self, logs=None): ...
    def on_epoch_begin(self, epoch, logs=None): ...
    def on_epoch_end(self, epoch, logs=None): ...
    def on_test_begin(self, logs=None): ...
    def on_test_end(self, logs=None): ...
    def on_predict_begin(self, logs=None): ...
    def on_predict_end(self, logs=None): ...
    def on_batch_begin(self, batch, logs=None): ...
    def on_batch_end(self, batch, logs=None): ...

    def on_train_batch_begin(self, batch, logs=None):
        self.on_batch_begin(batch, logs=logs)  # Keras's alias for the training batches

    def on_train_batch_end(self, batch, logs=None):
        self.on_batch_end(batch, logs=logs)

    def on_test_batch_begin(self, batch, logs=None): ...
    def on_test_batch_end(self, batch, logs=None): ...
    def on_predict_batch_begin(self, batch, logs=None): ...
    def on_predict_batch_end(self, batch, logs=None): ...


_ALIASES = {"on_train_batch_begin": "on_batch_begin", "on_train_batch_end": "on_batch_end"}


def _overrides(callback: Callback, hook: str) -> bool:
    """Whether ``callback`` does something in ``hook`` (itself or through Keras's alias)."""
    names = (hook, _ALIASES[hook]) if hook in _ALIASES else (hook,)
    return any(name in vars(callback)
               or getattr(type(callback), name) is not getattr(Callback, name) for name in names)


class CallbackList:
    """Calls each hook on every callback; batch hooks only on callbacks that define them."""

    def __init__(self, callbacks: Iterable[Callback] | None, model, params: dict) -> None:
        self.callbacks = list(callbacks or [])
        for callback in self.callbacks:
            if not isinstance(callback, Callback):
                raise TypeError(f"callbacks: expected Callback objects, got "
                                f"{type(callback).__name__}")
            callback.set_model(model)
            callback.set_params(params)
        self._batch_listeners = {hook: [c for c in self.callbacks if _overrides(c, hook)]
                                 for hook in _BATCH_HOOKS}

    def wants(self, hook: str) -> bool:
        """Whether any callback listens to the batch hook ``hook``."""
        return bool(self._batch_listeners[hook])

    def batch(self, hook: str, batch: int, logs: Mapping | None = None) -> None:
        for callback in self._batch_listeners[hook]:
            getattr(callback, hook)(batch, logs)

    def __getattr__(self, hook: str) -> Callable:
        if not hook.startswith("on_"):
            raise AttributeError(hook)

        def call_all(*args, **kwargs):
            for callback in self.callbacks:
                getattr(callback, hook)(*args, **kwargs)
        return call_all


class History(Callback):
    """Records epoch logs: ``history.history["loss"]`` is the list of epoch losses.

    ``history.epoch`` lists the epoch indices, ``history.params`` fit's settings, and
    ``history.model`` the model; ``fit`` returns this object and also sets ``model.history``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.history: dict[str, list] = {}
        self.epoch: list[int] = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)

    def get_state(self) -> dict:
        return {"history": self.history, "epoch": self.epoch}

    def set_state(self, state: dict) -> None:
        self.history = {key: list(values) for key, values in state["history"].items()}
        self.epoch = list(state["epoch"])


class LambdaCallback(Callback):
    """A callback from functions: ``LambdaCallback(on_epoch_end=lambda epoch, logs: ...)``.

    Accepts every hook name as a keyword (and Keras's ``on_batch_begin``/``on_batch_end``).
    """

    def __init__(self, **hooks: Callable | None) -> None:
        super().__init__()
        for name, function in hooks.items():
            if not name.startswith("on_") or not hasattr(Callback, name):
                raise TypeError(f"LambdaCallback: unknown hook {name!r}")
            if function is not None:
                setattr(self, name, function)


class TerminateOnNaN(Callback):
    """Stops training when a batch's running loss becomes NaN or infinite."""

    def __init__(self, raise_error: bool = False) -> None:
        super().__init__()
        self.raise_error = raise_error

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            if self.raise_error:
                raise RuntimeError(f"NaN or Inf loss encountered at batch {batch}: {loss}")
            message(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True


class CSVLogger(Callback):
    """Writes one CSV row per epoch: ``epoch`` then the sorted log keys (Keras's format)."""

    def __init__(self, filename: str | os.PathLike, separator: str = ",",
                 append: bool = False) -> None:
        super().__init__()
        self.filename = os.fspath(filename)
        self.separator = separator
        self.append = append
        self._file = None
        self._writer = None
        self._write_header = True
        self._keys: list[str] | None = None

    def on_train_begin(self, logs=None):
        write_header = True
        if self.append and os.path.exists(self.filename):
            with open(self.filename) as existing:
                write_header = not existing.readline()
        self._file = open(self.filename, "a" if self.append else "w", newline="")  # noqa: SIM115
        self._write_header = write_header
        self._writer = None
        self._keys = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self._keys is None:
            self._keys = sorted(logs)
            if self._keys and not any(k.startswith("val_") for k in self._keys):
                self._keys += [f"val_{k}" for k in self._keys]  # columns for later validation
        if self._writer is None:
            self._writer = csv.DictWriter(self._file, fieldnames=["epoch", *self._keys],
                                          delimiter=self.separator)
            if self._write_header:
                self._writer.writeheader()
        self._writer.writerow({"epoch": epoch, **{k: logs.get(k, "NA") for k in self._keys}})
        self._file.flush()

    def on_train_end(self, logs=None):
        if self._file is not None:
            self._file.close()
        self._file = None


class LearningRateScheduler(Callback):
    """Sets the learning rate to ``schedule(epoch, lr)`` (or ``schedule(epoch)``) per epoch.

    Adds ``learning_rate`` to the epoch logs, as Keras does.
    """

    def __init__(self, schedule: Callable, verbose: int = 0) -> None:
        super().__init__()
        self.schedule = schedule
        self.verbose = verbose

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = self.model.optimizer
        current = float(optimizer.learning_rate)
        try:
            new_lr = self.schedule(epoch, current)
        except TypeError:  # a one-argument schedule, as Keras allows
            new_lr = self.schedule(epoch)
        try:
            new_lr = float(new_lr)
        except (TypeError, ValueError):
            raise ValueError(f"schedule: expected a float learning rate, got {new_lr!r}") from None
        optimizer.learning_rate = new_lr
        if self.verbose > 0:
            message(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to "
                    f"{new_lr}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(self.model.optimizer.learning_rate)


class ProgbarLogger(Callback):
    """Shows a :class:`Progbar` for each epoch of fit, and for evaluate and predict run alone.

    During fit, validation is not drawn separately: its ``val_*`` values join the epoch's line.
    """

    def __init__(self, verbose: int = 1, stream=None) -> None:
        super().__init__()
        self.verbose = verbose
        self.stream = stream
        self.progbar: Progbar | None = None
        self._in_fit = False
        self._seen = 0

    def _start(self, steps: int | None) -> None:
        self.progbar = Progbar(steps, self.verbose, self.stream)
        self._seen = 0

    def on_train_begin(self, logs=None):
        self._in_fit = True

    def on_train_end(self, logs=None):
        self._in_fit = False

    def on_epoch_begin(self, epoch, logs=None):
        epochs = self.params.get("epochs")
        message(f"Epoch {epoch + 1}/{epochs}", self.stream)
        self._start(self.params.get("steps"))

    def on_train_batch_end(self, batch, logs=None):
        self._seen = batch + 1
        self.progbar.update(self._seen, logs)

    def on_epoch_end(self, epoch, logs=None):
        self.progbar.update(self._seen, logs, finalize=True)

    def on_test_begin(self, logs=None):
        if not self._in_fit:
            self._start(self.params.get("steps"))

    def on_test_batch_end(self, batch, logs=None):
        if not self._in_fit:
            self._seen = batch + 1
            self.progbar.update(self._seen, logs)

    def on_test_end(self, logs=None):
        if not self._in_fit:
            self.progbar.update(self._seen, logs, finalize=True)

    def on_predict_begin(self, logs=None):
        self._start(self.params.get("steps"))

    def on_predict_batch_end(self, batch, logs=None):
        self._seen = batch + 1
        self.progbar.update(self._seen)

    def on_predict_end(self, logs=None):
        self.progbar.update(self._seen, finalize=True)
