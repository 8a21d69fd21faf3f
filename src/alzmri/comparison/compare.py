"""``compare(config) -> report folder``: every model of a config on one shared split.

The comparison folder ``OUT`` holds::

    comparison.yaml       the resolved comparison config
    split.json            the split settings the manifest was made with
    manifest.csv          the one split every row uses
    runs/<name>/          one run folder per row (alzmri train), plus summary.json,
                          tsne.csv and tsne.png
    runs/<name>.incomplete-<time>/   an unfinished row that could not be resumed, moved aside
    figures/              every PNG of the report
    comparison.json, table.csv       all rows' table values
    report.md, report.html           the report (the HTML is self-contained)

Running the same config again resumes: a row whose folder holds ``metrics.json`` and
``run.json`` and whose training settings are unchanged is not retrained; an interrupted
row (unchanged settings and a ``checkpoints/last.ckpt``) continues from its last
complete epoch, as ``alzmri train --resume`` does; any other existing row folder is
moved aside (never deleted) and the row is trained again.
"""

from __future__ import annotations

import csv
import io
import json
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from alzmri.comparison.config import CompareConfig, ModelEntry, load_compare_config
from alzmri.config import TrainConfig, dump_config
from alzmri.errors import AlzmriError, RunInterrupted
from alzmri.utils.io import atomic_write_json, atomic_write_text

__all__ = ["compare", "row_state", "summarize_row", "TABLE_KEYS"]

#: Keys of a row's table values, in table order (units: MB, FLOPs, s, images/s, ms).
TABLE_KEYS = (
    "parameters",
    "trainable_parameters",
    "size_mb",
    "flops_per_image",
    "train_time_s",
    "peak_memory_mb",
    "train_images_per_s",
    "inference_ms_per_image",
    "accuracy",
    "balanced_accuracy",
    "macro_f1",
    "quadratic_weighted_kappa",
    "roc_auc_ovr_macro",
)
#: Bumped when summary.json gains or changes fields; older summaries are measured again.
SUMMARY_VERSION = 1
_METRIC_KEYS = ("accuracy", "balanced_accuracy", "macro_f1", "quadratic_weighted_kappa", "roc_auc_ovr_macro")
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
    from alzmri.training.reliability import LAST_CHECKPOINT, check_checkpoint, sha256_hex

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


def _prepare_manifest(cfg: CompareConfig, source: str, echo: Callable[[str], None] | None = None):
    """Discover the data and make (or check) ``OUT/manifest.csv``.

    Returns (index, splits, strategy, notes): the dataset, the split per image, the name
    of the strategy that made the split, and ``notes`` (``copies``: the augmented copies
    per split and left out, empty without copies; ``warnings``: the unreliable-groups
    warning, kept in ``split.json`` so that a rerun says it again). The unreliable-groups
    warning is printed on stderr once per call.
    """
    from alzmri.data.discovery import discover
    from alzmri.data.eval_copies import summarize_copies
    from alzmri.data.manifest import load_manifest
    from alzmri.training.splitting import make_split_manifest
    from alzmri.training.train import resolve_data_dir
    from alzmri.utils.console import print_warning

    out = Path(cfg.out)
    data_root = resolve_data_dir(cfg.data)
    settings = _split_settings(cfg, data_root)
    manifest = cfg.manifest_path()
    settings_file = out / "split.json"
    saved = json.loads(settings_file.read_text()) if settings_file.is_file() else None
    if manifest.is_file() and saved is not None:
        saved_settings = {k: v for k, v in saved.items() if k != "warnings"}
        if saved_settings != settings:
            diff = [k for k in {**saved_settings, **settings} if saved_settings.get(k) != settings.get(k)]
            raise AlzmriError(
                f"{out}: this comparison folder was split with other settings ({', '.join(f'{k}: {saved_settings.get(k)!r}' for k in diff)}); "
                f"{source} now asks for {', '.join(f'{k}: {settings.get(k)!r}' for k in diff)}. Choose another out, or restore the settings"
            )
    index = discover(data_root)
    warns = list((saved or {}).get("warnings", [])) if manifest.is_file() else []
    if not manifest.is_file():
        prep = make_split_manifest(TrainConfig(**cfg.split_fields()), manifest, index=index)
        warns = [w for w in (prep.subjects.warning(),) if w]
        atomic_write_json(settings_file, {**settings, **({"warnings": warns} if warns else {})})
        if prep.left_out_note():
            _say(echo, f"note: {prep.left_out_note()}")
    for w in warns:
        print_warning(w)
    m = load_manifest(manifest, index)  # checks every file against its hash
    strategy = m.strategy or (f"manifest:{cfg.split}" if cfg.split else cfg.split_strategy)
    copies = summarize_copies(m.splits, m.copy_of) if m.copy_of is not None else None
    notes = {"copies": {**copies.as_dict(), "note": copies.note()} if copies and copies.n_copies else {}, "warnings": warns}
    return index, m.splits, strategy, notes


