"""Multi-process (DDP) training and evaluation on Lightning: layout, ranks, shared cache, gathering, failures.

alzmri scales with Lightning's DDP strategy (``torch.distributed`` underneath; gloo on
CPUs, NCCL on GPUs); nothing here launches processes or talks to a cluster itself.

Launching
    ``alzmri train --devices N [--num-nodes M] [--strategy ddp]`` starts the first process;
    Lightning's subprocess launcher re-runs the same command line for local ranks
    1..N-1 when ``trainer.fit`` (or ``trainer.predict``) starts, with ``LOCAL_RANK``,
    ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT`` set. Under ``torchrun`` or SLURM
    (``srun``) every process is started by the launcher and Lightning's cluster
    environments (``TorchElasticEnvironment``, ``SLURMEnvironment``) read the ranks from
    its variables. Either way every process runs the same ``alzmri`` code from the top.
    The launcher re-runs the *script* (``python -m alzmri ...`` or the ``alzmri`` console
    script, or ``python -m alzmri.comparison._worker`` for a comparison row), so calling
    :func:`alzmri.pipeline.train` with more than one process from a Python session
    re-runs that session's script: call it from a script guarded by
    ``if __name__ == "__main__":`` (Lightning's rule), not from a notebook or pytest.
    ``ddp_spawn`` is not offered: it pickles the in-memory image arrays into every
    process and loses the callbacks' state (fit time, best checkpoint) in the parent.

Who writes
    Every process computes the same split from the same seed, but only global rank 0
    creates the run folder and writes ``config.yaml``, ``manifest.csv``, checkpoints
    (Lightning saves on rank 0 only), ``history.csv``, weights, ``run.json``,
    ``metrics.json`` and ``predictions.csv``; the other ranks return after ``fit``.

The decode-once cache, once per node
    Processes that start together (torchrun, srun, and Lightning's ranks 1..N-1, which
    start after rank 0 has decoded) take an exclusive file lock,
    ``<cache dir>/.alzmri-build.lock`` (:func:`node_cache_lock`), around decoding the
    images and recovering the subject groups. The first process to hold the lock builds
    ``arrays/<key>.npz`` and ``groups/<key>.npz`` (atomic renames); every later one finds
    them and only reads. With one process the lock is not taken. Each node has its own
    cache (``$ALZMRI_CACHE_DIR``, best on node-local disk), so a cache is built once per
    node, not once per rank.

Exact metrics
    Validation and test batches are sharded without padding (Lightning's
    ``UnrepeatedDistributedSampler``: rank r takes samples r, r+W, r+2W, ...) and the
    per-rank predictions are gathered (:func:`all_gather_uneven`) before any metric is
    computed, so every sample counts exactly once; evaluation also carries each sample's
    index and drops duplicates (:func:`alzmri.evaluation.distributed.merge_gathered`).
    Training batches keep Lightning's padded ``DistributedSampler`` (a few repeated
    samples per epoch do not bias training); the logged training loss and accuracy are
    averaged over all ranks.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from alzmri.errors import AlzmriError

__all__ = [
    "STRATEGIES",
    "ProcessLayout",
    "Ranks",
    "all_gather_uneven",
    "is_global_zero",
    "launched_world_size",
    "node_cache_lock",
    "rank_failures",
    "resolve_ranks",
]

#: Values of ``--strategy``.
STRATEGIES = ("auto", "ddp")


@dataclass(frozen=True)
class ProcessLayout:
    """How many processes, where: the Lightning Trainer's ``accelerator``, ``devices``, ``num_nodes``, ``strategy``.

    Attributes
    ----------
    accelerator : str
        ``auto``, ``cpu``, ``gpu``/``cuda``, ``mps``.
    devices : int
        Processes (one device each) per node, >= 1.
    num_nodes : int
        Machines, >= 1.
    strategy : {"auto", "ddp"}
        ``auto`` is one process for ``devices * num_nodes == 1`` and DDP otherwise.
    """

    accelerator: str = "auto"
    devices: int = 1
    num_nodes: int = 1
    strategy: str = "auto"

    @classmethod
    def from_config(cls, cfg: Any) -> "ProcessLayout":
        """The layout of a :class:`~alzmri.config.TrainConfig` (or anything with those attributes)."""
        return cls(
            accelerator=str(getattr(cfg, "accelerator", "auto")),
            devices=int(getattr(cfg, "devices", 1)),
            num_nodes=int(getattr(cfg, "num_nodes", 1)),
            strategy=str(getattr(cfg, "strategy", "auto")),
        )

    @property
    def processes(self) -> int:
        """Processes in all: ``devices * num_nodes``."""
        return self.devices * self.num_nodes

    @property
    def parallel(self) -> bool:
        """True when Lightning runs DDP (more than one process, or ``strategy="ddp"``)."""
        return self.processes > 1 or self.strategy == "ddp"

    def trainer_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :class:`lightning.Trainer`.

        Raises
        ------
        AlzmriError
            A value out of range or an unknown strategy.
        """
        if self.devices < 1 or self.num_nodes < 1:
            raise AlzmriError(f"--devices and --num-nodes must be at least 1; got {self.devices} and {self.num_nodes}")
        if self.strategy not in STRATEGIES:
            raise AlzmriError(f"--strategy must be one of {', '.join(STRATEGIES)}; got {self.strategy!r}")
        return {"accelerator": self.accelerator, "devices": self.devices, "num_nodes": self.num_nodes, "strategy": self.strategy}


