"""The cell protocol and the parameter layout shared by cells, kernels and both faces.

**Cell protocol.** Any ``torch.nn.Module`` can be driven over time by :class:`rnnkit.layers.RNN`
if it provides:

- ``state_size``: a tuple of ints, the width of each state tensor (``(H, H)`` for LSTM's h and c);
- ``output_size``: an int, the width of ``y_t``;
- ``forward(x_t, state) -> (y_t, new_state)`` where ``x_t`` is ``(B, I)``, ``state`` a tuple of
  ``(B, state_size[k])`` tensors and ``y_t`` is ``(B, output_size)``;
- optionally ``get_initial_state(batch_size, dtype, device)`` (zeros otherwise), and
  ``build(input_size)`` if the cell creates its weights lazily.

Built-in cells also accept ``recurrent_mask`` (recurrent dropout, ``(B, state_size[0])``) and expose
``spec`` and ``weights()`` so that the fused kernels can run them.

**Parameter layout.** Weights are stored in PyTorch orientation and gate order:
``weight_ih (G*H, I)``, ``weight_hh (G*H, H_rec)``, ``bias_ih (G*H,)``, an optional ``bias_hh``,
with LSTM gates ``i, f, g, o`` and GRU gates ``r, z, n``. The Keras face transposes and reorders in
``get_weights``/``set_weights``; the torch face needs no translation.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from rnnkit import activations, initializers

FAMILIES = ("rnn", "lstm", "gru")
GATES = {"rnn": 1, "lstm": 4, "gru": 3}


@dataclass(frozen=True)
class CellSpec:
    """Everything about a built-in cell except its weights.

    ``activation``/``recurrent_activation`` are Keras names; a user callable makes the cell run on
    the reference path only.
    """

    family: str
    input_size: int
    hidden_size: int
    activation: object = "tanh"
    recurrent_activation: object = "sigmoid"
    proj_size: int = 0
    peephole: bool = False
    layer_norm: bool = False
    reset_after: bool = True
    layer_norm_epsilon: float = 1e-5

    @property
    def recurrent_size(self) -> int:
        """Width of the h fed back through ``weight_hh`` (``proj_size`` when projecting)."""
        return self.proj_size or self.hidden_size


class CellWeights(NamedTuple):
    """The tensors of one cell, ``None`` where the option is off. Shapes use G gates, H units."""

    weight_ih: torch.Tensor  # (G*H, I)
    weight_hh: torch.Tensor  # (G*H, H_rec)
    bias_ih: torch.Tensor | None = None  # (G*H,)
    bias_hh: torch.Tensor | None = None  # (G*H,)
    weight_hr: torch.Tensor | None = None  # (P, H), LSTM projection
    weight_peephole: torch.Tensor | None = None  # (3, H), LSTM peepholes for i, f, o
    ln_ih_weight: torch.Tensor | None = None  # (4H,), LSTM layer norm of W_ih x
    ln_ih_bias: torch.Tensor | None = None
    ln_hh_weight: torch.Tensor | None = None  # (4H,), LSTM layer norm of W_hh h
    ln_hh_bias: torch.Tensor | None = None
    ln_c_weight: torch.Tensor | None = None  # (H,), LSTM layer norm of c_t
    ln_c_bias: torch.Tensor | None = None


WEIGHT_NAMES = CellWeights._fields


def affine(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``x @ weight.T + bias`` for ``x (B, I)`` and ``weight (O, I)``."""
    out = x @ weight.T
    return out if bias is None else out + bias


