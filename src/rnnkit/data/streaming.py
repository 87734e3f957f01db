"""Windows streamed from a CSV or Parquet file larger than memory: :class:`WindowStream`.

The file is read in chunks of ``chunk_rows`` rows, so memory holds one chunk, the rows a window
still needs from the previous chunk, and the shuffle buffer, whatever the file's size. Windows are
those of :func:`rnnkit.data.make_windows`, numbered from the top of the file::

    window i: rows [i * stride, i * stride + window) -> x,  the next ``horizon`` rows -> y

Sharding. The windows are cut into ``world_size`` equal contiguous blocks, one per rank (the last
``N mod world_size`` windows are left out, so every rank yields as many windows as the others,
which DistributedDataParallel needs), and a rank's block is cut again among its DataLoader
workers. Each reader seeks straight to its rows: in a CSV through a sparse index of line offsets
built by one fast pass over the bytes when the stream is created, in Parquet through the row
groups' metadata. CSV files must hold one record per line (no quoted newlines) under one header
line; Parquet needs ``pyarrow``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view
from torch.utils.data import IterableDataset, get_worker_info

from rnnkit.data._arrays import positive_int

_INDEX_BLOCK = 1 << 22  # bytes read at a time while indexing a CSV file


class WindowStream(IterableDataset):
    """Sliding windows over the rows of a CSV or Parquet file, read in bounded chunks.

    Args:
        path: a ``.csv`` or ``.parquet`` file (``file_format`` overrides the suffix).
        columns: the input column names, ``F`` of them.
        window, horizon, stride: as :func:`rnnkit.data.make_windows`.
        targets: the target column names (default: ``columns``).
        chunk_rows: rows read at a time; memory grows with it, not with the file.
        shuffle_buffer: if above 0, windows leave through a buffer of this many, picked at
            random (seeded by ``seed``, the epoch, the rank and the worker); 0 keeps file order.
        rank, world_size: this process's share; by default from ``torch.distributed`` when it is
            initialised, else torchrun's ``RANK``/``WORLD_SIZE``, else the whole file.

    Yields:
        ``(x (window, F), y (horizon, G))`` tensors of ``dtype``; ``y (horizon,)`` for a single
        target column, as :func:`~rnnkit.data.make_windows` gives for a 1-D series.

    Raises:
        ValueError: a missing file or column, a file shorter than ``window + horizon`` rows, or
            (while streaming) a value that is not a finite number, named by its row.

    Example:
        >>> stream = WindowStream("prices.csv", ["price"], window=24, horizon=6)  # doctest: +SKIP
        >>> model.fit(stream, batch_size=64, epochs=3)                              # doctest: +SKIP
    """

    def __init__(self, path: str | os.PathLike, columns: list[str], window: int,
                 horizon: int = 1, stride: int = 1, *, targets: list[str] | None = None,
                 chunk_rows: int = 65536, shuffle_buffer: int = 0, seed: int = 0,
                 dtype: torch.dtype = torch.float32, file_format: str | None = None,
                 rank: int | None = None, world_size: int | None = None) -> None:
        self.window = positive_int(window, "window")
        self.horizon = positive_int(horizon, "horizon")
        self.stride = positive_int(stride, "stride")
        self.chunk_rows = positive_int(chunk_rows, "chunk_rows")
        if not isinstance(shuffle_buffer, int) or shuffle_buffer < 0:
            raise ValueError(f"shuffle_buffer: expected an integer >= 0, got {shuffle_buffer!r}")
        self.shuffle_buffer, self.seed, self.dtype, self.epoch = shuffle_buffer, seed, dtype, 0
        self.features = _names(columns, "columns")
        self.targets = self.features if targets is None else _names(targets, "targets")
        self.columns = list(dict.fromkeys([*self.features, *self.targets]))
        self.reader = _open_rows(Path(path), self.columns, file_format)
        span = self.window + self.horizon
        if self.reader.num_rows < span:
            raise ValueError(f"path: {path} has {self.reader.num_rows} rows, fewer than window + "
                             f"horizon = {span}")
        self.num_windows = (self.reader.num_rows - span) // self.stride + 1
        self.rank, self.world_size = rank, world_size

    def set_epoch(self, epoch: int) -> None:
        """Reseed the shuffle buffer; distributed ``fit`` calls it before each pass."""
        self.epoch = epoch

    def shard(self) -> tuple[int, int]:
        """``(rank, world_size)`` this process reads for (see the class docstring)."""
        if self.rank is not None or self.world_size is not None:
            rank, world = self.rank or 0, self.world_size or 1
        elif torch.distributed.is_available() and torch.distributed.is_initialized():
            rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
        else:
            rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
        if not 0 <= rank < world:
            raise ValueError(f"rank: expected 0 <= rank < world_size = {world}, got {rank}")
        return rank, world

    def __len__(self) -> int:
        """The number of windows this rank yields (all its workers together)."""
        return self.num_windows // self.shard()[1]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        rank, world = self.shard()
        per_rank = self.num_windows // world
        worker = get_worker_info()
        workers, worker_id = (1, 0) if worker is None else (worker.num_workers, worker.id)
        first = rank * per_rank + per_rank * worker_id // workers
        stop = rank * per_rank + per_rank * (worker_id + 1) // workers
        windows = self._windows(first, stop)
        if self.shuffle_buffer:
            rng = np.random.default_rng([self.seed, self.epoch, rank, worker_id])
            windows = _shuffled(windows, self.shuffle_buffer, rng)
        return windows

    def _windows(self, first: int, stop: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Windows ``first <= i < stop``, one chunk of rows at a time."""
        if first >= stop:
            return
        span = self.window + self.horizon
        x_columns = [self.columns.index(name) for name in self.features]
        y_columns = [self.columns.index(name) for name in self.targets]
        start_row, stop_row = first * self.stride, (stop - 1) * self.stride + span
        pending, base, index = np.empty((0, len(self.columns))), start_row, first
        for chunk in self.reader.read(start_row, stop_row, self.chunk_rows):
            _check_finite(chunk, base + len(pending), self.reader.path, self.columns)
            pending = np.concatenate([pending, chunk])  # (rows, C)
            end = min(stop, (base + len(pending) - span) // self.stride + 1)
            if end > index:
                offset = index * self.stride - base
                spans = sliding_window_view(pending[offset:], span, axis=0)[::self.stride]
                for values in spans[:end - index]:  # (C, span) views into pending
                    yield self._pair(values.T, x_columns, y_columns)
                index = end
            drop = min(index * self.stride - base, len(pending))
            pending, base = pending[drop:], base + drop

    def _pair(self, values: np.ndarray, x_columns, y_columns):
        x = torch.tensor(values[:self.window, x_columns], dtype=self.dtype)  # (window, F)
        y = torch.tensor(values[self.window:, y_columns], dtype=self.dtype)  # (horizon, G)
        return x, (y[:, 0] if len(y_columns) == 1 else y)


def _names(value, argument: str) -> list[str]:
    names = [value] if isinstance(value, str) else list(value)
    if not names or not all(isinstance(name, str) for name in names):
        raise TypeError(f"{argument}: expected a non-empty list of column names, got {value!r}")
    return names


def _check_finite(chunk: np.ndarray, first_row: int, path: Path, columns: list[str]) -> None:
    bad = ~np.isfinite(chunk)
    if bad.any():
        row, column = (int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"path: data row {first_row + row + 1} of {path} has no finite number "
                         f"in column {columns[column]!r}")


def _shuffled(items: Iterator, size: int, rng: np.random.Generator) -> Iterator:
    """``items`` in an order drawn through a buffer of ``size``: bounded memory, local mixing."""
    buffer = []
    for item in items:
        if len(buffer) < size:
            buffer.append(item)
            continue
        slot = int(rng.integers(size))
        yield buffer[slot]
        buffer[slot] = item
    rng.shuffle(buffer)
    yield from buffer


# -- row readers -------------------------------------------------------------------------------
def _open_rows(path: Path, columns: list[str], file_format: str | None):
    if not path.is_file():
        raise ValueError(f"path: no such file {str(path)!r}")
    file_format = file_format or path.suffix.lower().lstrip(".")
    if file_format in ("parquet", "pq"):
        return ParquetRows(path, columns)
    if file_format in ("csv", "txt"):
        return CSVRows(path, columns)
    raise ValueError(f"file_format: expected 'csv' or 'parquet', got {file_format!r} (from "
                     f"{path.name}); pass file_format=")


class CSVRows:
    """Numeric columns of a CSV file, read from any row through a sparse index of line offsets.

    The index holds the byte offset of every ``index_every``-th row; reading from row ``r``
    seeks to the indexed row before it and skips fewer than ``index_every`` lines.
    """

    def __init__(self, path: Path, columns: list[str], index_every: int = 4096) -> None:
        with open(path, "rb") as handle:
            header = handle.readline()
        names = header.decode("utf-8-sig").strip().split(",")
        _check_columns(columns, names, path)
        self.path, self.columns, self.names = path, columns, names
        self.index_every = index_every
        self.offsets, self.num_rows = _line_index(path, len(header), index_every)

    def read(self, start: int, stop: int, chunk_rows: int) -> Iterator[np.ndarray]:
        """Rows ``[start, stop)`` as float64 chunks ``(n, C)`` of at most ``chunk_rows`` rows."""
        import pandas as pd

        block = start // self.index_every
        with open(self.path, "rb") as handle:
            handle.seek(self.offsets[block])
            reader = pd.read_csv(handle, header=None, names=self.names, usecols=self.columns,
                                 skiprows=start - block * self.index_every, nrows=stop - start,
                                 chunksize=chunk_rows, skip_blank_lines=False)
            with reader:
                for frame in reader:
                    yield _numeric(frame[self.columns], self.path)


def _numeric(frame, path: Path) -> np.ndarray:
    try:
        return frame.to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"path: {path} has a value that is not a number ({error})") from None


