"""Seed 000's one-step LSTM and GRU examples as loaded layers (see docs/seed_examples.md).

The seed's reading used throughout rnnkit: the input is the scalar ``x = 0.5``; ``W x`` and
``U h`` are matrix-vector products with one row per unit, so only the first column of each 2x2
``W`` meets the scalar input. The seed's GRU blends ``(1 - z) h_{t-1} + z h̃``, the mirror of
rnnkit's (Keras's, PyTorch's) ``z h_{t-1} + (1 - z) h̃``; the GRU here carries the update gate's
weights and bias negated, so its update gate is ``1 - z`` and its output is the seed's cell.
"""

from __future__ import annotations

import numpy as np

X = 0.5
H_PREV = (0.2, 0.3)
C_PREV = (0.4, 0.5)
LSTM_W = {"i": [[0.1, 0.2], [0.3, 0.4]], "f": [[0.5, 0.6], [0.7, 0.8]],
          "c": [[0.9, 1.0], [1.1, 1.2]], "o": [[1.3, 1.4], [1.5, 1.6]]}
LSTM_U = {"i": [[1.7, 1.8], [1.9, 2.0]], "f": [[2.1, 2.2], [2.3, 2.4]],
          "c": [[2.5, 2.6], [2.7, 2.8]], "o": [[2.9, 3.0], [3.1, 3.2]]}
LSTM_B = {"i": [0.1, 0.2], "f": [0.3, 0.4], "c": [0.5, 0.6], "o": [0.7, 0.8]}
GRU_W = {"z": [[0.1, 0.2], [0.3, 0.4]], "r": [[0.5, 0.6], [0.7, 0.8]],
         "h": [[0.9, 1.0], [1.1, 1.2]]}
GRU_U = {"z": [[1.3, 1.4], [1.5, 1.6]], "r": [[1.7, 1.8], [1.9, 2.0]],
         "h": [[2.1, 2.2], [2.3, 2.4]]}
GRU_B = {"z": [0.1, 0.2], "r": [0.3, 0.4], "h": [0.5, 0.6]}


def _keras_weights(W, U, B, gates, sign=None) -> list[np.ndarray]:
    sign = sign or {}
    kernel = np.concatenate([sign.get(g, 1.0) * np.asarray(W[g])[:, 0] for g in gates])[None]
    recurrent = np.concatenate([sign.get(g, 1.0) * np.asarray(U[g]).T for g in gates], axis=1)
    bias = np.concatenate([sign.get(g, 1.0) * np.asarray(B[g]) for g in gates])
    return [kernel, recurrent, bias]  # (1, G*2), (2, G*2), (G*2,)


def lstm_keras_weights() -> list[np.ndarray]:
    """Keras layout (gates i, f, c, o): kernel (1, 8), recurrent_kernel (2, 8), bias (8,)."""
    return _keras_weights(LSTM_W, LSTM_U, LSTM_B, ("i", "f", "c", "o"))


def gru_keras_weights() -> list[np.ndarray]:
    """``GRU(2, reset_after=False)`` layout (gates z, r, h) with the update gate negated."""
    return _keras_weights(GRU_W, GRU_U, GRU_B, ("z", "r", "h"), sign={"z": -1.0})


def lstm_example():
    """``(layer, x (1, 1, 1), [h (1, 2), c (1, 2)])`` for the seed's LSTM step, in float64."""
    from rnnkit.layers import LSTM

    layer = LSTM(2, input_shape=(None, 1), dtype="float64")
    layer.set_weights(lstm_keras_weights())
    return layer, np.array([[[X]]]), [np.array([H_PREV]), np.array([C_PREV])]


def gru_example():
    """``(layer, x (1, 1, 1), [h (1, 2)])`` for the seed's GRU step, in float64."""
    from rnnkit.layers import GRU

    layer = GRU(2, reset_after=False, input_shape=(None, 1), dtype="float64")
    layer.set_weights(gru_keras_weights())
    return layer, np.array([[[X]]]), [np.array([H_PREV])]
