"""Runs that survive being killed: atomic checkpoints, ``--resume``, per-epoch state, signals.

What a run folder holds at any moment (see docs/reliability.md):

* every file is written to ``.<name>.<random>.tmp`` beside it, fsynced and renamed over
  it (:mod:`alzmri.utils.io`); Lightning checkpoints too (:class:`AtomicCheckpointIO`),
  so a process killed at any point leaves each file complete, in its previous version, or
  absent, and at worst a stray ``.*.tmp`` file that ``--resume`` removes;
* ``checkpoints/last.ckpt`` is the state after the last complete epoch: weights,
  optimizer, loops, the best-checkpoint bookkeeping and :class:`RunState` (history rows,
  fit time, random-number generator states, the hash of ``manifest.csv``);
* ``history.csv`` is rewritten at the end of every epoch.

``alzmri train --out RUN --resume`` (:func:`plan_resume`) reloads ``RUN/config.yaml``,
recomputes the split and requires it to equal ``RUN/manifest.csv`` byte for byte, then
continues from ``last.ckpt`` with Lightning's ``ckpt_path``. The training order depends
only on the seed and the epoch (:class:`alzmri.data.datamodule.EpochShuffleSampler`) and
the generator states are restored, so on CPU a resumed run ends with the same weights,
history and metrics as an uninterrupted one.

Test hooks (environment variables, read when used, all unset by default; they exist
so that tests can kill a run at a chosen moment, and do nothing otherwise):

``ALZMRI_TEST_STEP_DELAY_S=SECONDS``
    after every training step print ``alzmri-test-hook: epoch E step S`` on stderr and
    sleep that long;
``ALZMRI_TEST_STALL_CHECKPOINT_EPOCH=E``
    when writing a checkpoint of epoch E (1-based), write half of it to the temporary
    file, print ``alzmri-test-hook: stalled writing PATH`` on stderr and sleep for an hour
    (a stand-in for a slow disk, to kill the process mid-write);
``ALZMRI_TEST_NAN_AT_EPOCH=E``
    at the start of epoch E fill the model's first parameter with NaN (so the loss of its
    first step is NaN).
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.fabric.plugins import TorchCheckpointIO
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from alzmri.errors import AlzmriError, RunInterrupted
from alzmri.utils.io import atomic_write_chunks, atomic_write_text

HISTORY_FILE = "history.csv"
HISTORY_KEYS = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "val_balanced_accuracy")
LAST_CHECKPOINT = "last.ckpt"
STEP_DELAY_ENV = "ALZMRI_TEST_STEP_DELAY_S"
STALL_CHECKPOINT_ENV = "ALZMRI_TEST_STALL_CHECKPOINT_EPOCH"
NAN_AT_EPOCH_ENV = "ALZMRI_TEST_NAN_AT_EPOCH"
_HOOK_PREFIX = "alzmri-test-hook:"


def _env_number(name: str, kind: type = float) -> Any:
    value = os.environ.get(name, "").strip()
    if not value:
        return None
    try:
        return kind(value)
    except ValueError:
        raise AlzmriError(f"environment variable {name}={value!r} must be a number (it is a test hook; unset it)") from None


# --------------------------------------------------------------------------- checkpoints


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint I/O that writes a temporary file beside the target, fsyncs it and renames it.

    Lightning's own ``_atomic_save`` writes local files through an fsspec transaction
    whose temporary file lives in the system temp folder; when that is another file
    system (a tmpfs ``/tmp``), the final move is a copy, and a process killed during it
    leaves a truncated checkpoint under the real name. Here the temporary file is
    ``.<name>.<random>.tmp`` in the checkpoint folder and the rename is atomic. Remote
    paths (``s3://...``) keep Lightning's behaviour. Loading is Lightning's
    (``weights_only`` as the Trainer asks).
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if "://" in str(path) or storage_options is not None:
            super().save_checkpoint(checkpoint, path, storage_options=storage_options)
            return
        buf = io.BytesIO()
        torch.save(checkpoint, buf)
        data = buf.getbuffer()
        stall = _env_number(STALL_CHECKPOINT_ENV, int)
        if stall is not None and int(checkpoint.get("epoch", -1)) + 1 == stall:
            atomic_write_chunks(path, _stalled(data, path))
        else:
            atomic_write_chunks(path, (data,))


def _stalled(data: memoryview, path) -> Iterator[bytes]:
    """Test hook: half the bytes, then a very long pause (the process is meant to be killed)."""
    half = len(data) // 2
    yield bytes(data[:half])
    print(f"{_HOOK_PREFIX} stalled writing {path}", file=sys.stderr, flush=True)
    time.sleep(3600)
    yield bytes(data[half:])


class RunCheckpoint(ModelCheckpoint):
    """Lightning's ``ModelCheckpoint`` with a ``last.ckpt`` after every epoch, following a moved run folder.

    * Lightning (2.6) writes ``last.ckpt`` only in epochs that also write a new best
      checkpoint; here, with ``save_last=True``, ``last.ckpt`` is written at the end of
      every training epoch (after the best one, so it records the current best), through
      ``trainer.save_checkpoint`` and so through the Trainer's checkpoint I/O
      (:class:`AtomicCheckpointIO`) on global rank 0.
    * The checkpoint stores absolute paths (``dirpath``, the best and last files); when the
      folder now lives elsewhere, they are mapped into the current ``dirpath`` instead of
      being dropped, so the best score and file are still known after ``--resume``.

    Parameters are those of ``ModelCheckpoint``.
    """

    def __init__(self, *args: Any, save_last: bool = False, **kwargs: Any):
        super().__init__(*args, save_last=False, **kwargs)
        self.save_every_last = bool(save_last)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self.save_every_last and self.dirpath and not (trainer.sanity_checking or trainer.fast_dev_run):
            trainer.save_checkpoint(Path(self.dirpath) / LAST_CHECKPOINT, weights_only=False)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        old = state_dict.get("dirpath")
        if old and self.dirpath and old != self.dirpath:
            new = Path(self.dirpath)

            def move(p: Any) -> Any:
                return str(new / Path(p).name) if p else p

            state_dict = {
                **state_dict,
                "dirpath": self.dirpath,
                "best_model_path": move(state_dict.get("best_model_path")),
                "kth_best_model_path": move(state_dict.get("kth_best_model_path")),
                "last_model_path": move(state_dict.get("last_model_path")),
                "best_k_models": {move(k): v for k, v in (state_dict.get("best_k_models") or {}).items()},
            }
        super().load_state_dict(state_dict)


# --------------------------------------------------------------------------- per-epoch state


def write_history(path: str | os.PathLike, rows: list[dict[str, float]]) -> Path:
    """Write per-epoch rows as ``history.csv`` (atomically), columns :data:`HISTORY_KEYS`, 6 significant digits."""
    lines = [",".join(HISTORY_KEYS)]
    for r in rows:
        lines.append(",".join("" if r.get(k) is None else (str(int(r[k])) if k == "epoch" else f"{r[k]:.6g}") for k in HISTORY_KEYS))
    return atomic_write_text(path, "\n".join(lines) + "\n")


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
        hash cannot continue this run (:func:`check_checkpoint`).

    Attributes
    ----------
    rows : list of dict
        One per completed epoch: ``epoch`` (1-based) and the logged metrics of
        :data:`HISTORY_KEYS` (floats).
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
        return "alzmri.RunState"

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


class _TestHooks(Callback):
    """The step-delay and NaN test hooks (see the module docstring); only added when one is set."""

    def __init__(self, step_delay: float | None, nan_epoch: int | None):
        self.step_delay = step_delay
        self.nan_epoch = nan_epoch

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if self.nan_epoch is not None and trainer.current_epoch + 1 == self.nan_epoch:
            with torch.no_grad():
                next(pl_module.parameters()).fill_(float("nan"))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.step_delay is not None:
            print(f"{_HOOK_PREFIX} epoch {trainer.current_epoch + 1} step {batch_idx + 1}", file=sys.stderr, flush=True)
            time.sleep(self.step_delay)


def hook_callbacks() -> list[Callback]:
    """The test-hook callback when ``ALZMRI_TEST_STEP_DELAY_S`` or ``ALZMRI_TEST_NAN_AT_EPOCH`` is set, else ``[]``."""
    delay, nan_epoch = _env_number(STEP_DELAY_ENV, float), _env_number(NAN_AT_EPOCH_ENV, int)
    return [_TestHooks(delay, nan_epoch)] if delay is not None or nan_epoch is not None else []


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


def check_checkpoint(path: str | os.PathLike, manifest_sha256: str) -> int:
    """Open a checkpoint to resume from (``weights_only=True``) and check it belongs to this split.

    Returns
    -------
    int
        Epochs it completed.

    Raises
    ------
    AlzmriError
        Unreadable, not a checkpoint of an alzmri run, or written for another manifest.
    """
    path = Path(path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # noqa: BLE001 - any failure to read is the same user error
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise AlzmriError(f"{path}: not a readable checkpoint ({first}); it cannot be resumed: start a new run") from None
    state = (ckpt.get("callbacks") or {}).get("alzmri.RunState") if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise AlzmriError(f"{path}: not a checkpoint written by alzmri train (no run state); it cannot be resumed: start a new run")
    if state.get("manifest_sha256") != manifest_sha256:
        raise AlzmriError(f"{path}: written for another split than {path.parent.parent / 'manifest.csv'}; it cannot continue "
                          "this run: start a new run")
    return int(ckpt.get("epoch", -1)) + 1


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- signals


def _checkpoint_epochs(path: Path) -> int | None:
    try:
        return int(torch.load(path, map_location="cpu", weights_only=True, mmap=True).get("epoch", -1)) + 1
    except Exception:  # noqa: BLE001 - only used to word a message
        return None


def describe_last_checkpoint(ckpt_dir: str | os.PathLike, epochs: int | None = None) -> str:
    """``"the last complete checkpoint is DIR/last.ckpt (epoch N of M)"``, or that none was written yet."""
    last = Path(ckpt_dir) / LAST_CHECKPOINT
    if not last.is_file():
        return "no epoch was completed, so no checkpoint was written"
    done = _checkpoint_epochs(last)
    of = f" of {epochs}" if epochs else ""
    return f"the last complete checkpoint is {last}" + (f" (epoch {done}{of})" if done is not None else "")


@contextmanager
def interruptions(out: str | os.PathLike, epochs: int | None = None) -> Iterator[None]:
    """Turn Ctrl-C (SIGINT) and SIGTERM during a run into :class:`~alzmri.errors.RunInterrupted`.

    Lightning answers Ctrl-C inside ``fit`` with ``sys.exit(1)`` (after ignoring further
    SIGINTs) and SIGTERM with its ``SIGTERMException`` after the current step; outside
    ``fit`` Python raises ``KeyboardInterrupt``. All become one line naming the kept
    checkpoint and the resume command, exit code 130 (SIGINT) or 143 (SIGTERM). The
    SIGINT handler in place before is restored.

    Parameters
    ----------
    out : path-like
        The run folder.
    epochs : int, optional
        The run's epochs (for the message).
    """
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    previous = signal.getsignal(signal.SIGINT)
    try:
        yield
    except SIGTERMException:
        raise _interrupted(out, "SIGTERM", epochs) from None
    except KeyboardInterrupt:
        raise _interrupted(out, "Ctrl-C", epochs) from None
    except SystemExit as exc:
        if isinstance(exc.__context__, KeyboardInterrupt):  # Lightning's sys.exit(1) after a KeyboardInterrupt
            raise _interrupted(out, "Ctrl-C", epochs) from None
        raise
    finally:
        if previous is not None:
            try:
                signal.signal(signal.SIGINT, previous)
            except ValueError:  # not the main thread: Lightning did not change it either
                pass


def _interrupted(out: str | os.PathLike, how: str, epochs: int | None) -> RunInterrupted:
    out = Path(out)
    code = 128 + (signal.SIGTERM if how == "SIGTERM" else signal.SIGINT)
    if not (out / "config.yaml").is_file():
        return RunInterrupted(f"training interrupted ({how}) before the run folder {out} was started; nothing was written",
                              "the same alzmri train command, without --resume", exit_code=code)
    return RunInterrupted(f"training interrupted ({how}); {describe_last_checkpoint(out / 'checkpoints', epochs)}",
                          f"alzmri train --out {out} --resume", exit_code=code)
