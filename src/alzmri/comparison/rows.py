"""The rows of a comparison: their state on disk, training them (in a worker process), the shared checks.

Used by the one-split comparison (:mod:`alzmri.comparison.compare`) and the cross-validated one
(:mod:`alzmri.comparison.cross_validation`): a row, or a row's fold, is an ordinary run folder.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from alzmri.comparison.config import CompareConfig
from alzmri.config import TrainConfig
from alzmri.errors import AlzmriError, RunInterrupted

__all__ = ["row_state", "train_or_note_failure", "train_rows"]

# TrainConfig fields that do not change what a row learns (or are set by the comparison)
# (the process layout too: more devices change the hardware, not the row's settings; docs/scaling.md)
_NOT_TRAINING = {"data", "out", "split", "evaluate", "accelerator", "num_workers", "groups", "folds", "skip_unreadable",
                 "devices", "num_nodes", "strategy"}



def _say(echo: Callable[[str], None] | None, msg: str) -> None:
    if echo is not None:
        echo(msg)


# --------------------------------------------------------------------------- state


def _same_training(saved_config: Path, cfg: TrainConfig) -> bool:
    """True when the run's saved config.yaml trains what ``cfg`` asks for."""
    from alzmri.models import get_spec

    try:
        saved = yaml.safe_load(saved_config.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return False
    want = cfg.model_dump(mode="json")
    want["image_size"] = cfg.image_size or get_spec(cfg.model).image_size
    for key, value in want.items():
        if key in _NOT_TRAINING:
            continue
        if key not in saved:
            # a field added to TrainConfig after the row was trained: equal if default
            field = TrainConfig.model_fields.get(key)
            if field is None or value == _json(field.get_default(call_default_factory=True)):
                continue
            return False
        if _json(saved[key]) != _json(value):
            return False
    return True


def _json(v: Any) -> Any:
    return json.loads(json.dumps(v, default=str))


def row_state(row_dir: str | Path, cfg: TrainConfig) -> str:
    """What a row's folder holds.

    Returns
    -------
    {"new", "finished", "interrupted", "incomplete", "changed"}
        ``new``: no folder; ``finished``: ``metrics.json`` and ``run.json`` exist and
        the saved training settings equal ``cfg``'s; ``interrupted``: not finished, but
        the saved settings equal ``cfg``'s and ``checkpoints/last.ckpt`` is a checkpoint
        of this split with alzmri's run state (the row can be resumed); ``incomplete``: any other unfinished folder (failed before its
        first checkpoint, or settings changed since); ``changed``: finished, but with
        other settings.
    """
    from alzmri.training.checkpointing import LAST_CHECKPOINT, check_checkpoint, sha256_hex

    row_dir = Path(row_dir)
    if not row_dir.exists():
        return "new"
    if not ((row_dir / "metrics.json").is_file() and (row_dir / "run.json").is_file()):
        last, manifest = row_dir / "checkpoints" / LAST_CHECKPOINT, row_dir / "manifest.csv"
        if last.is_file() and manifest.is_file() and (row_dir / "config.yaml").is_file() and _same_training(row_dir / "config.yaml", cfg):
            try:  # written by this alzmri's train (with its run state) for the row's own split
                check_checkpoint(last, sha256_hex(manifest.read_bytes()))
                return "interrupted"
            except AlzmriError:
                pass
        return "incomplete"
    return "finished" if _same_training(row_dir / "config.yaml", cfg) else "changed"


def plan_run(run_dir: Path, cfg: TrainConfig, *, head: str, echo: Callable[[str], None] | None) -> TrainConfig | None:
    """What to train for a row (or a row's fold) whose run folder is ``run_dir`` (see :func:`row_state`).

    Returns
    -------
    TrainConfig or None
        None when the run is finished with these settings; ``out`` + ``resume`` only for an
        interrupted run (it continues with its saved settings); else ``cfg``, after moving
        an unfinished or differently trained folder aside (never deleted) and saying so.
    """
    state = row_state(run_dir, cfg)
    if state == "finished":
        return None
    if state == "interrupted":
        _say(echo, f"{head}: interrupted earlier, resuming from {run_dir / 'checkpoints'}")
        return TrainConfig(out=run_dir, resume=True)
    if state in ("incomplete", "changed"):
        aside = _move_aside(run_dir, "incomplete" if state == "incomplete" else "previous")
        _say(echo, f"{head}: earlier folder {'unfinished' if state == 'incomplete' else 'trained with other settings'}, moved aside to {aside}")
    return cfg


def _move_aside(row_dir: Path, why: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    dest = row_dir.with_name(f"{row_dir.name}.{why}-{stamp}")
    n = 1
    while dest.exists():
        n += 1
        dest = row_dir.with_name(f"{row_dir.name}.{why}-{stamp}-{n}")
    row_dir.rename(dest)
    return dest


# --------------------------------------------------------------------------- split


def _split_settings(cfg: CompareConfig, data_root: Path) -> dict:
    settings = {
        "data": str(data_root.resolve()),
        "split": str(Path(cfg.split).resolve()) if cfg.split else None,
        "split_strategy": None if cfg.split else cfg.split_strategy,
        "groups": str(Path(cfg.groups).resolve()) if cfg.groups else None,
        "fractions": list(cfg.fractions) if not cfg.split else None,
        "seed": cfg.seed if not cfg.split else None,
    }
    if cfg.keep_eval_copies and not cfg.split:  # only when set: folders split before the option existed still match
        settings["keep_eval_copies"] = True
    return settings


def _check_split_settings(out: Path, settings: dict, source: str) -> dict | None:
    """The saved ``OUT/split.json`` (None when there is none), after checking it asks for ``settings``.

    A one-split comparison and a cross-validated one (whose settings hold ``folds``) never
    share a folder.

    Raises
    ------
    AlzmriError
        The folder was split with other settings (names each differing setting and the fix).
    """
    settings_file = out / "split.json"
    saved = json.loads(settings_file.read_text(encoding="utf-8")) if settings_file.is_file() else None
    if saved is not None:
        saved_settings = {k: v for k, v in saved.items() if k != "warnings"}
        if saved_settings != settings:
            diff = [k for k in {**saved_settings, **settings} if saved_settings.get(k) != settings.get(k)]
            raise AlzmriError(
                f"{out}: this comparison folder was split with other settings ({', '.join(f'{k}: {saved_settings.get(k)!r}' for k in diff)}); "
                f"{source} now asks for {', '.join(f'{k}: {settings.get(k)!r}' for k in diff)}. Choose another out, or restore the settings"
            )
    return saved


def _check_rows(rows, config: CompareConfig, source: str) -> None:
    """Refuse a row whose model options or weights cannot work before any row trains
    (:func:`alzmri.models.registry.check_model_options`); finished rows are not checked."""
    from alzmri.models import get_spec
    from alzmri.models.registry import check_model_options

    for i, (entry, cfg) in enumerate(rows):
        if cfg.model.startswith("baseline:") or row_state(config.row_dir(entry.name), cfg) == "finished":
            continue  # baselines are not registered networks (training/brain.py checks them)
        try:
            check_model_options(cfg.model, in_chans=cfg.in_chans, image_size=cfg.image_size or get_spec(cfg.model).image_size, **cfg.model_kwargs)
        except AlzmriError as exc:
            raise AlzmriError(f"{source}: models[{i}] {entry.name!r}: {exc} (nothing was trained)") from None



# --------------------------------------------------------------------------- training


def train_or_note_failure(cfgs: list[TrainConfig], *, name: str, head: str, failed: list[tuple[str, str]],
                          echo: Callable[[str], None] | None, progress: bool, isolate: bool) -> bool:
    """Train a row's runs with :func:`train_rows`; a user error fails that row only.

    Returns
    -------
    bool
        True when every run trained; False when training raised an :class:`AlzmriError`:
        then "HEAD: failed: MESSAGE" is echoed and ``(name, message)`` appended to ``failed``.

    Raises
    ------
    RunInterrupted
        Ctrl-C or SIGTERM: the comparison stops.
    RuntimeError
        As :func:`train_rows`.
    """
    try:
        train_rows(cfgs, progress=progress, isolate=isolate)
    except RunInterrupted:
        raise
    except AlzmriError as exc:
        _say(echo, f"{head}: failed: {exc}")
        failed.append((name, str(exc)))
        return False
    return True


def train_rows(cfgs: list[TrainConfig], *, progress: bool, isolate: bool) -> list[Path]:
    """Train runs one after another (a row, or the folds of a cross-validated row); in one
    fresh Python process when ``isolate``, so that the peak memory and whatever memory
    training leaves behind belong to that row alone.

    Raises
    ------
    AlzmriError
        Training failed with a user error, or the child process died (killed, out of
        memory); the runs before the failed one are finished.
    RuntimeError
        Training failed with another exception (its traceback in the message).
    """
    if not isolate:
        from alzmri.pipeline import train

        for cfg in cfgs:
            if cfg.devices * cfg.num_nodes > 1:
                # Lightning's launcher re-runs the calling script per rank: only the worker process is safe
                raise AlzmriError(f"{cfg.out}: training with {cfg.devices * cfg.num_nodes} processes needs isolate=True (a worker process per row)")
        return [train(cfg, progress=progress) for cfg in cfgs]
    with tempfile.TemporaryDirectory(prefix="alzmri-row-") as tmp:
        request, result = Path(tmp) / "request.json", Path(tmp) / "result.json"
        # a resumed run gives only out and resume: the worker must see the same fields set
        fields = [cfg.model_dump(mode="json", exclude_unset=cfg.resume) for cfg in cfgs]
        request.write_text(json.dumps({"configs": fields, "progress": progress}), encoding="utf-8")
        returncode, signum = _run_worker([sys.executable, "-m", "alzmri.comparison._worker", str(request), str(result)])
        res = json.loads(result.read_text(encoding="utf-8")) if result.is_file() else None
        # the run that was training: the failed one, else the first one without a result
        failed_at = cfgs[min(res.get("index", len(res["runs"])), len(cfgs) - 1)] if res else cfgs[0]
        if signum is not None:
            how = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
            raise RunInterrupted(f"comparison interrupted ({how}) while training {failed_at.out}; finished runs are kept and this one "
                                 "resumes from its last complete epoch", "the same alzmri compare command", exit_code=128 + signum)
        if res is None:
            raise AlzmriError(f"training {failed_at.model} into {failed_at.out} stopped without a result (exit code {returncode}; "
                              "killed or out of memory?)")
    if res["ok"]:
        return [Path(r) for r in res["runs"]]
    cfg = cfgs[res.get("index", 0)]
    if res["kind"] == "AlzmriError":
        raise AlzmriError(res["message"])
    raise RuntimeError(f"training {cfg.model} into {cfg.out} failed: {res['kind']}: {res['message']}")


def _run_worker(cmd: list[str]) -> tuple[int, int | None]:
    """Run a row's worker process; Ctrl-C (SIGINT) and SIGTERM sent to this process are passed on to it once.

    The worker runs in its own session, so a terminal's Ctrl-C reaches it only through
    this process (exactly once), and this process waits for it to save its checkpoint and
    exit: no worker is left training behind an ended comparison.

    Returns
    -------
    (int, int or None)
        The worker's exit code, and the signal that interrupted the comparison (None if none).
    """
    proc = subprocess.Popen(cmd, start_new_session=True)
    received: list[int] = []

    def forward(signum, _frame):
        if not received and proc.poll() is None:
            proc.send_signal(signum)
        received.append(signum)

    previous = {}
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, forward)
    except ValueError:  # not the main thread: signals stay with the caller
        pass
    try:
        returncode = proc.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if proc.poll() is None:  # an exception in this process: do not leave the worker behind
            proc.terminate()
            proc.wait()
    return returncode, (received[0] if received else None)
