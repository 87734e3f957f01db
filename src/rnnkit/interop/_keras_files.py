"""The two files Keras saves models in, read and written with ``zipfile``, ``json`` and ``h5py``.

``.keras`` (Keras 3) is a zip archive::

    metadata.json       {"keras_version": ..., "date_saved": ...}
    config.json         {"module", "class_name", "config", "registered_name", ...}
    model.weights.h5    one group per object that owns variables, ``<path>/vars/<i>``

A variable's path follows the attribute that holds its owner, not the layer's name: a model's
layers sit under ``layers/<snake_case(class name)>`` with ``_1``, ``_2``... added to repeated class
names, in the order of ``model.layers`` (InputLayers included for functional models, excluded for
Sequential ones). Recurrent layers keep their variables on the cell (``<path>/cell/vars``),
``Bidirectional`` under ``forward_layer`` and ``backward_layer``, ``TimeDistributed`` under
``layer``. Each ``vars`` group of a layer carries the layer's name in its ``name`` attribute.

Legacy ``.h5`` files hold the JSON config in the root's ``model_config`` attribute and the weights
in ``model_weights/<layer name>``, whose ``weight_names`` attribute lists the datasets in the
layer's ``get_weights()`` order.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

CONFIG, METADATA, WEIGHTS = "config.json", "metadata.json", "model.weights.h5"
ZIP_MAGIC = b"PK\x03\x04"
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
RECURRENT_CLASSES = ("LSTM", "GRU", "SimpleRNN")
MODEL_CLASSES = ("Sequential", "Functional", "Model")


@dataclass
class KerasFile:
    """What a Keras file holds: the model's config, the Keras version, and the open weights."""

    config: dict
    keras_version: str
    weights: h5py.Group
    legacy: bool  # True for a legacy .h5 file (weights under model_weights/<layer name>)


def snake_case(name: str) -> str:
    """Keras's ``to_snake_case``: ``SimpleRNN`` -> ``simple_rnn``, ``InputLayer`` ->
    ``input_layer``."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def container_paths(class_names: list[str], prefix: str) -> list[str]:
    """The weight paths Keras gives a list of layers: ``prefix/<snake name>[_k]``."""
    used: dict[str, int] = {}
    paths = []
    for class_name in class_names:
        name = snake_case(class_name)
        if name in used:
            used[name] += 1
            name = f"{name}_{used[name]}"
        else:
            used[name] = 0
        paths.append(f"{prefix}/{name}" if prefix else name)
    return paths


# -- reading --------------------------------------------------------------------------------------
def open_keras_file(path) -> KerasFile:
    """Open a ``.keras`` archive or a legacy ``.h5`` file, judged by its first bytes."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: no Keras model file at {path}")
    with path.open("rb") as stream:
        magic = stream.read(8)
    if magic.startswith(ZIP_MAGIC):
        return _open_archive(path)
    if magic == HDF5_MAGIC:
        return _open_legacy(path)
    raise ValueError(f"path: {path} is neither a .keras archive (zip) nor a legacy .h5 file "
                     f"(HDF5); its first bytes are {magic!r}")


def _open_archive(path: Path) -> KerasFile:
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            missing = {CONFIG, WEIGHTS} - names
            if missing:
                sharded = " (sharded weights are not supported)" if any(
                    name.endswith(".json") and name.startswith("model.weights")
                    for name in names) else ""
                raise ValueError(f"path: {path} lacks {sorted(missing)}{sharded}; expected a "
                                 "file written by Keras's model.save('x.keras')")
            # ZipFile.read checks each member's CRC, so altered bytes are caught here.
            config_bytes = archive.read(CONFIG)
            metadata_bytes = archive.read(METADATA) if METADATA in names else b"{}"
            weights_bytes = archive.read(WEIGHTS)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError,
            NotImplementedError) as error:
        raise ValueError(f"path: {path} is not a readable .keras archive; it may be truncated "
                         f"or corrupted ({error})") from None
    config = parse_json(config_bytes, f"{path}: {CONFIG}")
    metadata = parse_json(metadata_bytes, f"{path}: {METADATA}")
    version = metadata.get("keras_version", "3") if isinstance(metadata, dict) else "3"
    weights = _open_h5(io.BytesIO(weights_bytes), f"{path}: {WEIGHTS}")
    return KerasFile(_check_model_config(config, path), str(version), weights, legacy=False)


