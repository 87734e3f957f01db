"""The compiled training step: which models it takes, and the per-batch run.

:class:`CompiledTrainer` has the torch trainer's interface (``prepare``, ``step``, ``state``,
``cluster``) and holds one. Each batch goes to the compiled :class:`Program` when the model, the
compile settings and the batch all have a compiled version, and to the torch trainer otherwise;
both update the same parameters and optimizer state, so they can take turns at any batch. The
program is planned on the first batch, once the compiled losses are resolved (from a forward
pass without gradients when the model's layers all have compiled steps).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn.modules import module as torch_module

from rnnkit.cells import CELL_CLASSES
from rnnkit.kernels._common import blas_available, blas_threads, codes_of
from rnnkit.kernels.dispatch import fused_runner
from rnnkit.training import losses
from rnnkit.training import metrics as metrics_module
from rnnkit.training.jit import small_lstm, updates
from rnnkit.training.jit.layers import (
    DENSE_ACTIVATIONS,
    LOSS_KINDS,
    DenseStep,
    RecurrentStep,
    regression_loss,
)
from rnnkit.training.jit.small_lstm import SmallLSTMStep

# Writes through NumPy views do not count as in-place changes for torch: the compiled step bumps
# the parameters' version counters itself, so that whatever checks them (autograd's saved-tensor
# check, caches keyed on the version) sees each update. Without the call there is no compiled step.
_set_versions = getattr(torch._C._autograd, "_unsafe_set_version_counter", None)

_METRIC_KINDS = {metrics_module.MeanSquaredError: 0, metrics_module.MeanAbsoluteError: 1}
_REDUCTIONS = ("sum_over_batch_size", "mean", "mean_with_sample_weight")  # alike unweighted
_FLOAT_TYPES = {torch.float32: np.float32, torch.float64: np.float64}


class CompiledTrainer:
    """Runs each batch as a compiled :class:`Program` when it can, else on ``torch_trainer``."""

    def __init__(self, torch_trainer) -> None:
        self.torch_trainer = torch_trainer
        self.model, self.state = torch_trainer.model, torch_trainer.state
        self.cluster = torch_trainer.cluster
        self.program: Program | None = None
        self.planned = False

    def prepare(self, x) -> None:
        self.torch_trainer.prepare(x)

    def step(self, x, y, sample_weight) -> None:
        if not self.torch_trainer.prepared:
            self.torch_trainer.prepare(x)
        program = self._program(x, y, sample_weight)
        if program is not None and sample_weight is None:
            arrays = program.batch_arrays(x, y)
            if arrays is not None:
                program.run(*arrays)
                return
        self.torch_trainer.step(x, y, sample_weight)

    def _program(self, x, y, sample_weight) -> Program | None:
        """The model's program, planned on the first batch; ``None`` if it has none."""
        if not self.planned:
            self.planned = True
            if not self.state.built:
                if _layer_steps(self.model) is None:
                    return None  # the torch step resolves the losses, and trains
                self.torch_trainer.resolve(x, y, sample_weight)
            self.program = plan(self.model, self.state)
        program = self.program
        if program is not None and not program.bound_to(self.state.optimizer):
            program.bind()
        return program


def plan(model, state) -> Program | None:
    """A :class:`Program` for ``model`` under ``state``, or ``None`` when something in them has
    no compiled version (the torch path then runs every batch)."""
    optimizer = state.optimizer
    rule = updates.rule_for(optimizer)
    if rule is None or _set_versions is None:
        return None
    loss_kind = _loss_kind(state)
    metric_kinds = _metric_kinds(state)
    steps = _layer_steps(model)
    if loss_kind is None or metric_kinds is None or steps is None or _shapes(steps) is None:
        return None
    params = [p for step in steps for p in step.params]
    group_params = optimizer.param_groups[0]["params"]
    dtype = params[0].dtype
    if (len(params) != len(group_params) or {id(p) for p in params} != {id(p) for p in group_params}
            or len({id(p) for p in model.parameters()}) != len(params)):
        return None  # a frozen weight, or an optimizer holding other tensors
    if dtype not in _FLOAT_TYPES or not all(
            p.dtype == dtype and p.device.type == "cpu" and p.is_contiguous() and p.requires_grad
            for p in params):
        return None
    return Program(steps, state, rule, loss_kind, metric_kinds)


