"""PackedSequence in and out: rnnkit runs padded batches under a right-padded mask.

A PackedSequence is unpacked to a batch-first padded tensor in the caller's batch order, run with
a ``(B, T)`` mask, and packed again with the input's own ``batch_sizes`` and index permutations, so
the output has exactly the layout torch.nn would produce.
"""

from __future__ import annotations

import torch
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence


def unpack(packed: PackedSequence) -> tuple[torch.Tensor, torch.Tensor]:
    """``(padded (B, T, I), lengths (B,))``, both in the caller's (unsorted) batch order."""
    return pad_packed_sequence(packed, batch_first=True)


def repack(padded: torch.Tensor, lengths: torch.Tensor, like: PackedSequence) -> PackedSequence:
    """Pack ``padded (B, T, F)`` (caller's batch order) with the layout of ``like``."""
    if like.sorted_indices is not None:
        padded = padded.index_select(0, like.sorted_indices)  # (B, T, F), longest first
        lengths = lengths[like.sorted_indices.cpu()]
    data = pack_padded_sequence(padded, lengths, batch_first=True, enforce_sorted=True).data
    return PackedSequence(data, like.batch_sizes, like.sorted_indices, like.unsorted_indices)