def _open_legacy(path: Path) -> KerasFile:
    handle = _open_h5(path, str(path))
    try:
        raw = handle.attrs.get("model_config")
        if raw is None:
            raise ValueError(f"path: {path} has no 'model_config' attribute; it holds weights "
                             "only (model.save_weights), not a model")
        if "model_weights" not in handle:
            raise ValueError(f"path: {path} has no 'model_weights' group; expected a file "
                             "written by Keras's model.save('x.h5')")
        config = parse_json(raw.encode() if isinstance(raw, str) else bytes(raw),
                            f"{path}: model_config")
        version = _as_text(handle.attrs.get("keras_version", b"2"))
    except BaseException:
        handle.close()
        raise
    return KerasFile(_check_model_config(config, path), version, handle["model_weights"],
                     legacy=True)


def _open_h5(source, where: str) -> h5py.File:
    try:
        return h5py.File(source, "r")
    except OSError as error:
        raise ValueError(f"{where}: not a readable HDF5 file; it may be truncated or "
                         f"corrupted ({error})") from None


def parse_json(data: bytes, where: str):
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{where}: not valid JSON ({error}); the file is corrupted") from None


def _check_model_config(config, path: Path) -> dict:
    if not isinstance(config, dict) or "class_name" not in config or "config" not in config:
        raise ValueError(f"path: {path} holds no Keras model config (expected a dict with "
                         f"'class_name' and 'config', got {str(config)[:80]!r})")
    return config


def _as_text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def read_vars(weights: h5py.Group, path: str, layer_name: str | None = None) -> list[np.ndarray]:
    """The arrays in ``<path>/vars`` ordered ``0, 1, ...``; empty when the group is absent.

    When ``layer_name`` is given and the group records a ``name``, they must agree: a mismatch
    means the file's layout is not the one its config describes.
    """
    group = weights.get(f"{path}/vars" if path else "vars")
    if group is None:
        return []
    recorded = group.attrs.get("name")
    if layer_name is not None and recorded is not None and _as_text(recorded) != layer_name:
        raise ValueError(f"{WEIGHTS}: the weights at {path!r} belong to layer "
                         f"{_as_text(recorded)!r}, but the config puts layer {layer_name!r} "
                         "there; the file is inconsistent")
    keys = sorted(group.keys(), key=lambda key: int(key) if key.isdigit() else -1)
    if any(not key.isdigit() for key in keys):
        raise ValueError(f"{WEIGHTS}: unexpected entries {keys} in {path}/vars; expected "
                         "datasets named 0, 1, ...")
    return [_dataset(group, key, path) for key in keys]


def read_legacy_layer(weights: h5py.Group, layer_name: str) -> list[np.ndarray]:
    """A legacy file's arrays for ``layer_name``, in its ``weight_names`` order."""
    group = weights.get(layer_name)
    if group is None:
        return []
    names = [_as_text(name) for name in group.attrs.get("weight_names", [])]
    return [_dataset(group, name, layer_name) for name in names]


def legacy_layer_names(weights: h5py.Group) -> list[str]:
    return [_as_text(name) for name in weights.attrs.get("layer_names", list(weights.keys()))]


def _dataset(group: h5py.Group, key: str, where: str) -> np.ndarray:
    dataset = group.get(key)
    if not isinstance(dataset, h5py.Dataset):
        raise ValueError(f"weights: expected a dataset {key!r} under {where!r}, found "
                         f"{type(dataset).__name__}")
    try:
        return np.asarray(dataset[()])
    except OSError as error:
        raise ValueError(f"weights: cannot read {where}/{key} ({error}); the file is "
                         "truncated or corrupted") from None


# -- writing --------------------------------------------------------------------------------------
def weights_file_bytes(groups: dict[str, tuple[str, list[np.ndarray]]]) -> bytes:
    """An h5 file with ``<path>/vars/<i>`` for each ``path: (owner name, arrays)``."""
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as handle:
        for path, (name, arrays) in groups.items():
            group = handle.create_group(f"{path}/vars" if path else "vars")
            group.attrs["name"] = name
            for index, array in enumerate(arrays):
                group.create_dataset(str(index), data=np.ascontiguousarray(array))
    return buffer.getvalue()


def archive_writer(config: dict, metadata: dict, weights: bytes):
    """A ``write(stream)`` function for :func:`rnnkit.models.saving.atomic_write`."""

    def write(stream) -> None:
        with zipfile.ZipFile(stream, "w", compression=zipfile.ZIP_STORED) as archive:
            archive.writestr(METADATA, json.dumps(metadata))
            archive.writestr(CONFIG, json.dumps(config))
            archive.writestr(WEIGHTS, weights)

    return write
