"""GRU, in both of Keras's forms.

Gates are stacked ``r, z, n`` (PyTorch's order) in ``weight_ih (3H, I)`` and ``weight_hh (3H, H)``;
Keras stores ``z, r, h`` and the Keras face reorders. With ``x̂ = W x_t + b_ih``::

    r_t = σ(x̂_r + U_r h_{t-1} + b_hr)                 reset gate
    z_t = σ(x̂_z + U_z h_{t-1} + b_hz)                 update gate
    reset_after=True  (Keras's default, PyTorch, cuDNN):
        n_t = tanh(x̂_n + r_t ⊙ (U_n h_{t-1} + b_hn))
    reset_after=False (seeds 000 and 003: r multiplies h before U):
        n_t = tanh(x̂_n + U_n (r_t ⊙ h_{t-1}) + b_hn)
    h_t = z_t ⊙ h_{t-1} + (1 - z_t) ⊙ n_t

Keras and PyTorch keep ``z`` on the old state. Seed 000 writes the mirror image
``h_t = (1 - z_t) ⊙ h_{t-1} + z_t ⊙ h̃_t``; since ``1 - σ(a) = σ(-a)``, the seed's cell is this cell
with the update gate's weights and bias negated (docs/seed_examples.md does exactly that).

Example:
    >>> cell = GRUCell(4, input_size=3)
    >>> y, (h,) = cell(torch.zeros(2, 3), (torch.zeros(2, 4),))
    >>> h.shape
    torch.Size([2, 4])
"""

from __future__ import annotations

import torch

from rnnkit import activations
from rnnkit.cells.base import BuiltinCell, CellSpec, CellWeights, affine


class GRUCell(BuiltinCell):
    """One GRU step. ``reset_after=True`` has two biases (input and recurrent), as in Keras."""

    family = "gru"
    config_options = ("reset_after",)

    def __init__(self, units: int, *, input_size: int | None = None, activation="tanh",
                 recurrent_activation="sigmoid", use_bias: bool = True,
                 reset_after: bool = True, **kwargs) -> None:
        self.reset_after = reset_after
        super().__init__(units, input_size=input_size, activation=activation,
                         recurrent_activation=recurrent_activation, use_bias=use_bias, **kwargs)

    def _spec_options(self) -> dict:
        return {"reset_after": self.reset_after}

    def _parameter_shapes(self):
        units = self.units
        shapes = {"weight_ih": (3 * units, self.input_size), "weight_hh": (3 * units, units)}
        if self.use_bias:
            shapes["bias_ih"] = (3 * units,)
            if self.reset_after:
                shapes["bias_hh"] = (3 * units,)
        return shapes

    @staticmethod
    def step_with_gates(spec: CellSpec, weights: CellWeights, inputs: torch.Tensor, state: tuple,
                        recurrent_mask: torch.Tensor | None = None):
        """One step; also returns ``{"reset", "update", "candidate"}``, each ``(B, H)``."""
        (h_prev,) = state  # (B, H)
        h_rec = h_prev if recurrent_mask is None else h_prev * recurrent_mask
        sigma = activations.get(spec.recurrent_activation)
        act = activations.get(spec.activation)
        x_r, x_z, x_n = affine(inputs, weights.weight_ih, weights.bias_ih).chunk(3, dim=-1)
        if spec.reset_after:
            h_r, h_z, h_n = affine(h_rec, weights.weight_hh, weights.bias_hh).chunk(3, dim=-1)
            reset_gate = sigma(x_r + h_r)
            update_gate = sigma(x_z + h_z)
            candidate = act(x_n + reset_gate * h_n)
        else:
            units = spec.hidden_size
            w_rz, w_n = weights.weight_hh[: 2 * units], weights.weight_hh[2 * units:]
            b_rz = b_n = None
            if weights.bias_hh is not None:
                b_rz, b_n = weights.bias_hh[: 2 * units], weights.bias_hh[2 * units:]
            h_r, h_z = affine(h_rec, w_rz, b_rz).chunk(2, dim=-1)
            reset_gate = sigma(x_r + h_r)
            update_gate = sigma(x_z + h_z)
            candidate = act(x_n + affine(reset_gate * h_rec, w_n, b_n))
        h = update_gate * h_prev + (1.0 - update_gate) * candidate  # (B, H)
        gates = {"reset": reset_gate, "update": update_gate, "candidate": candidate}
        return h, (h,), gates
