"""Callbacks that watch one logged quantity: EarlyStopping, ReduceLROnPlateau, ModelCheckpoint.

They share Keras's rule for an improvement: in "min" mode ``current < best - min_delta``, in "max"
mode ``current > best + min_delta``; "auto" picks "min" for losses and errors and "max" for
accuracies and AUC (from the metric's ``direction``, or its name when the metric is not compiled).
"""

from __future__ import annotations

import os
import warnings

from rnnkit.training.callbacks import Callback
from rnnkit.training.progress import message

_MAXIMIZED_NAMES = ("acc", "auc", "precision", "recall", "fmeasure", "f1")


class MonitorCallback(Callback):
    """Base of the monitoring callbacks: ``mode`` resolution and ``is_improvement``.

    ``get_state``/``set_state`` carry the attributes named in ``state_names`` through a
    checkpoint (:mod:`rnnkit.training.checkpoint`).
    """

    state_names: tuple[str, ...] = ()

    def __init__(self, monitor: str = "val_loss", mode: str = "auto",
                 min_delta: float = 0.0) -> None:
        super().__init__()
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"mode: expected 'auto', 'min' or 'max', got {mode!r}")
        self.monitor = monitor
        self.mode = mode
        self.min_delta = abs(min_delta)
        self._maximize: bool | None = None

    def _resolve_mode(self) -> bool:
        """True when larger values of the monitored quantity are better."""
        if self.mode != "auto":
            return self.mode == "max"
        name = self.monitor.removeprefix("val_")
        if name == "loss" or name.endswith("_loss"):
            return False
        state = getattr(self.model, "_compile_state", None)
        direction = state.metric_direction(name) if state is not None else None
        if direction is not None:
            return direction == "up"
        if any(part in name for part in _MAXIMIZED_NAMES):
            return True
        if "error" in name or "loss" in name:
            return False
        raise ValueError(f"monitor: cannot tell whether {self.monitor!r} should be minimized or "
                         "maximized; pass mode='min' or mode='max'")

    def is_improvement(self, current: float, reference: float | None) -> bool:
        if reference is None:
            return True
        if self._maximize is None:
            self._maximize = self._resolve_mode()
        if self._maximize:
            return current - self.min_delta > reference
        return current + self.min_delta < reference

    def get_state(self) -> dict:
        return {name: getattr(self, name) for name in self.state_names}

    def set_state(self, state: dict) -> None:
        for name in self.state_names:
            setattr(self, name, state[name])

    def monitored_value(self, logs, who: str) -> float | None:
        value = (logs or {}).get(self.monitor)
        if value is None:
            warnings.warn(f"{who} is conditioned on {self.monitor!r}, which is not in the logs; "
                          f"available: {', '.join(logs or {})}", stacklevel=3)
        return value


