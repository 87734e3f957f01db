"""Checkpoints of ``fit``: resume an interrupted run bit for bit, from safetensors and JSON only.

``fit(..., checkpoint_dir=path)`` writes one checkpoint per completed epoch; ``resume=True`` then
continues after the newest valid one with the weights, optimizer state, random generator states,
history and callback states the run had. On CPU the resumed run ends with the weights of an
uninterrupted run, bit for bit. ``epoch-00003`` holds the state after the third epoch::

    checkpoint_dir/epoch-00003/
        model.safetensors       model.state_dict()
        optimizer.safetensors   the optimizer's state tensors
        optimizer.json          the rest of optimizer.state_dict(); tensors appear as their keys
        training.safetensors    torch's generator state, callback arrays, stateful RNN states
        training.json           epoch, NumPy's and Python's generator states, history and other
                                callback states, the data position, the model/optimizer config
        manifest.json           written last: every other file's size and SHA-256

Each file is written atomically and a checkpoint counts only once its manifest exists and matches
every file, so a crash while saving leaves the previous checkpoint as the one ``resume`` uses
(:mod:`rnnkit.training.checkpoint_files`). Files are parsed as safetensors and JSON only; nothing
is unpickled.

Every random draw of ``fit`` (the shuffle of each epoch, dropout masks, weight initialisation,
callbacks using ``random`` or NumPy) comes from torch's, NumPy's and Python's global generators.
Their states at the end of an epoch are saved with it and put back last on resume, so epoch k of a
resumed run draws exactly what epoch k of the uninterrupted run drew. See docs/checkpoints.md.
"""

from __future__ import annotations

import json
import random
import warnings
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from rnnkit.models.saving import _parse_json
from rnnkit.training.checkpoint_files import (
    CheckpointDir,
    join_tensors,
    json_bytes,
    read_checkpoint,
    split_tensors,
    tensors_from_bytes,
    tensors_to_bytes,
)
from rnnkit.training.optimizers import Optimizer

__all__ = ["CheckpointDir", "FitCheckpoints", "open_for_fit", "read_checkpoint"]


# -- random generators -----------------------------------------------------------------------------
def _rng_state() -> dict:
    """torch's CPU (and CUDA) generator states, NumPy's global bit generator and Python's."""
    numpy_state = np.random.get_state(legacy=False)
    numpy_state["state"] = {"key": numpy_state["state"]["key"].tolist(),
                            "pos": int(numpy_state["state"]["pos"])}
    version, internal, gauss_next = random.getstate()
    state = {"torch": torch.get_rng_state(), "numpy": numpy_state,
             "python": [version, list(internal), gauss_next]}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict, source: str) -> None:
    try:
        torch_state = state["torch"]
        if not isinstance(torch_state, torch.Tensor) or torch_state.dtype != torch.uint8:
            raise TypeError("torch's state is not a uint8 tensor")
        numpy_state = dict(state["numpy"])
        numpy_state["state"] = {"key": np.asarray(numpy_state["state"]["key"], dtype=np.uint32),
                                "pos": numpy_state["state"]["pos"]}
        version, internal, gauss_next = state["python"]
        np.random.set_state(numpy_state)
        random.setstate((version, tuple(internal), gauss_next))
        torch.set_rng_state(torch_state)
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise ValueError(f"{source}: invalid random generator states ({error})") from None
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class _DataPosition:
    """Where a stream that runs across epochs (``steps_per_epoch``) is inside its current pass.

    A pass draws its shuffle from the global generators when it starts, so their states at that
    moment and the number of batches taken since rebuild the pass exactly. Without
    ``steps_per_epoch`` every epoch is a fresh pass and there is nothing to record.
    """

    def __init__(self, stream) -> None:
        self.stream = stream
        self.source = stream.source
        self.start_rng: dict | None = None
        self.taken = 0
        if stream.steps is not None:
            stream.source = self  # the stream now starts its passes through batches() below

    def __len__(self) -> int | None:
        return len(self.source)

    def batches(self):
        self.start_rng = _rng_state()
        self.taken = 0
        for batch in self.source.batches():
            self.taken += 1
            yield batch

    def state(self) -> dict | None:
        if self.stream.source is not self or self.stream._iterator is None:
            return None
        return {"rng": self.start_rng, "taken": self.taken}

    def restore(self, state: dict | None, source: str) -> None:
        if state is None or self.stream.source is not self:
            return
        taken = state.get("taken")
        if isinstance(taken, bool) or not isinstance(taken, int) or taken < 0:
            raise ValueError(f"{source}: invalid data position {taken!r}")
        _set_rng_state(state.get("rng", {}), source)
        iterator = self.batches()
        for _ in range(taken):
            next(iterator, None)
        self.stream._iterator = iterator


