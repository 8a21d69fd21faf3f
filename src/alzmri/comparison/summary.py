"""A finished row's measurements: FLOPs, inference time, training throughput, t-SNE and its table values (``summary.json``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from alzmri.comparison.config import ModelEntry
from alzmri.config import TrainConfig
from alzmri.evaluation.bootstrap import CI_METRICS
from alzmri.utils.io import atomic_write_json, atomic_write_text

__all__ = ["SUMMARY_VERSION", "TABLE_KEYS", "summarize_row"]

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
_METRIC_KEYS = tuple(sorted(CI_METRICS))  # the table's column order


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
    from alzmri.reporting.plots import plot_tsne
    from alzmri.runs import load_model

    row_dir = Path(row_dir)
    out_dir = Path(out_dir)
    run_info = json.loads((row_dir / "run.json").read_text(encoding="utf-8"))
    if run_info.get("level") == "brain" or str(run_info.get("model", "")).startswith("baseline:"):
        return _brain_row_summary(entry, cfg, row_dir, out_dir, run_info)
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


def _brain_row_summary(entry: ModelEntry, cfg: TrainConfig, row_dir: Path, out_dir: Path, info: dict) -> dict:
    """The summary of a brain-level or baseline row: one prediction per brain, so no slice metrics, FLOPs per
    slice, inference time per slice or t-SNE of slices; its brain-level metrics come from ``metrics.json``."""
    metrics = json.loads((row_dir / "metrics.json").read_text(encoding="utf-8"))
    bl = metrics.get("brain_level") or {}
    curves = row_dir / "training_curves.png"
    summary: dict[str, Any] = {
        "summary_version": SUMMARY_VERSION, "name": entry.name, "model": info.get("model"), "model_kwargs": dict(info.get("model_kwargs") or {}),
        "task": info.get("task"), "loss": info.get("loss"), "level": "baseline" if str(info.get("model", "")).startswith("baseline:") else "brain",
        "note": entry.note, "parameters": info.get("parameters"), "trainable_parameters": info.get("trainable_parameters"), "size_mb": info.get("size_mb"),
        "flops_per_image": None, "train_time_s": info.get("train_time_s"), "peak_memory_mb": info.get("peak_memory_mb"), "train_images_per_s": None,
        "inference_ms_per_image": None, **{k: None for k in _METRIC_KEYS},
        "brain_level": {**{k: v for k, v in bl.items() if v is None or isinstance(v, (int, float, str))}, "ci": dict(bl.get("ci") or {})},
        "n_test": metrics.get("n_samples"), "n_test_subjects": bl.get("n_brains"), "split_counts": dict(info.get("split_counts") or {}),
        "image_size": info.get("image_size"), "in_chans": info.get("in_chans"), "epochs": cfg.epochs, "epochs_run": info.get("epochs_run"),
        "best_epoch": info.get("best_epoch"), "batch_size": cfg.batch_size, "lr": cfg.lr, "weight_decay": cfg.weight_decay, "augment": cfg.augment,
        "precision": info.get("precision"), "device": info.get("device"), "inference_device": None,
        "run_dir": row_dir.resolve().relative_to(out_dir.resolve()).as_posix() if row_dir.resolve().is_relative_to(out_dir.resolve()) else str(row_dir),
        "figures": {"training_curves": (curves.resolve().relative_to(out_dir.resolve()).as_posix()
                                        if curves.is_file() and curves.resolve().is_relative_to(out_dir.resolve()) else None),
                    "confusion_matrix": None, "roc_curves": None, "tsne": None},
    }
    atomic_write_json(row_dir / "summary.json", summary)
    return summary
