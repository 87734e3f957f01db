"""Torch-side plumbing shared by the fused kernels: eligibility, masks and tensor/array exchange."""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
from typing import NamedTuple

import numpy as np
import torch

from rnnkit.kernels._numba import activation_code

NUMPY_DTYPES = {torch.float32: np.float32, torch.float64: np.float64}


class SequenceMasks(NamedTuple):
    """The masks in the form the compiled loops take (always present, so one signature serves)."""

    keep: np.ndarray  # (B, T) bool, True on real steps
    recurrent: np.ndarray  # (B, H_rec), ones when there is no recurrent mask
    recurrent_tensor: torch.Tensor | None  # (B, H_rec) or None, for the weight gradients
    zero_output: bool


def tensors_fit(tensors, dtype: torch.dtype) -> bool:
    """True when every tensor is a CPU tensor of ``dtype`` (``None`` entries are skipped)."""
    return all(t.device.type == "cpu" and t.dtype == dtype for t in tensors if t is not None)


def codes_of(spec) -> tuple[int, int] | None:
    """``(activation, recurrent_activation)`` codes, or ``None`` if either has no kernel."""
    act, rec = activation_code(spec.activation), activation_code(spec.recurrent_activation)
    return None if act is None or rec is None else (act, rec)


def run_inputs_fit(inputs: torch.Tensor, state, state_size, mask, recurrent_mask) -> bool:
    """Whether a call's runtime arguments suit a kernel (else the reference loop runs it).

    States must be ``(B, state_size[k])``, the mask a ``(B, T)`` bool CPU tensor and the recurrent
    mask broadcastable to ``(B, state_size[0])`` and free of autograd.
    """
    batch, steps = inputs.shape[:2]
    if len(state) != len(state_size) or not tensors_fit(state, inputs.dtype):
        return False
    if any(tuple(s.shape) != (batch, size) for s, size in zip(state, state_size)):
        return False
    if mask is not None and (
        mask.device.type != "cpu" or mask.dtype != torch.bool or tuple(mask.shape) != (batch, steps)
    ):
        return False
    if recurrent_mask is None:
        return True
    broadcast_ok = tuple(recurrent_mask.shape) in {(batch, state_size[0]), (1, state_size[0])}
    return (
        broadcast_ok
        and tensors_fit([recurrent_mask], inputs.dtype)
        and not recurrent_mask.requires_grad
    )


def as_array(tensor: torch.Tensor) -> np.ndarray:
    """A C-contiguous numpy view (or copy) of ``tensor``'s values, outside autograd."""
    return np.ascontiguousarray(tensor.detach().numpy())


def optional_array(tensor: torch.Tensor | None, dtype: torch.dtype, ndim: int = 1) -> np.ndarray:
    """``tensor``'s values, or an empty placeholder of the same rank and dtype when it is absent.

    The compiled loops take every option as an array, so their signature (and cache) stays fixed.
    """
    if tensor is None:
        return np.zeros((0,) * ndim, dtype=NUMPY_DTYPES[dtype])
    return as_array(tensor)


def sequence_masks(
    inputs: torch.Tensor, recurrent_size: int, mask, recurrent_mask, zero_output: bool
) -> SequenceMasks:
    """Broadcast ``mask (B, T)`` and ``recurrent_mask (B, H_rec)`` to full arrays."""
    batch, steps = inputs.shape[:2]
    if mask is None:
        keep = np.ones((batch, steps), dtype=np.bool_)
    else:
        keep = np.ascontiguousarray(mask.detach().numpy())
    if recurrent_mask is None:
        recurrent = np.ones((batch, recurrent_size), dtype=NUMPY_DTYPES[inputs.dtype])
        tensor = None
    else:
        tensor = recurrent_mask.detach().expand(batch, recurrent_size)
        recurrent = as_array(tensor)
    return SequenceMasks(keep, recurrent, tensor, bool(zero_output))


def initial_state(state, index: int, batch: int, size: int) -> torch.Tensor:
    """State tensor ``index`` broadcast to ``(B, size)`` and made contiguous (autograd-tracked)."""
    return state[index].expand(batch, size).contiguous()


def masked_recurrent_inputs(states: torch.Tensor, masks: SequenceMasks) -> torch.Tensor:
    """``h_{t-1} * recurrent_mask`` for all steps, ``(B*T, H_rec)``, from ``states (B, T+1, R)``."""
    previous = states[:, :-1]  # (B, T, H_rec)
    if masks.recurrent_tensor is not None:
        previous = previous * masks.recurrent_tensor[:, None]
    return previous.reshape(-1, previous.shape[-1])


def flat(array: np.ndarray) -> torch.Tensor:
    """``array (B, T, X)`` as a ``(B*T, X)`` tensor sharing memory."""
    return torch.from_numpy(array).reshape(-1, array.shape[-1])


@functools.cache
def blas_available() -> bool:
    """numba's ``np.dot`` calls BLAS through scipy: without scipy the kernels cannot compile."""
    return importlib.util.find_spec("scipy") is not None


@functools.cache
def _scipy_blas_controllers() -> tuple:
    """threadpoolctl handles on the BLAS that numba's ``np.dot`` calls (scipy's), if any."""
    try:
        import scipy.linalg.cython_blas  # noqa: F401  (loads the library numba will call)
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return ()
    import scipy

    # scipy's own copy lives in site-packages/scipy.libs (Linux, Windows) or scipy/.dylibs (macOS).
    site_packages = os.path.dirname(os.path.dirname(scipy.__file__))
    return tuple(
        controller
        for controller in ThreadpoolController().lib_controllers
        if controller.user_api == "blas"
        and os.path.relpath(controller.filepath, site_packages).startswith("scipy")
    )


@contextlib.contextmanager
def single_threaded_blas():
    """Run the per-step GEMMs on one thread, restoring the BLAS's setting afterwards.

    Each step's GEMM is small and the steps are sequential: waking a BLAS thread pool once per
    step costs more than it gains, and on a busy machine far more (18x slower measured on 2 cores).
    """
    controllers = _scipy_blas_controllers()
    previous = [controller.num_threads for controller in controllers]
    for controller in controllers:
        controller.set_num_threads(1)
    try:
        yield
    finally:
        for controller, threads in zip(controllers, previous):
            controller.set_num_threads(threads)
