"""load_keras: files written by TF-Keras (.keras and legacy .h5) against Keras's own outputs."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from interop import _keras_cases
from interop.conftest import assert_close
from rnnkit.interop import load_keras, save_keras
from rnnkit.models import Sequential

pytestmark = pytest.mark.peer


@pytest.fixture(scope="module")
def saved(keras, tmp_path_factory):
    """Each case saved once in both formats: ``name -> (paths, inputs, Keras's outputs)``."""
    directory = tmp_path_factory.mktemp("keras_files")
    files = {}
    for name in _keras_cases.CASES:
        model, inputs, expected = _keras_cases.build(name, keras)
        paths = {suffix: directory / f"{name}.{suffix}" for suffix in ("keras", "h5")}
        for path in paths.values():
            model.save(path)
        files[name] = (paths, inputs, expected)
    return files


@pytest.mark.parametrize("suffix", ["keras", "h5"])
@pytest.mark.parametrize("name", sorted(_keras_cases.CASES))
def test_keras_files_load_with_keras_outputs(saved, name, suffix):
    paths, inputs, expected = saved[name]
    model = load_keras(paths[suffix])
    assert_close(model(inputs), expected)
    assert not model.training


def test_load_keras_does_not_import_tensorflow(saved):
    paths, _, _ = saved["masked_lstm_stack"]
    script = ("import sys; from rnnkit.interop import load_keras; "
              f"load_keras({str(paths['keras'])!r}); load_keras({str(paths['h5'])!r}); "
              "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"


def test_layer_names_and_weights_follow_the_file(saved, keras):
    paths, _, _ = saved["encoder_decoder"]
    ours = load_keras(paths["keras"])
    theirs = keras.models.load_model(paths["keras"])
    assert [layer.name for layer in ours.layers] == [layer.name for layer in theirs.layers]
    for mine, expected in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_array_equal(mine, np.asarray(expected))


def test_an_unknown_keras_layer_is_named(keras, tmp_path):
    model = keras.Sequential([keras.Input((None, 3)), keras.layers.Conv1D(2, 3),
                              keras.layers.LSTM(2)])
    for suffix in ("keras", "h5"):
        path = tmp_path / f"conv.{suffix}"
        model.save(path)
        with pytest.raises(ValueError, match="Conv1D"):
            load_keras(path)


def test_an_option_rnnkit_lacks_is_named(keras, tmp_path):
    model = keras.Sequential([keras.Input((None, 3)),
                              keras.layers.LSTM(2, kernel_regularizer="l2")])
    path = tmp_path / "regularized.keras"
    model.save(path)
    with pytest.raises(ValueError, match="kernel_regularizer"):
        load_keras(path)


# -- damaged files --------------------------------------------------------------------------------
@pytest.fixture
def keras_file(saved, tmp_path):
    paths, _, _ = saved["gru_both_reset_modes"]
    copy = tmp_path / "model.keras"
    copy.write_bytes(paths["keras"].read_bytes())
    return copy


def test_a_truncated_keras_file_is_a_clear_value_error(keras_file):
    data = keras_file.read_bytes()
    keras_file.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated or corrupted"):
        load_keras(keras_file)


def test_altered_bytes_in_a_keras_file_are_a_clear_value_error(keras_file):
    data = bytearray(keras_file.read_bytes())
    with zipfile.ZipFile(keras_file) as archive:
        info = archive.getinfo("model.weights.h5")
    middle = info.header_offset + 30 + len(info.filename) + info.compress_size // 2
    data[middle] ^= 0xFF
    keras_file.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="truncated or corrupted"):
        load_keras(keras_file)


def test_a_config_that_disagrees_with_the_weights_is_a_clear_value_error(keras_file):
    with zipfile.ZipFile(keras_file) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(members["config.json"])
    config["config"]["layers"][1]["config"]["units"] = 7  # the first GRU
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(keras_file, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    with pytest.raises(ValueError, match=r"expected shape \(2, 21\)"):
        load_keras(keras_file)


def test_a_file_that_is_neither_format_is_a_clear_value_error(tmp_path):
    path = tmp_path / "model.keras"
    path.write_text("not a model")
    with pytest.raises(ValueError, match="neither a .keras archive"):
        load_keras(path)


def test_a_weights_only_h5_file_is_refused(keras, tmp_path):
    model = keras.Sequential([keras.Input((None, 3)), keras.layers.GRU(2)])
    path = tmp_path / "only.weights.h5"
    model.save_weights(path)
    with pytest.raises(ValueError, match="model_config|model.save"):
        load_keras(path)


def test_a_rnnkit_file_round_trips_through_load_keras(tmp_path):
    from rnnkit.layers import GRU, Dense

    model = Sequential([GRU(4, reset_after=False, input_shape=(None, 3)), Dense(2)])
    path = tmp_path / "ours.keras"
    save_keras(model, path)
    x = np.random.default_rng(0).normal(size=(2, 5, 3)).astype("float32")
    assert_close(load_keras(path)(x), model(x), atol=0)


def _as_keras2(config):
    """A Keras 3 legacy config rewritten the way Keras 2 wrote it (the layout old .h5 files use)."""
    if isinstance(config, list):
        return [_as_keras2(item) for item in config]
    if not isinstance(config, dict):
        return config
    config = {key: _as_keras2(value) for key, value in config.items() if key != "module"}
    if config.get("class_name") == "Functional":
        config["class_name"] = "Model"
    if isinstance(config.get("dtype"), dict):
        config["dtype"] = config["dtype"]["config"]["name"]
    if "batch_shape" in config:
        config["batch_input_shape"] = config.pop("batch_shape")
    if config.get("class_name") == "LSTM":
        config["config"].update(time_major=False, implementation=2)
    if "inbound_nodes" in config:
        config["inbound_nodes"] = [_keras2_node(node) for node in config["inbound_nodes"]]
    return config


def _keras2_node(node):
    tensors = []

    def collect(value):
        if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
            tensors.append([*value["config"]["keras_history"], {}])
        elif isinstance(value, dict):
            for item in value.values():
                collect(item)
        elif isinstance(value, list):
            for item in value:
                collect(item)

    collect(node["args"])
    collect(node["kwargs"].get("initial_state", []))
    return tensors


def test_keras2_legacy_configs_load(saved, tmp_path):
    import h5py

    paths, inputs, expected = saved["encoder_decoder"]
    path = tmp_path / "keras2.h5"
    path.write_bytes(paths["h5"].read_bytes())
    with h5py.File(path, "r+") as handle:
        config = json.loads(handle.attrs["model_config"])
        handle.attrs["model_config"] = json.dumps(_as_keras2(config))
        handle.attrs["keras_version"] = "2.15.0"
    assert_close(load_keras(path)(inputs), expected)

    with h5py.File(path, "r+") as handle:
        config = json.loads(handle.attrs["model_config"])
        config["config"]["layers"][1]["config"]["recurrent_activation"] = "hard_sigmoid"
        handle.attrs["model_config"] = json.dumps(config)
    with pytest.raises(ValueError, match="hard_sigmoid"):
        load_keras(path)
