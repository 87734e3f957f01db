"""LSTM, with optional peepholes, layer normalisation and projection.

The plain cell (seeds 000 and 003; Hochreiter & Schmidhuber 1997 with a forget gate)::

    i_t = σ(W_i x_t + U_i h_{t-1} + b_i)            input gate
    f_t = σ(W_f x_t + U_f h_{t-1} + b_f)            forget gate
    g_t = tanh(W_c x_t + U_c h_{t-1} + b_c)         candidate c̃_t
    o_t = σ(W_o x_t + U_o h_{t-1} + b_o)            output gate
    c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t
    h_t = o_t ⊙ tanh(c_t)

σ is ``recurrent_activation`` and tanh is ``activation``. Gates are stacked ``i, f, g, o`` in
``weight_ih (4H, I)`` and ``weight_hh (4H, H)``, the order Keras and PyTorch share.

Options:

- ``peephole=True`` (seed 004; Gers & Schmidhuber 2000): diagonal weights ``p_i, p_f, p_o`` add
  ``p_i ⊙ c_{t-1}`` to i, ``p_f ⊙ c_{t-1}`` to f and ``p_o ⊙ c_t`` to o.
- ``layer_norm=True`` (Ba et al. 2016, section 3.1)::

      [i f g o] = LN(W x_t; α1, β1) + LN(U h_{t-1}; α2, β2) + b
      h_t = o_t ⊙ tanh(LN(c_t; α3, β3))

  The un-normalised ``c_t`` is the carried state.
- ``proj_size=P`` (as torch.nn.LSTM): ``h_t = W_hr (o_t ⊙ tanh(c_t))`` with ``weight_hr (P, H)``;
  h is
  ``(B, P)`` and ``weight_hh`` is ``(4H, P)``.
- ``unit_forget_bias=True`` (Keras's default): the forget-gate bias starts at 1.

Example:
    >>> cell = LSTMCell(4, input_size=3)
    >>> y, (h, c) = cell(torch.zeros(2, 3), cell.get_initial_state(2, torch.float32, "cpu"))
    >>> h.shape, c.shape
    (torch.Size([2, 4]), torch.Size([2, 4]))
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from rnnkit import activations
from rnnkit.cells.base import BuiltinCell, CellSpec, CellWeights


def _layer_norm(x: torch.Tensor, weight, bias, eps: float) -> torch.Tensor:
    return F.layer_norm(x, (x.shape[-1],), weight, bias, eps)


class LSTMCell(BuiltinCell):
    """One LSTM step. See the module docstring for the equations and options."""

    family = "lstm"
    config_options = ("recurrent_bias", "unit_forget_bias", "peephole", "layer_norm", "proj_size",
                      "layer_norm_epsilon")

    def __init__(self, units: int, *, input_size: int | None = None, activation="tanh",
                 recurrent_activation="sigmoid", use_bias: bool = True,
                 recurrent_bias: bool = False, unit_forget_bias: bool = True,
                 peephole: bool = False, layer_norm: bool = False, proj_size: int = 0,
                 layer_norm_epsilon: float = 1e-5, **kwargs) -> None:
        if not isinstance(units, (int, np.integer)) or isinstance(units, bool) or units <= 0:
            raise ValueError(f"units: expected a positive integer, got {units!r}")
        if (not isinstance(proj_size, (int, np.integer)) or isinstance(proj_size, bool)
                or proj_size < 0 or (proj_size and proj_size >= units)):
            raise ValueError(f"proj_size: expected 0 or an integer in [1, units={units}), "
                             f"got {proj_size}")
        self.recurrent_bias = recurrent_bias and use_bias
        self.unit_forget_bias = unit_forget_bias
        self.peephole = peephole
        self.layer_norm = layer_norm
        self.proj_size = int(proj_size)
        self.layer_norm_epsilon = layer_norm_epsilon
        super().__init__(units, input_size=input_size, activation=activation,
                         recurrent_activation=recurrent_activation, use_bias=use_bias, **kwargs)

    @property
    def state_size(self) -> tuple[int, int]:
        return (self.proj_size or self.units, self.units)

    @property
    def output_size(self) -> int:
        return self.proj_size or self.units

    def _spec_options(self) -> dict:
        return {"proj_size": self.proj_size, "peephole": self.peephole,
                "layer_norm": self.layer_norm, "layer_norm_epsilon": self.layer_norm_epsilon}

    def _parameter_shapes(self):
        units, rec = self.units, self.proj_size or self.units
        shapes = {"weight_ih": (4 * units, self.input_size), "weight_hh": (4 * units, rec)}
        if self.use_bias:
            shapes["bias_ih"] = (4 * units,)
        if self.recurrent_bias:
            shapes["bias_hh"] = (4 * units,)
        if self.proj_size:
            shapes["weight_hr"] = (self.proj_size, units)
        if self.peephole:
            shapes["weight_peephole"] = (3, units)
        if self.layer_norm:
            for name, width in (("ln_ih", 4 * units), ("ln_hh", 4 * units), ("ln_c", units)):
                shapes[f"{name}_weight"] = (width,)
                shapes[f"{name}_bias"] = (width,)
        return shapes

    @torch.no_grad()
    def reset_parameters(self) -> None:
        super().reset_parameters()
        units = self.units
        if self.use_bias and self.unit_forget_bias:
            self.bias_ih[units:2 * units].fill_(1.0)
        if self.proj_size:
            self.weight_hr.copy_(self._draw_projection())
        if self.peephole:
            self.weight_peephole.copy_(self.kernel_initializer((3, units), self.param_dtype))
        if self.layer_norm:
            for name in ("ln_ih", "ln_hh", "ln_c"):
                getattr(self, f"{name}_weight").fill_(1.0)
                getattr(self, f"{name}_bias").zero_()

    def _draw_projection(self) -> torch.Tensor:
        return self.kernel_initializer((self.units, self.proj_size), self.param_dtype).T

    @staticmethod
    def step_with_gates(spec: CellSpec, weights: CellWeights, inputs: torch.Tensor, state: tuple,
                        recurrent_mask: torch.Tensor | None = None):
        """One step; also returns the gate activations ``{"input", "forget", "candidate",
        "output", "cell"}``, each ``(B, H)``."""
        h_prev, c_prev = state  # (B, H_rec), (B, H)
        h_rec = h_prev if recurrent_mask is None else h_prev * recurrent_mask
        x_proj = inputs @ weights.weight_ih.T  # (B, 4H)
        h_proj = h_rec @ weights.weight_hh.T  # (B, 4H)
        if spec.layer_norm:
            eps = spec.layer_norm_epsilon
            x_proj = _layer_norm(x_proj, weights.ln_ih_weight, weights.ln_ih_bias, eps)
            h_proj = _layer_norm(h_proj, weights.ln_hh_weight, weights.ln_hh_bias, eps)
        gates = x_proj + h_proj
        for bias in (weights.bias_ih, weights.bias_hh):
            if bias is not None:
                gates = gates + bias
        gate_i, gate_f, gate_g, gate_o = gates.chunk(4, dim=-1)  # each (B, H)
        if spec.peephole:
            peep_i, peep_f, peep_o = weights.weight_peephole
            gate_i = gate_i + peep_i * c_prev
            gate_f = gate_f + peep_f * c_prev
        sigma = activations.get(spec.recurrent_activation)
        act = activations.get(spec.activation)
        input_gate, forget_gate = sigma(gate_i), sigma(gate_f)
        candidate = act(gate_g)
        c = forget_gate * c_prev + input_gate * candidate  # (B, H)
        if spec.peephole:
            gate_o = gate_o + peep_o * c
        output_gate = sigma(gate_o)
        c_out = c
        if spec.layer_norm:
            c_out = _layer_norm(c, weights.ln_c_weight, weights.ln_c_bias, spec.layer_norm_epsilon)
        h = output_gate * act(c_out)  # (B, H)
        if spec.proj_size:
            h = h @ weights.weight_hr.T  # (B, P)
        gates = {"input": input_gate, "forget": forget_gate, "candidate": candidate,
                 "output": output_gate, "cell": c}
        return h, (h, c), gates
