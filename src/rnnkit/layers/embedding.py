"""Keras's ``Embedding`` and ``Masking``: the two layers that start a mask.

``Embedding(mask_zero=True)`` marks token id 0 as padding; ``Masking(mask_value)`` marks a step
whose features all equal ``mask_value``. Either mask is read by the recurrent layers through
``compute_mask``, so left- and right-padded batches give the same results as in Keras.

Example:
    >>> embed = Embedding(100, 8, mask_zero=True)
    >>> ids = np.array([[5, 7, 0, 0]])
    >>> embed(ids).shape, embed.compute_mask(ids)
    (torch.Size([1, 4, 8]), tensor([[ True,  True, False, False]]))
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rnnkit import _checks, initializers
from rnnkit.layers.base import Layer
from rnnkit.layers.core import check_positive_int, refuse_unsupported

# Keras accepts these short names for its random initializers.
_ALIASES = {"uniform": "random_uniform", "normal": "random_normal"}


def token_ids(inputs, input_dim: int) -> torch.Tensor:
    """``inputs`` as a long tensor of ids in ``[0, input_dim)``.

    Floating input is accepted when every value is whole (Keras casts it); anything else raises.
    """
    tensor = _checks.as_tensor(inputs, "inputs")
    if tensor.dtype == torch.bool or tensor.is_complex():
        raise TypeError(f"inputs: expected integer token ids, got dtype {tensor.dtype}")
    _checks.check_has_data(tensor, "inputs")
    if tensor.is_floating_point():
        if not bool(torch.all(tensor == torch.round(tensor))):
            raise TypeError(
                f"inputs: expected integer token ids, got dtype {tensor.dtype} "
                "with non-integer values"
            )
    # The range is checked before the cast to int64, which would wrap or saturate
    # out-of-range values (inf, 1e30, uint64 above 2**63) into other, plausible ids.
    if tensor.numel():
        low, high = _checks.value_range(tensor)
        if low < 0 or high >= input_dim:
            raise ValueError(
                f"inputs: expected token ids in [0, input_dim) = [0, {input_dim}), "
                f"got min {_id_text(low)} and max {_id_text(high)}"
            )
    return tensor.long()


def _id_text(value) -> str:
    """Whole floats print as integers (7, not 7.0), so messages read the same for float ids."""
    if isinstance(value, float):
        return str(int(value)) if abs(value) < 2**53 and value.is_integer() else f"{value:g}"
    return str(value)


class Embedding(Layer):
    """Look up ``embeddings[ids]``: ids ``(B, ...)`` to vectors ``(B, ..., output_dim)``.

    ``embeddings`` is ``(input_dim, output_dim)``, drawn from U(-0.05, 0.05) by default.
    ``input_length`` (Keras 2) is accepted and fixes the expected sequence length.
    """

    def __init__(
        self,
        input_dim: int,
        output_dim: int,
        embeddings_initializer="uniform",
        mask_zero: bool = False,
        input_length: int | None = None,
        **kwargs,
    ) -> None:
        refuse_unsupported(
            kwargs, ("embeddings_regularizer", "activity_regularizer", "embeddings_constraint")
        )
        if input_length is not None:
            check_positive_int(input_length, "input_length")
            kwargs.setdefault("input_shape", (input_length,))
        super().__init__(**kwargs)
        self.input_dim = check_positive_int(input_dim, "input_dim")
        self.output_dim = check_positive_int(output_dim, "output_dim")
        self.mask_zero = bool(mask_zero)
        self.input_length = input_length
        embeddings_initializer = _ALIASES.get(embeddings_initializer, embeddings_initializer)
        self._initializer_name = initializers.name_of(embeddings_initializer)
        initializer = initializers.get(embeddings_initializer)
        self.embeddings = nn.Parameter(
            initializer((self.input_dim, self.output_dim), self.param_dtype)
        )
        self.built = True

    def call(self, inputs, mask=None, training=None):
        ids = token_ids(inputs, self.input_dim)
        if self.input_length is not None and ids.dim() >= 2 and ids.shape[1] != self.input_length:
            raise ValueError(
                f"inputs: expected {self.input_length} timesteps (input_length), "
                f"got shape {tuple(ids.shape)}"
            )
        return F.embedding(ids.to(self.embeddings.device), self.embeddings)

    def compute_mask(self, inputs, mask=None):
        if not self.mask_zero:
            return None
        return token_ids(inputs, self.input_dim) != 0

    def compute_output_shape(self, input_shape):
        return (*tuple(input_shape), self.output_dim)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            input_dim=self.input_dim,
            output_dim=self.output_dim,
            embeddings_initializer=self._initializer_name,
            mask_zero=self.mask_zero,
            input_length=self.input_length,
        )
        return config


class Masking(Layer):
    """Mask every step whose features all equal ``mask_value`` and zero those steps.

    Inputs ``(B, T, F)``; outputs the same shape; ``compute_mask`` gives ``(B, T)``, True where
    any feature differs from ``mask_value``.
    """

    supports_masking = True

    def __init__(self, mask_value: float = 0.0, **kwargs) -> None:
        super().__init__(**kwargs)
        if isinstance(mask_value, bool) or not isinstance(mask_value, (int, float)):
            raise TypeError(f"mask_value: expected a number, got {type(mask_value).__name__}")
        self.mask_value = mask_value

    def _step_mask(self, inputs: torch.Tensor) -> torch.Tensor:
        if inputs.dim() < 2:
            raise ValueError(
                f"inputs: expected a tensor of rank >= 2 (batch, ..., features), "
                f"got shape {tuple(inputs.shape)}"
            )
        return (inputs != self.mask_value).any(dim=-1)  # (B, T)

    def call(self, inputs, mask=None, training=None):
        keep = self._step_mask(inputs)
        return inputs * keep.unsqueeze(-1).to(inputs.dtype)

    def compute_mask(self, inputs, mask=None):
        return self._step_mask(_checks.as_tensor(inputs, "inputs"))

    def get_config(self) -> dict:
        config = super().get_config()
        config["mask_value"] = self.mask_value
        return config
