"""Data-parallel ``fit`` under ``torch.distributed``: one process per rank, launched by torchrun.

``fit`` calls :func:`current` once. Outside a distributed launch it gets :data:`LOCAL`, whose
methods do nothing, so single-process training is unchanged. Under ``torchrun`` (``RANK``,
``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT`` in the environment) or with a process group the
caller initialised, it gets a :class:`Cluster`, and then:

- the training data is sharded: arrays and map-style datasets through a ``DistributedSampler``
  whose shuffle seed rank 0 draws from torch's generator (so ``set_random_seed`` fixes it) and
  whose epoch advances with each pass; validation data is split without padding, so every
  sample counts once; an ``IterableDataset`` shards itself (see
  :class:`rnnkit.data.streaming.WindowStream`) and must yield the same number of batches on every
  rank;
- the model is wrapped in ``DistributedDataParallel`` after its lazy weights are built; DDP copies
  rank 0's weights to every rank and averages gradients, so with each rank's loss the mean over
  its local batch ``b`` an update equals the single-process update on the global batch ``W*b``;
- the metrics' accumulators (totals, counts, confusion counts) are summed across ranks at the end
  of each epoch and validation, so every rank logs the global values, and callbacks such as
  EarlyStopping decide the same on every rank; ``stop_training`` is agreed on (any rank stops
  all), after each batch too when a callback listens to batches;
- only rank 0 logs and saves: progress bars, ``CSVLogger``, ``ModelCheckpoint`` and callbacks with
  ``rank_zero_only = True`` run on rank 0 alone, and other callbacks run with ``verbose = 0``.

The backend is gloo on CPU and NCCL for CUDA tensors (``"cpu:gloo,cuda:nccl"`` when CUDA is
available). :func:`launch` starts ``N`` local processes through ``torch.distributed.run``; see
docs/distributed.md for multi-node runs.
"""

from __future__ import annotations

import atexit
import math
import os
import subprocess
import sys
import warnings
from collections.abc import Iterator

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, IterableDataset, RandomSampler, Sampler
from torch.utils.data.distributed import DistributedSampler

from rnnkit.training import data as data_module
from rnnkit.training.callbacks import CSVLogger, ProgbarLogger, _overrides
from rnnkit.training.monitor import ModelCheckpoint

LAUNCH_VARIABLES = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
RANK_ZERO_ONLY = (ProgbarLogger, CSVLogger, ModelCheckpoint)
# Where Metric and RunningMean keep what they sum over batches (never configuration such as
# AUC's thresholds); a metric class may list its own in a ``state_names`` attribute.
ACCUMULATORS = ("total", "count", "true_positives", "false_positives", "positives", "negatives")


# -- where this process stands -----------------------------------------------------------------
def launched() -> bool:
    """Whether a launcher such as torchrun started this process as one rank of several."""
    return all(name in os.environ for name in ("RANK", "WORLD_SIZE"))


def rank() -> int:
    """This process's rank: from the process group, else torchrun's ``RANK``, else 0."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return int(os.environ.get("RANK", 0)) if launched() else 0


def world_size() -> int:
    """The number of ranks: from the process group, else ``WORLD_SIZE``, else 1."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return int(os.environ.get("WORLD_SIZE", 1)) if launched() else 1


def is_main_process() -> bool:
    """True on rank 0 and outside distributed runs: the process that logs and writes files."""
    return rank() == 0


def default_backend() -> str:
    """gloo for CPU tensors; NCCL as well for CUDA tensors when CUDA is there."""
    if torch.cuda.is_available() and dist.is_nccl_available():
        return "cpu:gloo,cuda:nccl"
    return "gloo"


def current() -> Local | Cluster:
    """The data-parallel setting of this process, initialising the process group if needed.

    Returns :data:`LOCAL` unless a process group of two or more ranks exists or the environment
    describes one (torchrun's variables), in which case the group is joined (and destroyed at
    exit) and a :class:`Cluster` returned.
    """
    if not dist.is_available():
        return LOCAL
    if not dist.is_initialized():
        if not launched() or int(os.environ["WORLD_SIZE"]) < 2:
            return LOCAL
        missing = [name for name in LAUNCH_VARIABLES if name not in os.environ]
        if missing:
            raise RuntimeError(f"torch.distributed: RANK and WORLD_SIZE are set but {missing} "
                               "are not; launch with torchrun or set them all")
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group(backend=default_backend())
        atexit.register(_destroy)
    if dist.get_world_size() < 2:
        return LOCAL
    return Cluster(dist.get_rank(), dist.get_world_size())


def _destroy() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


