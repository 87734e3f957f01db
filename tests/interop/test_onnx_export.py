"""export_onnx: graphs on ONNX's LSTM/GRU/RNN operators, run in onnxruntime against rnnkit."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

import rnnkit.nn
from interop.conftest import assert_close, randomize, run_onnx
from rnnkit import layers
from rnnkit.interop import export_onnx
from rnnkit.layers import (
    GRU,
    LSTM,
    Bidirectional,
    Dense,
    Embedding,
    Input,
    Masking,
    SimpleRNN,
    TimeDistributed,
)
from rnnkit.models import Model, Sequential

SIZES = [(2, 5), (3, 8)]  # (batch, time): the graph runs at both


def _sequential(*stack, features: int = 3) -> Sequential:
    model = Sequential(list(stack))
    model.build((None, None, features))
    randomize(model)
    return model


KERAS_FACE = {
    "lstm": lambda: _sequential(LSTM(4, return_sequences=True), LSTM(3), Dense(2)),
    "gru_reset_after": lambda: _sequential(GRU(4, return_sequences=True)),
    "gru_reset_before": lambda: _sequential(GRU(4, reset_after=False), Dense(1)),
    "simple_rnn": lambda: _sequential(SimpleRNN(4, activation="relu", return_sequences=True)),
    "bidirectional": lambda: _sequential(
        Bidirectional(LSTM(3, return_sequences=True), merge_mode="ave"),
        Bidirectional(GRU(2, recurrent_activation="hard_sigmoid")), Dense(2)),
    "two_layers": lambda: _sequential(
        Bidirectional(GRU(3, return_sequences=True)), GRU(3, go_backwards=True,
                                                       return_sequences=True),
        TimeDistributed(Dense(2, activation="softmax"))),
    "peephole": lambda: _sequential(LSTM(3, peephole=True, return_sequences=True)),
}


def _ops(proto: onnx.ModelProto) -> set[str]:
    return {node.op_type for node in proto.graph.node}


@pytest.mark.parametrize("name", sorted(KERAS_FACE))
def test_keras_face_models_match_in_onnxruntime_at_any_batch_and_time(ort, tmp_path, name):
    model = KERAS_FACE[name]()
    rng = np.random.default_rng(0)
    path = tmp_path / f"{name}.onnx"
    proto = export_onnx(model, path, rng.normal(size=(2, 5, 3)).astype("float32"))
    assert _ops(proto) & {"LSTM", "GRU", "RNN"}
    assert not _ops(proto) & {"Scan", "Loop"}
    assert all(opset.domain == "" for opset in proto.opset_import)
    for batch, steps in SIZES:
        x = rng.normal(size=(batch, steps, 3)).astype("float32")
        assert_close(run_onnx(ort, path, {"input": x})[0], model(x))


def test_every_recurrent_layer_becomes_one_operator(tmp_path):
    proto = export_onnx(KERAS_FACE["two_layers"](), tmp_path / "m.onnx",
                        np.zeros((1, 2, 3), "float32"))
    recurrent = [node for node in proto.graph.node if node.op_type in ("LSTM", "GRU", "RNN")]
    directions = [next(a.s for a in node.attribute if a.name == "direction")
                  for node in recurrent]
    assert directions == [b"bidirectional", b"reverse"]
    before_reset = [a.i for node in recurrent for a in node.attribute
                    if a.name == "linear_before_reset"]
    assert before_reset == [1, 1]


def test_masks_from_embedding_become_sequence_lens(ort, tmp_path):
    model = Sequential([Embedding(12, 4, mask_zero=True, input_shape=(None,)),
                        LSTM(3, return_sequences=True),
                        Bidirectional(GRU(3, return_sequences=True), merge_mode="sum"),
                        Bidirectional(SimpleRNN(2)), Dense(2)])
    sequences = Sequential([Embedding(12, 4, mask_zero=True, input_shape=(None,)),
                            GRU(3, return_sequences=True)])  # padded steps repeat the last
    rng = np.random.default_rng(1)
    for index, candidate in enumerate((model, sequences)):
        randomize(candidate, seed=index)
        path = tmp_path / f"masked{index}.onnx"
        proto = export_onnx(candidate, path, np.ones((2, 4), "int64"))
        lens = [node.input[4] for node in proto.graph.node if node.op_type in ("LSTM", "GRU")]
        assert lens and all(lens)
        for batch, steps in SIZES:
            ids = rng.integers(1, 12, (batch, steps))
            ids[0, steps - 2:] = 0  # right padding
            assert_close(run_onnx(ort, path, {"input": ids})[0], candidate(ids))


def test_a_lengths_input_feeds_sequence_lens(ort, tmp_path):
    model = _sequential(Masking(0.0), Bidirectional(LSTM(3, return_sequences=True)),
                        LSTM(2), Dense(1))
    path = tmp_path / "lengths.onnx"
    export_onnx(model, path, np.zeros((2, 4, 3), "float32"), lengths=True)
    for batch, steps in SIZES:
        x = np.random.default_rng(2).normal(size=(batch, steps, 3)).astype("float32")
        lengths = np.array([steps - 2, steps, 1][:batch], "int64")
        for row, length in enumerate(lengths):
            x[row, length:] = 0.0
        expected = model(x)
        assert_close(run_onnx(ort, path, {"input": x, "lengths": lengths})[0], expected)


def test_functional_models_with_initial_state_and_merges(ort, tmp_path):
    tokens, features = Input((None,), dtype="int64", name="tokens"), Input((2,), name="side")
    embedded = Embedding(10, 4, mask_zero=True)(tokens)
    _, h, c = LSTM(3, return_state=True)(embedded)
    decoded = LSTM(3, return_sequences=True)(embedded, initial_state=[h, c])
    summary = Bidirectional(GRU(2), merge_mode="concat")(decoded)
    joined = layers.concatenate([summary, Dense(3, activation="gelu")(features)])
    model = Model([tokens, features], [Dense(2)(joined), layers.add([h, c])])
    randomize(model)
    path = tmp_path / "functional.onnx"
    export_onnx(model, path, [np.ones((2, 3), "int64"), np.zeros((2, 2), "float32")])
    rng = np.random.default_rng(3)
    for batch, steps in SIZES:
        ids = rng.integers(1, 10, (batch, steps))
        ids[-1, steps // 2:] = 0
        side = rng.normal(size=(batch, 2)).astype("float32")
        outputs = run_onnx(ort, path, {"tokens": ids, "side": side})
        assert_close(outputs, model([ids, side]))


DROP_INS = [(cls, bidirectional, batch_first) for cls in (rnnkit.nn.LSTM, rnnkit.nn.GRU,
                                                          rnnkit.nn.RNN)
            for bidirectional in (False, True) for batch_first in (False, True)]


@pytest.mark.parametrize("cls, bidirectional, batch_first", DROP_INS,
                         ids=lambda v: getattr(v, "__name__", str(v)))
def test_drop_ins_match_with_variable_lengths(ort, tmp_path, cls, bidirectional, batch_first):
    module = cls(3, 4, num_layers=2, bidirectional=bidirectional, batch_first=batch_first)
    path = tmp_path / "drop_in.onnx"
    example = torch.zeros(2, 5, 3)
    proto = export_onnx(module, path, example, lengths=True)
    assert [output.name for output in proto.graph.output][:2] == ["output", "h_n"]
    for batch, steps in SIZES:
        x = torch.randn(batch, steps, 3) if batch_first else torch.randn(steps, batch, 3)
        lengths = torch.tensor([steps, steps - 3, 2][:batch])
        with torch.no_grad():
            output, state = module(x, lengths=lengths)
        expected = [output, *(state if isinstance(state, tuple) else [state])]
        got = run_onnx(ort, path, {"input": x.numpy(), "lengths": lengths.numpy()})
        assert_close(got, expected)


def test_a_torch_peephole_lstm_exports(ort, tmp_path):
    module = rnnkit.nn.LSTM(3, 4, peephole=True, batch_first=True)
    with torch.no_grad():
        module.weight_peephole_l0.normal_()
    path = tmp_path / "peephole.onnx"
    export_onnx(module, path, torch.zeros(1, 2, 3))
    x = torch.randn(2, 6, 3)
    with torch.no_grad():
        output, (h_n, c_n) = module(x)
    assert_close(run_onnx(ort, path, {"input": x.numpy()}), [output, h_n, c_n])


@pytest.mark.parametrize("model, message", [
    (lambda: rnnkit.nn.LSTM(3, 4, proj_size=2), "proj_size"),
    (lambda: rnnkit.nn.LSTM(3, 4, layer_norm=True), "layer_norm"),
    (lambda: _sequential(LSTM(3, activation=torch.sin)), "sin"),
    (lambda: _sequential(layers.Lambda(lambda x: x * 2)), "Lambda"),
])
def test_what_onnx_cannot_express_is_refused_by_name(tmp_path, model, message):
    with pytest.raises(ValueError, match=message):
        export_onnx(model(), tmp_path / "refused.onnx", torch.zeros(1, 2, 3))
    assert not (tmp_path / "refused.onnx").exists()


def test_arguments_are_checked(tmp_path):
    with pytest.raises(TypeError, match="model"):
        export_onnx(torch.nn.Linear(2, 2), tmp_path / "x.onnx", torch.zeros(1, 2))
    with pytest.raises(ValueError, match="example_input"):
        export_onnx(rnnkit.nn.GRU(3, 4), tmp_path / "x.onnx", torch.zeros(5, 3))
    with pytest.raises(ValueError, match="output_names"):
        export_onnx(rnnkit.nn.GRU(3, 4), tmp_path / "x.onnx", torch.zeros(5, 1, 3),
                    output_names=["y"])


def test_a_single_layer_exports_with_its_states_in_float32(ort, tmp_path):
    layer = LSTM(3, return_sequences=True, return_state=True, go_backwards=True,
                 dtype="float64", input_shape=(None, 2))
    path = tmp_path / "layer.onnx"
    proto = export_onnx(layer, path, np.zeros((1, 3, 2)))
    assert [o.name for o in proto.graph.output] == ["output_0", "output_1", "output_2"]
    x = np.random.default_rng(4).normal(size=(2, 6, 2))
    got = run_onnx(ort, path, {"input": x.astype("float32")})
    assert all(array.dtype == np.float32 for array in got)
    assert_close(got, layer(x))
