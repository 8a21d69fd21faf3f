"""``evaluate_run(run) -> metrics``: the test split of a run, scored and plotted."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from alzmri.data.cache import load_images
from alzmri.data.discovery import DatasetIndex, discover
from alzmri.data.manifest import read_manifest
from alzmri.errors import AlzmriError
from alzmri.evaluation.metrics import classification_metrics
from alzmri.inference.predict import predict_proba
from alzmri.runs import RunInfo, load_model
from alzmri.utils.io import atomic_write_json, atomic_write_text


def evaluate_run(
    run_dir: str | Path,
    *,
    data: str | Path | None = None,
    split: str = "test",
    index: DatasetIndex | None = None,
    images: np.ndarray | None = None,
) -> dict:
    """Score a run's best model on one split of its manifest and write the artifacts.

    Writes ``metrics.json`` (see :func:`alzmri.evaluation.metrics.classification_metrics`,
    plus run facts), ``predictions.csv``, ``confusion_matrix.png`` (row-normalised) and
    ``roc_curves.png`` into the run folder.

    Parameters
    ----------
    run_dir : path-like
    data : path-like, optional
        Dataset folder; default: the one the run was trained on.
    split : {"test", "val", "train"}, default="test"
    index, images : optional
        An already discovered dataset and its decoded images (saves decoding).

    Returns
    -------
    dict
        The metrics written to ``metrics.json``.

    Raises
    ------
    AlzmriError
        Not a run; the data no longer matches the run's manifest; the split is empty.
    """
    from alzmri.reporting.figures import plot_confusion_matrix, plot_roc_curves

    run_dir = Path(run_dir)
    model, info = load_model(run_dir)
    if index is None:
        index = discover(data if data is not None else info.data)
    splits = read_manifest(run_dir / "manifest.csv", index)
    if images is None:
        cached = load_images(index, info.image_size)
        images = cached.images
    sel = np.flatnonzero(splits == split)
    if len(sel) == 0:
        raise AlzmriError(f"{run_dir}: the {split} split of this run is empty; nothing to evaluate")
    probs = predict_proba(model, info, images[sel])
    y_true = index.labels[sel]
    metrics = classification_metrics(y_true, probs, class_names=info.class_names)
    result = {
        "run": str(run_dir),
        "model": info.model,
        "split": split,
        "split_strategy": info.split_strategy,
        "image_size": info.image_size,
        "parameters": info.parameters,
        "size_mb": info.size_mb,
        "train_time_s": info.train_time_s,
        "peak_memory_mb": info.peak_memory_mb,
        **metrics,
    }
    name = "metrics.json" if split == "test" else f"metrics_{split}.json"
    atomic_write_json(run_dir / name, result)
    rows = ["path,class,predicted," + ",".join(f"p_{c}" for c in info.class_names)]
    for i, p in zip(sel, probs):
        rec = index.records[i]
        rows.append(f"{rec.path},{rec.class_name},{info.class_names[int(np.argmax(p))]}," + ",".join(f"{v:.6f}" for v in p))
    suffix = "" if split == "test" else f"_{split}"
    atomic_write_text(run_dir / f"predictions{suffix}.csv", "\n".join(rows) + "\n")
    plot_confusion_matrix(np.array(metrics["confusion_matrix"]), info.class_names, run_dir / f"confusion_matrix{suffix}.png", title=f"{info.model} - {split} split ({info.split_strategy})")
    plot_roc_curves(y_true, probs, info.class_names, run_dir / f"roc_curves{suffix}.png")
    return result