def _line_index(path: Path, start: int, every: int) -> tuple[list[int], int]:
    """Byte offsets of rows ``0, every, 2 * every, ...`` after ``start``, and the row count."""
    offsets, rows, position, last_byte = [start], 0, start, b"\n"
    with open(path, "rb") as handle:
        handle.seek(start)
        while block := handle.read(_INDEX_BLOCK):
            newlines = np.flatnonzero(np.frombuffer(block, np.uint8) == ord("\n"))
            # row k + 1 starts after the k-th newline (both counted from 0 after the header)
            marks = newlines[(-(rows + 1)) % every::every]
            offsets.extend((position + marks + 1).tolist())
            rows += len(newlines)
            position += len(block)
            last_byte = block[-1:]
    rows += last_byte != b"\n"  # a last line without a newline
    return [offset for i, offset in enumerate(offsets) if i * every < rows], rows


class ParquetRows:
    """Numeric columns of a Parquet file, read from any row by skipping whole row groups."""

    def __init__(self, path: Path, columns: list[str]) -> None:
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise ImportError("WindowStream: reading Parquet needs pyarrow "
                              "(pip install pyarrow)") from None
        metadata = pq.read_metadata(path)
        _check_columns(columns, metadata.schema.names, path)
        self.path, self.columns = path, columns
        self.group_rows = [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]
        self.num_rows = sum(self.group_rows)

    def read(self, start: int, stop: int, chunk_rows: int) -> Iterator[np.ndarray]:
        import pyarrow.parquet as pq

        ends = np.cumsum(self.group_rows)
        first = int(np.searchsorted(ends, start, side="right"))
        last = int(np.searchsorted(ends, stop - 1, side="right"))
        row = int(ends[first - 1]) if first else 0
        parquet = pq.ParquetFile(self.path)
        for batch in parquet.iter_batches(batch_size=chunk_rows, columns=self.columns,
                                          row_groups=list(range(first, last + 1))):
            values = np.column_stack([batch.column(name).to_numpy(zero_copy_only=False)
                                      for name in self.columns]).astype(np.float64)
            lo, hi = max(start - row, 0), min(stop - row, len(values))
            row += len(values)
            if hi > lo:
                yield values[lo:hi]
            if row >= stop:
                return


def _check_columns(columns: list[str], available: list[str], path: Path) -> None:
    missing = [name for name in columns if name not in available]
    if missing:
        raise ValueError(f"columns: {missing} not in {path}; its columns are {list(available)}")
