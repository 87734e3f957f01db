"""save/load_model and save/load_weights: round trips, damaged files, no pickle, atomic writes."""

from __future__ import annotations

import json
import os
import pickle
import zipfile

import numpy as np
import pytest
import safetensors
import torch

from models._cases import _captioning, _encoder_decoder
from models.conftest import assert_close
from rnnkit import layers
from rnnkit.layers import GRU, LSTM, Bidirectional, Dense, Embedding, Input, Lambda
from rnnkit.models import Model, Sequential, load_model, register_serializable


def _stacked_lstm():
    model = Sequential([LSTM(16, input_shape=(None, 1), return_sequences=True), LSTM(8),
                        Dense(1)])
    return model, np.random.default_rng(0).standard_normal((3, 7, 1)).astype("float32")


def _bidirectional_gru():
    model = Sequential([Bidirectional(GRU(8, return_sequences=True), input_shape=(None, 2)),
                        Bidirectional(GRU(4), merge_mode="sum"), Dense(2)])
    return model, np.random.default_rng(1).standard_normal((3, 6, 2)).astype("float32")


def _masked_tagger():
    model = Sequential([Embedding(20, 4, mask_zero=True),
                        Bidirectional(LSTM(5, return_sequences=True)),
                        layers.TimeDistributed(Dense(3, activation="softmax"))])
    tokens = np.array([[3, 4, 5, 0], [7, 0, 0, 0]])
    model(tokens)
    return model, tokens


def _encoder_decoder_model():
    rng = np.random.default_rng(2)
    model = _encoder_decoder(layers, Input, Model)
    return model, [rng.integers(0, 20, (2, 6)), rng.integers(0, 18, (2, 4))]


def _captioning_model():
    rng = np.random.default_rng(3)
    model = _captioning(layers, Input, Model, layers.concatenate)
    return model, [rng.standard_normal((2, 12)).astype("float32"), rng.integers(0, 25, (2, 6))]


def _nested_model():
    inner_input = Input(shape=(None, 3))
    inner = Model(inner_input, LSTM(4)(inner_input), name="inner")
    source = Input(shape=(None, 3))
    model = Model(source, Dense(2)(inner(source)), name="outer")
    return model, np.random.default_rng(4).standard_normal((2, 5, 3)).astype("float32")


BUILDERS = [_stacked_lstm, _bidirectional_gru, _masked_tagger, _encoder_decoder_model,
            _captioning_model, _nested_model]


