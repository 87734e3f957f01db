"""Saving and loading: architecture as JSON, weights as safetensors, never pickle.

``model.save(path)`` writes one zip archive (the layout of Keras's ``.keras`` files, stored
uncompressed)::

    metadata.json               {"format": "rnnkit.model", "format_version": 1, ...}
    config.json                 {"class_name": ..., "config": model.get_config()}
    model.weights.safetensors   the same file save_weights writes

``model.save_weights(path)`` writes the safetensors file alone: the tensors ``"<i>.<j>"`` (weight
``j`` of the ``i``-th layer that has weights, in ``get_weights`` order and Keras's layout), and in
its metadata the layers' names, classes and shapes and a SHA-256 of the tensors. Loading matches
layers by position, checks classes and shapes, and verifies the digest (and the zip's CRCs), so a
truncated or altered file raises ``ValueError`` instead of loading wrong numbers.

Every write goes to a temporary file in the target directory, is flushed and fsync'ed, then
renamed over the target with ``os.replace``: a crash leaves the old file or the new one.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import numpy as np
import safetensors
import safetensors.numpy

import rnnkit
from rnnkit.models.model import set_weights_of, weights_of

MODEL_FORMAT = "rnnkit.model"
WEIGHTS_FORMAT = "rnnkit.weights"
FORMAT_VERSION = 1
_CONFIG, _METADATA, _WEIGHTS = "config.json", "metadata.json", "model.weights.safetensors"
_ZIP_MAGIC = b"PK\x03\x04"


# -- writing --------------------------------------------------------------------------------------
def save_model(model, path, overwrite: bool = True) -> None:
    from rnnkit.models.registry import serialize_layer

    spec = serialize_layer(model)
    build_config = model.get_build_config()
    if build_config is not None:  # subclassed models build from what their first call saw
        spec["build_config"] = build_config
    config = _to_json(spec, f"{model.name}: get_config()")
    metadata = json.dumps({"format": MODEL_FORMAT, "format_version": FORMAT_VERSION,
                           "rnnkit_version": rnnkit.__version__})
    weights = weights_bytes(model)

    def write(stream: BinaryIO) -> None:
        with zipfile.ZipFile(stream, "w", compression=zipfile.ZIP_STORED) as archive:
            archive.writestr(_METADATA, metadata)
            archive.writestr(_CONFIG, config)
            archive.writestr(_WEIGHTS, weights)

    atomic_write(path, write, overwrite)


def save_weights(model, path, overwrite: bool = True) -> None:
    data = weights_bytes(model)
    atomic_write(path, lambda stream: stream.write(data), overwrite)


def weights_bytes(model) -> bytes:
    """The model's weights as a safetensors file, in memory."""
    tensors, layers = {}, []
    for owner in model._weight_owners():
        arrays = weights_of(owner)
        if not arrays:
            continue
        for index, array in enumerate(arrays):
            tensors[f"{len(layers)}.{index}"] = np.ascontiguousarray(array)
        layers.append({"name": _name_of(owner), "class_name": type(owner).__name__,
                       "shapes": [list(array.shape) for array in arrays]})
    layers_json = json.dumps(layers)
    metadata = {"format": WEIGHTS_FORMAT, "format_version": str(FORMAT_VERSION),
                "layers": layers_json, "sha256": _digest(tensors, layers_json)}
    return safetensors.numpy.save(tensors, metadata=metadata)


def _to_json(value, what: str) -> str:
    try:
        return json.dumps(value, indent=2)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{what} holds a value JSON cannot store ({error}); a layer built "
                         "from a Python function (Lambda) can only be saved with "
                         "save_weights()") from None


def atomic_write(path, write: Callable[[BinaryIO], None], overwrite: bool) -> None:
    """Write through ``write(stream)`` into a temporary file, fsync it, then rename it to
    ``path``."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"path: expected a file path, got the directory {path}")
    if path.exists() and not overwrite:
        raise FileExistsError(f"path: {path} exists and overwrite=False")
    directory = path.parent
    descriptor, temporary = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.",
                                             suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    _fsync_directory(directory)


def _umask() -> int:
    current = os.umask(0o022)
    os.umask(current)
    return current


def _fsync_directory(directory: Path) -> None:
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:  # some platforms cannot open directories; the rename is still atomic
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


# -- reading --------------------------------------------------------------------------------------
def load_model(path, custom_objects: dict | None = None):
    """Rebuild a model saved with ``model.save(path)``: architecture, then weights.

    ``custom_objects`` maps class names to classes for layers and models rnnkit does not know
    (or decorate them with :func:`rnnkit.models.register_serializable`).
    """
    from rnnkit.models.registry import deserialize_layer

    members = _read_archive(path)
    metadata = _parse_json(members[_METADATA], f"{path}: {_METADATA}")
    if not isinstance(metadata, dict) or metadata.get("format") != MODEL_FORMAT:
        raise ValueError(f"path: {path} is not an rnnkit model (metadata {metadata!r}, "
                         f"expected format {MODEL_FORMAT!r})")
    if metadata.get("format_version", 0) > FORMAT_VERSION:
        raise ValueError(f"path: {path} uses format version {metadata['format_version']}; "
                         f"this rnnkit reads versions up to {FORMAT_VERSION}")
    config = _parse_json(members[_CONFIG], f"{path}: {_CONFIG}")
    model = deserialize_layer(config, custom_objects)
    if not model.built and config.get("build_config") is not None:
        model.build_from_config(config["build_config"])
    apply_weights(model, members[_WEIGHTS], f"{path}: {_WEIGHTS}")
    return model


def load_weights(model, path) -> None:
    """Load a safetensors file from ``save_weights`` (or the weights inside a saved model)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: no weights file at {path}")
    data = path.read_bytes()
    if data[:4] == _ZIP_MAGIC:
        apply_weights(model, _read_archive(path)[_WEIGHTS], f"{path}: {_WEIGHTS}")
    else:
        apply_weights(model, data, str(path))


