"""Continuing a killed run: the run state saved in every checkpoint, and ``--resume``'s checks.

``alzmri train --out RUN --resume`` (:func:`plan_resume`) reloads ``RUN/config.yaml``,
recomputes the split and requires it to equal ``RUN/manifest.csv`` byte for byte
(:func:`check_manifest`), then continues from ``checkpoints/last.ckpt`` with Lightning's
``ckpt_path``. The training order depends only on the seed and the epoch
(:class:`alzmri.data.datamodule.EpochShuffleSampler`) and the generator states are
restored (:class:`RunState`), so on CPU a resumed run ends with the same weights,
history and metrics as an uninterrupted one. What a run folder holds at any moment:
:mod:`alzmri.training.checkpointing` (see docs/reliability.md).
"""

from __future__ import annotations

import os
import random
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback

from alzmri.errors import AlzmriError
from alzmri.training.checkpointing import HISTORY_FILE, HISTORY_KEYS, LAST_CHECKPOINT, RUN_STATE_KEY, write_history

# --------------------------------------------------------------------------- per-epoch state


def _rng_state() -> dict[str, Any]:
    """Generator states of torch (and CUDA), numpy and Python, as tensors, ints and tuples (``weights_only``-loadable)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": (kind, torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos), int(has_gauss), float(gauss)),
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    v, internal, g = state["python"]
    random.setstate((v, tuple(internal), g))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class RunState(Callback):
    """What a resumed run needs beyond weights and optimizer: history, fit time, generator states, split hash.

    Saved in every checkpoint (Lightning's callback state) and restored from it by
    ``trainer.fit(ckpt_path=...)``. At the end of every training epoch (after validation,
    before the checkpoint callbacks) the epoch's row is appended and ``history.csv`` is
    rewritten (by global rank 0 only), so the file always matches the epochs done.

    Parameters
    ----------
    run_dir : path-like
        The run folder (``history.csv`` is written there).
    manifest_sha256 : str
        Hex SHA-256 of the run's ``manifest.csv`` bytes; a checkpoint carrying another
        hash cannot continue this run (:func:`alzmri.training.checkpointing.check_checkpoint`).

    Attributes
    ----------
    rows : list of dict
        One per completed epoch: ``epoch`` (1-based) and the logged metrics of
        :data:`~alzmri.training.checkpointing.HISTORY_KEYS` (floats).
    seconds : float
        Fit-loop wall-clock seconds, all processes of the run together (the lost part
        of an interrupted epoch is not counted).
    """

    def __init__(self, run_dir: str | os.PathLike, manifest_sha256: str):
        self.run_dir = Path(run_dir)
        self.manifest_sha256 = manifest_sha256
        self.rows: list[dict[str, float]] = []
        self._seconds_before = 0.0
        self._start: float | None = None
        self._stop: float | None = None
        self._pending_rng: dict[str, Any] | None = None

    @property
    def state_key(self) -> str:
        return RUN_STATE_KEY

    @property
    def seconds(self) -> float:
        if self._start is None:
            return self._seconds_before
        return self._seconds_before + ((self._stop or time.perf_counter()) - self._start)

    def on_fit_start(self, trainer, pl_module) -> None:
        self._start, self._stop = time.perf_counter(), None

    def on_fit_end(self, trainer, pl_module) -> None:
        self._stop = time.perf_counter()

    def on_train_start(self, trainer, pl_module) -> None:
        # generators as they were when the checkpoint was written: nothing between here and
        # the first batch draws from them, as nothing did in the uninterrupted run
        if self._pending_rng is not None:
            _set_rng_state(self._pending_rng)
            self._pending_rng = None

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        metrics = trainer.callback_metrics
        row: dict[str, float] = {"epoch": trainer.current_epoch + 1}
        for k in HISTORY_KEYS[1:]:
            if k in metrics:
                row[k] = float(metrics[k])
        self.rows = [r for r in self.rows if r["epoch"] < row["epoch"]] + [row]
        if trainer.is_global_zero:
            write_history(self.run_dir / HISTORY_FILE, self.rows)

    def state_dict(self) -> dict[str, Any]:
        return {
            "version": 1,
            "history": [dict(r) for r in self.rows],
            "fit_seconds": float(self.seconds),
            "manifest_sha256": self.manifest_sha256,
            "rng": _rng_state(),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.rows = [dict(r) for r in state_dict.get("history", [])]
        self._seconds_before = float(state_dict.get("fit_seconds", 0.0))
        self._pending_rng = state_dict.get("rng")


# --------------------------------------------------------------------------- resuming


@dataclass
class ResumePlan:
    """What :func:`plan_resume` found in the run folder.

    Attributes
    ----------
    cfg : TrainConfig
        The run's saved configuration (``resume=True``; ``out`` and, when given, ``data``
        from the command).
    checkpoint : Path or None
        ``checkpoints/last.ckpt``, or None when no epoch was completed (the run starts
        again from epoch 1 with the same split).
    """

    cfg: Any
    checkpoint: Path | None


def run_finished(out: str | os.PathLike, evaluate: bool = True) -> bool:
    """True when ``out`` holds ``run.json`` and, if the run evaluates and has a test split, ``metrics.json``."""
    import json

    out = Path(out)
    if not (out / "run.json").is_file():
        return False
    if not evaluate or (out / "metrics.json").is_file():
        return True
    try:
        counts = json.loads((out / "run.json").read_text(encoding="utf-8")).get("split_counts", {})
    except (OSError, ValueError):
        return False
    return int(counts.get("test", 1)) == 0


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, Path) or isinstance(b, Path):
        return a is not None and b is not None and Path(a).expanduser().resolve() == Path(b).expanduser().resolve()
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return list(a) == list(b)
    return a == b


def saved_settings(cfg, config_file: str | os.PathLike):
    """The configuration saved in ``config_file``, for resuming with ``cfg`` (``resume=True``, ``out`` set).

    Every option given explicitly (``cfg.model_fields_set``) must equal the saved one,
    except ``out``, ``resume`` and ``data`` (a moved dataset is accepted: the split
    recomputed from it must still equal the saved manifest, which is checked later).

    Returns
    -------
    TrainConfig
        The saved configuration with ``resume=True``, ``out`` from ``cfg`` and, when
        ``cfg`` gives it, ``data``.

    Raises
    ------
    AlzmriError
        An option differs from the saved one; the file is not a valid config.
    """
    from alzmri.config import load_train_config

    config_file = Path(config_file)
    saved = load_train_config(config_file)
    for key in sorted(cfg.model_fields_set - {"out", "resume", "data"}):
        given, kept = getattr(cfg, key), getattr(saved, key)
        if not _same(given, kept):
            raise AlzmriError(f"{config_file.parent}: --resume continues with the saved settings ({config_file}); {key} is {kept!r} "
                              f"there but {given!r} was given: drop it, or start a new run with another --out")
    updates: dict[str, Any] = {"out": Path(cfg.out), "resume": True}
    if "data" in cfg.model_fields_set and cfg.data is not None:
        updates["data"] = cfg.data
    return saved.model_copy(update=updates)


def plan_resume(cfg) -> ResumePlan:
    """Check that ``cfg.out`` is a started, unfinished run that ``cfg`` may continue.

    The settings are the saved ones (:func:`saved_settings`). Nothing is written.

    Parameters
    ----------
    cfg : TrainConfig
        ``resume=True`` and ``out`` set.

    Returns
    -------
    ResumePlan

    Raises
    ------
    AlzmriError
        No ``out``; the folder does not exist or holds no ``config.yaml`` (never
        started); the run already finished; a cross-validation folder (resumed by
        :func:`alzmri.pipeline.train_cv`); an option differs from the saved one; the
        saved config is unreadable.
    """
    if cfg.out is None:
        raise AlzmriError("--resume needs --out RUN, the run folder to continue")
    if cfg.folds is not None:
        raise AlzmriError("folds is set: resume cross-validation with alzmri.pipeline.train_cv (alzmri train --folds K --out DIR --resume)")
    out = Path(cfg.out)
    config_file = out / "config.yaml"
    if not out.is_dir():
        raise AlzmriError(f"{out}: no such run folder, nothing to resume; start the run without --resume")
    if not config_file.is_file():
        raise AlzmriError(f"{out}: this run was never started (no config.yaml), nothing to resume; start it without --resume")
    saved = saved_settings(cfg, config_file)
    if saved.folds is not None:
        raise AlzmriError(f"{out}: a cross-validation folder; resume it with: alzmri train --folds {saved.folds} --out {out} --resume")
    if run_finished(out, saved.evaluate):
        raise AlzmriError(f"{out}: this run already finished (run.json and metrics.json are there), nothing to resume; "
                          "start a new run with another --out")
    last = out / "checkpoints" / LAST_CHECKPOINT
    return ResumePlan(cfg=saved, checkpoint=last if last.is_file() else None)


def remove_stray_temp_files(out: str | os.PathLike) -> list[Path]:
    """Delete the ``.NAME.*.tmp`` files that killed atomic writes left in the run folder and ``checkpoints/``.

    Call it from the one process that writes (global rank 0), before training resumes.

    Returns
    -------
    list of Path
        The files removed.
    """
    removed = []
    for folder in (Path(out), Path(out) / "checkpoints"):
        for stray in sorted(folder.glob(".*.tmp")) if folder.is_dir() else ():
            stray.unlink(missing_ok=True)
            removed.append(stray)
    return removed


def manifest_bytes(index, splits, *, groups=None, strategy: str | None = None, copy_of=None) -> bytes:
    """The bytes :func:`alzmri.data.manifest.write_manifest` writes for this split (through a temporary folder)."""
    from alzmri.data.manifest import write_manifest

    with tempfile.TemporaryDirectory(prefix="alzmri-manifest-") as tmp:
        return write_manifest(Path(tmp) / "manifest.csv", index, splits, groups=groups, strategy=strategy, copy_of=copy_of).read_bytes()


def check_manifest(path: str | os.PathLike, expected: bytes, data_root) -> None:
    """Require the manifest ``path`` (a run's ``manifest.csv``) to equal the one recomputed for the resumed run.

    Parameters
    ----------
    path : path-like
    expected : bytes
        :func:`manifest_bytes` of the split recomputed with the run's settings.
    data_root : path-like
        The dataset (named in the message).

    Raises
    ------
    AlzmriError
        The file is missing or differs (the data or the settings changed since the run
        started).
    """
    path = Path(path)
    if not path.is_file():
        raise AlzmriError(f"{path}: missing, so the split of this run cannot be checked; it cannot be resumed: start a new run")
    if path.read_bytes() != expected:
        raise AlzmriError(f"{path}: the split recomputed from {data_root} with the run's settings differs from this manifest "
                          "(images added, removed or changed since the run started); a resumed run must see the same images: "
                          "restore the data, or start a new run with another --out")