# -- the two settings fit runs in --------------------------------------------------------------
class Local:
    """Single-process training: every hook is the identity or does nothing."""

    rank = 0
    world_size = 1
    is_main = True

    def adapt(self, train, validation, callbacks, verbose: int):
        return train, validation, callbacks, verbose

    def wrap(self, model):
        return model

    def set_epoch(self, source, epoch: int) -> None:
        pass

    def sync(self, state) -> None:
        pass

    def stopping(self, model, batch: bool = False) -> bool:
        return bool(model.stop_training)

    def barrier(self) -> None:
        pass


LOCAL = Local()


class Cluster(Local):
    """One rank of a data-parallel run; see the module docstring for what each hook does."""

    def __init__(self, rank: int, world_size: int) -> None:
        self.rank = rank
        self.world_size = world_size
        self.is_main = rank == 0
        # The group's collectives run on CPU tensors unless it has NCCL alone.
        self.device = (torch.device("cuda", torch.cuda.current_device())
                       if dist.get_backend() == "nccl" else torch.device("cpu"))
        self.batch_stops = False

    def adapt(self, train, validation, callbacks, verbose: int):
        """Shard the sources; keep the callbacks this rank runs; silence ranks other than 0."""
        seed = self.shuffle_seed()
        train = self.shard(train, seed, training=True)
        if validation is not None:
            validation = self.shard(validation, seed, training=False)
        shared = [c for c in callbacks or [] if not _rank_zero_only(c)]
        self.batch_stops = any(_overrides(c, hook) for c in shared
                               for hook in ("on_train_batch_begin", "on_train_batch_end"))
        if self.is_main:
            return train, validation, callbacks, verbose
        for callback in shared:
            if hasattr(callback, "verbose"):
                callback.verbose = 0
        return train, validation, shared, 0

    def shuffle_seed(self) -> int:
        """A seed drawn on rank 0 from torch's generator and sent to every rank."""
        seed = torch.randint(0, 2**31 - 1, (1,), dtype=torch.int64).to(self.device)
        dist.broadcast(seed, src=0)
        return int(seed.item())

    def shard(self, source, seed: int, training: bool):
        if isinstance(source, data_module.ArraySource):
            return ShardedArrays(source, self, seed, training)
        return ShardedLoader(source, self, seed, training)

    def wrap(self, model):
        """``DistributedDataParallel`` around the built model (on its parameters' device)."""
        device = next(model.parameters()).device
        device_ids = [device] if device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=device_ids)

    def set_epoch(self, source, epoch: int) -> None:
        source.set_epoch(epoch)

    def sync(self, state) -> None:
        """Sum every tracker's accumulators across ranks, in one all-reduce."""
        slots = [(tracker, name) for tracker in state.trackers()
                 for name in _accumulators(tracker)]
        if not slots:
            return
        values = [torch.as_tensor(getattr(t, name), dtype=torch.float64).reshape(-1)
                  for t, name in slots]
        summed = torch.cat(values).to(self.device)
        dist.all_reduce(summed)
        for (tracker, name), part in zip(slots, summed.cpu().split([v.numel() for v in values])):
            old = getattr(tracker, name)
            if isinstance(old, torch.Tensor):
                setattr(tracker, name, part.reshape(old.shape).to(old.dtype))
            else:
                setattr(tracker, name, float(part))

    def stopping(self, model, batch: bool = False) -> bool:
        """Whether to stop, the same on every rank: any rank's ``stop_training`` stops all."""
        if batch and not self.batch_stops:
            return bool(model.stop_training)
        flag = torch.tensor([float(bool(model.stop_training))], device=self.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        model.stop_training = bool(flag.item())
        return model.stop_training

    def barrier(self) -> None:
        """Wait for every rank (e.g. until rank 0 has written the last checkpoint)."""
        dist.barrier()


def _rank_zero_only(callback) -> bool:
    return isinstance(callback, RANK_ZERO_ONLY) or bool(getattr(callback, "rank_zero_only", False))


def _accumulators(tracker) -> tuple[str, ...]:
    names = getattr(tracker, "state_names", None)
    if names is not None:
        return tuple(names)
    found = tuple(name for name in ACCUMULATORS if name in vars(tracker))
    if not found:
        warnings.warn(f"metrics: {tracker.name!r} keeps no state rnnkit knows how to sum across "
                      "ranks; its logged value is rank-local (give the class a state_names tuple)",
                      stacklevel=3)
    return found


# -- sharded sources ---------------------------------------------------------------------------
class _Passes:
    """Counts passes over the data: each pass uses the next epoch of the sampler's shuffle."""

    epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Start from ``epoch`` (never going back, so passes within an epoch stay distinct)."""
        self.epoch = max(self.epoch, epoch)

    def _next_epoch(self) -> int:
        epoch, self.epoch = self.epoch, self.epoch + 1
        return epoch


class ShardedArrays(_Passes):
    """One rank's share of an :class:`~rnnkit.training.data.ArraySource`, batched by slicing.

    Training: ``DistributedSampler`` indices (shuffled if the source is, padded so every rank
    has the same number of samples and batches). Validation: samples ``rank, rank + W, ...``.
    """

    def __init__(self, source, cluster: Cluster, seed: int, training: bool) -> None:
        self.source = source
        self.batch_size = source.batch_size
        self.sampler = (DistributedSampler(range(source.size), cluster.world_size, cluster.rank,
                                           shuffle=source.shuffle, seed=seed)
                        if training else StridedSampler(source.size, cluster))

    def __len__(self) -> int:
        return math.ceil(len(self.sampler) / self.batch_size)

    def batches(self) -> Iterator[data_module.Batch]:
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(self._next_epoch())
        order = torch.tensor(list(self.sampler), dtype=torch.long)
        data = data_module.tree_map(lambda t: t[order], self.source.data)
        for start in range(0, len(order), self.batch_size):
            stop = start + self.batch_size
            yield data_module.tree_map(lambda t: t[start:stop], data)  # noqa: B023


class StridedSampler(Sampler):
    """Indices ``rank, rank + W, ...`` of ``size`` samples: each counted once, none padded."""

    def __init__(self, size: int, cluster: Cluster) -> None:
        self.indices = range(cluster.rank, size, cluster.world_size)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


class ShardedLoader(_Passes):
    """A :class:`~rnnkit.training.data.LoaderSource` whose loader reads this rank's share.

    A map-style dataset is re-read through a ``DistributedSampler`` (validation: a
    :class:`StridedSampler`); a loader that already has a ``DistributedSampler`` is kept; an
    ``IterableDataset`` is kept and told the epoch if it has ``set_epoch``.
    """

    def __init__(self, source, cluster: Cluster, seed: int, training: bool) -> None:
        loader = source.loader
        self.epoch_target = loader.dataset
        if not isinstance(loader.dataset, IterableDataset):
            if isinstance(loader.sampler, DistributedSampler):
                self.epoch_target = loader.sampler
            else:
                loader = _with_sampler(loader, cluster, seed, training)
                self.epoch_target = loader.sampler
        self.source = data_module.LoaderSource(loader, source.float_dtype)

    def __len__(self) -> int | None:
        return len(self.source)

    def batches(self) -> Iterator[data_module.Batch]:
        epoch = self._next_epoch()
        if hasattr(self.epoch_target, "set_epoch"):
            self.epoch_target.set_epoch(epoch)
        yield from self.source.batches()


def _with_sampler(loader: DataLoader, cluster: Cluster, seed: int, training: bool) -> DataLoader:
    if loader.batch_size is None:
        raise ValueError("x: a DataLoader with a custom batch_sampler cannot be sharded across "
                         "ranks; give it a DistributedSampler yourself")
    dataset = loader.dataset
    sampler = (DistributedSampler(dataset, cluster.world_size, cluster.rank, seed=seed,
                                  shuffle=isinstance(loader.sampler, RandomSampler))
               if training else StridedSampler(len(dataset), cluster))
    workers = loader.num_workers
    return DataLoader(dataset, batch_size=loader.batch_size, sampler=sampler,
                      num_workers=workers, collate_fn=loader.collate_fn,
                      pin_memory=loader.pin_memory, drop_last=loader.drop_last,
                      timeout=loader.timeout, worker_init_fn=loader.worker_init_fn,
                      multiprocessing_context=loader.multiprocessing_context,
                      generator=loader.generator,
                      prefetch_factor=loader.prefetch_factor if workers else None,
                      persistent_workers=loader.persistent_workers)


# -- launching ---------------------------------------------------------------------------------
def launch(nproc: int, program: list[str], env: dict[str, str] | None = None) -> int:
    """Run ``program`` in ``nproc`` local processes through ``torch.distributed.run``.

    ``program`` is what follows ``python``: ``["-m", "package.module", ...]`` or
    ``["script.py", ...]``. The rendezvous is on localhost (``--standalone``); gloo is kept on the
    loopback interface and each process gets ``cores // nproc`` threads unless the environment
    says otherwise. Returns the launcher's exit code (non-zero if any process failed).
    """
    if not isinstance(nproc, int) or isinstance(nproc, bool) or nproc < 1:
        raise ValueError(f"nproc: expected a positive integer, got {nproc!r}")
    environment = {**os.environ, **(env or {})}
    environment.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    if os.path.exists("/sys/class/net/lo"):
        environment.setdefault("GLOO_SOCKET_IFNAME", "lo")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc-per-node={nproc}", "--monitor-interval=0.1", *program]
    return subprocess.run(command, env=environment, check=False).returncode
