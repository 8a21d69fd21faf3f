"""Run-folder files that survive a killed process: atomic checkpoints, ``last.ckpt`` every epoch, ``history.csv``.

What a run folder holds at any moment (see docs/reliability.md):

* every file is written to ``.<name>.<random>.tmp`` beside it, fsynced and renamed over
  it (:mod:`alzmri.utils.io`); Lightning checkpoints too (:class:`AtomicCheckpointIO`),
  so a process killed at any point leaves each file complete, in its previous version, or
  absent, and at worst a stray ``.*.tmp`` file that ``--resume`` removes
  (:func:`alzmri.training.resume.remove_stray_temp_files`);
* ``checkpoints/last.ckpt`` is the state after the last complete epoch
  (:class:`RunCheckpoint`): weights, optimizer, loops, the best-checkpoint bookkeeping and
  the run state (:class:`alzmri.training.resume.RunState`: history rows, fit time,
  random-number generator states, the hash of ``manifest.csv``);
* ``history.csv`` is rewritten at the end of every epoch (:func:`write_history`).
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins import TorchCheckpointIO
from lightning.pytorch.callbacks import ModelCheckpoint

from alzmri.errors import AlzmriError
from alzmri.utils.io import atomic_write_chunks, atomic_write_text

HISTORY_FILE = "history.csv"
HISTORY_KEYS = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "val_balanced_accuracy")
LAST_CHECKPOINT = "last.ckpt"
#: the key of the run state (:class:`alzmri.training.resume.RunState`) among a checkpoint's callback states
RUN_STATE_KEY = "alzmri.RunState"


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
        atomic_write_chunks(path, (buf.getbuffer(),))


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


def write_history(path: str | os.PathLike, rows: list[dict[str, float]]) -> Path:
    """Write per-epoch rows as ``history.csv`` (atomically), columns :data:`HISTORY_KEYS`, 6 significant digits."""
    lines = [",".join(HISTORY_KEYS)]
    for r in rows:
        lines.append(",".join("" if r.get(k) is None else (str(int(r[k])) if k == "epoch" else f"{r[k]:.6g}") for k in HISTORY_KEYS))
    return atomic_write_text(path, "\n".join(lines) + "\n")


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
    state = (ckpt.get("callbacks") or {}).get(RUN_STATE_KEY) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise AlzmriError(f"{path}: not a checkpoint written by alzmri train (no run state); it cannot be resumed: start a new run")
    if state.get("manifest_sha256") != manifest_sha256:
        raise AlzmriError(f"{path}: written for another split than {path.parent.parent / 'manifest.csv'}; it cannot continue "
                          "this run: start a new run")
    return int(ckpt.get("epoch", -1)) + 1


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


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
