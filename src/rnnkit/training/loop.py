"""Keras's ``compile``/``fit``/``evaluate``/``predict`` for any model with Keras's call protocol.

``rnnkit.models.Model`` forwards its methods here. The model is called as
``model(x, training=True|False)`` with a tensor or a list of tensors and returns a tensor or a
list; it has ``stop_training``, ``get_weights()``/``set_weights()``, ``built`` and
``build_from_batch(x)``.

The training step is ``y_pred = model(x, training=True)``, the compiled loss, ``backward()``, one
optimizer step, then the metrics on the same predictions (before the update, as Keras). Data is
converted once (see :mod:`rnnkit.training.data`) and batches are slices, so at ``batch_size=1``
the per-batch cost is the model's forward and backward plus a few tensor operations.
"""

from __future__ import annotations

import numbers

import numpy as np
import torch

from rnnkit.training import checkpoint as checkpoint_module
from rnnkit.training import data as data_module
from rnnkit.training import distributed
from rnnkit.training.callbacks import CallbackList, History, ProgbarLogger
from rnnkit.training.compile_state import CompileState
from rnnkit.training.optimizers import Optimizer
from rnnkit.training.tbptt import TruncatedBPTT

_IGNORED_COMPILE_ARGS = ("run_eagerly", "steps_per_execution", "auto_scale_loss")
_JIT_COMPILE_VALUES = ("auto", True, False)


def compile_model(model, optimizer="rmsprop", loss=None, metrics=None, loss_weights=None,
                  jit_compile="auto", **kwargs) -> None:
    """Keras's ``model.compile``; also takes ``weighted_metrics``.

    ``jit_compile`` ("auto", True or False): whether ``fit`` may run its training steps compiled
    (:mod:`rnnkit.training.jit`); "auto" and True use the compiled step where it is supported,
    False always runs the torch step. ``run_eagerly``, ``steps_per_execution`` and
    ``auto_scale_loss`` are accepted for Keras compatibility and ignored.
    """
    if not any(jit_compile is value for value in _JIT_COMPILE_VALUES):
        raise ValueError(f"jit_compile: expected 'auto', True or False, got {jit_compile!r}")
    weighted_metrics = kwargs.pop("weighted_metrics", None)
    for name in _IGNORED_COMPILE_ARGS:
        kwargs.pop(name, None)
    if kwargs:
        raise TypeError(f"compile: unexpected keyword argument(s) {sorted(kwargs)}")
    state = CompileState(optimizer, loss, metrics, loss_weights, weighted_metrics)
    # object.__setattr__: a torch loss module must not become a submodule of the model.
    object.__setattr__(model, "_compile_state", state)
    object.__setattr__(model, "loss", loss)
    object.__setattr__(model, "optimizer", state.optimizer)
    object.__setattr__(model, "compiled", True)
    object.__setattr__(model, "_jit_compile", jit_compile)


def _state(model, method: str) -> CompileState:
    state = getattr(model, "_compile_state", None)
    if state is None:
        raise RuntimeError(f"{method}: call compile() first")
    return state


def metrics_names(model) -> list[str]:
    """The names of the logged values, in the order ``evaluate`` returns them."""
    return _state(model, "metrics_names").metric_names


def reset_metrics(model) -> None:
    _state(model, "reset_metrics").reset()


# -- shared helpers --------------------------------------------------------------------------------
def _as_list(value) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _float_dtype(model) -> torch.dtype:
    for param in model.parameters():
        if param.is_floating_point() and not isinstance(param, torch.nn.UninitializedParameter):
            return param.dtype
    return torch.get_default_dtype()


def _verbose(verbose) -> int:
    return 1 if verbose == "auto" else int(verbose)


def _source(model, x, y, sample_weight, batch_size, shuffle=False, class_weight=None,
            need_y=True):
    return data_module.source_from(
        x, y, sample_weight, batch_size=batch_size, shuffle=shuffle,
        float_dtype=_float_dtype(model), input_names=getattr(model, "input_names", None),
        output_names=getattr(model, "output_names", None), class_weight=class_weight,
        need_y=need_y)


def _callbacks(model, callbacks, verbose: int, **params) -> CallbackList:
    callbacks = list(callbacks or [])
    if verbose and not any(isinstance(c, ProgbarLogger) for c in callbacks):
        callbacks.append(ProgbarLogger(verbose))
    return CallbackList(callbacks, model, {"verbose": verbose, **params})


