"""SimpleRNN, the Elman cell.

    h_t = act(W x_t + b + U h_{t-1})           (seed 002: h_t = f(W x_t + U h_{t-1} + b))

``W`` is ``weight_ih (H, I)``, ``U`` is ``weight_hh (H, H)``; ``act`` is tanh by default, or relu,
sigmoid or linear. The output is ``h_t``. PyTorch's ``nn.RNN`` adds a second bias ``bias_hh``.

Example:
    >>> cell = SimpleRNNCell(4, input_size=3)
    >>> y, (h,) = cell(torch.zeros(2, 3), (torch.zeros(2, 4),))
    >>> y.shape
    torch.Size([2, 4])
"""

from __future__ import annotations

import torch

from rnnkit import activations
from rnnkit.cells.base import BuiltinCell, CellSpec, CellWeights, affine


class SimpleRNNCell(BuiltinCell):
    """Elman cell ``h_t = act(W x_t + U h_{t-1} + b)``; ``recurrent_bias`` adds torch's
    ``bias_hh``."""

    family = "rnn"
    config_options = ("recurrent_bias",)

    def __init__(self, units: int, *, input_size: int | None = None, activation="tanh",
                 use_bias: bool = True, recurrent_bias: bool = False, **kwargs) -> None:
        self.recurrent_bias = recurrent_bias and use_bias
        super().__init__(units, input_size=input_size, activation=activation,
                         use_bias=use_bias, **kwargs)

    def get_config(self) -> dict:
        config = super().get_config()
        config.pop("recurrent_activation")
        return config

    def _parameter_shapes(self):
        shapes = {"weight_ih": (self.units, self.input_size),
                  "weight_hh": (self.units, self.units)}
        if self.use_bias:
            shapes["bias_ih"] = (self.units,)
        if self.recurrent_bias:
            shapes["bias_hh"] = (self.units,)
        return shapes

    @staticmethod
    def step_with_gates(spec: CellSpec, weights: CellWeights, inputs: torch.Tensor, state: tuple,
                        recurrent_mask: torch.Tensor | None = None):
        """One step; also returns ``{"pre_activation"}`` (the cell has no gates), ``(B, H)``."""
        (h_prev,) = state  # (B, H)
        h_rec = h_prev if recurrent_mask is None else h_prev * recurrent_mask
        pre = affine(inputs, weights.weight_ih, weights.bias_ih)  # (B, H)
        pre = pre + affine(h_rec, weights.weight_hh, weights.bias_hh)
        h = activations.get(spec.activation)(pre)
        return h, (h,), {"pre_activation": pre}