# --------------------------------------------------------------------------- training


def _train_row(cfg: TrainConfig, *, progress: bool, isolate: bool) -> Path:
    """Train one row (see :func:`train_rows`)."""
    return train_rows([cfg], progress=progress, isolate=isolate)[0]


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
        from alzmri.training.train import train

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


# --------------------------------------------------------------------------- measurements


def summarize_row(
    entry: ModelEntry,
    cfg: TrainConfig,
    row_dir: str | Path,
    index,
    *,
    out_dir: str | Path,
    seed: int = 0,
    images_by_size: dict[int, np.ndarray] | None = None,
) -> dict:
    """Measure a finished row and write ``summary.json``, ``tsne.csv`` and ``tsne.png``.

    Measures the forward FLOPs per image (batch 1), the inference time per image
    (batch 32, median of 5 after 2 warm-up batches, on the device the row trained on),
    the training throughput (training images x epochs run / training time) and a 2-D
    t-SNE of the penultimate features of the test split; the rest comes from
    ``run.json`` and ``metrics.json``.

    Parameters
    ----------
    entry : ModelEntry
    cfg : TrainConfig
        The row's training settings.
    row_dir : path-like
        The row's finished run folder.
    index : DatasetIndex
        The dataset the run was trained on.
    out_dir : path-like
        The comparison folder; figure paths in the summary are relative to it.
    seed : int, default=0
        t-SNE seed.
    images_by_size : dict, optional
        Decoded images per image size (filled and reused across rows).

    Returns
    -------
    dict
        The row's table values (:data:`TABLE_KEYS`; units MB, FLOPs, s, images/s, ms),
        ``task``, ``subject_level`` and ``brain_level`` metrics when the evaluation wrote
        them (numbers only, ``ci`` of the brain level kept), training settings and
        ``figures`` (name -> path relative to ``out_dir``, None when not made).
    """
    import torch

    from alzmri.data.cache import load_images
    from alzmri.data.manifest import read_manifest
    from alzmri.data.tasks import get_task
    from alzmri.evaluation.profiling import (
        extract_features,
        flops_per_image,
        inference_ms_per_image,
        training_images_per_s,
        tsne_embedding,
    )
    from alzmri.reporting.figures import plot_tsne
    from alzmri.runs import load_model

    row_dir = Path(row_dir)
    out_dir = Path(out_dir)
    model, info = load_model(row_dir)
    metrics = json.loads((row_dir / "metrics.json").read_text(encoding="utf-8"))
    shape = (info.in_chans, info.image_size, info.image_size)
    device = "cuda" if info.device.startswith("cuda") and torch.cuda.is_available() else "cpu"
    flops = flops_per_image(model, shape)
    ms = inference_ms_per_image(model, shape, batch_size=32, repeats=5, warmup=2, device=device)
    model.to("cpu")
    throughput = training_images_per_s(int(info.split_counts.get("train", 0)), int(info.epochs_run), float(info.train_time_s))

    # t-SNE of the test split's penultimate features
    images_by_size = images_by_size if images_by_size is not None else {}
    if info.image_size not in images_by_size:
        cached = load_images(index, info.image_size)
        images_by_size[info.image_size] = cached.images
    images = images_by_size[info.image_size]
    splits = read_manifest(row_dir / "manifest.csv", index)
    test = np.flatnonzero(splits == "test")
    tsne_png = None
    if len(test) >= 4:
        feats = extract_features(model, info, images[test])
        emb = tsne_embedding(feats, seed=seed)
        labels = get_task(info.task).map_labels(index.labels[test])  # coloured by the run's task classes
        lines = ["path,class,tsne_1,tsne_2"] + [
            f"{index.records[i].path},{index.records[i].class_name},{x:.5f},{y:.5f}" for i, (x, y) in zip(test, emb)
        ]
        atomic_write_text(row_dir / "tsne.csv", "\n".join(lines) + "\n")
        plot_tsne(emb, labels, info.class_names, row_dir / "tsne.png",
                  title=f"{entry.name}: t-SNE of penultimate features, test split (n = {len(test)})")
        tsne_png = row_dir / "tsne.png"

    def rel(p: Path | None) -> str | None:
        if p is None or not p.is_file():
            return None
        try:
            return p.resolve().relative_to(out_dir.resolve()).as_posix()
        except ValueError:
            return str(p.resolve())

    summary: dict[str, Any] = {
        "summary_version": SUMMARY_VERSION,
        "name": entry.name,
        "model": info.model,
        "model_kwargs": dict(info.model_kwargs),
        "task": info.task,
        "loss": info.loss,
        "note": entry.note,
        "parameters": info.parameters,
        "trainable_parameters": info.trainable_parameters,
        "size_mb": info.size_mb,
        "flops_per_image": flops,
        "train_time_s": info.train_time_s,
        "peak_memory_mb": info.peak_memory_mb,
        "train_images_per_s": None if throughput is None else round(throughput, 2),
        "inference_ms_per_image": round(ms, 4),
        **{k: metrics.get(k) for k in _METRIC_KEYS},
    }
    ci = _intervals(metrics.get("confidence_intervals"))
    if ci:
        summary["confidence_intervals"] = ci
    sl = metrics.get("subject_level")
    if isinstance(sl, dict):
        summary["subject_level"] = {k: v for k, v in sl.items() if v is None or isinstance(v, (int, float, str))}
        sub_ci = _intervals(sl.get("confidence_intervals"))
        if sub_ci:
            summary["subject_level"]["confidence_intervals"] = sub_ci
    bl = metrics.get("brain_level")
    if isinstance(bl, dict):  # the task's brain-level metrics (evaluation/task_metrics.py)
        summary["brain_level"] = {k: v for k, v in bl.items() if v is None or isinstance(v, (int, float, str))}
        summary["brain_level"]["ci"] = dict(bl.get("ci") or {})
    summary.update(
        {
            "n_test": metrics.get("n_samples"),
            "n_test_subjects": metrics.get("n_subjects"),
            "split_counts": dict(info.split_counts),
            "image_size": info.image_size,
            "in_chans": info.in_chans,
            "epochs": cfg.epochs,
            "epochs_run": info.epochs_run,
            "best_epoch": info.best_epoch,
            "batch_size": cfg.batch_size,
            "lr": cfg.lr,
            "weight_decay": cfg.weight_decay,
            "augment": cfg.augment,
            "precision": info.precision,
            "device": info.device,
            "inference_device": device,
            "run_dir": rel(row_dir) or str(row_dir),
            "figures": {
                "training_curves": rel(row_dir / "training_curves.png"),
                "confusion_matrix": rel(row_dir / "confusion_matrix.png"),
                "roc_curves": rel(row_dir / "roc_curves.png"),
                "tsne": rel(tsne_png),
            },
        }
    )
    atomic_write_json(row_dir / "summary.json", summary)
    return summary


