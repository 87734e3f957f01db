"""``RNN(cell)``: runs any cell over a sequence, with Keras's arguments and call semantics.

Example:
    >>> from rnnkit.cells import LSTMCell
    >>> layer = RNN(LSTMCell(8), return_sequences=True)
    >>> layer(np.zeros((2, 5, 3), "float32")).shape
    torch.Size([2, 5, 8])
"""

from __future__ import annotations

import numpy as np
import torch

from rnnkit import _checks
from rnnkit.kernels import run_sequence, stepping
from rnnkit.kernels.dispatch import check_backend
from rnnkit.layers.base import Layer


class RNN(Layer):
    """Run ``cell`` over inputs ``(B, T, I)``.

    Returns ``(B, T, O)`` with ``return_sequences`` or the last output ``(B, O)`` otherwise; with
    ``return_state`` a list ``[output, *final_state]``. ``go_backwards`` reads the sequence from its
    end and returns outputs in that (reversed) order, as Keras does. A ``mask (B, T)`` (or
    ``lengths (B,)``, right padding) skips steps: the state is carried and the output repeats.
    ``stateful`` keeps the final state as the next call's initial state until ``reset_states()``.
    """

    supports_masking = True

    def __init__(self, cell, return_sequences: bool = False, return_state: bool = False,
                 go_backwards: bool = False, stateful: bool = False, unroll: bool = False,
                 zero_output_for_mask: bool = False, backend: str = "auto", **kwargs) -> None:
        if kwargs.get("input_shape") is None and kwargs.get("input_dim") is not None:
            # Keras 2's recurrent input_dim gives the features; the time axis stays open.
            kwargs["input_shape"] = (None, kwargs.pop("input_dim"))
        super().__init__(**kwargs)
        for attribute in ("state_size", "output_size"):
            if not hasattr(cell, attribute):
                raise TypeError(f"cell: expected an object with `{attribute}` (see the cell "
                                f"protocol in rnnkit.cells.base), got {type(cell).__name__}")
        self.cell = cell
        self.return_sequences = return_sequences
        self.return_state = return_state
        self.go_backwards = go_backwards
        self.stateful = stateful
        self.unroll = unroll  # accepted for Keras compatibility; the fused kernels make it moot
        self.zero_output_for_mask = zero_output_for_mask
        self.backend = check_backend(backend)
        self.states: list[torch.Tensor] | None = None
        if self.batch_input_shape is not None:
            _check_input_shape(self.batch_input_shape)
            if self.batch_input_shape[-1] is not None:
                self.build(self.batch_input_shape)
                self.built = True

    @property
    def state_size(self) -> tuple[int, ...]:
        size = self.cell.state_size
        return (size,) if isinstance(size, int) else tuple(size)

    def build(self, input_shape) -> None:
        _check_single_input(input_shape)
        if len(input_shape) != 3:
            raise ValueError(f"inputs: expected a rank-3 tensor (batch, timesteps, features), "
                             f"got shape {tuple(input_shape)}")
        if input_shape[-1] is not None and int(input_shape[-1]) < 1:
            raise ValueError(f"inputs: expected at least one feature (last axis), got shape "
                             f"{tuple(input_shape)}")
        if hasattr(self.cell, "build"):
            self.cell.build(int(input_shape[-1]))

    # -- call ---------------------------------------------------------------------------------
    def call(self, inputs, mask=None, training=None, initial_state=None, lengths=None):
        if (self.stateful and mask is None and lengths is None and initial_state is None
                and not torch.is_grad_enabled()):
            result = self._stateful_step(inputs, training)
            if result is not None:
                return result
        inputs = self._validate_inputs(inputs)
        batch, steps = inputs.shape[0], inputs.shape[1]
        if lengths is not None:
            if mask is not None:
                raise ValueError("mask, lengths: give one of them, not both")
            mask = _checks.lengths_to_mask(lengths, batch, steps, inputs.device)
        mask = _checks.check_mask(mask, batch, steps, inputs.device)
        state = self._initial_state(initial_state, batch, inputs)
        inputs, recurrent_mask = self._apply_dropout(inputs, training)
        if self.go_backwards:
            inputs = inputs.flip(1)
            mask = None if mask is None else mask.flip(1)
        outputs, final_state = run_sequence(
            self.cell, inputs, tuple(state), mask=mask, recurrent_mask=recurrent_mask,
            zero_output_for_mask=self.zero_output_for_mask, backend=self.backend)
        if self.stateful:
            self.states = [s.detach() for s in final_state]
        output = outputs if self.return_sequences else outputs[:, -1]
        if self.return_state:
            return [output, *final_state]
        return output

    def _stateful_step(self, inputs, training):
        """A stateful call on one timestep ``(B, 1, I)`` as one compiled step (streaming), or
        ``None`` when the step kernel does not take it (the usual path then runs, and checks)."""
        if self.backend == "reference":
            return None
        cell = self._modules["cell"]
        if training and (getattr(cell, "dropout", 0.0) > 0
                         or getattr(cell, "recurrent_dropout", 0.0) > 0):
            return None
        # fused_step takes only (B, 1, I) inputs here, and writes the output, (B, 1, H) or
        # (B, H), as a copy of the new h, so that writing to it leaves the state alone.
        form = stepping.TIMESTEP_SEQUENCE if self.return_sequences else stepping.TIMESTEP
        result = stepping.fused_step(cell, inputs, self.states, form)
        if result is None:
            return None
        # Into __dict__ directly: nn.Module.__setattr__ (which would put a list there too) costs
        # half as much as the compiled step.
        output, self.__dict__["states"] = result
        return [output, *self.states] if self.return_state else output

    def _validate_inputs(self, inputs: torch.Tensor) -> torch.Tensor:
        if isinstance(inputs, (list, tuple)):
            _check_single_input([_shape_of_item(item) for item in inputs])
        inputs = _checks.as_float_tensor(inputs, "inputs")
        _checks.check_rank(inputs, "inputs", 3, "(batch, timesteps, features)")
        expected = getattr(self.cell, "input_size", None)
        if expected is not None:
            _checks.check_size(inputs.shape[-1], expected, "inputs", "features (last axis)")
        if inputs.shape[1] == 0:
            raise ValueError("inputs: expected at least one timestep, got shape "
                             f"{tuple(inputs.shape)}")
        param = _first_parameter(self.cell)
        if param is None:
            return inputs
        # Checked here so that a tensor on another device (meta included) never reaches a kernel.
        _checks.check_device(inputs, param.device, "inputs")
        return _checks.cast_float(inputs, param.dtype, "inputs")

    def _initial_state(self, initial_state, batch: int, inputs: torch.Tensor):
        if initial_state is not None:
            return _checks.check_state(initial_state, self.state_size, batch, inputs.dtype,
                                       device=inputs.device)
        if self.stateful and self.states is not None:
            if self.states[0].shape[0] != batch:
                raise ValueError(f"inputs: a stateful layer expects the batch size of its "
                                 f"stored state ({self.states[0].shape[0]}), got {batch}; "
                                 "call reset_states() first")
            return self.states
        if hasattr(self.cell, "get_initial_state"):
            return list(self.cell.get_initial_state(batch, inputs.dtype, inputs.device))
        return [inputs.new_zeros(batch, size) for size in self.state_size]

    def _apply_dropout(self, inputs: torch.Tensor, training: bool):
        """One dropout mask for the whole sequence on inputs, and one on the recurrent state."""
        rate = getattr(self.cell, "dropout", 0.0)
        recurrent_rate = getattr(self.cell, "recurrent_dropout", 0.0)
        recurrent_mask = None
        if training and rate > 0:
            keep = inputs.new_empty(inputs.shape[0], 1, inputs.shape[2]).bernoulli_(1 - rate)
            inputs = inputs * keep / (1 - rate)
        if training and recurrent_rate > 0:
            width = self.state_size[0]
            recurrent_mask = inputs.new_empty(inputs.shape[0], width).bernoulli_(
                1 - recurrent_rate) / (1 - recurrent_rate)
        return inputs, recurrent_mask

    def compute_mask(self, inputs, mask=None):
        if mask is None or not self.return_sequences:
            output_mask = None
        else:
            output_mask = mask.flip(1) if self.go_backwards else mask
        if self.return_state:
            return [output_mask] + [None] * len(self.state_size)
        return output_mask

    def compute_output_shape(self, input_shape):
        batch, steps = input_shape[0], input_shape[1]
        width = self.cell.output_size
        output = (batch, steps, width) if self.return_sequences else (batch, width)
        if self.return_state:
            return [output] + [(batch, size) for size in self.state_size]
        return output

    # -- state ------------------------------------------------------------------------------------
    def reset_states(self, states=None) -> None:
        """Forget the stored state of a stateful layer, or set it to ``states``."""
        if states is None:
            self.states = None
            return
        if isinstance(states, (list, tuple)) and states:
            first = states[0]
        elif isinstance(states, (torch.Tensor, np.ndarray)):
            first = states
        else:
            raise TypeError(f"states: expected a list of {len(self.state_size)} tensor(s) "
                            f"(batch, units), got {type(states).__name__} {states!r:.40}")
        if len(np.shape(first)) != 2:
            raise ValueError(f"states[0]: expected shape (batch, units), got {np.shape(first)}")
        batch = np.shape(first)[0]
        dtype = _param_dtype(self.cell) or torch.get_default_dtype()
        self.states = _checks.check_state(states, self.state_size, batch, dtype, "states")

    def step(self, inputs, state=None):
        """One step of the cell on ``inputs (B, I)``; ``state`` defaults to zeros.

        Returns ``(output (B, O), new_state list)``. Shares the layer's weights. Under
        ``torch.no_grad()`` a built-in cell's step runs as one compiled call when the inputs and
        state are tensors of the cell's dtype and shape (the streaming case). Its outputs are then
        tensors written again only once nothing outside can see them (two slots of one step
        with the native build, else views into blocks of many steps: there, keeping one alive
        keeps its block, 16 KB in float32, from reuse; ``.clone()`` an output you store for
        long). Nothing you keep is ever written again. The compiled step reads a packed copy
        of the weights, renewed when a weight's version counter or storage changes: in-place
        updates (optimizers, ``load_state_dict``, ``set_weights``, ``p.mul_()`` under
        ``no_grad``) and ``p.data = ...`` are seen, but a write through ``p.data`` (which
        bypasses the version counter, as it does for autograd) is not.

        Example::

            from rnnkit.layers import LSTM

            layer = LSTM(64)
            layer.build((1, None, 32))
            state = None
            with torch.no_grad():
                for x_t in stream:  # each (1, 32)
                    y_t, state = layer.step(x_t, state)
        """
        if self.built and self.backend != "reference" and (state is not None or not self.stateful):
            # _modules directly: nn.Module's attribute fallback for `self.cell` costs more than
            # the whole compiled step. fused_step declines when autograd is on.
            result = stepping.fused_step(self._modules["cell"], inputs, state)
            if result is not None:
                return result
        inputs = self._convert_inputs(inputs)
        inputs = _checks.as_float_tensor(inputs, "inputs")
        _checks.check_rank(inputs, "inputs", 2, "(batch, features)")
        if not self.built:
            self.build((inputs.shape[0], 1, inputs.shape[1]))
            self.built = True
        inputs = self._validate_inputs(inputs[:, None, :])[:, 0]
        state = self._initial_state(state, inputs.shape[0], inputs[:, None, :])
        output, new_state = self.cell(inputs, tuple(state))
        new_state = [new_state] if isinstance(new_state, torch.Tensor) else list(new_state)
        return output, new_state

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(return_sequences=self.return_sequences, return_state=self.return_state,
                      go_backwards=self.go_backwards, stateful=self.stateful,
                      unroll=self.unroll, backend=self.backend,
                      zero_output_for_mask=self.zero_output_for_mask)
        if hasattr(self.cell, "get_config"):
            config["cell"] = {"class_name": type(self.cell).__name__,
                              "config": self.cell.get_config()}
        return config

    @classmethod
    def from_config(cls, config: dict):
        from rnnkit.layers.wrappers import deserialize

        config = dict(config)
        if "cell" not in config:
            raise ValueError(f"{cls.__name__}.from_config: expected a 'cell' entry "
                             "({'class_name': ..., 'config': ...}), got none")
        config["cell"] = deserialize(config["cell"])
        return super().from_config(config)