class EarlyStopping(MonitorCallback):
    """Stop when ``monitor`` has not improved for ``patience`` epochs (Keras's semantics).

    ``baseline``: training stops after ``patience`` epochs unless the value beats it.
    ``restore_best_weights``: at the end of training, the weights of the best epoch are put back
    (also when training ran to the end). ``start_from_epoch``: epochs before it are not watched.
    """

    state_names = ("wait", "stopped_epoch", "best", "best_weights", "best_epoch")

    def __init__(self, monitor: str = "val_loss", min_delta: float = 0.0, patience: int = 0,
                 verbose: int = 0, mode: str = "auto", baseline: float | None = None,
                 restore_best_weights: bool = False, start_from_epoch: int = 0) -> None:
        super().__init__(monitor, mode, min_delta)
        self.patience = patience
        self.verbose = verbose
        self.baseline = baseline
        self.restore_best_weights = restore_best_weights
        self.start_from_epoch = start_from_epoch

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.stopped_epoch = 0
        self.best = None
        self.best_weights = None
        self.best_epoch = 0

    def on_epoch_end(self, epoch, logs=None):
        current = self.monitored_value(logs, "EarlyStopping")
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()  # the first watched epoch is the best yet
            self.best_epoch = epoch
        self.wait += 1
        if self.is_improvement(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self.is_improvement(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            message(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                message("Restoring model weights from the end of the best epoch: "
                        f"{self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)


class ReduceLROnPlateau(MonitorCallback):
    """Multiply the learning rate by ``factor`` after ``patience`` epochs without improvement.

    Then waits ``cooldown`` epochs before counting again; never goes below ``min_lr``. Adds
    ``learning_rate`` to the epoch logs. The learning rate itself is part of the optimizer's
    state, so a checkpoint holds it there.
    """

    state_names = ("best", "wait", "cooldown_counter")

    def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 10,
                 verbose: int = 0, mode: str = "auto", min_delta: float = 1e-4,
                 cooldown: int = 0, min_lr: float = 0.0) -> None:
        if factor >= 1.0:
            raise ValueError(f"factor: expected a value below 1.0, got {factor}")
        super().__init__(monitor, mode, min_delta)
        self.factor = factor
        self.patience = patience
        self.verbose = verbose
        self.cooldown = cooldown
        self.min_lr = min_lr

    def on_train_begin(self, logs=None):
        self.best = None
        self.wait = 0
        self.cooldown_counter = 0

    def on_epoch_end(self, epoch, logs=None):
        optimizer = self.model.optimizer
        if logs is not None:
            logs["learning_rate"] = float(optimizer.learning_rate)
        current = self.monitored_value(logs, "ReduceLROnPlateau")
        if current is None:
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self.is_improvement(current, self.best):
            self.best = current
            self.wait = 0
        elif self.cooldown_counter == 0:
            self.wait += 1
            if self.wait >= self.patience and self._reduce(optimizer, epoch):
                self.cooldown_counter = self.cooldown
                self.wait = 0

    def _reduce(self, optimizer, epoch: int) -> bool:
        old_lr = float(optimizer.learning_rate)
        if old_lr <= self.min_lr:
            return False
        new_lr = max(old_lr * self.factor, self.min_lr)
        optimizer.learning_rate = new_lr
        if self.verbose > 0:
            message(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new_lr}.")
        return True


class ModelCheckpoint(MonitorCallback):
    """Save the model (``model.save``) or its weights (``model.save_weights``) after each epoch.

    ``filepath`` may hold format fields from the epoch (1-based) and the logs, e.g.
    ``"ckpt-{epoch:02d}-{val_loss:.4f}.weights.h5"``. With ``save_best_only`` a save happens only
    when ``monitor`` improves.
    """

    state_names = ("best",)

    def __init__(self, filepath: str | os.PathLike, monitor: str = "val_loss", verbose: int = 0,
                 save_best_only: bool = False, save_weights_only: bool = False,
                 mode: str = "auto", initial_value_threshold: float | None = None) -> None:
        super().__init__(monitor, mode)
        self.filepath = os.fspath(filepath)
        self.verbose = verbose
        self.save_best_only = save_best_only
        self.save_weights_only = save_weights_only
        self.best = initial_value_threshold

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        try:
            path = self.filepath.format(epoch=epoch + 1, **logs)
        except KeyError as error:
            raise KeyError(f"filepath: cannot fill {self.filepath!r} from the logs "
                           f"(missing {error}); available: {', '.join(logs)}") from None
        if self.save_best_only:
            current = self.monitored_value(logs, "ModelCheckpoint")
            if current is not None:
                if not self.is_improvement(current, self.best):
                    if self.verbose > 0:
                        message(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from "
                                f"{self.best:.5f}")
                    return
                if self.verbose > 0:
                    previous = "None" if self.best is None else f"{self.best:.5f}"
                    message(f"\nEpoch {epoch + 1}: {self.monitor} improved from {previous} to "
                            f"{current:.5f}, saving model to {path}")
                self.best = current
        directory = os.path.dirname(path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)
        if self.verbose > 0 and not self.save_best_only:
            message(f"\nEpoch {epoch + 1}: saving model to {path}")
