"""Built-in cells on CUDA through torch's own fused RNN, which runs on cuDNN there.

``torch.nn.LSTM/GRU/RNN`` run a whole sequence in one cuDNN call on CUDA. A built-in cell on
CUDA tensors takes that call when its equations are cuDNN's:

- LSTM with the tanh/sigmoid cell, without peepholes or layer norm (``proj_size`` is fine);
- GRU with ``reset_after=True`` (torch's and cuDNN's form; Keras's default);
- SimpleRNN with ``tanh`` or ``relu``;

every weight of the inputs' dtype and device, no recurrent-dropout mask, and either no mask or a
right-padded one with at least one real step per row: cuDNN's packed sequences. Padded steps hold
the state, and output zeros (``zero_output_for_mask``) or the last real step's output (Keras's
default), as on the reference loop. Anything else (peepholes, layer norm, other activations,
``reset_after=False``, recurrent dropout, left padding) runs on the reference loop
(:mod:`rnnkit.kernels.dispatch`).

The cell's own tensors go to the functions ``torch.nn``'s modules call, so autograd reaches them
as with any torch op. A missing ``bias_hh`` (Keras keeps one bias) is a zero tensor.

Example (on a machine with a GPU)::

    lstm = rnnkit.layers.LSTM(32, return_sequences=True).cuda()
    y = lstm(torch.randn(8, 100, 16, device="cuda"))  # (8, 100, 32), one cuDNN call
"""

from __future__ import annotations

import torch
from torch import _VF
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from rnnkit.kernels._numba import RELU, SIGMOID, TANH, activation_code
from rnnkit.kernels.fused import _is_builtin_step

# The devices whose built-in cells take this path when no compiled kernel does. Only CUDA: on
# CPU the compiled kernels are faster than torch's. The tests add "cpu" to run this path there.
DEVICES = ("cuda",)


def _mode(spec) -> str | None:
    """torch.nn's module for ``spec``'s equations (``"LSTM"``, ``"GRU"``, ``"RNN_TANH"``,
    ``"RNN_RELU"``), or ``None`` when cuDNN has no such cell."""
    act, rec = activation_code(spec.activation), activation_code(spec.recurrent_activation)
    gated = act == TANH and rec == SIGMOID
    if spec.family == "lstm":
        return "LSTM" if gated and not (spec.peephole or spec.layer_norm) else None
    if spec.family == "gru":
        return "GRU" if gated and spec.reset_after else None
    if spec.family == "rnn":
        return {TANH: "RNN_TANH", RELU: "RNN_RELU"}.get(act)
    return None


# The functions torch.nn.LSTM/GRU/RNN call (and Keras 3's torch backend). Called directly, they
# cost no module around the call: torch.func.functional_call on a torch.nn module took 51 µs
# more a call (116 against 65 µs, LSTM B=1, T=10, H=32 on this machine's CPU, 1 thread).
_FUNCTIONS = {"LSTM": _VF.lstm, "GRU": _VF.gru, "RNN_TANH": _VF.rnn_tanh, "RNN_RELU": _VF.rnn_relu}


def _right_padded(mask: torch.Tensor) -> bool:
    """True when every row of ``mask (B, T)`` is real steps then padding, at least one real."""
    lengths = mask.sum(1)
    prefix = torch.arange(mask.shape[1], device=mask.device) < lengths[:, None]
    return bool((lengths > 0).all()) and bool((prefix == mask).all())


def runner(cell, inputs: torch.Tensor, mask, recurrent_mask, zero_output_for_mask: bool):
    """:func:`run` when it takes this call of ``cell`` on ``inputs (B, T, I)``, else ``None``."""
    if inputs.device.type not in DEVICES or 0 in inputs.shape or not _is_builtin_step(cell):
        return None
    if recurrent_mask is not None or _mode(cell.spec) is None:
        return None
    present = [tensor for tensor in cell.weights() if tensor is not None]
    if any(t.dtype != inputs.dtype or t.device != inputs.device for t in present):
        return None
    if mask is not None and not _right_padded(mask):
        return None
    return run


def _flat_weights(weights) -> tuple[list[torch.Tensor], bool]:
    """The cell's tensors in torch.nn's order for one layer (``w_ih, w_hh[, b_ih, b_hh][, w_hr]``)
    and whether they hold biases; a missing ``b_hh`` or ``b_ih`` (Keras keeps one) is zeros."""
    flat = [weights.weight_ih, weights.weight_hh]
    b_ih, b_hh = weights.bias_ih, weights.bias_hh
    bias = b_ih is not None or b_hh is not None
    if bias:
        flat += [torch.zeros_like(b_hh) if b_ih is None else b_ih,
                 torch.zeros_like(b_ih) if b_hh is None else b_hh]
    if weights.weight_hr is not None:
        flat.append(weights.weight_hr)
    return flat, bias


def _hx(hidden: tuple[torch.Tensor, ...]):
    """torch's initial state: ``(h, c)`` for the LSTM, ``h`` for the others."""
    return hidden if len(hidden) == 2 else hidden[0]


def _hold_last_output(outputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """``outputs (B, T, R)`` with each row's steps from ``lengths (B,)`` on replaced by its step
    ``lengths - 1``."""
    steps = torch.arange(outputs.shape[1], device=outputs.device)
    source = torch.minimum(steps[None], (lengths - 1)[:, None])  # (B, T)
    return outputs.gather(1, source[..., None].expand(-1, -1, outputs.shape[2]))


def run(cell, inputs: torch.Tensor, state, mask, recurrent_mask, zero_output_for_mask: bool,
        stacked: bool):
    """``(outputs (B, T, R), final_state)`` of ``cell`` on ``inputs (B, T, I)`` through torch's
    fused RNN; the signature of every runner of :func:`rnnkit.kernels.dispatch.run_sequence`.

    ``state`` is a tuple of ``(B, s)`` tensors (LSTM: ``h``, ``c``) or ``None`` for zeros. With
    ``mask (B, T)`` (right-padded, see :func:`runner`) a row's final state is the one at its last
    real step, and its outputs past it are zeros with ``zero_output_for_mask``, else that step's.
    The final states are ``(1, B, s)`` with ``stacked``, else ``(B, s)``.
    """
    weights, function = cell.weights(), _FUNCTIONS[_mode(cell.spec)]
    if state is None:
        state = tuple(inputs.new_zeros(inputs.shape[0], size) for size in cell.state_size)
    hidden = tuple(s.unsqueeze(0) for s in state)  # each (1, B, s)
    flat, bias = _flat_weights(weights)
    if mask is None:
        outputs, *finals = function(inputs, _hx(hidden), flat, bias, 1, 0.0, False, False, True)
    else:
        lengths = mask.sum(1)  # (B,)
        packed = pack_padded_sequence(inputs, lengths.cpu(), batch_first=True, enforce_sorted=False)
        order, back = packed.sorted_indices, packed.unsorted_indices  # longest rows first
        hidden = tuple(h.index_select(1, order) for h in hidden)
        data, *finals = function(packed.data, packed.batch_sizes, _hx(hidden), flat, bias, 1, 0.0,
                                 False, False)
        finals = [final.index_select(1, back) for final in finals]
        outputs, _ = pad_packed_sequence(PackedSequence(data, packed.batch_sizes, order, back),
                                         batch_first=True, total_length=inputs.shape[1])
        if not zero_output_for_mask:
            outputs = _hold_last_output(outputs, lengths)
    return outputs, tuple(finals if stacked else (final[0] for final in finals))
