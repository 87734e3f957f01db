"""The native call: a fused kernel's forward and backward with no Python between them.

At small sizes most of a fused call's time is not the kernels but the Python around them: the
module's glue, a Python ``autograd.Function``, numba's unboxing of a few dozen arrays on each
compiled call. The native call replaces all of it (see :func:`rnnkit.kernels._entries.recipe`),
with one C++ autograd function (``_native.cpp``) that allocates the call's tensors and calls the
same compiled loops through numba ``cfunc`` entry points (:mod:`rnnkit.kernels._entries`), which
take one ``int64`` block of sizes and addresses.

The C++ part is an optional build: ``python -m rnnkit.kernels.native build`` (which ``.ci/setup``
runs) compiles it with ``torch.utils.cpp_extension`` into a directory named after the sources,
torch and Python versions (``~/.cache/rnnkit/native/...``, or ``$RNNKIT_NATIVE_DIR``), and
compiles the entries into numba's disk cache. A process
loads it when it is there; when it is not, or ``RNNKIT_NATIVE=0``, every call takes the Python
path, which computes the same results. Nothing is compiled at run time unasked.

A :class:`Recipe` describes one kernel's call at one batch and length: its block templates (the
sizes, flags and constant arrays filled in here) and where the call's tensors go. The C++
function fills in the addresses and runs it. A part of a recipe may have a *companion* entry
(:mod:`rnnkit.kernels._sync`): the C++ function runs it beside the entry, on the same block, as
the second of two tasks of torch's intra-op thread pool. A recipe may instead hold two recipes,
one for each half of the batch (see :func:`rnnkit.kernels._entries.recipe`), which the C++
function runs as those two tasks, each on its rows of the inputs and outputs.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import importlib.util
import os
import platform
import sys
from pathlib import Path

import numpy as np
import torch

from rnnkit.kernels._common import block_layout

SOURCE = Path(__file__).with_name("_native.cpp")
MODULE_NAME = "rnnkit_native"
# -fopenmp for at::parallel_for (see _native.cpp), which then runs on torch's own OpenMP runtime:
# torch has loaded it already, under the name the extension asks for.
CFLAGS, LDFLAGS = ["-O2", "-fopenmp"], ["-fopenmp"]

# Where each per-call address comes from (the C++ ``Source``). SYNC is the call's progress
# counters, zeros, which an entry and its companion share (see rnnkit.kernels._sync).
INPUT, ALLOCATED, SAVED, GRADIENT, GRADIENT_COPY, SYNC = range(6)
SYNC_SIZE = 8


def build_directory() -> Path:
    """Where the extension for these sources, this torch and this Python is built."""
    tag = hashlib.sha256(SOURCE.read_bytes() + repr((CFLAGS, LDFLAGS)).encode()).hexdigest()[:12]
    python = f"py{sys.version_info[0]}{sys.version_info[1]}"
    version = f"torch{torch.__version__.replace('+', '-')}-{python}"
    root = os.environ.get("RNNKIT_NATIVE_DIR") or Path.home() / ".cache" / "rnnkit" / "native"
    return Path(root) / f"{version}-{platform.machine()}-{tag}"


def build(verbose: bool = False) -> Path:
    """Compile the extension (about 40 s; needs a C++ compiler and ``ninja``), then the compiled
    entries it calls, into numba's disk cache (about a minute), so that no first call pays for
    them."""
    from torch.utils.cpp_extension import load

    directory = build_directory()
    directory.mkdir(parents=True, exist_ok=True)
    load(MODULE_NAME, [str(SOURCE)], extra_cflags=CFLAGS, extra_ldflags=LDFLAGS,
         build_directory=str(directory),
         verbose=verbose)
    from rnnkit.kernels import _entries, _mkl, _step_loops

    _mkl.packed_is_faster()  # compiles its two timed loops into numba's cache

    for family, dtype in _entries.ENTRIES:
        if verbose:
            print(f"compiling the {family} entries for {np.dtype(dtype).name}", flush=True)
        _entries.entry_addresses(family, dtype)
        _step_loops.step_entry_address(family, dtype)
    return directory


def _library(directory: Path) -> Path | None:
    found = sorted(directory.glob(f"{MODULE_NAME}*.so")) + sorted(
        directory.glob(f"{MODULE_NAME}*.pyd")
    )
    return found[0] if found else None


@functools.cache
def extension():
    """The built extension, loaded, or ``None`` (not built, disabled, or no OpenBLAS handle)."""
    if os.environ.get("RNNKIT_NATIVE", "1") == "0":
        return None
    from rnnkit.kernels._common import _openblas_thread_functions, blas_available

    if not blas_available():
        return None
    functions = _openblas_thread_functions()
    library = _library(build_directory())
    if functions is None or library is None:
        return None
    spec = importlib.util.spec_from_file_location(MODULE_NAME, library)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    get, set_ = (_address(function) for function in functions)
    module.set_blas_threads_functions(get, set_)
    return module


def _address(function) -> int:
    """A ctypes function's address."""
    return ctypes.cast(function, ctypes.c_void_p).value


