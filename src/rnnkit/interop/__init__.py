"""Interoperability: Keras model files, torch.nn modules and ONNX.

- :func:`load_keras` / :func:`save_keras`: Keras's ``.keras`` (and legacy ``.h5``) files, read and
  written with h5py and json only (TensorFlow is never imported).
- :func:`from_torch` / :func:`to_torch`: torch.nn's ``LSTM``/``GRU``/``RNN`` to rnnkit's torch.nn
  drop-ins or Keras-face layers, and back, weights bit for bit.
- :func:`export_onnx`: rnnkit models to ONNX graphs built on ONNX's LSTM, GRU and RNN operators.

The submodules load on first use, so ``from_torch`` works without h5py or onnx installed (both
come with ``pip install rnnkit[interop]``). docs/interop.md lists what maps to what, and the limits.
"""

from __future__ import annotations

import importlib

_EXPORTS = {"load_keras": "keras", "save_keras": "keras", "export_onnx": "onnx_export",
            "from_torch": "torch_modules", "to_torch": "torch_modules"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'rnnkit.interop' has no attribute {name!r}")
    module = importlib.import_module(f"rnnkit.interop.{_EXPORTS[name]}")
    return getattr(module, name)


def __dir__() -> list[str]:
    return __all__