def _build(model, optimizer, x) -> None:
    """Create lazy weights from the first batch, then the optimizer's parameter groups."""
    if not getattr(model, "built", True):
        model.build_from_batch(x)
    if isinstance(optimizer, Optimizer) and not optimizer.built:
        optimizer.build(model.parameters())


def _forward_loss(model, state: CompileState, x, y, sample_weight, training: bool,
                  call=None):
    """Forward one batch and compute its loss: ``(loss, per-output losses, y_true, y_pred)``.

    The compiled losses and metrics are resolved on the first batch, as Keras does. ``call``
    runs the forward pass in place of ``model`` (its DistributedDataParallel wrapper).
    """
    y_pred = _as_list((model if call is None else call)(x, training=training))
    y_true = _as_list(y)
    if not state.built:
        if y is None:
            raise ValueError("y: fit() and evaluate() need targets; the data gave none")
        state.build(y_true, y_pred, getattr(model, "output_names", None))
    loss, per_output = state.compute_loss(y_true, y_pred, sample_weight)
    return loss, per_output, y_true, y_pred


def _batch_size(x) -> int:
    return data_module.flatten(x)[0].shape[0]


# -- training --------------------------------------------------------------------------------------
class _Trainer:
    """One compiled model's training step (plain, or chunked for truncated BPTT)."""

    def __init__(self, model, state: CompileState, tbptt_steps: int | None,
                 cluster: distributed.Local = distributed.LOCAL) -> None:
        self.model = model
        self.state = state
        self.cluster = cluster
        self.tbptt = None if tbptt_steps is None else TruncatedBPTT(model, tbptt_steps)
        self.prepared = False

    def prepare(self, x) -> None:
        """Build the model and optimizer from the first batch; pick the update call."""
        optimizer = self.state.optimizer
        _build(self.model, optimizer, x)
        self.forward = self.cluster.wrap(self.model)  # DDP when data-parallel
        self.params = [p for group in optimizer.param_groups for p in group["params"]]
        self.update = (optimizer.apply_update if isinstance(optimizer, Optimizer)
                       else optimizer.step)
        self.prepared = True

    def resolve(self, x, y, sample_weight) -> None:
        """Resolve the compiled losses and metrics on one batch's predictions, without training
        (what the first training step does on the way)."""
        with torch.no_grad():
            _forward_loss(self.model, self.state, x, y, sample_weight, training=False)

    def step(self, x, y, sample_weight) -> None:
        if not self.prepared:
            self.prepare(x)
        if self.tbptt is not None:
            self.tbptt.run_batch(x, y, sample_weight, self.step_on)
        else:
            self.step_on(x, y, sample_weight, _batch_size(x))

    def step_on(self, x, y, sample_weight, weight: float) -> None:
        """Forward, loss, backward, update; then metrics on the same predictions."""
        loss, per_output, y_true, y_pred = _forward_loss(self.model, self.state, x, y,
                                                         sample_weight, training=True,
                                                         call=self.forward)
        for param in self.params:
            param.grad = None
        loss.backward()
        self.update()
        self.state.update(y_true, y_pred, sample_weight, loss, per_output, weight)


def _trainer(model, state: CompileState, tbptt_steps: int | None, cluster):
    """The torch trainer, inside a compiled one unless ``jit_compile=False``, truncated BPTT or
    data-parallel training rule the compiled step out."""
    trainer = _Trainer(model, state, tbptt_steps, cluster)
    if (getattr(model, "_jit_compile", "auto") is False or tbptt_steps is not None
            or cluster is not distributed.LOCAL):
        return trainer
    from rnnkit.training import jit  # numba is imported on the first fit that may need it

    return jit.CompiledTrainer(trainer)


