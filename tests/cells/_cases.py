"""The cell families and options every harness test runs over, and how to build them.

Sizes are tiny on purpose: ``gradcheck`` cost grows with the number of parameters times outputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from rnnkit.cells import CELL_CLASSES, BuiltinCell

INPUT_SIZE = 2
UNITS = 3
PROJ_SIZE = 2
BATCH = 2


@dataclass(frozen=True)
class CellCase:
    """One cell family with one set of options, and the parameters it must own."""

    id: str
    family: str
    options: dict = field(default_factory=dict)
    weights: tuple[str, ...] = ("weight_ih", "weight_hh", "bias_ih")


_LAYER_NORM = (
    "ln_ih_weight",
    "ln_ih_bias",
    "ln_hh_weight",
    "ln_hh_bias",
    "ln_c_weight",
    "ln_c_bias",
)
_PLAIN = ("weight_ih", "weight_hh", "bias_ih")
_NO_BIAS = ("weight_ih", "weight_hh")
_BOTH_BIASES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")

CASES = [
    CellCase("rnn-tanh", "rnn", {"activation": "tanh"}),
    CellCase("rnn-relu", "rnn", {"activation": "relu"}),
    CellCase("rnn-sigmoid", "rnn", {"activation": "sigmoid"}),
    CellCase("rnn-linear", "rnn", {"activation": "linear"}),
    CellCase("rnn-recurrent_bias", "rnn", {"recurrent_bias": True}, _BOTH_BIASES),
    CellCase("rnn-no_bias", "rnn", {"use_bias": False}, _NO_BIAS),
    CellCase("lstm-plain", "lstm", {"unit_forget_bias": False}),
    CellCase("lstm-unit_forget_bias", "lstm", {"unit_forget_bias": True}),
    CellCase("lstm-peephole", "lstm", {"peephole": True}, (*_PLAIN, "weight_peephole")),
    CellCase("lstm-layer_norm", "lstm", {"layer_norm": True}, (*_PLAIN, *_LAYER_NORM)),
    CellCase("lstm-proj", "lstm", {"proj_size": PROJ_SIZE}, (*_PLAIN, "weight_hr")),
    CellCase(
        "lstm-peephole+layer_norm+proj",
        "lstm",
        {"peephole": True, "layer_norm": True, "proj_size": PROJ_SIZE},
        (*_PLAIN, "weight_hr", "weight_peephole", *_LAYER_NORM),
    ),
    CellCase("lstm-recurrent_bias", "lstm", {"recurrent_bias": True}, _BOTH_BIASES),
    CellCase("lstm-no_bias", "lstm", {"use_bias": False}, _NO_BIAS),
    CellCase("lstm-hard_sigmoid", "lstm", {"recurrent_activation": "hard_sigmoid"}),
    CellCase("gru-reset_after", "gru", {"reset_after": True}, _BOTH_BIASES),
    CellCase("gru-reset_before", "gru", {"reset_after": False}),
    CellCase("gru-reset_after-no_bias", "gru", {"reset_after": True, "use_bias": False}, _NO_BIAS),
    CellCase(
        "gru-reset_before-no_bias", "gru", {"reset_after": False, "use_bias": False}, _NO_BIAS
    ),
]


def make_cell(case: CellCase, dtype: torch.dtype = torch.float64, seed: int = 0) -> BuiltinCell:
    """A built cell of ``case`` whose every parameter is redrawn at random.

    Redrawing matters: the default init leaves biases at zero and layer-norm gains at one, where a
    wrong gradient for them could go unnoticed.
    """
    cell = CELL_CLASSES[case.family](UNITS, input_size=INPUT_SIZE, dtype=dtype, **case.options)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in cell.parameters():
            param.copy_(0.6 * torch.randn(param.shape, generator=generator, dtype=dtype))
    return cell


def random_state(cell: BuiltinCell, batch: int = BATCH, seed: int = 1) -> tuple[torch.Tensor, ...]:
    """A random state tuple for ``cell``, ``(B, state_size[k])`` each, in the cell's dtype."""
    generator = torch.Generator().manual_seed(seed)
    return tuple(
        0.5 * torch.randn(batch, size, generator=generator, dtype=cell.param_dtype)
        for size in cell.state_size
    )


def random_inputs(cell: BuiltinCell, *shape: int, seed: int = 2) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, cell.input_size, generator=generator, dtype=cell.param_dtype)
