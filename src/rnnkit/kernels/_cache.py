"""numba's disk cache for the kernels, invalidated by a change to any of their sources.

numba keeps a cached function's machine code with a stamp of the file that defines it, and loads
it while that file is unchanged. The code also holds every compiled function it calls, from other
files too, and a change to those files goes unnoticed (numba issue 1833, documented under
"Cache" in numba's user guide). After a ``git pull`` or an edit, a kernel in ``_lstm_loops.py``
would keep running the ``_rows.py`` or ``_blas.py`` it was compiled with; where that old code
calls a symbol the new modules no longer bind, it crashes.

:func:`share_stamp` gives every function defined in one directory the same stamp: a hash of all
the ``.py`` files there and of the values the compiled code bakes in besides them (whether the
GEMMs run in pieces, see :mod:`rnnkit.kernels._blas`). Any change to one of them makes numba
compile the directory's functions again on first use and overwrite their cache.
``rnnkit.kernels._numba`` shares the stamp of this package before any of its functions is
compiled, and ``rnnkit.training.jit`` its own, which includes this one's: its compiled training
steps call the kernels' activations and pointers.

The locators are numba's own (``numba.core.caching``: a ``NUMBA_CACHE_DIR``, else ``__pycache__``
beside the source when it is writable, else the user's cache directory), wrapped to return the
shared stamp; functions outside a shared directory keep numba's. ``NUMBA_CACHE_LOCATOR_CLASSES``,
when set, replaces numba's list of locators and so this one too.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

from numba.core import caching

# directory -> (the facts its stamp includes, the shared directories whose functions it calls)
_SHARED: dict[Path, tuple[tuple, tuple[Path, ...]]] = {}


@functools.cache
def source_stamp(directory: Path, facts: tuple = ()) -> str:
    """A hash of the names and contents of every ``.py`` file in ``directory``, and of ``facts``
    (once per process)."""
    digest = hashlib.sha256(repr(facts).encode())
    for path in sorted(Path(directory).glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _directory_of(py_file) -> Path:
    return Path(py_file).resolve().parent


class _SharedStamp:
    """Mixed into a numba locator: applies only to the shared directories, whose functions get
    their directory's :func:`source_stamp`."""

    @classmethod
    def from_function(cls, py_func, py_file):
        if _directory_of(py_file) not in _SHARED:
            return None
        return super().from_function(py_func, py_file)

    def get_source_stamp(self):
        return "rnnkit-shared-stamp", stamp_of(_directory_of(self._py_file))


def stamp_of(directory: Path) -> str:
    """The stamp of a shared directory: its sources, its facts and the stamps of the shared
    directories it depends on."""
    facts, depends_on = _SHARED[Path(directory).resolve()]
    return source_stamp(Path(directory).resolve(), facts + tuple(map(stamp_of, depends_on)))


def _install() -> None:
    """Put a shared-stamp version of each of numba's source-file locators first in its list."""
    impl = getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl", None)
    backed = getattr(caching, "_SourceFileBackedLocatorMixin", None)
    if impl is None or backed is None:  # a numba whose locators differ: its own stamps
        return
    if any(issubclass(c, _SharedStamp) for c in impl._locator_classes):
        return
    shared = [type(f"Shared{c.__name__}", (_SharedStamp, c), {})
              for c in impl._locator_classes if issubclass(c, backed)]
    impl._locator_classes = shared + list(impl._locator_classes)


def share_stamp(directory, facts: tuple = (), depends_on: tuple = ()) -> None:
    """Stamp the cache of every function compiled from a ``.py`` file in ``directory`` with one
    hash of all of them (see the module docstring), of ``facts``: the values, besides the
    sources, that the compiled code bakes in (numba compiles a global as a constant), and of the
    stamps of ``depends_on``: shared directories whose compiled functions these call. Call it
    before the first function of the directory is decorated: numba picks a function's locator
    when it is decorated."""
    _install()
    depends_on = tuple(Path(d).resolve() for d in depends_on)
    for dependency in depends_on:
        if dependency not in _SHARED:
            raise ValueError(f"share_stamp: depends_on {str(dependency)!r} is not shared yet; "
                             "share it first")
    _SHARED[Path(directory).resolve()] = (tuple(facts), depends_on)