# -- what must match between the run and its resumption --------------------------------------------
def _config(model, optimizer) -> dict:
    """The model's weight names, shapes and dtypes and the optimizer's class and settings."""
    weights = {name: {"shape": list(t.shape), "dtype": str(t.dtype).removeprefix("torch.")}
               for name, t in model.state_dict().items()}
    if isinstance(optimizer, Optimizer):  # the learning rate may change during training
        settings = {k: v for k, v in optimizer.get_config().items()
                    if k not in ("learning_rate", "name")}
    else:
        settings = {k: v for k, v in optimizer.defaults.items() if k != "lr"}
    config = {"model": {"class": type(model).__name__, "weights": weights},
              "optimizer": {"class": type(optimizer).__name__, "settings": settings}}
    return json.loads(json.dumps(config, default=lambda value: type(value).__name__))


def _difference(saved, current, where: str = "") -> str | None:
    """The first place where two JSON values differ, described; None when they are equal."""
    if isinstance(saved, dict) and isinstance(current, dict):
        for key in sorted(set(saved) | set(current)):
            if key not in current or key not in saved:
                side = "the checkpoint" if key in saved else "this fit"
                return f"{where}{key} exists only in {side}"
            found = _difference(saved[key], current[key], f"{where}{key}.")
            if found is not None:
                return found
        return None
    if saved != current:
        return f"{where.rstrip('.')} is {saved!r} in the checkpoint and {current!r} now"
    return None


def _check_config(saved: dict, current: dict, source: str) -> None:
    for part in ("model", "optimizer"):
        found = _difference(saved.get(part), current[part], f"{part}.")
        if found is not None:
            raise ValueError(f"checkpoint_dir: {source} was written for a different {part} "
                             f"({found}); resume with the same {part}, or give a new "
                             "checkpoint_dir")


# -- the parts of the state ------------------------------------------------------------------------
def _stateful_callbacks(callbacks) -> dict[str, object]:
    """Callbacks with ``get_state``/``set_state``, keyed by class and rank among that class."""
    named, counts = {}, Counter()
    for callback in callbacks:
        if callable(getattr(callback, "get_state", None)):
            name = type(callback).__name__
            named[f"{name}.{counts[name]}"] = callback
            counts[name] += 1
    return named


def _set_callback_states(callbacks, saved: dict, source: str) -> None:
    current = _stateful_callbacks(callbacks)
    for key in sorted(set(saved) - set(current)):
        warnings.warn(f"the checkpoint holds the state of callback {key}, which this fit does "
                      "not have; it is ignored", stacklevel=3)
    for key in sorted(set(current) - set(saved)):
        warnings.warn(f"callback {key} has no state in the checkpoint; it starts afresh",
                      stacklevel=3)
    for key in sorted(set(current) & set(saved)):
        try:
            current[key].set_state(saved[key])
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise ValueError(f"{source}: invalid state for callback {key} ({error!r})") from None


def _carried_states(model) -> dict[str, list | None]:
    """The states stateful recurrent layers carry from batch to batch, by module name."""
    return {name: module.states for name, module in model.named_modules()
            if module is not model and getattr(module, "stateful", False) is True}


def _set_carried_states(model, saved: dict) -> None:
    for name, module in model.named_modules():
        if module is not model and getattr(module, "stateful", False) is True:
            module.states = saved.get(name)


def _load_optimizer(optimizer, saved: dict, source: str) -> None:
    """``optimizer.load_state_dict`` after checking what JSON and a tampered file can change."""
    try:
        state = {int(index): slots for index, slots in saved["state"].items()}
        groups = saved["param_groups"]
        params = [p for group in optimizer.param_groups for p in group["params"]]
        for index, slots in state.items():
            for slot, value in slots.items():
                if (isinstance(value, torch.Tensor) and value.dim() > 0
                        and value.shape != params[index].shape):
                    raise ValueError(f"state {index}.{slot} has shape {list(value.shape)}, its "
                                     f"weight {list(params[index].shape)}")
        for group, current in zip(groups, optimizer.param_groups, strict=True):
            for key, value in current.items():  # JSON turned tuples (Adam's betas) into lists
                if isinstance(value, tuple) and isinstance(group.get(key), list):
                    group[key] = tuple(group[key])
        optimizer.load_state_dict({"state": state, "param_groups": groups})
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as error:
        raise ValueError(f"{source}: invalid optimizer state ({error})") from None