class BuiltinCell(nn.Module):
    """Shared machinery of the built-in cells: lazy build, Keras initializers, initial state.

    Subclasses set ``family``, define ``_parameter_shapes()`` and ``step``.
    """

    family: str = ""

    def __init__(self, units: int, *, input_size: int | None = None, activation="tanh",
                 recurrent_activation="sigmoid", use_bias: bool = True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", dropout: float = 0.0,
                 recurrent_dropout: float = 0.0, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        for rate_name, rate in (("dropout", dropout), ("recurrent_dropout", recurrent_dropout)):
            numeric = isinstance(rate, (int, float, np.integer, np.floating))
            if not numeric or isinstance(rate, bool):
                raise TypeError(f"{rate_name}: expected a float in [0, 1), got "
                                f"{type(rate).__name__} {rate!r}")
            if not 0.0 <= rate < 1.0:
                raise ValueError(f"{rate_name}: expected a rate in [0, 1), got {rate!r}")
        self.dropout = float(dropout)
        self.recurrent_dropout = float(recurrent_dropout)
        if not isinstance(units, (int, np.integer)) or isinstance(units, bool) or units <= 0:
            raise ValueError(f"units: expected a positive integer, got {units!r}")
        activations.get(activation, "activation")
        activations.get(recurrent_activation, "recurrent_activation")
        self.units = int(units)
        self.activation = activation
        self.recurrent_activation = recurrent_activation
        self.use_bias = use_bias
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.recurrent_initializer = initializers.get(recurrent_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.param_dtype = dtype or torch.get_default_dtype()
        self.input_size: int | None = None
        if input_size is not None:
            self.build(input_size)

    # -- protocol ---------------------------------------------------------------------------
    @property
    def built(self) -> bool:
        return self.input_size is not None

    @property
    def state_size(self) -> tuple[int, ...]:
        return (self.units,)

    @property
    def output_size(self) -> int:
        return self.units

    def get_initial_state(self, batch_size: int, dtype: torch.dtype,
                          device: torch.device) -> tuple[torch.Tensor, ...]:
        return tuple(torch.zeros(batch_size, size, dtype=dtype, device=device)
                     for size in self.state_size)

    def build(self, input_size: int) -> None:
        """Create the weights for inputs of width ``input_size`` (called on first use if lazy)."""
        if not isinstance(input_size, (int, np.integer)) or input_size <= 0:
            raise ValueError(f"input_size: expected a positive integer, got {input_size!r}")
        if self.built:
            if input_size != self.input_size:
                raise ValueError(
                    f"inputs: expected feature size {self.input_size} (the built cell's "
                    f"input_size), got {input_size}"
                )
            return
        self.input_size = int(input_size)
        device = None
        for name, shape in self._parameter_shapes().items():
            self.register_parameter(
                name, nn.Parameter(torch.empty(shape, dtype=self.param_dtype, device=device))
            )
        self.reset_parameters()

    # -- weights --------------------------------------------------------------------------------
    @property
    def spec(self) -> CellSpec:
        return CellSpec(family=self.family, input_size=self.input_size or 0,
                        hidden_size=self.units, activation=self.activation,
                        recurrent_activation=self.recurrent_activation, **self._spec_options())

    def _spec_options(self) -> dict:
        return {}

    def weights(self) -> CellWeights:
        """This cell's tensors in the shared layout (``None`` where an option is off)."""
        return CellWeights(**{name: getattr(self, name, None) for name in WEIGHT_NAMES
                              if getattr(self, name, None) is not None})

    def _parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        raise NotImplementedError

    def _draw_kernel(self, initializer, fan_in: int) -> torch.Tensor:
        """Draw ``(fan_in, G*H)`` in Keras orientation, returned as ``(G*H, fan_in)``."""
        gates = GATES[self.family]
        return initializer((fan_in, gates * self.units), self.param_dtype).T

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Keras's initialisation: glorot_uniform kernel, orthogonal recurrent kernel, zero bias."""
        self.weight_ih.copy_(self._draw_kernel(self.kernel_initializer, self.input_size))
        self.weight_hh.copy_(self._draw_kernel(self.recurrent_initializer, self.weight_hh.shape[1]))
        for name in ("bias_ih", "bias_hh"):
            bias = getattr(self, name, None)
            if bias is not None:
                bias.copy_(self.bias_initializer(tuple(bias.shape), self.param_dtype))

    def get_config(self) -> dict:
        """The constructor arguments, JSON-serialisable (weights excluded)."""
        from rnnkit import activations as _activations
        from rnnkit import initializers as _initializers

        config = {
            "units": self.units,
            "activation": _activations.name_of(self.activation),
            "recurrent_activation": _activations.name_of(self.recurrent_activation),
            "use_bias": self.use_bias,
            "kernel_initializer": _initializers.name_of(self.kernel_initializer),
            "recurrent_initializer": _initializers.name_of(self.recurrent_initializer),
            "bias_initializer": _initializers.name_of(self.bias_initializer),
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
        }
        config.update({name: getattr(self, name) for name in self.config_options})
        return config

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    config_options: tuple[str, ...] = ()

    def extra_repr(self) -> str:
        options = {f.name: getattr(self.spec, f.name) for f in fields(CellSpec)
                   if f.name not in ("family", "hidden_size")}
        return f"units={self.units}, " + ", ".join(f"{k}={v!r}" for k, v in options.items())

    # -- step ------------------------------------------------------------------------------------
    def forward(self, inputs: torch.Tensor, state, recurrent_mask: torch.Tensor | None = None):
        """One step: ``inputs (B, I)``, ``state`` a tuple of ``(B, s)`` -> ``(y (B, out), state)``.
        """
        if not self.built:
            self.build(inputs.shape[-1])
        state = (state,) if isinstance(state, torch.Tensor) else tuple(state)
        return self.step(self.spec, self.weights(), inputs, state, recurrent_mask)

    @classmethod
    def step(cls, spec: CellSpec, weights: CellWeights, inputs: torch.Tensor, state: tuple,
             recurrent_mask: torch.Tensor | None = None):
        """One step from explicit ``spec`` and ``weights``: ``(y, new_state)``."""
        output, new_state, _ = cls.step_with_gates(spec, weights, inputs, state, recurrent_mask)
        return output, new_state

    @staticmethod
    def step_with_gates(spec: CellSpec, weights: CellWeights, inputs: torch.Tensor, state: tuple,
                        recurrent_mask: torch.Tensor | None = None):
        """One step, returning ``(y, new_state, gates)`` with the named gate activations."""
        raise NotImplementedError


class BoundCell:
    """A built-in cell's step bound to tensors owned elsewhere (the ``rnnkit.nn`` drop-ins).

    It satisfies the cell protocol and exposes ``spec``/``weights()`` like a :class:`BuiltinCell`,
    so :func:`rnnkit.kernels.run_sequence` treats both alike. Its spec and tensor objects are fixed,
    so the kernels may keep what they derive from them in ``kernel_cache`` (see
    :mod:`rnnkit.kernels.fused`), checked against the tensors' layout and version on every call.
    """

    def __init__(self, cell_class: type[BuiltinCell], spec: CellSpec, weights: CellWeights):
        self.cell_class = cell_class
        self.family = cell_class.family
        self.spec = spec
        self._weights = weights
        self.tensors = tuple(t for t in weights if t is not None)  # the ones present, in order
        self.kernel_cache = None

    def weights(self) -> CellWeights:
        return self._weights

    @property
    def state_size(self) -> tuple[int, ...]:
        if self.family == "lstm":
            return (self.spec.recurrent_size, self.spec.hidden_size)
        return (self.spec.hidden_size,)

    @property
    def output_size(self) -> int:
        return self.spec.recurrent_size

    def __call__(self, inputs, state, recurrent_mask=None):
        return self.cell_class.step(self.spec, self._weights, inputs, tuple(state), recurrent_mask)