def _has_hooks(model) -> bool:
    """Module or parameter hooks would not run in the compiled step: leave them to torch."""
    if any((torch_module._global_forward_hooks, torch_module._global_forward_pre_hooks,
            torch_module._global_backward_hooks, torch_module._global_backward_pre_hooks)):
        return True
    for module in model.modules():
        if (module._forward_hooks or module._forward_pre_hooks or module._backward_hooks
                or module._backward_pre_hooks):
            return True
    return any(p._backward_hooks or getattr(p, "_post_accumulate_grad_hooks", None)
               for p in model.parameters())


def _loss_kind(state) -> int | None:
    """The compiled loss for the one output's loss (mse or mae, unweighted), else ``None``."""
    if len(state.losses) != 1 or state.loss_weights != [1.0] or state.output_trackers:
        return None
    loss = state.losses[0]
    if loss is None or getattr(loss, "fn_kwargs", None) or loss.reduction not in _REDUCTIONS:
        return None
    if (type(loss).__call__ is not losses.Loss.__call__
            or type(loss).call is not losses.LossFunctionWrapper.call):
        return None
    return LOSS_KINDS.get(loss.fn)


def _metric_kinds(state) -> list | None:
    """``(metric, kind)`` for each compiled metric (mse, mae), or ``None`` if one has none."""
    kinds = []
    for _, metric, weighted in state.metrics:
        kind = _METRIC_KINDS.get(type(metric))
        if weighted or kind is None or metric.fn_kwargs:
            return None
        kinds.append((metric, kind))
    return kinds


def _layer_steps(model) -> list | None:
    """One step per layer of a Sequential model when every layer has one, else ``None``."""
    from rnnkit.layers import GRU, LSTM, Dense, SimpleRNN
    from rnnkit.models.sequential import Sequential

    if (not isinstance(model, Sequential) or type(model).call is not Sequential.call
            or type(model).forward is not Sequential.forward or _has_hooks(model)):
        return None
    if not all(p.device.type == "cpu" and p.dtype in _FLOAT_TYPES for p in model.parameters()):
        return None  # the steps below take NumPy views of the weights
    steps = []
    for layer in model.layers:
        if type(layer) is Dense and layer.activation in DENSE_ACTIVATIONS:
            steps.append(DenseStep(layer))
        elif type(layer) in (LSTM, GRU, SimpleRNN) and _fused_layer(layer):
            step = RecurrentStep(layer)
            steps.append(SmallLSTMStep(layer, step) if type(layer) is LSTM
                         and small_lstm.supports(layer) else step)
        else:
            return None
    return steps or None


def _fused_layer(layer) -> bool:
    """A recurrent layer that the torch path would run through a fused kernel, without masks,
    dropout, reversal, returned or carried states."""
    cell = layer.cell
    if (type(cell) is not CELL_CLASSES.get(cell.family) or not cell.built
            or layer.backend == "reference" or layer.stateful or layer.go_backwards
            or layer.return_state or cell.dropout or cell.recurrent_dropout
            or codes_of(cell.spec) is None or not blas_available()):
        return False
    dtype = cell.weight_ih.dtype
    return fused_runner(cell, torch.empty((1, 1, cell.input_size), dtype=dtype)) is not None


