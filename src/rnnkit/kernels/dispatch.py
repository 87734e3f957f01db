"""The dispatch point between fused kernels and the reference loop.

A built-in cell runs on a fused path where one takes the call: on CPU the compiled kernels
(:mod:`rnnkit.kernels.fused`); on CUDA, for the cells cuDNN has, torch's own fused RNN
(:mod:`rnnkit.kernels.cudnn`). Everything else runs on the reference loop.
"""

from __future__ import annotations

import torch

from rnnkit.kernels.reference import run_reference

BACKENDS = ("auto", "fused", "reference")

_select = None  # rnnkit.kernels.fused.select, once imported
_cudnn_runner = None  # rnnkit.kernels.cudnn.runner, once imported


def check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"backend: expected one of {BACKENDS}, got {backend!r}")
    return backend


def fused_runner(cell, inputs: torch.Tensor):
    """The fused kernel for ``cell`` on ``inputs``, or ``None`` when none applies.

    The runner has the signature ``runner(cell, inputs, state, mask, recurrent_mask,
    zero_output_for_mask, stacked) -> (outputs (B, T, O), final_state)``; see
    :mod:`rnnkit.kernels.fused`.
    """
    global _select
    if _select is None:
        # Imported on first use so that ``import rnnkit`` does not pay for importing numba.
        from rnnkit.kernels.fused import select

        _select = select
    return _select(cell, inputs)


def cudnn_runner(cell, inputs: torch.Tensor, mask, recurrent_mask, zero_output_for_mask: bool):
    """torch's fused RNN for ``cell`` on CUDA ``inputs``, or ``None`` when it does not take the
    call (see :mod:`rnnkit.kernels.cudnn`); same signature of runner as :func:`fused_runner`."""
    global _cudnn_runner
    if _cudnn_runner is None:
        from rnnkit.kernels.cudnn import runner

        _cudnn_runner = runner
    return _cudnn_runner(cell, inputs, mask, recurrent_mask, zero_output_for_mask)


def run_sequence(cell, inputs: torch.Tensor, state: tuple[torch.Tensor, ...] | None,
                 mask: torch.Tensor | None = None, recurrent_mask: torch.Tensor | None = None,
                 zero_output_for_mask: bool = False, backend: str = "auto", stacked: bool = False):
    """Run ``cell`` over ``inputs (B, T, I)``; returns ``(outputs (B, T, O), final_state)``.

    ``state`` is a tuple of ``(B, state_size[k])`` tensors, or ``None`` for zeros (which the
    kernels then make as arrays, outside autograd). ``mask (B, T)`` is boolean, True on real steps.
    ``recurrent_mask (B, H_rec)`` is a fixed recurrent-dropout mask (already scaled by
    ``1 / (1 - rate)``). The final state is a tuple of ``(B, s)`` tensors, or with ``stacked``
    of ``(1, B, s)`` (torch.nn's ``h_n`` for one layer and direction): a kernel then returns them
    in that shape, which spares autograd a view per state.
    """
    check_backend(backend)
    if backend != "reference":
        runner = fused_runner(cell, inputs)
        if runner is None:
            runner = cudnn_runner(cell, inputs, mask, recurrent_mask, zero_output_for_mask)
        if runner is not None:
            return runner(cell, inputs, state, mask, recurrent_mask, zero_output_for_mask, stacked)
        # An empty batch or sequence has nothing to compute: the loop returns the empty results.
        if backend == "fused" and 0 not in inputs.shape:
            raise ValueError(
                f"backend: 'fused' has no kernel for {type(cell).__name__} on "
                f"{inputs.device.type} with dtype {inputs.dtype}; use 'auto' or 'reference'"
            )
    return run_reference(cell, inputs, state, mask, recurrent_mask, zero_output_for_mask, stacked)