@pytest.mark.parametrize("build", BUILDERS, ids=lambda build: build.__name__.strip("_"))
def test_save_then_load_gives_identical_outputs_and_config(build, tmp_path):
    model, inputs = build()
    path = tmp_path / "model.rnnkit"
    model.save(path)
    restored = load_model(path)
    assert type(restored) is type(model)
    assert restored.get_config() == model.get_config()
    assert_close(restored(inputs), model(inputs), atol=0)
    for ours, theirs in zip(restored.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(ours, theirs)


def test_the_file_holds_json_and_safetensors(tmp_path):
    model, _ = _stacked_lstm()
    model.save(tmp_path / "m.rnnkit")
    with zipfile.ZipFile(tmp_path / "m.rnnkit") as archive:
        config = json.loads(archive.read("config.json"))
        tensors = safetensors.numpy.load(archive.read("model.weights.safetensors"))
    assert config["class_name"] == "Sequential"
    assert [spec["class_name"] for spec in config["config"]["layers"]] == ["LSTM", "LSTM", "Dense"]
    assert len(tensors) == len(model.get_weights())


def test_weights_load_into_a_separately_built_model(tmp_path):
    model, inputs = _encoder_decoder_model()
    model.save_weights(tmp_path / "w.safetensors")
    twin = _encoder_decoder(layers, Input, Model)
    twin.load_weights(tmp_path / "w.safetensors")
    assert_close(twin(inputs), model(inputs), atol=0)
    other = _encoder_decoder(layers, Input, Model)
    model.save(tmp_path / "full.rnnkit")
    other.load_weights(tmp_path / "full.rnnkit")
    assert_close(other(inputs), model(inputs), atol=0)


def test_weights_for_another_architecture_are_refused(tmp_path):
    model, _ = _stacked_lstm()
    model.save_weights(tmp_path / "w.safetensors")
    with pytest.raises(ValueError, match="was a LSTM .* the model's is a GRU"):
        Sequential([GRU(16, input_shape=(None, 1), return_sequences=True), LSTM(8),
                    Dense(1)]).load_weights(tmp_path / "w.safetensors")
    with pytest.raises(ValueError, match=r"expected shape \(1, 32\)"):
        Sequential([LSTM(8, input_shape=(None, 1), return_sequences=True), LSTM(8),
                    Dense(1)]).load_weights(tmp_path / "w.safetensors")
    with pytest.raises(ValueError, match="holds weights for 3 layers.*has 2"):
        Sequential([LSTM(8, input_shape=(None, 1)), Dense(1)]).load_weights(
            tmp_path / "w.safetensors")


# -- damaged files --------------------------------------------------------------------------------
def _flip_byte(path, offset):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_an_altered_weights_file_is_refused(tmp_path):
    model, _ = _stacked_lstm()
    path = tmp_path / "w.safetensors"
    model.save_weights(path)
    _flip_byte(path, path.stat().st_size - 3)
    with pytest.raises(ValueError, match="SHA-256 digest"):
        model.load_weights(path)


@pytest.mark.parametrize("keep", [0.5, 0.999, 0.001])
def test_a_truncated_weights_file_is_refused(tmp_path, keep):
    model, _ = _stacked_lstm()
    path = tmp_path / "w.safetensors"
    model.save_weights(path)
    path.write_bytes(path.read_bytes()[:int(path.stat().st_size * keep)])
    with pytest.raises(ValueError, match="truncated"):
        model.load_weights(path)


def test_an_altered_or_truncated_model_file_is_refused(tmp_path):
    model, _ = _stacked_lstm()
    altered, truncated = tmp_path / "altered.rnnkit", tmp_path / "truncated.rnnkit"
    model.save(altered)
    model.save(truncated)
    _flip_byte(altered, altered.stat().st_size // 2)
    with pytest.raises(ValueError, match="corrupted"):
        load_model(altered)
    truncated.write_bytes(truncated.read_bytes()[:truncated.stat().st_size - 40])
    with pytest.raises(ValueError, match="truncated"):
        load_model(truncated)
    with pytest.raises(FileNotFoundError, match="no saved model"):
        load_model(tmp_path / "missing.rnnkit")


def test_loading_never_unpickles(tmp_path, monkeypatch):
    model, inputs = _encoder_decoder_model()
    model.save(tmp_path / "m.rnnkit")
    model.save_weights(tmp_path / "w.safetensors")

    def forbidden(*args, **kwargs):
        raise AssertionError("the load path used pickle")

    for module, name in [(pickle, "load"), (pickle, "loads"), (pickle, "Unpickler"),
                         (torch, "load"), (np, "load")]:
        monkeypatch.setattr(module, name, forbidden)
    restored = load_model(tmp_path / "m.rnnkit")
    restored.load_weights(tmp_path / "w.safetensors")
    assert_close(restored(inputs), model(inputs), atol=0)


# -- writing --------------------------------------------------------------------------------------
def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    model, _ = _stacked_lstm()
    path = tmp_path / "m.rnnkit"
    model.save(path)
    before = path.read_bytes()

    def failing_fsync(descriptor):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    model.set_weights([w + 1 for w in model.get_weights()])
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    with pytest.raises(OSError, match="disk full"):
        model.save_weights(tmp_path / "w.safetensors")
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.rnnkit"]


def test_overwrite_false_refuses_an_existing_file(tmp_path):
    model, _ = _stacked_lstm()
    model.save(tmp_path / "m.rnnkit")
    with pytest.raises(FileExistsError, match="overwrite=False"):
        model.save(tmp_path / "m.rnnkit", overwrite=False)


def test_a_lambda_layer_cannot_be_saved_with_the_architecture(tmp_path):
    model = Sequential([Lambda(lambda x: x * 2, input_shape=(3,)), Dense(1)])
    with pytest.raises(ValueError, match="JSON"):
        model.save(tmp_path / "m.rnnkit")
    assert not (tmp_path / "m.rnnkit").exists()


# -- custom classes -------------------------------------------------------------------------------
class Doubler(layers.Layer):
    def call(self, inputs, mask=None, training=None):
        return inputs * 2


class Forecaster(Model):
    def __init__(self, units=4, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.rnn = LSTM(units)
        self.head = Dense(1)

    def call(self, inputs, training=None):
        return self.head(self.rnn(inputs, training=training))

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def test_custom_classes_load_through_custom_objects_or_registration(tmp_path):
    source = Input(shape=(3,))
    model = Model(source, Dense(2)(Doubler(name="double")(source)))
    model.save(tmp_path / "m.rnnkit")
    with pytest.raises(ValueError, match="unknown layer class 'Doubler'.*custom_objects"):
        load_model(tmp_path / "m.rnnkit")
    restored = load_model(tmp_path / "m.rnnkit", custom_objects={"Doubler": Doubler})
    x = np.ones((2, 3), "float32")
    assert_close(restored(x), model(x), atol=0)

    forecaster = Forecaster(units=5, name="f")
    series = np.random.default_rng(5).standard_normal((2, 4, 3)).astype("float32")
    forecaster(series)
    forecaster.save(tmp_path / "f.rnnkit")
    register_serializable(Forecaster)
    restored = load_model(tmp_path / "f.rnnkit")
    assert restored.units == 5 and restored.name == "f"
    assert_close(restored(series), forecaster(series), atol=0)