def _decode(path: Path, files: dict[str, bytes]) -> dict:
    """Parse a verified checkpoint into ``model``, ``optimizer`` and ``training`` parts."""
    parts = {"model": tensors_from_bytes(files["model.safetensors"],
                                         str(path / "model.safetensors"))}
    for part in ("optimizer", "training"):
        source = str(path / f"{part}.json")
        tensors = tensors_from_bytes(files[f"{part}.safetensors"], source)
        parts[part] = join_tensors(_parse_json(files[f"{part}.json"], source), tensors, source)
    training = parts["training"]
    expected = {"epoch": int, "stopped": bool, "config": dict, "rng": dict, "callbacks": dict,
                "carried_states": dict, "data": (dict, type(None))}
    for key, kind in expected.items():
        if not isinstance(training, dict) or not isinstance(training.get(key), kind):
            raise ValueError(f"{path / 'training.json'}: {key!r} is missing or malformed")
    if training["epoch"] < 0:
        raise ValueError(f"{path / 'training.json'}: epoch {training['epoch']} is negative")
    return parts


# -- fit's side ------------------------------------------------------------------------------------
def open_for_fit(checkpoint_dir, resume: bool, **parts) -> FitCheckpoints | None:
    """``fit``'s checkpoints, or None without ``checkpoint_dir``; ``parts`` as FitCheckpoints."""
    if not isinstance(resume, bool):
        raise TypeError(f"resume: expected True or False, got {resume!r}")
    if checkpoint_dir is None:
        if resume:
            raise ValueError("resume: resume=True needs the checkpoint_dir to resume from")
        return None
    directory = (checkpoint_dir if isinstance(checkpoint_dir, CheckpointDir)
                 else CheckpointDir(checkpoint_dir))
    existing = directory.checkpoints()
    if not resume and existing:
        raise ValueError(f"checkpoint_dir: {directory.directory} already holds checkpoints "
                         f"({', '.join(path.name for _, path in existing)}); pass resume=True to "
                         "continue that run, or give an empty directory")
    return FitCheckpoints(directory, **parts)


class FitCheckpoints:
    """Restores a run at the start of ``fit`` and saves it after every epoch.

    ``build(x)`` creates the model's lazy weights and the optimizer's parameters from a batch;
    ``stream`` is fit's ``BatchStream``; ``callbacks`` are all of fit's callbacks, History
    included.
    """

    def __init__(self, directory: CheckpointDir, *, model, optimizer,
                 build: Callable[[object], None], stream, callbacks) -> None:
        self.directory = directory
        self.model = model
        self.optimizer = optimizer
        self.build = build
        self.callbacks = list(callbacks)
        self.data = _DataPosition(stream)

    def save(self, epoch: int, stopped: bool) -> None:
        """Write the checkpoint after epoch ``epoch`` (0-based); ``stopped``: fit ends here."""
        training_tensors, optimizer_tensors = {}, {}
        training = split_tensors({
            "epoch": epoch, "stopped": stopped, "config": _config(self.model, self.optimizer),
            "rng": _rng_state(), "data": self.data.state(),
            "callbacks": {key: callback.get_state()
                          for key, callback in _stateful_callbacks(self.callbacks).items()},
            "carried_states": _carried_states(self.model)}, "", training_tensors)
        optimizer = split_tensors(self.optimizer.state_dict(), "", optimizer_tensors)
        self.directory.write(epoch + 1, {
            "model.safetensors": tensors_to_bytes(self.model.state_dict()),
            "optimizer.json": json_bytes(optimizer),
            "optimizer.safetensors": tensors_to_bytes(optimizer_tensors),
            "training.json": json_bytes(training),
            "training.safetensors": tensors_to_bytes(training_tensors)})

    def restore(self, initial_epoch: int, epochs: int) -> int:
        """Load the newest valid checkpoint; return the epoch to continue from.

        Without a checkpoint that is ``initial_epoch``; after a finished run it is ``epochs`` or
        more, so fit trains no further epoch.
        """
        found = self.directory.latest()
        if found is None:
            return initial_epoch
        path, files = found
        parts = _decode(path, files)  # everything is parsed before anything is changed
        training = parts["training"]
        self._build()
        _check_config(training["config"], _config(self.model, self.optimizer), str(path))
        try:
            self.model.load_state_dict(parts["model"])
        except RuntimeError as error:
            raise ValueError(f"{path / 'model.safetensors'}: does not fit the model "
                             f"({error})") from None
        _load_optimizer(self.optimizer, parts["optimizer"], str(path / "optimizer.json"))
        _set_callback_states(self.callbacks, training["callbacks"], str(path / "training.json"))
        _set_carried_states(self.model, training["carried_states"])
        self.data.restore(training["data"], str(path / "training.json"))
        _set_rng_state(training["rng"], str(path / "training.json"))  # last: the rest draws
        if training["stopped"]:
            return max(epochs, training["epoch"] + 1)
        return training["epoch"] + 1

    def _build(self) -> None:
        """Create the lazy weights and optimizer parameters, as the first training batch would."""
        batch = next(iter(self.data.source.batches()), None)
        if batch is None:
            raise ValueError("x: resuming needs at least one batch of data to build the model")
        self.build(batch[0])