def _read_summary(row_dir: Path, entry: ModelEntry) -> dict | None:
    """A row's summary.json when it is current: newer than metrics.json, same version and note."""
    path = row_dir / "summary.json"
    try:
        if path.stat().st_mtime < (row_dir / "metrics.json").stat().st_mtime:
            return None
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    if summary.get("summary_version") != SUMMARY_VERSION or summary.get("name") != entry.name:
        return None
    summary["note"] = entry.note  # free text: may change without measuring again
    return summary


def _intervals(block: Any) -> dict[str, list[float]]:
    """The [low, high] intervals of the table's metrics in a ``confidence_intervals`` block."""
    if not isinstance(block, dict):
        return {}
    return {k: list(block[k]) for k in _METRIC_KEYS if isinstance(block.get(k), (list, tuple)) and len(block[k]) == 2}


def _read_predictions(row_dir: Path, class_names: list[str]) -> tuple[np.ndarray, np.ndarray] | None:
    path = row_dir / "predictions.csv"
    if not path.is_file():
        return None
    with path.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return None
    y = np.array([class_names.index(r["class"]) for r in rows])
    p = np.array([[float(r[f"p_{c}"]) for c in class_names] for r in rows])
    return y, p


# --------------------------------------------------------------------------- main


def compare(
    config: CompareConfig | str | Path,
    *,
    progress: bool = True,
    isolate: bool = True,
    echo: Callable[[str], None] | None = print,
    source: str | None = None,
) -> Path:
    """Train and evaluate every model of a comparison on one shared split; write the report.

    Parameters
    ----------
    config : CompareConfig or path-like
        A config, or a YAML file (see :mod:`alzmri.comparison.config`).
    progress : bool, default=True
        Progress bars while training.
    isolate : bool, default=True
        Train each row in a fresh Python process, so that each row's peak memory is
        its own; False trains in this process (faster start, for tests).
    echo : callable, default=print
        Receives one line per step; None for silence.
    source : str, optional
        Where ``config`` came from, for messages (default: the YAML file's path, or
        "comparison config").

    Returns
    -------
    Path
        The comparison folder ``OUT``, holding ``report.md``, ``report.html``,
        ``figures/``, ``comparison.json``, ``table.csv`` and ``runs/<name>/``.

    Raises
    ------
    AlzmriError
        A bad config (before anything is trained); data that no longer match the
        comparison's manifest; a comparison folder split with other settings. A row
        whose training fails with an AlzmriError does not stop the others: the report is
        written without it, then the error names the failed rows (rerunning retries
        them).
    """
    from alzmri.data.tasks import get_task
    from alzmri.reporting.figures import plot_pareto, plot_roc_comparison
    from alzmri.reporting.report import write_report

    source = source or "comparison config"
    if not isinstance(config, CompareConfig):
        source = str(config)
        config = load_compare_config(config)
    if config.folds is not None:  # every row on the same brain folds, compared in pairs
        from alzmri.comparison.cross_validation import compare_cv

        return compare_cv(config, folds=config.folds, progress=progress, isolate=isolate, echo=echo, source=source)
    rows = config.train_configs(source)
    _check_rows(rows, config, source)
    task = get_task(config.task)
    class_names = list(task.class_names)
    out = Path(config.out)
    if out.exists() and not out.is_dir():
        raise AlzmriError(f"{out}: exists and is not a folder; choose another out for the comparison")
    ours = any((out / f).is_file() for f in ("comparison.yaml", "split.json", "manifest.csv"))
    if out.is_dir() and any(out.iterdir()) and not ours:
        raise AlzmriError(f"{out}: folder exists, is not empty and holds no comparison; choose another out (nothing was changed)")
    out.mkdir(parents=True, exist_ok=True)
    index, splits, strategy, split_notes = _prepare_manifest(config, source, echo)
    atomic_write_text(out / "comparison.yaml", dump_config(config))
    counts = {s: int(np.sum(splits == s)) for s in ("train", "val", "test")}
    _say(echo, f"split: {counts['train']} train / {counts['val']} val / {counts['test']} test images -> {config.manifest_path()}")
    _say(echo, f"task: {task.name} ({', '.join(class_names)})")

    summaries: list[dict] = []
    failed: list[tuple[str, str]] = []
    images_by_size: dict[int, np.ndarray] = {}
    for i, (entry, cfg) in enumerate(rows, start=1):
        row_dir = config.row_dir(entry.name)
        state = row_state(row_dir, cfg)
        head = f"[{i}/{len(rows)}] {entry.name} ({cfg.model})"
        trained = False
        if state == "finished":
            _say(echo, f"{head}: finished earlier, not retrained")
        else:
            if state == "interrupted":
                _say(echo, f"{head}: interrupted earlier, resuming from {row_dir / 'checkpoints'}")
                row_cfg = TrainConfig(out=row_dir, resume=True)  # only out and resume: the row continues with its saved settings
            else:
                if state in ("incomplete", "changed"):
                    aside = _move_aside(row_dir, "incomplete" if state == "incomplete" else "previous")
                    why = "unfinished" if state == "incomplete" else "trained with other settings"
                    _say(echo, f"{head}: earlier folder {why}, moved aside to {aside}")
                _say(echo, f"{head}: training")
                row_cfg = cfg
            try:
                _train_row(row_cfg, progress=progress, isolate=isolate)
            except RunInterrupted:
                raise
            except AlzmriError as exc:
                _say(echo, f"{head}: failed: {exc}")
                failed.append((entry.name, str(exc)))
                continue
            trained = True
        summary = None if trained else _read_summary(row_dir, entry)
        if summary is None:
            _say(echo, f"{head}: measuring FLOPs, inference time and t-SNE")
            summary = summarize_row(entry, cfg, row_dir, index, out_dir=out, seed=config.seed, images_by_size=images_by_size)
        summaries.append(summary)

    fig_dir = out / "figures"
    figures: dict[str, Path] = {}
    if summaries:
        figures["pareto"] = plot_pareto(summaries, fig_dir / "pareto.png")
        curves, aucs = {}, {}
        for s in summaries:
            pred = _read_predictions(config.row_dir(s["name"]), class_names)
            if pred is not None:
                curves[s["name"]] = pred
                aucs[s["name"]] = s.get("roc_auc_ovr_macro")
        if curves:
            figures["roc"] = plot_roc_comparison(curves, class_names, fig_dir / "roc_comparison.png", aucs=aucs)
    split_block = _split_block(config, counts, strategy, split_notes)
    task_block = {"name": task.name, "class_names": class_names, "ordinal": task.ordinal}
    atomic_write_json(out / "comparison.json", {"title": config.title, "task": task_block, "split": split_block, "rows": summaries,
                                                "failed": [{"name": n, "error": e} for n, e in failed]})
    _write_table_csv(out / "table.csv", summaries, strategy)
    notes = list(config.notes) + [f"Row {n!r} failed and is not in the table: {e}" for n, e in failed]
    md, html = write_report(summaries, out, title=config.title, notes=notes, split=split_block, figures=figures, task=task_block)
    _say(echo, f"report: {md} and {html}")
    if failed:
        names = ", ".join(n for n, _ in failed)
        raise AlzmriError(f"{len(failed)} row(s) failed: {names} (first: {failed[0][1]}); the report at {html} holds the others; rerun to retry")
    return out


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