def available() -> bool:
    """Whether native calls run in this process."""
    return extension() is not None


class Arguments:
    """One compiled call's argument block, built up in the entry's order.

    The block is ``[n, *scalars, *arrays]``, ``n`` the number of scalars, then four ``int64`` per
    array: its address and three dimensions (padded with ones). Addresses known now (constants)
    are written; the others are marked with their source, for the C++ function to fill per call.
    """

    def __init__(self, scalars) -> None:
        self.block = [len(scalars), *map(int, scalars)]
        self.slots: list[int] = []
        self.sources: list[int] = []
        self.indices: list[int] = []
        self.offsets: list[int] = []  # in elements, from the tensor's start
        self.allocations: list[tuple[int, ...]] = []
        self.constants: list[torch.Tensor] = []

    def _array(self, shape) -> int:
        shape = tuple(int(n) for n in shape)
        if len(shape) > 3:
            raise ValueError(f"shape: expected at most three dimensions, got {shape}")
        slot = len(self.block)
        self.block += [0, *shape, *(1,) * (3 - len(shape))]
        return slot

    def tensor(self, source: int, index: int, shape, offset: int = 0) -> None:
        """An array taken per call from ``source``'s ``index``-th tensor, from its element
        ``offset`` on, seen as ``shape``."""
        self.slots.append(self._array(shape))
        self.sources.append(source)
        self.indices.append(index)
        self.offsets.append(int(offset))

    def constant(self, array) -> None:
        """An array fixed for the recipe (kept alive by it)."""
        tensor = torch.as_tensor(np.ascontiguousarray(array))
        self.constants.append(tensor)
        slot = self._array(tensor.shape)
        self.block[slot] = tensor.data_ptr()

    def allocate(self, shape, seen_as=None) -> int:
        """A tensor of ``shape`` allocated per call (seen by the entry as ``seen_as``); returns
        its index among the allocations."""
        self.allocations.append(tuple(int(n) for n in shape))
        index = len(self.allocations) - 1
        self.tensor(ALLOCATED, index, shape if seen_as is None else seen_as)
        return index

    def allocate_parts(self, shapes) -> tuple[int, list[int]]:
        """One tensor allocated per call holding arrays of ``shapes`` in turn (placed as
        :func:`~rnnkit.kernels._common.block_layout` places them), each seen by the entry as
        its shape; returns the tensor's index among the allocations and each array's offset in
        it. One allocation, and for saved arrays one saved tensor, costs less per call than one
        per array."""
        size, layout = block_layout(tuple(tuple(int(n) for n in shape) for shape in shapes))
        offsets = [int(start) for start in layout[:, 0]]
        self.allocations.append((size,))
        index = len(self.allocations) - 1
        for shape, offset in zip(shapes, offsets):
            self.tensor(ALLOCATED, index, shape, offset)
        return index, offsets

    def sync(self) -> None:
        """The call's progress counters (``SYNC_SIZE`` zeros, ``int64``), shared with the
        companion entry."""
        self.tensor(SYNC, 0, (SYNC_SIZE,))

    def fields(self, entry: int, companion: int = 0) -> tuple:
        return (entry, companion, self.block, self.slots, self.sources, self.indices,
                self.offsets, self.allocations)



def make_recipe(forward: Arguments, backward: tuple[Arguments, Arguments], entries, returned,
                saved, gradients, companions=(0, 0)):
    """A C++ recipe from the arguments of the forward and the two backwards (without and with
    x's gradient). ``entries`` is ``(forward, backward)`` entry addresses and ``companions``
    those of their companions (0 for none: see :mod:`rnnkit.kernels._sync`), ``gradients`` per
    input ``(allocation, offset)`` in the backward, or ``None``."""
    recipe = extension().Recipe()
    recipe.set_forward(*forward.fields(entries[0], companions[0]))
    for with_x, arguments in enumerate(backward):
        recipe.set_backward(bool(with_x), *arguments.fields(entries[1], companions[1]))
    recipe.returned, recipe.saved = list(returned), list(saved)
    recipe.gradient_of = [-1 if g is None else g[0] for g in gradients]
    recipe.gradient_offset = [0 if g is None else g[1] for g in gradients]
    recipe.constants = [t for part in (forward, *backward) for t in part.constants]
    return recipe


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m rnnkit.kernels.native",
        description="Build rnnkit's native call (a C++ extension; optional, for speed).",
    )
    parser.add_argument("command", choices=["build", "where"])
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    if args.command == "where":
        print(build_directory())
        return 0
    directory = build(args.verbose)
    print(f"rnnkit native call built in {directory}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
