"""Bad input across the public API, one table per case of docs/errors.md: NaN and infinity,
empty batches and sequences, lengths, batch sizes that disagree, dtypes, huge values.

Each refusal names the argument, the expected value and what it got (``expect_error``); each
accepted edge case (empty batch, masked padding) is checked for the number it must give. Layers
run on both backends wherever a fused kernel could be reached.
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
    hidden,
    lstm_model,
    sequence,
    state_count,
    states,
)


# -- NaN and infinity --------------------------------------------------------------------------
def test_layers_propagate_nan_within_its_sample_only(make_layer, backend):
    layer = make_layer(return_sequences=True, backend=backend)
    x = sequence()
    clean = layer(x)
    x[0, 2, 1] = np.nan
    out = layer(x)
    assert not torch.isfinite(out[0]).all()  # sample 0 is NaN (both directions reach step 2)
    torch.testing.assert_close(out[1], clean[1])  # sample 1 is untouched


def test_nn_modules_propagate_nan_within_its_sample_only(module_class, backend):
    module = module_class(F, UNITS, batch_first=True, backend=backend)
    x = torch.from_numpy(sequence())
    clean, _ = module(x)
    x[0, 2, 1] = float("nan")
    out, _ = module(x)
    assert not torch.isfinite(out[0, 2:]).all() and torch.isfinite(out[0, :2]).all()
    torch.testing.assert_close(out[1], clean[1])


def test_nan_in_masked_padding_does_not_reach_outputs(make_layer, backend):
    layer = make_layer(return_sequences=True, backend=backend)
    x, lengths = sequence(), np.array([3, T])
    padded = x.copy()
    padded[0, 3:] = np.nan
    torch.testing.assert_close(
        layer(padded, lengths=lengths)[0, :3], layer(x, lengths=lengths)[0, :3]
    )


# (method, array holding the bad value, the value, how the message calls it)
BAD_DATA = [
    (method, array, value, kind)
    for method in ("fit", "evaluate", "predict")
    for array, value, kind in [
        ("x", np.nan, "NaN"),
        ("x", np.inf, "infinite"),
        ("y", np.nan, "NaN"),
    ]
    if not (method == "predict" and array == "y")
]


@pytest.mark.parametrize(("method", "array", "value", "kind"), BAD_DATA)
def test_fit_evaluate_predict_name_the_first_bad_entry(method, array, value, kind):
    model = lstm_model()
    data = {"x": sequence(batch=4), "y": np.zeros((4, 1), np.float32)}
    data[array][2, 0, ...] = value
    if method == "predict":
        data.pop("y")
    with pytest.raises(ValueError) as caught:
        getattr(model, method)(**data, verbose=0)
    message = str(caught.value)
    for fragment in (f"{array}:", kind, "index (2, 0", "sample 2"):
        assert fragment in message, message


def test_float64_values_beyond_float32_are_refused_not_cast_to_inf(make_layer):
    x = sequence(dtype=np.float64)
    x[1, 2, 0] = 1e300
    expect_error(lambda: make_layer()(x), ValueError, "inputs", "1e+300", "(1, 2, 0)")
    expect_error(lambda: make_layer()(torch.from_numpy(x)), ValueError, "inputs", "1e+300")
    layer = make_layer()
    big_state = [s.double() for s in states(layer)]
    big_state[0][0, 0] = 1e300
    expect_error(
        lambda: layer(sequence(), initial_state=big_state), ValueError, "initial_state[0]", "1e+300"
    )
    expect_error(lambda: lstm_model().predict(x, verbose=0), ValueError, "x", "index (1, 2, 0)")


# -- empty batches and empty sequences -----------------------------------------------------------
@pytest.mark.parametrize("extra", [None, "mask", "lengths", "initial_state"])
def test_layers_accept_an_empty_batch(make_layer, backend, extra):
    layer = make_layer(return_sequences=True, return_state=True, backend=backend)
    x = torch.zeros(0, T, F, requires_grad=True)
    options = {
        "mask": {"mask": np.zeros((0, T), bool)},
        "lengths": {"lengths": np.zeros(0, int)},
        "initial_state": {"initial_state": states(layer, batch=0)},
        None: {},
    }[extra]
    output, *final = layer(x, **options)
    width = UNITS * (2 if isinstance(layer, layers.Bidirectional) else 1)
    assert tuple(output.shape) == (0, T, width)
    assert [tuple(s.shape) for s in final] == [(0, UNITS)] * state_count(layer)
    output.sum().backward()
    assert x.grad.shape == x.shape


def test_nn_modules_accept_an_empty_batch(module_class, backend):
    module = module_class(F, UNITS, num_layers=2, bidirectional=True, backend=backend)
    output, state = module(torch.zeros(T, 0, F), lengths=torch.zeros(0, dtype=torch.long))
    assert tuple(output.shape) == (T, 0, 2 * UNITS)
    for tensor in state if isinstance(state, tuple) else (state,):
        assert tuple(tensor.shape) == (4, 0, UNITS)


def test_zero_length_sequences_are_refused(make_layer, module_class):
    expect_error(
        lambda: make_layer()(np.zeros((B, 0, F), "float32")),
        ValueError,
        "inputs",
        "at least one timestep",
        f"({B}, 0, {F})",
    )
    module = module_class(F, UNITS)
    expect_error(
        lambda: module(torch.zeros(0, B, F)), ValueError, "input", "seq_len >= 1", f"(0, {B}, {F})"
    )
    expect_error(lambda: module(torch.zeros(0, F)), ValueError, "input", "seq_len >= 1")
    batch_first = module_class(F, UNITS, batch_first=True)
    expect_error(lambda: batch_first(torch.zeros(B, 0, F)), ValueError, "input", "seq_len")
    assert batch_first(torch.zeros(0, T, F))[0].shape == (0, T, UNITS)  # empty batch: fine


def test_models_refuse_empty_data():
    model = lstm_model()
    expect_error(
        lambda: model.predict(np.zeros((0, T, F), "float32"), verbose=0),
        ValueError,
        "x",
        "no samples",
    )
    expect_error(
        lambda: model.predict(np.zeros((B, 0, F), "float32"), verbose=0),
        ValueError,
        "inputs",
        "at least one timestep",
    )
    expect_error(
        lambda: model.fit(np.zeros((B, 0, F), "float32"), np.zeros((B, 1)), verbose=0),
        ValueError,
        "inputs",
        "at least one timestep",
    )


# -- lengths ---------------------------------------------------------------------------------
# (lengths for a batch of B=2 sequences of T=5 steps, error, fragments)
BAD_LENGTHS = {
    "past-the-end": (np.array([6, 2]), ValueError, ["[1, 5]", "max 6"]),
    "zero": (np.array([0, 2]), ValueError, ["[1, 5]", "min 0"]),
    "negative": (np.array([3, -4]), ValueError, ["min -4"]),
    "uint64-huge": (np.array([2**64 - 1, 2], np.uint64), ValueError, ["18446744073709551615"]),
    "float": (np.array([2.0, 3.0]), TypeError, ["integer", "float64"]),
    "bool": (np.array([True, True]), TypeError, ["integer", "bool"]),
    "complex": (np.array([2, 3], np.complex64), TypeError, ["integer", "complex64"]),
    "scalar": (np.int64(2), ValueError, ["(2,)", "scalar"]),
    "column": (np.array([[2], [3]]), ValueError, ["(2,)", "(2, 1)"]),
    "other-batch": (np.array([2, 3, 4]), ValueError, ["(2,)", "(3,)"]),
    "string": ("23", TypeError, ["str"]),
    "meta": (torch.empty(2, dtype=torch.long, device="meta"), ValueError, ["meta"]),
}


@pytest.mark.parametrize(
    ("lengths", "error", "fragments"), BAD_LENGTHS.values(), ids=BAD_LENGTHS.keys()
)
def test_bad_lengths_are_refused(make_layer, module_class, lengths, error, fragments):
    layer = make_layer()
    expect_error(lambda: layer(sequence(), lengths=lengths), error, "lengths", *fragments)
    module = module_class(F, UNITS, batch_first=True)
    lengths = torch.from_numpy(lengths) if isinstance(lengths, np.ndarray) else lengths
    expect_error(
        lambda: module(torch.from_numpy(sequence()), lengths=lengths), error, "lengths", *fragments
    )


@pytest.mark.parametrize("dtype", ["int8", "int16", "int32", "uint8", "uint16", "uint32", "uint64"])
def test_every_integer_dtype_gives_the_same_lengths(make_layer, module_class, dtype):
    x, lengths = sequence(), np.array([3, 5])
    layer = make_layer(return_sequences=True)
    torch.testing.assert_close(layer(x, lengths=lengths.astype(dtype)), layer(x, lengths=lengths))
    module = module_class(F, UNITS, batch_first=True)
    as_dtype = torch.from_numpy(lengths.astype(dtype))
    torch.testing.assert_close(
        module(torch.from_numpy(x), lengths=as_dtype)[0],
        module(torch.from_numpy(x), lengths=torch.from_numpy(lengths))[0],
    )


# -- batch sizes that disagree ------------------------------------------------------------------
def test_layers_refuse_a_batch_size_other_than_the_inputs(make_layer):
    layer = make_layer()
    layer(sequence())
    expect_error(
        lambda: layer(sequence(), initial_state=states(layer, batch=B + 1)),
        ValueError,
        "initial_state[0]",
        f"({B}, {UNITS})",
        f"({B + 1}, {UNITS})",
    )
    expect_error(
        lambda: layer(sequence(), mask=np.ones((B + 1, T), bool)),
        ValueError,
        "mask",
        f"({B}, {T})",
        f"({B + 1}, {T})",
    )
    expect_error(
        lambda: layer(sequence(), lengths=np.full(B + 1, T)),
        ValueError,
        "lengths",
        f"({B},)",
        f"({B + 1},)",
    )


def test_nn_modules_refuse_a_batch_size_other_than_the_inputs(module_class):
    module = module_class(F, UNITS, batch_first=True)
    x = torch.from_numpy(sequence())
    name = "hx[0] (h_0)" if module_class is rnn_nn.LSTM else "hx"
    expect_error(
        lambda: module(x, hidden(module_class, batch=B + 1)),
        ValueError,
        name,
        f"(1, {B}, {UNITS})",
        f"(1, {B + 1}, {UNITS})",
    )
    expect_error(lambda: module(x, lengths=torch.full((B + 1,), T)), ValueError, "lengths")


def test_bidirectional_refuses_one_tensor_as_its_states():
    layer = layers.Bidirectional(layers.GRU(UNITS))
    stacked = torch.zeros(2, B, UNITS)  # list() would silently split it into two states
    expect_error(
        lambda: layer(sequence(), initial_state=stacked),
        TypeError,
        "initial_state",
        "list of 2 tensors",
        "Tensor",
    )


# -- integers where floats are expected, and floats where integers are ----------------------------
@pytest.mark.parametrize(
    "inputs",
    [
        np.zeros((B, T, F), "int64"),
        np.zeros((B, T, F), bool),
        torch.zeros(B, T, F, dtype=torch.int32),
        torch.zeros(B, T, F, dtype=torch.complex64),
    ],
    ids=["int64", "bool", "torch-int32", "complex64"],
)
def test_non_float_sequences_are_refused(make_layer, module_class, inputs):
    dtype = str(torch.as_tensor(inputs).dtype)
    expect_error(lambda: make_layer()(inputs), TypeError, "inputs", "floating-point", dtype)
    tensor = torch.as_tensor(inputs)
    expect_error(
        lambda: module_class(F, UNITS, batch_first=True)(tensor),
        TypeError,
        "input",
        "floating-point",
        dtype,
    )
    if tensor.dtype != torch.bool:  # fit/predict cast boolean arrays to floats, as Keras does
        expect_error(
            lambda: lstm_model().predict(inputs, verbose=0), TypeError, "inputs", "floating-point"
        )


def test_integer_states_are_refused(make_layer, module_class):
    layer = make_layer()
    expect_error(
        lambda: layer(sequence(), initial_state=states(layer, dtype=torch.int64)),
        TypeError,
        "initial_state[0]",
        "floating-point",
        "torch.int64",
    )
    module = module_class(F, UNITS)
    name = "hx[0] (h_0)" if module_class is rnn_nn.LSTM else "hx"
    expect_error(
        lambda: module(torch.zeros(T, B, F), hidden(module_class, dtype=torch.long)),
        TypeError,
        name,
        "floating-point",
        "torch.int64",
    )


BAD_IDS = {
    "fraction": (np.array([[1.0, 2.5]]), TypeError, ["integer token ids", "non-integer"]),
    "nan": (np.array([[1.0, np.nan]]), TypeError, ["integer token ids", "non-integer"]),
    "inf": (np.array([[1.0, np.inf]]), ValueError, ["[0, 10)", "max inf"]),
    "huge-float": (np.array([[1.0, 1e30]]), ValueError, ["[0, 10)", "max 1e+30"]),
    "uint64-huge": (np.array([[1, 2**63 + 5]], np.uint64), ValueError, ["9223372036854775813"]),
    "negative": (np.array([[-1, 2]]), ValueError, ["min -1"]),
    "vocabulary": (np.array([[10, 2]]), ValueError, ["max 10"]),
    "bool": (np.array([[True, False]]), TypeError, ["torch.bool"]),
    "meta": (torch.zeros(1, 2, dtype=torch.long, device="meta"), ValueError, ["meta"]),
}


@pytest.mark.parametrize(("ids", "error", "fragments"), BAD_IDS.values(), ids=BAD_IDS.keys())
def test_embedding_refuses_bad_ids_with_their_real_values(ids, error, fragments):
    expect_error(lambda: layers.Embedding(10, 3)(ids), error, "inputs", *fragments)


def test_embedding_accepts_whole_floats_as_ids():
    embedding = layers.Embedding(10, 3, mask_zero=True)
    ids = np.array([[4, 0, 9]])
    for floats in (ids.astype(np.float32), ids.astype(np.float64), torch.tensor(ids).half()):
        torch.testing.assert_close(embedding(floats), embedding(ids))
        assert torch.equal(embedding.compute_mask(floats), embedding.compute_mask(ids))


# -- huge values --------------------------------------------------------------------------------
@pytest.mark.parametrize("magnitude", [1e30, -1e30])
def test_saturating_cells_stay_finite_on_huge_inputs(make_layer, backend, magnitude):
    x = np.full((B, T, F), magnitude, np.float32)
    x[1] *= -1
    x[:, ::2, 0] *= -1
    output = make_layer(return_sequences=True, backend=backend)(x)
    assert torch.isfinite(output).all() and output.abs().max() <= 1  # tanh/sigmoid saturate


@pytest.mark.parametrize("magnitude", [1e30, -1e30])
def test_nn_saturating_cells_stay_finite_on_huge_inputs(module_class, backend, magnitude):
    x = torch.full((T, B, F), magnitude)
    x[:, 1] *= -1
    output, _ = module_class(F, UNITS, bidirectional=True, backend=backend)(x)
    assert torch.isfinite(output).all() and output.abs().max() <= 1