@dataclass(frozen=True)
class Ranks:
    """This process's place in the run.

    Attributes
    ----------
    global_rank : int
        0 .. world_size - 1; rank 0 writes every file.
    local_rank : int
        Rank on this node (device index).
    node_rank : int
    world_size : int
        Processes in all.
    """

    global_rank: int = 0
    local_rank: int = 0
    node_rank: int = 0
    world_size: int = 1

    @property
    def is_global_zero(self) -> bool:
        return self.global_rank == 0

    def prefix(self) -> str:
        """``"rank R of W: "`` with more than one process, else ``""``."""
        return f"rank {self.global_rank} of {self.world_size}: " if self.world_size > 1 else ""


def _probe_trainer(layout: ProcessLayout):
    """A Trainer that is never run: Lightning resolves the accelerator, strategy and ranks in its constructor."""
    import lightning as L
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    try:
        trainer = L.Trainer(
            **layout.trainer_kwargs(),
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
        )
        # torchrun / SLURM: devices x num_nodes must match what the launcher started (checked now, not at fit)
        env = getattr(trainer.strategy, "cluster_environment", None)
        if env is not None:
            env.validate_settings(num_devices=layout.devices, num_nodes=layout.num_nodes)
        return trainer
    except (MisconfigurationException, ValueError, RuntimeError, ImportError) as exc:  # ImportError: e.g. tpu without torch_xla
        raise AlzmriError(
            f"cannot run accelerator={layout.accelerator!r} devices={layout.devices} num_nodes={layout.num_nodes} "
            f"strategy={layout.strategy!r} here ({_first_line(exc)}); change --accelerator/--devices/--num-nodes"
        ) from None


def resolve_ranks(layout: ProcessLayout) -> Ranks:
    """This process's ranks, as Lightning will assign them, before anything is written.

    Builds (and discards) a Trainer with the layout: Lightning's cluster environments read
    the launcher's variables (``LOCAL_RANK``/``NODE_RANK`` of its own launcher,
    ``RANK``/``LOCAL_RANK`` of torchrun, ``SLURM_PROCID``/``SLURM_LOCALID`` of srun, ...).
    In the first process of a plain ``alzmri train --devices N`` no variable is set yet,
    so it is rank 0. Also silences the epoch-level ``sync_dist`` advice for the validation
    metrics, which are computed from gathered predictions and equal on every rank.

    Returns
    -------
    Ranks

    Raises
    ------
    AlzmriError
        The layout does not fit this machine (``--accelerator gpu`` without a GPU, more
        devices than present, ...), in one line.
    """
    warnings.filterwarnings("ignore", message=r".*self\.log\('val_(balanced_)?accuracy'.*sync_dist=True.*")
    if not layout.parallel:
        layout.trainer_kwargs()  # checks the values
        if layout.accelerator not in ("auto", "cpu"):
            _probe_trainer(layout)  # e.g. --accelerator gpu without a GPU: one line, before anything is written
        return Ranks()
    trainer = _probe_trainer(layout)
    return Ranks(
        global_rank=int(trainer.global_rank),
        local_rank=int(trainer.local_rank),
        node_rank=int(trainer.node_rank),
        world_size=int(trainer.world_size),
    )


def launched_world_size() -> int:
    """Processes started together by an external launcher: ``WORLD_SIZE`` (torchrun, Lightning's ranks 1..N-1) or ``SLURM_NTASKS``; 1 otherwise."""
    for var in ("WORLD_SIZE", "SLURM_NTASKS"):
        try:
            n = int(os.environ.get(var, "1"))
        except ValueError:
            continue
        if n > 1:
            return n
    return 1