def fit(model, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
        validation_split=0.0, validation_data=None, shuffle=True, class_weight=None,
        sample_weight=None, initial_epoch=0, steps_per_epoch=None, validation_steps=None,
        validation_batch_size=None, validation_freq=1, tbptt_steps=None, checkpoint_dir=None,
        resume=False) -> History:
    """Keras's ``model.fit``; returns the :class:`History`. See docs/training.md.

    ``checkpoint_dir``, ``resume``: a checkpoint per epoch and resuming from it; see
    docs/checkpoints.md.
    """
    state = _state(model, "fit")
    cluster = distributed.current()
    verbose = _verbose(verbose)
    for name, value in (("epochs", epochs), ("initial_epoch", initial_epoch)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
            raise TypeError(f"{name}: expected a non-negative int, got {value!r}")
    train = _source(model, x, y, sample_weight, batch_size, bool(shuffle), class_weight)
    if getattr(train, "size", None) == 0:
        raise ValueError("x: expected at least one sample to train on, got 0")
    validation = None
    if validation_data is not None:
        validation = _validation_data_source(model, validation_data,
                                             validation_batch_size or batch_size)
    elif validation_split:
        train, validation = _split(train, validation_split)
    train, validation, callbacks, verbose = cluster.adapt(train, validation, callbacks, verbose)
    stream = data_module.BatchStream(train, steps_per_epoch)
    history = History()
    callback_list = _callbacks(model, [*(callbacks or []), history], verbose, epochs=epochs,
                               steps=len(stream))
    trainer = _trainer(model, state, tbptt_steps, cluster)
    checkpoints = checkpoint_module.open_for_fit(
        checkpoint_dir, resume, model=model, optimizer=state.optimizer, build=trainer.prepare,
        stream=stream, callbacks=callback_list.callbacks)
    was_training = model.training
    model.stop_training = False
    callback_list.on_train_begin()
    logs = {}
    if checkpoints is not None:
        initial_epoch = checkpoints.restore(initial_epoch, epochs)
    for epoch in range(initial_epoch, epochs):
        state.reset()
        cluster.set_epoch(train, epoch)
        callback_list.on_epoch_begin(epoch)
        _train_epoch(model, trainer, stream, callback_list)
        cluster.sync(state)
        logs = state.results()
        if validation is not None and _validates(epoch, validation_freq):
            validation_stream = data_module.BatchStream(validation, validation_steps)
            val_logs = _test_loop(model, state, validation_stream, callback_list, cluster)
            logs.update({f"val_{name}": value for name, value in val_logs.items()})
        callback_list.on_epoch_end(epoch, logs)
        stopping = cluster.stopping(model)  # the same on every rank
        if checkpoints is not None and cluster.is_main:  # rank 0 writes, every rank reads
            checkpoints.save(epoch, stopped=stopping)
        if stopping:
            break
    if checkpoints is not None:
        cluster.barrier()  # so that every rank returns once rank 0's last checkpoint is written
    model.train(was_training)
    callback_list.on_train_end(logs)
    model.history = history
    return history


def _train_epoch(model, trainer, stream, callback_list: CallbackList) -> None:
    state = trainer.state
    report = callback_list.wants("on_train_batch_end")
    model.train()
    for step, (x_batch, y_batch, weight_batch) in enumerate(stream.epoch()):
        callback_list.batch("on_train_batch_begin", step)
        trainer.step(x_batch, y_batch, weight_batch)
        if report:
            callback_list.batch("on_train_batch_end", step, state.lazy_results())
        if trainer.cluster.stopping(model, batch=True):
            break


def _validation_data_source(model, validation_data, batch_size):
    if data_module.as_loader(validation_data, batch_size or 32, False) is not None:
        return _source(model, validation_data, None, None, batch_size)
    if not isinstance(validation_data, (list, tuple)) or len(validation_data) not in (2, 3):
        raise ValueError("validation_data: expected (x_val, y_val), "
                         "(x_val, y_val, sample_weight_val) or a Dataset/DataLoader")
    x_val, y_val, *weights = validation_data
    return _source(model, x_val, y_val, weights[0] if weights else None, batch_size)


def _split(train, validation_split: float):
    if not 0 < validation_split < 1:
        raise ValueError(f"validation_split: expected a float in (0, 1), got {validation_split}")
    if not isinstance(train, data_module.ArraySource):
        raise ValueError("validation_split: only supported for arrays; give validation_data "
                         "for a Dataset or DataLoader")
    return train.split(validation_split)


def _validates(epoch: int, validation_freq) -> bool:
    if isinstance(validation_freq, int):
        return (epoch + 1) % validation_freq == 0
    return epoch + 1 in validation_freq


# -- evaluation and prediction ---------------------------------------------------------------------
def _test_batch(model, state: CompileState, x, y, sample_weight) -> None:
    loss, per_output, y_true, y_pred = _forward_loss(model, state, x, y, sample_weight,
                                                     training=False)
    state.update(y_true, y_pred, sample_weight, loss, per_output, _batch_size(x))


def _test_loop(model, state: CompileState, stream, callback_list,
               cluster: distributed.Local = distributed.LOCAL) -> dict[str, float]:
    state.reset()
    was_training = model.training
    model.eval()
    callback_list.on_test_begin()
    report = callback_list.wants("on_test_batch_end")
    with torch.no_grad():
        for step, (x_batch, y_batch, weight_batch) in enumerate(stream.epoch()):
            callback_list.batch("on_test_batch_begin", step)
            _test_batch(model, state, x_batch, y_batch, weight_batch)
            if report:
                callback_list.batch("on_test_batch_end", step, state.lazy_results())
    cluster.sync(state)
    logs = state.results()
    callback_list.on_test_end(logs)
    model.train(was_training)
    return logs


def evaluate(model, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None,
             steps=None, callbacks=None, return_dict=False):
    """Keras's ``model.evaluate``: the loss, or ``[loss, *metrics]``, or a dict."""
    state = _state(model, "evaluate")
    verbose = _verbose(verbose)
    stream = data_module.BatchStream(_source(model, x, y, sample_weight, batch_size), steps)
    callback_list = _callbacks(model, callbacks, verbose, steps=len(stream))
    logs = _test_loop(model, state, stream, callback_list)
    return logs if return_dict else _flat(logs, state.metric_names)


def _flat(logs: dict, names: list[str]):
    values = [logs[name] for name in names if name in logs]
    values += [logs[name] for name in sorted(logs) if name not in names]
    return values[0] if len(values) == 1 else values


def predict(model, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
    """Keras's ``model.predict``: batched, in eval mode, without gradients; NumPy out."""
    verbose = _verbose(verbose)
    source = _source(model, x, None, None, batch_size, need_y=False)
    stream = data_module.BatchStream(source, steps)
    callback_list = _callbacks(model, callbacks, verbose, steps=len(stream))
    was_training = model.training
    model.eval()
    outputs: list[list[torch.Tensor]] = []
    callback_list.on_predict_begin()
    with torch.no_grad():
        for step, (x_batch, _, _) in enumerate(stream.epoch()):
            callback_list.batch("on_predict_batch_begin", step)
            outputs.append(_as_list(model(x_batch, training=False)))
            callback_list.batch("on_predict_batch_end", step, {"outputs": outputs[-1]})
    callback_list.on_predict_end()
    model.train(was_training)
    if not outputs:
        raise ValueError("x: predict() received no samples")
    merged = [torch.cat(parts).cpu().numpy() for parts in zip(*outputs)]
    return merged[0] if len(merged) == 1 else merged


# -- single batches --------------------------------------------------------------------------------
def _one_batch(model, x, y, sample_weight, class_weight=None):
    source = _source(model, x, y, sample_weight, batch_size=None, class_weight=class_weight,
                     need_y=y is not None)
    if not isinstance(source, data_module.ArraySource):
        raise TypeError("x: the *_on_batch methods take arrays, not a Dataset or DataLoader")
    return source.data


def train_on_batch(model, x, y=None, sample_weight=None, class_weight=None, return_dict=False):
    """One update on one batch; returns the running logs like Keras 3 (not reset per call)."""
    state = _state(model, "train_on_batch")
    x, y, sample_weight = _one_batch(model, x, y, sample_weight, class_weight)
    model.train()
    _Trainer(model, state, None).step(x, y, sample_weight)
    logs = state.results()
    return logs if return_dict else _flat(logs, state.metric_names)


def test_on_batch(model, x, y=None, sample_weight=None, return_dict=False):
    """The loss and metrics on one batch (accumulating like Keras 3), without updating weights."""
    state = _state(model, "test_on_batch")
    x, y, sample_weight = _one_batch(model, x, y, sample_weight)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        _test_batch(model, state, x, y, sample_weight)
    model.train(was_training)
    logs = state.results()
    return logs if return_dict else _flat(logs, state.metric_names)


def predict_on_batch(model, x) -> np.ndarray | list[np.ndarray]:
    """The model's output on one batch, as NumPy, in eval mode without gradients."""
    x, _, _ = _one_batch(model, x, None, None)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        outputs = [t.cpu().numpy() for t in _as_list(model(x, training=False))]
    model.train(was_training)
    return outputs[0] if len(outputs) == 1 else outputs
