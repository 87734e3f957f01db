"""Bad input across the public API, continued (docs/errors.md): ranks, memory layouts,
autograd, half precision, the meta device, and other malformed calls the fuzz suite exercises.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnkit import layers
from rnnkit import nn as rnn_nn

from ._cases import (
    UNITS,
    B,
    F,
    T,
    expect_error,
    sequence,
    state_count,
)


# -- ranks, memory layouts, autograd, half precision, the meta device ----------------------------
@pytest.mark.parametrize("shape", [(), (T,), (B, T), (B, T, F, 1), (1, B, T, F, 1)])
def test_wrong_ranks_are_refused(make_layer, module_class, shape):
    x = np.zeros(shape, np.float32)
    expect_error(lambda: make_layer()(x), ValueError, "inputs", "rank-3")
    if len(shape) != 2:  # 2-D is torch.nn's unbatched input
        expect_error(
            lambda: module_class(F, UNITS)(torch.from_numpy(x)),
            ValueError,
            "input",
            "3-D",
            f"got shape {shape}",
        )


def strided_views(x: torch.Tensor) -> dict:
    """``x (B, T, F)`` as non-contiguous views holding the same values."""
    wide = torch.zeros(x.shape[0], 2 * x.shape[1], x.shape[2])
    wide[:, ::2] = x
    return {
        "transposed": x.transpose(0, 1).contiguous().transpose(0, 1),
        "strided": wide[:, ::2],
        "channels-first": x.permute(0, 2, 1).contiguous().permute(0, 2, 1),
        "expanded": x[:1].expand(*x.shape),
    }


def odd_layout(shape) -> torch.Tensor:
    """Random values of ``shape`` stored in reversed axis order (so not contiguous)."""
    return torch.rand(tuple(reversed(shape))).permute(*reversed(range(len(shape))))


@pytest.mark.parametrize("view", ["transposed", "strided", "channels-first", "expanded"])
def test_non_contiguous_inputs_give_the_contiguous_result(make_layer, backend, view):
    layer = make_layer(return_sequences=True, backend=backend)
    strided = strided_views(torch.from_numpy(sequence()))[view]
    mask = odd_layout((B, T)) > 0.3
    initial = [odd_layout((B, UNITS)) for _ in range(state_count(layer))]
    assert not any(t.is_contiguous() for t in (strided, mask, *initial))
    got = layer(strided, mask=mask, initial_state=initial)
    plain = [t.contiguous() for t in initial]
    expected = layer(strided.contiguous(), mask=mask.contiguous(), initial_state=plain)
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("view", ["transposed", "strided", "channels-first", "expanded"])
def test_nn_non_contiguous_inputs_give_the_contiguous_result(module_class, backend, view):
    module = module_class(F, UNITS, batch_first=True, bidirectional=True, backend=backend)
    strided = strided_views(torch.from_numpy(sequence()))[view]
    odd = tuple(odd_layout((2, B, UNITS)) for _ in range(2))  # (h_0, c_0) or h_0 alone
    plain = tuple(t.contiguous() for t in odd)
    if module_class is not rnn_nn.LSTM:
        odd, plain = odd[0], plain[0]
    got, expected = module(strided, odd), module(strided.contiguous(), plain)
    torch.testing.assert_close(got[0], expected[0])


def test_requires_grad_inputs_give_the_contiguous_gradients(make_layer, backend):
    layer = make_layer(return_sequences=True, backend=backend)
    base = torch.from_numpy(sequence()).transpose(0, 1).contiguous()
    leaf_strided = base.clone().requires_grad_(True)
    leaf_plain = base.transpose(0, 1).contiguous().requires_grad_(True)
    out = layer(leaf_strided.transpose(0, 1))
    assert out.requires_grad
    out.square().sum().backward()
    layer(leaf_plain).square().sum().backward()
    torch.testing.assert_close(leaf_strided.grad.transpose(0, 1), leaf_plain.grad)


@pytest.mark.parametrize("half", [torch.float16, torch.bfloat16])
def test_layers_compute_half_inputs_in_their_own_dtype(make_layer, backend, half):
    layer = make_layer(return_sequences=True, backend=backend)
    x = torch.from_numpy(sequence()).to(half)
    torch.testing.assert_close(layer(x), layer(x.float()))  # widening to float32 is exact
    if isinstance(layer, layers.Bidirectional):
        return  # its backward copy drops dtype=; see test_known_gaps.py
    in_half = make_layer(return_sequences=True, backend="reference", dtype=half)
    output = in_half(x)
    assert output.dtype == half and torch.isfinite(output).all()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_nn_modules_refuse_inputs_of_another_dtype_and_run_in_half(module_class, dtype):
    module = module_class(F, UNITS)
    x = torch.from_numpy(sequence()).transpose(0, 1)
    expect_error(lambda: module(x.to(dtype)), TypeError, "input", "torch.float32", str(dtype))
    if dtype != torch.float64:
        reference = module_class(F, UNITS, backend="reference")
        output, _ = reference.to(dtype)(x.to(dtype))
        expected, _ = reference.float()(x)
        assert output.dtype == dtype
        torch.testing.assert_close(output.float(), expected, atol=2e-2, rtol=0)


def test_meta_tensors_are_refused_by_layers(make_layer):
    layer = make_layer()
    meta = torch.empty(B, T, F, device="meta")
    expect_error(lambda: layer(meta), ValueError, "inputs", "cpu", "meta")
    meta_states = [torch.empty(B, UNITS, device="meta")] * state_count(layer)
    expect_error(
        lambda: layer(sequence(), initial_state=meta_states), ValueError, "initial_state[0]", "meta"
    )
    expect_error(
        lambda: layer(sequence(), mask=torch.ones(B, T, dtype=torch.bool, device="meta")),
        ValueError,
        "mask",
        "meta",
    )
    if isinstance(layer, layers.RNN):
        expect_error(
            lambda: layer.step(torch.empty(B, F, device="meta")), ValueError, "inputs", "meta"
        )


def test_meta_tensors_and_the_nn_modules(module_class):
    module = module_class(F, UNITS, num_layers=2, bidirectional=True)
    meta = torch.empty(T, B, F, device="meta")
    expect_error(lambda: module(meta), ValueError, "input", "cpu", "meta")
    name = "hx[0] (h_0)" if module_class is rnn_nn.LSTM else "hx"
    h_meta = torch.empty(4, B, UNITS, device="meta")
    hx = (h_meta, h_meta) if module_class is rnn_nn.LSTM else h_meta
    expect_error(lambda: module(torch.zeros(T, B, F), hx), ValueError, name, "meta")
    on_meta = module_class(F, UNITS, num_layers=2, bidirectional=True, device="meta")
    output, _ = on_meta(meta)  # as torch.nn: shapes without data
    assert output.device.type == "meta" and tuple(output.shape) == (T, B, 2 * UNITS)


# -- other malformed calls found by the fuzz suite -------------------------------------------------
@pytest.mark.parametrize(
    ("inputs", "error", "fragments"),
    [
        (None, TypeError, ["None"]),
        ([[[1.0, 2.0, 3.0]]], TypeError, ["list of 1 items", "np.asarray"]),
        ([np.zeros((B, T, F)), np.zeros((B, UNITS))], TypeError, ["list of 2 items"]),
        (np.array([["a", "b"]]), TypeError, ["numeric", "<U1"]),
    ],
    ids=["none", "nested-list", "list-of-arrays", "strings"],
)
def test_inputs_that_are_not_one_array(make_layer, inputs, error, fragments):
    expect_error(lambda: make_layer()(inputs), error, "inputs", *fragments)


@pytest.mark.parametrize(
    ("mask", "fragments"),
    [
        (np.full((B, T), 2, np.uint16), ["0/1", "[2]"]),
        (np.full((B, T), 0.5), ["0/1", "[0.5]"]),
        (np.ones((B, T), np.complex64), ["complex64"]),
        (True, ["scalar"]),
    ],
    ids=["uint16-two", "half", "complex", "scalar"],
)
def test_masks_hold_only_zeros_and_ones(make_layer, mask, fragments):
    error = TypeError if np.iscomplexobj(mask) else ValueError
    expect_error(lambda: make_layer()(sequence(), mask=mask), error, "mask", *fragments)


@pytest.mark.parametrize(
    ("kwargs", "argument", "fragments"),
    [
        ({"input_shape": (None, 2.5)}, "input_shape", ["(None, 2.5)"]),
        ({"input_shape": (5,)}, "input_shape", ["(5,)"]),
        ({"input_shape": (0, 3)}, "input_shape", ["(0, 3)"]),
        ({"dtype": torch.int32}, "dtype", ["floating-point", "torch.int32"]),
    ],
    ids=["fractional-features", "rank-1-shape", "no-timesteps", "integer-dtype"],
)
def test_constructor_shapes_and_dtypes(kwargs, argument, fragments):
    expect_error(lambda: layers.LSTM(UNITS, **kwargs), ValueError, argument, *fragments)


def test_reset_states_names_a_bad_argument():
    layer = layers.LSTM(UNITS, stateful=True)
    expect_error(lambda: layer.reset_states("abc"), TypeError, "states", "str")
    expect_error(
        lambda: layer.reset_states([np.zeros(UNITS)] * 2),
        ValueError,
        "states[0]",
        "(batch, units)",
        f"({UNITS},)",
    )