class Program:
    """The compiled step of one planned model: layers forward, loss, layers backward, update.

    ``batch_arrays`` checks a batch (its arrays reach compiled code that does not check bounds);
    ``run`` trains on it and adds its loss and metrics to the compiled state's trackers.
    """

    def __init__(self, steps: list, state, rule: type[updates.Update], loss_kind: int,
                 metric_kinds: list) -> None:
        self.steps, self.state, self.rule = steps, state, rule
        self.loss_kind, self.metric_kinds = loss_kind, metric_kinds
        self.params = [p for step in steps for p in step.params]
        self.param_tuple = tuple(self.params)
        self.dtype = _FLOAT_TYPES[self.params[0].dtype]
        self.torch_dtype = self.params[0].dtype
        self.input_width, self.sequence_output, self.output_width = _shapes(steps)
        self._threads: dict[int, int] = {}  # BLAS threads by batch size
        self._d_prediction = np.empty((0, self.output_width), self.dtype)
        self.optimizer = None
        self.bind()

    # -- optimizer state -------------------------------------------------------------------
    def bind(self) -> None:
        """Take views of the optimizer's current state (again after ``load_state_dict``)."""
        optimizer = self.state.optimizer
        group = optimizer.param_groups[0]
        position = {id(p): index for index, p in enumerate(self.params)}
        self.order = [position[id(p)] for p in group["params"]]  # grads in the group's order
        self.update = self.rule(optimizer, list(group["params"]))
        self.optimizer, self.group, self.optimizer_state = optimizer, group, optimizer.state
        for param in self.params:
            param.grad = None  # the compiled step keeps its gradients to itself

    def bound_to(self, optimizer) -> bool:
        return (optimizer is self.optimizer and optimizer.param_groups[0] is self.group
                and optimizer.state is self.optimizer_state)

    # -- per batch ----------------------------------------------------------------------------
    def batch_arrays(self, x, y) -> tuple[np.ndarray, np.ndarray, int] | None:
        """``(x (B, T, I), y as the output's shape, B)`` as arrays, or ``None`` when the batch
        is not what the compiled step takes (the torch step then runs it, or names the error)."""
        if type(x) is not torch.Tensor or type(y) is not torch.Tensor:
            return None
        dtype = self.torch_dtype  # torch's dtypes are singletons
        if x.dtype is not dtype or y.dtype is not dtype or x.dim() != 3 or not (
                x.is_cpu and y.is_cpu):
            return None
        batch, steps, width = x.shape
        if batch == 0 or steps == 0 or width != self.input_width:
            return None
        expected = ((batch, steps) if self.sequence_output else (batch,)) + (self.output_width,)
        shape = tuple(y.shape)
        if shape != expected and not (self.output_width == 1 and shape == expected[:-1]):
            return None
        target = np.ascontiguousarray(y.detach().numpy()).reshape(expected)
        return np.ascontiguousarray(x.detach().numpy()), target, batch

    def run(self, x: np.ndarray, target: np.ndarray, batch: int) -> None:
        """Forward, loss, backward and update on one batch; then the loss and metrics."""
        threads = self._threads.get(batch)
        if threads is None:
            threads = self._threads[batch] = max(
                [step.threads(batch) for step in self.steps if step.recurrent],
                default=1)
        with blas_threads(threads):
            self._train(x, target, batch)

    def _train(self, x: np.ndarray, target: np.ndarray, batch: int) -> None:
        output = x
        for step in self.steps:
            output = step.forward(output)
        prediction = output.reshape(-1, self.output_width)  # (N, O)
        d_prediction = self._d_prediction
        if d_prediction.shape != prediction.shape:  # kept between batches, as the steps keep theirs
            d_prediction = self._d_prediction = np.empty_like(prediction)
        loss, squared_sum, absolute_sum = regression_loss(
            prediction, target.reshape(prediction.shape), self.loss_kind, d_prediction)
        gradient = d_prediction.reshape(output.shape)
        grads = []
        for index in range(len(self.steps) - 1, -1, -1):
            gradient, layer_grads = self.steps[index].backward(gradient, index > 0)
            grads[:0] = layer_grads
        self.update.apply(self.group, [grads[index] for index in self.order])
        _set_versions(self.param_tuple, tuple([p._version + 1 for p in self.param_tuple]))
        self._record(loss, (squared_sum, absolute_sum), batch, prediction.shape[0])

    def _record(self, loss: float, sums: tuple[float, float], batch: int, rows: int) -> None:
        """What ``CompileState.update`` adds for the batch: the loss (as the torch step computes
        it, in the weights' precision) weighted by the batch size, and each metric's row sums."""
        tracker = self.state.loss_tracker
        tracker.total.numpy()[()] += batch * float(self.dtype(loss))
        tracker.count += batch
        for metric, kind in self.metric_kinds:
            metric.total.numpy()[()] += float(self.dtype(sums[kind]))
            metric.count += rows


def _shapes(steps: list) -> tuple[int, bool, int] | None:
    """``(input features, whether the output keeps the time axis, output width)`` for inputs
    ``(B, T, I)``, or ``None`` when the layers do not chain (the torch path names the error)."""
    width = steps[0].input_size
    sequence = True
    for step in steps:
        if step.input_size != width or (step.recurrent and not sequence):
            return None
        if step.recurrent:
            sequence = step.return_sequences
        width = step.output_size
    return steps[0].input_size, sequence, width