def _first_parameter(cell) -> torch.Tensor | None:
    for param in getattr(cell, "parameters", lambda: [])():
        return param
    return None


def _param_dtype(cell) -> torch.dtype | None:
    param = _first_parameter(cell)
    return None if param is None else param.dtype


def _check_input_shape(batch_input_shape) -> None:
    """``input_shape`` is ``(timesteps, features)``, each a positive int or None (unknown)."""
    shape = tuple(batch_input_shape[1:])
    if len(shape) != 2 or not all(_positive_or_none(size) for size in shape):
        raise ValueError(f"input_shape: expected (timesteps, features), each a positive integer "
                         f"or None, got {shape}")


def _positive_or_none(size) -> bool:
    return size is None or (isinstance(size, (int, np.integer)) and not isinstance(size, bool)
                            and size >= 1)


def _shape_of_item(item):
    return tuple(item.shape) if hasattr(item, "shape") else item


def _check_single_input(input_shape) -> None:
    """A list of inputs (Keras's multi-input call) is not a sequence: refuse it by name."""
    if isinstance(input_shape, (list, tuple)) and any(
            isinstance(d, (list, tuple)) for d in input_shape):
        raise TypeError(
            "inputs: expected one tensor or NumPy array (batch, timesteps, features), got a "
            f"list of {len(input_shape)} items; convert nested lists with np.asarray and pass "
            "states as initial_state="
        )