@contextmanager
def node_cache_lock(cache_dir: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock on the cache folder while decoding images and recovering groups.

    With one process (:func:`launched_world_size` is 1) nothing is locked. With several,
    the first process to enter builds the cache files; the others block here until it
    leaves and then read them (cache hits). The lock is ``<cache_dir>/.alzmri-build.lock``
    (``filelock``, ``fcntl`` on Linux); a folder where no lock file can be created
    (read-only) is used without a lock.

    Parameters
    ----------
    cache_dir : path-like
        The cache folder, usually :func:`alzmri.data.locations.default_cache_dir`
        (``$ALZMRI_CACHE_DIR``).
    """
    if launched_world_size() <= 1:
        yield
        return
    from filelock import FileLock

    folder = Path(cache_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(folder / ".alzmri-build.lock"))
        lock.acquire()
    except OSError:
        yield
        return
    try:
        yield
    finally:
        lock.release()


def all_gather_uneven(module, tensor: Tensor) -> Tensor:
    """Concatenate, in rank order, a tensor whose first dimension differs between ranks.

    Every rank must call it (a collective). Sizes are gathered first, each tensor is
    zero-padded to the largest, gathered (``torch.distributed.all_gather``), and the
    padding is cut off again, so no row is repeated or lost.

    Parameters
    ----------
    module : lightning.LightningModule
        Attached to a Trainer (gives the world size and device).
    tensor : tensor of shape (n_rank, ...)
        Same dtype and trailing shape on every rank; ``n_rank`` may be 0.

    Returns
    -------
    tensor of shape (sum of n_rank, ...)
        On ``module.device``; ``tensor`` itself with one process.
    """
    import torch.distributed as dist

    trainer = getattr(module, "_trainer", None)
    if trainer is None or trainer.world_size <= 1 or not dist.is_initialized():
        return tensor
    world = dist.get_world_size()
    device = module.device
    local = tensor.to(device)
    sizes_t = [torch.zeros(1, dtype=torch.long, device=device) for _ in range(world)]
    dist.all_gather(sizes_t, torch.tensor([local.shape[0]], dtype=torch.long, device=device))
    sizes = [int(t.item()) for t in sizes_t]
    longest = max(sizes)
    if local.shape[0] < longest:
        local = torch.cat([local, local.new_zeros((longest - local.shape[0], *local.shape[1:]))])
    parts = [torch.empty_like(local) for _ in range(world)]
    dist.all_gather(parts, local.contiguous())
    return torch.cat([p[:s] for p, s in zip(parts, sizes)])


def _is_peer_failure(exc: BaseException) -> bool:
    """True for the errors a rank sees when another rank of its process group is gone."""
    dist_error = getattr(torch.distributed, "DistError", None)
    if dist_error is not None and isinstance(exc, dist_error):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and any(
        s in text for s in ("gloo", "nccl", "connection closed by peer", "connection reset by peer", "broken pipe", "process group")
    )


def _first_line(exc: BaseException) -> str:
    """The first non-empty line of an error, without a ``[file.cc:123]`` source prefix, at most 160 characters."""
    line = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
    return re.sub(r"^\[[^\]]*\]\s*", "", line)[:160]


@contextmanager
def rank_failures(ranks: Ranks, kept: Callable[[], str] | None = None) -> Iterator[None]:
    """Turn the failure of one process of a multi-process run into one clear line.

    With more than one process: an :class:`AlzmriError` gets the rank as prefix; the error
    a process sees when another process of the run died (a closed gloo/NCCL connection,
    ``torch.distributed.DistError``) becomes an :class:`AlzmriError` that says so, names
    the last complete checkpoint and the ``--resume`` command. Other exceptions (bugs)
    keep their traceback. Lightning's launcher stops the remaining processes; torchrun and
    ``srun --kill-on-bad-exit=1`` do the same. Checkpoints are written by rank 0 only,
    atomically, at the end of an epoch, so a crash leaves the last complete one in place.

    Parameters
    ----------
    ranks : Ranks
    kept : callable, optional
        Returns what is left to continue from (the last complete checkpoint and the
        ``--resume`` command), for the message; default "nothing was written".

    Raises
    ------
    AlzmriError
        As described.
    """
    if ranks.world_size <= 1:
        yield
        return
    try:
        yield
    except AlzmriError as exc:
        if type(exc) is not AlzmriError:  # a subclass carries more (exit code, resume hint)
            raise
        raise AlzmriError(f"{ranks.prefix()}{exc}") from None
    except Exception as exc:
        if not _is_peer_failure(exc):
            raise
        raise AlzmriError(
            f"{ranks.prefix()}another process of this {ranks.world_size}-process run stopped ({_first_line(exc)}); "
            f"stopped too, {kept() if kept is not None else 'nothing was written'}"
        ) from None


def is_global_zero() -> bool:
    """True in the process that writes (global rank 0), as Lightning last set it; True without distribution."""
    from lightning.pytorch.utilities import rank_zero_only

    return int(getattr(rank_zero_only, "rank", 0) or 0) == 0
