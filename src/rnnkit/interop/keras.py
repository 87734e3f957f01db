"""Keras model files in and out, without TensorFlow: ``load_keras`` and ``save_keras``.

``load_keras`` reads a ``.keras`` archive (Keras 3) or a legacy ``.h5`` file, rebuilds the
Sequential or functional model with rnnkit's layers of the same names (see ``_keras_import`` for
the classes and options), then loads each layer's weights in Keras's order with ``set_weights``.
``save_keras`` writes a ``.keras`` archive that Keras 3's ``keras.models.load_model`` reads.
Only ``json``, ``zipfile`` and ``h5py`` are used: TensorFlow is never imported.

Example:
    >>> model = load_keras("tagger.keras")          # written by Keras's model.save(...)
    >>> save_keras(model, "tagger_again.keras")      # and keras.models.load_model reads this
"""

from __future__ import annotations

import datetime
import os

import h5py

import rnnkit
from rnnkit.interop._keras_export import KerasConfigWriter
from rnnkit.interop._keras_files import (
    MODEL_CLASSES,
    RECURRENT_CLASSES,
    archive_writer,
    container_paths,
    legacy_layer_names,
    open_keras_file,
    read_legacy_layer,
    read_vars,
    weights_file_bytes,
)
from rnnkit.interop._keras_import import KerasConfigReader, entry_parts
from rnnkit.models import Model
from rnnkit.models.saving import atomic_write

# The Keras saving format written: Keras 3's (metadata.json's keras_version).
KERAS_FORMAT_VERSION = "3.0.0"


def load_keras(path: str | os.PathLike) -> Model:
    """Load a Keras model file as an rnnkit model (in inference mode).

    Args:
        path: a ``.keras`` archive or a legacy ``.h5`` file written by ``model.save``.

    Raises:
        ValueError: the file is truncated, corrupted or inconsistent, or it uses a layer or an
            option rnnkit does not have (the message names the layer class and the option).
        FileNotFoundError: there is no file at ``path``.
    """
    keras_file = open_keras_file(path)
    try:
        model = KerasConfigReader(keras_file.keras_version).layer(keras_file.config)
        if not isinstance(model, Model):
            raise ValueError(f"path: {path} holds a single {type(model).__name__}, not a model")
        if not model.built:
            raise ValueError(f"path: the model in {path} records no input shape, so its "
                             "weights cannot be created; rebuild it in Keras with an Input")
        if keras_file.legacy:
            _assign_legacy(keras_file.weights, model)
        else:
            _assign(keras_file.weights, "", keras_file.config, model)
    finally:
        keras_file.weights.file.close()
    model.eval()
    return model


def save_keras(model: Model, path: str | os.PathLike, overwrite: bool = True) -> None:
    """Write ``model`` (Sequential or functional) as a ``.keras`` archive Keras 3 can load.

    The write is atomic (a temporary file renamed over ``path``).

    Raises:
        ValueError: ``path`` does not end in ``.keras`` (Keras's ``load_model`` requires it),
            or a layer or option has no Keras counterpart (named in the message).
    """
    if not str(path).endswith(".keras"):
        raise ValueError(f"path: expected a file name ending in '.keras' (keras.models."
                         f"load_model requires it), got {str(path)!r}")
    if not isinstance(model, Model):
        raise TypeError(f"model: expected an rnnkit Sequential or functional Model, got "
                        f"{type(model).__name__}")
    writer = KerasConfigWriter()
    config = writer.model_entry(model)
    metadata = {"keras_version": KERAS_FORMAT_VERSION,
                "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S"),
                "producer": f"rnnkit {rnnkit.__version__}"}
    weights = weights_file_bytes(writer.groups)
    atomic_write(path, archive_writer(config, metadata, weights), overwrite)


# -- weights --------------------------------------------------------------------------------------
def _assign(weights: h5py.Group, path: str, entry: dict, layer) -> None:
    """Load the weights at ``path`` of a Keras 3 file into ``layer`` (recursing into models)."""
    class_name, config = entry_parts(entry, path or "model")
    if class_name in MODEL_CLASSES:
        children = [child for child in config["layers"]
                    if class_name != "Sequential" or entry_parts(child, path)[0] != "InputLayer"]
        names = [entry_parts(child, path)[0] for child in children]
        paths = container_paths(names, f"{path}/layers" if path else "layers")
        for child, child_path in zip(children, paths):
            child_class, child_config = entry_parts(child, child_path)
            if child_class != "InputLayer":
                name = child.get("name") or child_config["name"]
                _assign(weights, child_path, child, layer.get_layer(name))
        return
    arrays = _layer_arrays(weights, path, entry)
    expected = layer.get_weights()
    if len(arrays) != len(expected):
        raise ValueError(f"weights: layer {layer.name!r} ({class_name}) has {len(expected)} "
                         f"weight arrays, but the file holds {len(arrays)} at {path!r}")
    layer.set_weights(arrays)


def _layer_arrays(weights: h5py.Group, path: str, entry: dict) -> list:
    """One layer's arrays in its ``get_weights()`` order."""
    class_name, config = entry_parts(entry, path)
    own = read_vars(weights, path, config.get("name"))
    if class_name in RECURRENT_CLASSES:
        return read_vars(weights, f"{path}/cell")
    if class_name == "Bidirectional":
        backward = config.get("backward_layer") or config["layer"]
        return (_layer_arrays(weights, f"{path}/forward_layer", config["layer"])
                + _layer_arrays(weights, f"{path}/backward_layer", backward))
    if class_name == "TimeDistributed":
        return _layer_arrays(weights, f"{path}/layer", config["layer"])
    return own


def _assign_legacy(weights: h5py.Group, model: Model) -> None:
    """Load a legacy file's ``model_weights/<layer name>`` groups, matched by layer name."""
    assigned = set()
    for name in legacy_layer_names(weights):
        arrays = read_legacy_layer(weights, name)
        if arrays:
            model.get_layer(name).set_weights(arrays)
            assigned.add(name)
    missing = [layer.name for layer in model.layers
               if layer.get_weights() and layer.name not in assigned]
    if missing:
        raise ValueError(f"weights: the file holds no weights for layers {missing}")