def _split_block(config: CompareConfig, counts: dict[str, int], strategy: str, notes: dict | None = None) -> dict:
    """The split as comparison.json and the report describe it; ``copies`` and ``warnings`` from :func:`_prepare_manifest`."""
    notes = notes or {}
    return {
        "strategy": strategy,
        "source_manifest": str(config.split) if config.split else None,
        "manifest": "manifest.csv",
        "seed": config.seed,
        "fractions": list(config.fractions),
        "counts": counts,
        "keep_eval_copies": config.keep_eval_copies,
        "copies": notes.get("copies") or {},
        "warnings": list(notes.get("warnings") or []),
    }


def _write_table_csv(path: Path, summaries: list[dict], strategy: str) -> None:
    """``table.csv``: one row per model, the table's values, every 95 % interval as ``_ci_low``/``_ci_high``
    columns (subject-level ones prefixed ``subject_``); written with :mod:`csv` (quoted where needed)."""
    sub_keys: list[str] = []
    for s in summaries:
        for k in (s.get("subject_level") or {}):
            if k not in sub_keys:
                sub_keys.append(k)
    sub_keys = [k for k in sub_keys if not any(isinstance((s.get("subject_level") or {}).get(k), (dict, list, str)) for s in summaries)]

    def intervals(block: dict | None) -> list:  # 95 % bootstrap interval of each metric, as _low/_high columns
        ci = (block or {}).get("confidence_intervals") or {}
        return [b for k in _METRIC_KEYS for b in (ci.get(k) or (None, None))]

    ci_cols = [f"{k}_ci_{end}" for k in _METRIC_KEYS for end in ("low", "high")]
    header = ["name", "model", "split_strategy", *TABLE_KEYS, *ci_cols, *(f"subject_{k}" for k in sub_keys), *(f"subject_{c}" for c in ci_cols)]
    rows = [header]
    for s in summaries:
        sub = s.get("subject_level") or {}
        rows.append([s["name"], s["model"], strategy, *(s.get(k) for k in TABLE_KEYS), *intervals(s),
                     *(sub.get(k) for k in sub_keys), *intervals(sub)])
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([["" if v is None else v for v in row] for row in rows])
    atomic_write_text(path, buf.getvalue())
