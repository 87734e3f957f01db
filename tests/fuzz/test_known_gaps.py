"""Bad input that once escaped validation (see docs/errors.md).

Each test states the behaviour the hardening asks for. A gap found later and not yet fixed
belongs here too, marked ``pytest.mark.xfail(strict=True, reason="<module>: <what>")``: once the
module is fixed the test passes, the strict marker fails the run, and the marker is removed.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnkit import layers
from rnnkit import nn as rnn_nn
from rnnkit.models import Sequential

B, T, F = 2, 4, 3


def names(call, argument: str) -> None:
    with pytest.raises((ValueError, TypeError), match=argument):
        call()


def model():
    built = Sequential([layers.LSTM(2), layers.Dense(1)])
    built.compile("adam", "mse")
    return built


def test_non_numeric_dropout_is_named():
    names(lambda: layers.LSTM(4, dropout="0.1"), "dropout")


def test_fractional_proj_size_is_refused():
    names(lambda: layers.LSTM(4, proj_size=2.5), "proj_size")


def test_string_units_with_a_projection_is_named():
    names(lambda: layers.LSTM("4", proj_size=1), "units")


def test_bad_recurrent_activation_is_named():
    names(lambda: layers.GRU(4, recurrent_activation="nope"), "recurrent_activation")


def test_integer_module_dtype_is_refused():
    names(lambda: rnn_nn.LSTM(3, 4, dtype=torch.int64), "dtype")


def test_fit_refuses_an_empty_dataset():
    names(lambda: model().fit(np.zeros((0, T, F), "float32"), np.zeros((0, 1)), verbose=0), "x")


def test_fractional_epochs_are_named():
    names(
        lambda: model().fit(
            np.zeros((B, T, F), "float32"), np.zeros((B, 1)), epochs=1.5, verbose=0
        ),
        "epochs",
    )


def test_mismatched_target_shape_is_named():
    names(lambda: model().fit(np.zeros((B, T, F), "float32"), np.zeros((B, T, 7)), verbose=0), "y")


def test_predict_refuses_meta_tensors_by_name():
    names(lambda: model().predict(torch.empty(B, T, F, device="meta"), verbose=0), "x")


def test_fused_backend_accepts_an_empty_batch():
    output = layers.LSTM(4, backend="fused")(np.zeros((0, T, F), "float32"))
    assert tuple(output.shape) == (0, 4)


def test_bidirectional_backward_copy_keeps_the_dtype():
    layer = layers.Bidirectional(layers.LSTM(4, dtype="float16"))
    assert layer.backward_layer.cell.param_dtype == torch.float16


def test_recurrent_input_dim_sets_the_features():
    assert layers.LSTM(2, input_dim=3).built
