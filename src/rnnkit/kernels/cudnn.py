"""Built-in cells on CUDA through torch's own fused RNN, which runs on cuDNN there.

``torch.nn.LSTM/GRU/RNN`` run a whole sequence in one cuDNN call on CUDA. A built-in cell on
CUDA tensors takes that call when its equations are cuDNN's:

- LSTM with the tanh/sigmoid cell, without peepholes or layer norm (``proj_size`` is fine);
- GRU with ``reset_after=True`` (torch's and cuDNN's form; Keras's default);
- SimpleRNN with ``tanh`` or ``relu``;

every weight of the inputs' dtype and device, no recurrent-dropout mask, and either no mask or a
right-padded one with at least one real step per row: cuDNN's packed sequences. Padded steps hold
the state, and output zeros (``zero_output_for_mask``) or the last real step's output (Keras's
default), as on the reference loop. Anything else (peepholes, layer
norm, other activations, ``reset_after=False``, recurrent dropout, left padding) runs on the
reference loop (:mod:`rnnkit.kernels.dispatch`).

The cell's own tensors are handed to a ``torch.nn`` module through
:func:`torch.func.functional_call`, so autograd reaches them as with any torch op. A missing
``bias_hh`` (Keras keeps one bias) is a zero tensor; with no bias at all the module has none.

Example (on a machine with a GPU)::

    lstm = rnnkit.layers.LSTM(32, return_sequences=True).cuda()
    y = lstm(torch.randn(8, 100, 16, device="cuda"))  # (8, 100, 32), one cuDNN call
"""

from __future__ import annotations

import threading

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rnnkit.kernels._numba import RELU, SIGMOID, TANH, activation_code
from rnnkit.kernels.fused import _is_builtin_step

# The devices whose built-in cells take this path when no compiled kernel does. Only CUDA: on
# CPU the compiled kernels are faster than torch's. The tests add "cpu" to run this path there.
DEVICES = ("cuda",)

_LSTM_ONLY = ("weight_peephole", "ln_ih_weight", "ln_ih_bias", "ln_hh_weight", "ln_hh_bias",
              "ln_c_weight", "ln_c_bias")


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
    weights = cell.weights()
    if any(getattr(weights, name) is not None for name in _LSTM_ONLY):
        return None
    present = [tensor for tensor in weights if tensor is not None]
    if any(t.dtype != inputs.dtype or t.device != inputs.device for t in present):
        return None
    if mask is not None and not _right_padded(mask):
        return None
    return run


_TEMPLATES = threading.local()  # functional_call swaps tensors into a module: one per thread


def _template(mode: str, spec, bias: bool) -> nn.Module:
    """A ``torch.nn`` module of ``spec``'s shape on the meta device, whose tensors each call
    replaces (kept per thread and shape)."""
    templates = _TEMPLATES.__dict__.setdefault("modules", {})
    key = (mode, spec.input_size, spec.hidden_size, spec.proj_size, bias)
    module = templates.get(key)
    if module is None:
        kwargs = {"bias": bias, "batch_first": True, "device": "meta"}
        if mode == "LSTM":
            module = nn.LSTM(spec.input_size, spec.hidden_size, proj_size=spec.proj_size, **kwargs)
        elif mode == "GRU":
            module = nn.GRU(spec.input_size, spec.hidden_size, **kwargs)
        else:
            nonlinearity = mode.removeprefix("RNN_").lower()
            module = nn.RNN(spec.input_size, spec.hidden_size, nonlinearity=nonlinearity,
                            **kwargs)
        templates[key] = module
    return module


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
    spec, weights = cell.spec, cell.weights()
    bias = weights.bias_ih is not None or weights.bias_hh is not None
    mode = _mode(spec)
    tensors = {"weight_ih_l0": weights.weight_ih, "weight_hh_l0": weights.weight_hh}
    if bias:
        for name, other in (("bias_ih", "bias_hh"), ("bias_hh", "bias_ih")):
            tensor = getattr(weights, name)
            tensors[f"{name}_l0"] = (torch.zeros_like(getattr(weights, other)) if tensor is None
                                     else tensor)
    if weights.weight_hr is not None:
        tensors["weight_hr_l0"] = weights.weight_hr
    hx = None if state is None else tuple(s.unsqueeze(0) for s in state)  # each (1, B, s)
    if hx is not None and mode != "LSTM":
        hx = hx[0]
    sequence = inputs
    if mask is not None:
        lengths = mask.sum(1).cpu()  # (B,)
        sequence = pack_padded_sequence(inputs, lengths, batch_first=True, enforce_sorted=False)
    outputs, finals = torch.func.functional_call(_template(mode, spec, bias), tensors,
                                                 (sequence, hx))
    if mask is not None:
        outputs, _ = pad_packed_sequence(outputs, batch_first=True, total_length=inputs.shape[1])
        if not zero_output_for_mask:
            outputs = _hold_last_output(outputs, lengths.to(outputs.device))
    finals = finals if mode == "LSTM" else (finals,)  # each (1, B, s)
    if not stacked:
        finals = tuple(final[0] for final in finals)
    return outputs, tuple(finals)