def apply_weights(model, data: bytes, source: str) -> None:
    """Check the safetensors bytes ``data`` and load them into ``model`` layer by layer."""
    arrays, metadata = _read_safetensors(data, source)
    if metadata.get("format") != WEIGHTS_FORMAT:
        raise ValueError(f"{source}: not an rnnkit weights file (metadata format "
                         f"{metadata.get('format')!r}, expected {WEIGHTS_FORMAT!r})")
    layers_json = metadata.get("layers", "")
    if metadata.get("sha256") != _digest(arrays, layers_json):
        raise ValueError(f"{source}: the weights do not match their SHA-256 digest; the file "
                         "is corrupted or was modified")
    layers = _parse_json(layers_json.encode(), f"{source}: layers metadata")
    owners = [owner for owner in model._weight_owners() if weights_of(owner)]
    if len(owners) != len(layers):
        hint = "" if model.built else "; build the model first (call it on data)"
        raise ValueError(
            f"{source}: holds weights for {len(layers)} layers "
            f"{[entry['name'] for entry in layers]}, but model {model.name!r} has {len(owners)} "
            f"layers with weights {[_name_of(owner) for owner in owners]}{hint}")
    for position, (owner, entry) in enumerate(zip(owners, layers, strict=True)):
        if entry["class_name"] != type(owner).__name__:
            raise ValueError(f"{source}: layer {position} was a {entry['class_name']} "
                             f"({entry['name']!r}), but the model's is a "
                             f"{type(owner).__name__} ({_name_of(owner)!r})")
        count = len(entry["shapes"])
        set_weights_of(owner, [arrays[f"{position}.{index}"] for index in range(count)])


def _read_archive(path) -> dict[str, bytes]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: no saved model at {path}")
    try:
        with zipfile.ZipFile(path) as archive:
            missing = {_METADATA, _CONFIG, _WEIGHTS} - set(archive.namelist())
            if missing:
                raise ValueError(f"path: {path} lacks {sorted(missing)}; expected a file "
                                 "written by model.save()")
            return {name: archive.read(name) for name in (_METADATA, _CONFIG, _WEIGHTS)}
    except (zipfile.BadZipFile, EOFError, NotImplementedError) as error:
        raise ValueError(f"path: {path} is not a readable rnnkit model archive; it may be "
                         f"truncated or corrupted ({error})") from None


def _read_safetensors(data: bytes, source: str) -> tuple[dict[str, np.ndarray], dict]:
    if len(data) < 8:
        raise ValueError(f"{source}: truncated: {len(data)} bytes is too short for a "
                         "safetensors file")
    header_size = int.from_bytes(data[:8], "little")
    if header_size > len(data) - 8:
        raise ValueError(f"{source}: truncated or not a safetensors file (the header claims "
                         f"{header_size} bytes; {len(data) - 8} follow)")
    header = _parse_json(data[8:8 + header_size], f"{source}: safetensors header")
    try:
        arrays = safetensors.numpy.load(data)
    except safetensors.SafetensorError as error:
        raise ValueError(f"{source}: corrupted or truncated safetensors data ({error})") from None
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    return arrays, metadata if isinstance(metadata, dict) else {}


def _parse_json(data: bytes, source: str):
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{source}: not valid JSON ({error}); the file is corrupted") from None


def _digest(arrays: dict[str, np.ndarray], layers_json: str) -> str:
    """SHA-256 over the layer list and every tensor's name, dtype, shape and bytes."""
    digest = hashlib.sha256(layers_json.encode())
    for key in sorted(arrays):
        array = np.ascontiguousarray(arrays[key])
        digest.update(f"{key}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _name_of(owner) -> str:
    """A weight owner's name; bare torch modules (a cell, say) have none and use their class."""
    return getattr(owner, "name", type(owner).__name__)
