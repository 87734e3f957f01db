"""The files of a training checkpoint: directory layout, manifest, verification, retention.

A checkpoint is a directory ``epoch-NNNNN`` (the number of completed epochs) holding
:data:`FILES` and, written last, ``manifest.json`` with each file's size and SHA-256. Every file
goes through :func:`rnnkit.models.saving.atomic_write` (temporary file, fsync, rename), so a
checkpoint whose save was interrupted has no manifest and is not used. JSON holds structure and
scalars; tensors and NumPy arrays go to safetensors files and appear in the JSON as their keys
(:func:`split_tensors`). Nothing here executes code from a file: no pickle.

What goes into the files, and resuming ``fit`` from them, is :mod:`rnnkit.training.checkpoint`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import safetensors
import safetensors.torch
import torch

import rnnkit
from rnnkit.models.saving import _fsync_directory, _parse_json, atomic_write

FORMAT = "rnnkit.checkpoint"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
FILES = ("model.safetensors", "optimizer.json", "optimizer.safetensors", "training.json",
         "training.safetensors")
_DIRECTORY_NAME = re.compile(r"epoch-(\d{5,})")
_TENSOR, _ARRAY = "__tensor__", "__array__"  # JSON placeholders for a tensor / a NumPy array


# -- the directory ---------------------------------------------------------------------------------
class CheckpointDir:
    """A directory of per-epoch checkpoints, of which the newest ``keep`` stay on disk.

    ``fit(checkpoint_dir=path)`` uses ``CheckpointDir(path)``; pass
    ``checkpoint_dir=CheckpointDir(path, keep=5)`` to keep more.
    """

    def __init__(self, directory: str | os.PathLike, keep: int = 2) -> None:
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
            raise ValueError(f"keep: expected a positive integer, got {keep!r}")
        self.directory = Path(directory)
        if self.directory.exists() and not self.directory.is_dir():
            raise ValueError(f"checkpoint_dir: expected a directory, got the file {self.directory}")
        self.keep = keep

    def checkpoints(self) -> list[tuple[int, Path]]:
        """``(completed epochs, path)`` of each checkpoint directory, valid or not, oldest first."""
        if not self.directory.is_dir():
            return []
        found = [(int(match.group(1)), path) for path in self.directory.iterdir()
                 if path.is_dir() and (match := _DIRECTORY_NAME.fullmatch(path.name))]
        return sorted(found)

    def latest(self) -> tuple[Path, dict[str, bytes]] | None:
        """The newest valid checkpoint and its verified files; None when there is none.

        A directory without a manifest (an interrupted save) is skipped silently. One whose files
        do not match its manifest is skipped with a warning when an older valid checkpoint exists;
        when none does, this raises ``ValueError`` rather than restart the run from scratch.
        """
        problems = []
        for _, path in reversed(self.checkpoints()):
            if not (path / MANIFEST).is_file():
                continue
            try:
                files = read_checkpoint(path)
            except ValueError as error:
                problems.append(str(error))
                continue
            for problem in problems:
                warnings.warn(f"skipping a damaged checkpoint: {problem}; resuming from "
                              f"{path.name} instead", stacklevel=2)
            return path, files
        if problems:
            raise ValueError(f"checkpoint_dir: no valid checkpoint to resume from in "
                             f"{self.directory}: {'; '.join(problems)}")
        return None

    def write(self, completed: int, files: dict[str, bytes]) -> Path:
        """Write ``files`` as the checkpoint after ``completed`` epochs, manifest last; prune."""
        path = self.directory / f"epoch-{completed:05d}"
        self.directory.mkdir(parents=True, exist_ok=True)
        if path.exists():  # left by an interrupted save, or by a run resumed from an older one
            _remove(path)
        path.mkdir()
        _fsync_directory(self.directory)
        for name, data in files.items():
            _write_bytes(path / name, data)
        manifest = {"format": FORMAT, "format_version": FORMAT_VERSION,
                    "rnnkit_version": rnnkit.__version__, "completed_epochs": completed,
                    "files": {name: {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
                              for name, data in files.items()}}
        _write_bytes(path / MANIFEST, json.dumps(manifest, indent=2).encode())
        self._prune(completed)
        return path

    def _prune(self, completed: int) -> None:
        # Later numbers than the one just written can only be damaged checkpoints that resume
        # skipped; among the others the newest ``keep`` stay.
        found = self.checkpoints()
        stale = [path for number, path in found if number > completed]
        older = [path for number, path in found if number <= completed]
        for path in stale + older[:-self.keep]:
            _remove(path)


def _write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda stream: stream.write(data), overwrite=True)


def _remove(path: Path) -> None:
    """Delete a checkpoint, manifest first, so that a crash midway leaves it invalid, not wrong."""
    (path / MANIFEST).unlink(missing_ok=True)
    _fsync_directory(path)
    shutil.rmtree(path)


def read_checkpoint(path: str | os.PathLike) -> dict[str, bytes]:
    """The files of the checkpoint directory ``path``, each checked against the manifest.

    Raises ``ValueError`` naming the file when the manifest is missing or malformed, or a file is
    missing, has another size than recorded (truncated) or another SHA-256 (modified).
    """
    path = Path(path)
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise ValueError(f"{path}: no {MANIFEST}; the checkpoint was not completely written")
    manifest = _parse_json(manifest_path.read_bytes(), str(manifest_path))
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ValueError(f"{manifest_path}: not an rnnkit checkpoint manifest (expected format "
                         f"{FORMAT!r})")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(f"{manifest_path}: format version {version!r}; this rnnkit reads "
                         f"versions up to {FORMAT_VERSION}")
    records = manifest.get("files")
    files = {}
    for name in FILES:  # only these names are read, whatever the manifest lists
        record = records.get(name) if isinstance(records, dict) else None
        if not isinstance(record, dict):
            raise ValueError(f"{manifest_path}: no entry for {name}")
        file = path / name
        if not file.is_file():
            raise ValueError(f"{file}: missing")
        data = file.read_bytes()
        if len(data) != record.get("bytes"):
            raise ValueError(f"{file}: {len(data)} bytes, but the manifest records "
                             f"{record.get('bytes')}; the file is truncated or was modified")
        if hashlib.sha256(data).hexdigest() != record.get("sha256"):
            raise ValueError(f"{file}: does not match the SHA-256 in {MANIFEST}; the file is "
                             "corrupted or was modified")
        files[name] = data
    return files


# -- tensors inside JSON ---------------------------------------------------------------------------
def split_tensors(value, key: str, tensors: dict[str, torch.Tensor]):
    """``value`` as JSON, each tensor or array moved to ``tensors`` and replaced by its key."""
    if isinstance(value, torch.Tensor):
        tensors[key] = value.detach().cpu().clone()  # own storage: safetensors refuses sharing
        return {_TENSOR: key}
    if isinstance(value, np.ndarray):
        tensors[key] = torch.from_numpy(np.array(value, copy=True))
        return {_ARRAY: key}
    if isinstance(value, dict):
        return {str(name): split_tensors(item, f"{key}.{name}" if key else str(name), tensors)
                for name, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [split_tensors(item, f"{key}.{index}", tensors) for index, item in enumerate(value)]
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"{key}: a checkpoint holds tensors, arrays and JSON values, got "
                    f"{type(value).__name__}")


def join_tensors(value, tensors: dict[str, torch.Tensor], source: str):
    """The inverse of :func:`split_tensors`."""
    if isinstance(value, list):
        return [join_tensors(item, tensors, source) for item in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1 and (_TENSOR in value or _ARRAY in value):
        key = value.get(_TENSOR, value.get(_ARRAY))
        if key not in tensors:
            raise ValueError(f"{source}: refers to the tensor {key!r}, which its safetensors "
                             "file does not hold")
        return tensors[key] if _TENSOR in value else tensors[key].numpy()
    return {name: join_tensors(item, tensors, source) for name, item in value.items()}


def tensors_to_bytes(tensors: dict[str, torch.Tensor]) -> bytes:
    return safetensors.torch.save({k: t.detach().cpu().clone() for k, t in tensors.items()})


def tensors_from_bytes(data: bytes, source: str) -> dict[str, torch.Tensor]:
    try:
        return safetensors.torch.load(data)
    except (safetensors.SafetensorError, ValueError, RuntimeError) as error:
        raise ValueError(f"{source}: not a readable safetensors file ({error})") from None


def json_bytes(value) -> bytes:
    return json.dumps(value).encode()
