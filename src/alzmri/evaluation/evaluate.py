"""``evaluate_run(run) -> metrics``: one split of a run, scored per slice and per subject, and plotted."""

from __future__ import annotations

import csv
import io
import warnings
from pathlib import Path

import numpy as np

from alzmri.data.cache import load_images
from alzmri.data.discovery import DatasetIndex, discover
from alzmri.data.download import default_cache_dir
from alzmri.data.manifest import load_manifest
from alzmri.data.splits import split_warnings
from alzmri.data.tasks import Task, get_task
from alzmri.errors import AlzmriError
from alzmri.evaluation.aggregation import AGGREGATION_RULE, MixedLabelGroupWarning, aggregate_by_group, metrics_with_ci, subject_level_metrics
from alzmri.evaluation.metrics import classification_metrics
from alzmri.evaluation.task_metrics import brain_metrics
from alzmri.training.selection import choose_threshold
from alzmri.inference.predict import predict_proba
from alzmri.runs import load_model
from alzmri.utils.distributed import node_cache_lock
from alzmri.utils.io import atomic_write_json, atomic_write_text

#: Bootstrap replicates for the confidence intervals in metrics.json.
N_BOOT = 1000


def evaluate_run(
    run_dir: str | Path,
    *,
    data: str | Path | None = None,
    split: str = "test",
    index: DatasetIndex | None = None,
    images: np.ndarray | None = None,
    n_boot: int = N_BOOT,
    seed: int = 0,
    recover_groups: bool = True,
    layout=None,
) -> dict | None:
    """Score a run's best model on one split of its manifest and write the artifacts.

    Writes ``metrics.json`` (``metrics_<split>.json`` for other splits), ``predictions.csv``
    (with a ``group`` column when the manifest has groups), ``confusion_matrix.png``
    (row-normalised) and ``roc_curves.png`` into the run folder.

    Slice-level metrics are those of
    :func:`alzmri.evaluation.metrics.classification_metrics`. With subject groups (from
    the manifest, or recovered for older manifests), metrics.json also holds ``confidence_intervals`` (95 % percentile
    bootstrap intervals resampling *subjects*, not slices:
    :func:`alzmri.evaluation.aggregation.metrics_with_ci`) and ``subject_level``: the same
    metrics on one prediction per subject (mean of its slices' probabilities, see
    :data:`~alzmri.evaluation.aggregation.AGGREGATION_RULE`), with intervals.
    ``task`` names the run's task framing (:mod:`alzmri.data.tasks`; runs without one are
    4class): the true classes are the task's. ``brain_level`` holds the task's metrics of
    :func:`alzmri.evaluation.task_metrics.brain_metrics` on the same per-subject mean
    probabilities (ROC-AUC of P(demented) for every task; for binary, sensitivity and
    specificity at a threshold chosen by Youden's J on the run's *validation* brains).
    ``warnings`` lists the run's split warnings and any raised here.

    Parameters
    ----------
    run_dir : path-like
    data : path-like, optional
        Dataset folder; default: the one the run was trained on.
    split : {"test", "val", "train"}, default="test"
    index, images : optional
        An already discovered dataset and its decoded images (saves decoding).
    n_boot : int, default=1000
        Bootstrap replicates.
    seed : int, default=0
        Bootstrap seed.
    recover_groups : bool, default=True
        For a manifest without a ``group`` column (runs made before groups existed),
        recover the groups from the images (:func:`alzmri.data.groups.load_or_recover_groups`,
        cached); False: report slice-level metrics only.
    layout : alzmri.utils.distributed.ProcessLayout, optional
        Predict with several processes (Lightning DDP, ``alzmri evaluate --devices N``):
        every process calls this function; the probabilities are gathered into slice
        order (:func:`alzmri.evaluation.distributed.distributed_predict_proba`) and only
        global rank 0 computes and writes the metrics, equal to a one-process evaluation.

    Returns
    -------
    dict or None
        None on the ranks other than 0 of a multi-process ``layout``; else the metrics written to ``metrics.json``: run facts (``model``, ``split``,
        ``split_strategy``, ``task``, ...), the slice-level metrics, ``n_subjects``, ``groups_source``,
        ``confidence_intervals``, ``subject_level`` and ``brain_level`` (None without groups), ``warnings``.

    Raises
    ------
    AlzmriError
        Not a run; the data no longer matches the run's manifest; the split is empty.
    """
    from alzmri.reporting.figures import plot_confusion_matrix, plot_roc_curves

    run_dir = Path(run_dir)
    model, info = load_model(run_dir)
    task = get_task(getattr(info, "task", "") or "4class")
    if index is None:
        index = discover(data if data is not None else info.data)
    manifest = load_manifest(run_dir / "manifest.csv", index)
    splits = manifest.splits
    if images is None:
        with node_cache_lock(default_cache_dir()):  # several processes on a node: one decodes, the others read its cache
            images = load_images(index, info.image_size).images
    sel = np.flatnonzero(splits == split)
    if len(sel) == 0:
        raise AlzmriError(f"{run_dir}: the {split} split of this run is empty; nothing to evaluate")
    if layout is not None and layout.parallel:
        from alzmri.evaluation.distributed import distributed_predict_proba

        probs = distributed_predict_proba(model, info, images[sel], layout)
        if probs is None:
            return None  # not rank 0: rank 0 scores and writes
    else:
        probs = predict_proba(model, info, images[sel])
    y_true = task.map_labels(index.labels[sel])  # the run's task classes (splits stay on the canonical four)
    metrics = classification_metrics(y_true, probs, class_names=info.class_names)
    warns = list(getattr(info, "warnings", []) or [])
    if manifest.groups is not None:
        groups_source = getattr(info, "groups_source", "") or "manifest"
        all_groups = manifest.groups
    elif recover_groups:
        from alzmri.data.groups import load_or_recover_groups

        res = load_or_recover_groups(index)
        groups_source = "recovered at evaluation (the manifest records none)"
        all_groups = res.group
        for w in split_warnings(index.labels, splits, groups=res.group, strategy=info.split_strategy, copy_of=res.copy_of):
            if w not in warns:
                warns.append(w)
    else:
        groups_source, all_groups = "", None
    groups = all_groups[sel] if all_groups is not None else None
    ci = subject = brain = None
    if groups is not None:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", MixedLabelGroupWarning)
            ci = metrics_with_ci(y_true, probs, groups, n_boot=n_boot, seed=seed)
            subject = subject_level_metrics(y_true, probs, groups, class_names=info.class_names, n_boot=n_boot, seed=seed)
            threshold = None
            if task.is_binary:
                threshold = validation_threshold(model, info, task, images, splits, index.labels, all_groups)
                if split == "val":
                    warns.append("the binary decision threshold was chosen on the brains scored here (the validation split): "
                                 "brain-level sensitivity and specificity are optimistic; evaluate the test split")
            brain = brain_level_metrics(y_true, probs, groups, task, threshold=threshold, n_boot=n_boot, seed=seed)
        for w in caught:
            if issubclass(w.category, MixedLabelGroupWarning) and str(w.message) not in warns:
                warns.append(str(w.message))
        absent = [c for k, c in enumerate(info.class_names) if not np.any(y_true == k)]
        if absent:
            warns.append(
                f"the {split} split holds no {', '.join(absent)} images: balanced accuracy and ROC-AUC average over "
                f"the {len(info.class_names) - len(absent)} classes present"
            )
    else:
        warns.append("no subject groups: no confidence intervals and no subject-level metrics")
    result = {
        "run": str(run_dir),
        "model": info.model,
        "split": split,
        "split_strategy": info.split_strategy,
        "task": task.name,
        "image_size": info.image_size,
        "parameters": info.parameters,
        "size_mb": info.size_mb,
        "train_time_s": info.train_time_s,
        "peak_memory_mb": info.peak_memory_mb,
        **metrics,
        "n_subjects": int(len(np.unique(groups))) if groups is not None else None,
        "groups_source": groups_source,
        "confidence_intervals": ci,
        "subject_level": subject,
        "brain_level": brain,
        "warnings": warns,
    }
    name = "metrics.json" if split == "test" else f"metrics_{split}.json"
    atomic_write_json(run_dir / name, result)
    if split == "test":
        from alzmri.reporting.model_card import write_model_card

        write_model_card(run_dir, info, result)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["path", "class", *(["group"] if groups is not None else []), "predicted", *(f"p_{c}" for c in info.class_names)])
    for j, (i, p) in enumerate(zip(sel, probs)):
        rec = index.records[i]
        g = [int(groups[j])] if groups is not None else []
        # class: the true class of the run's task (the folder's class for 4class)
        w.writerow([rec.path, info.class_names[int(y_true[j])], *g, info.class_names[int(np.argmax(p))], *(f"{v:.6f}" for v in p)])
    suffix = "" if split == "test" else f"_{split}"
    atomic_write_text(run_dir / f"predictions{suffix}.csv", buf.getvalue())
    plot_confusion_matrix(np.array(metrics["confusion_matrix"]), info.class_names, run_dir / f"confusion_matrix{suffix}.png", title=f"{info.model} - {split} split ({info.split_strategy})")
    plot_roc_curves(y_true, probs, info.class_names, run_dir / f"roc_curves{suffix}.png")
    return result


def brain_level_metrics(y_true, y_prob, groups, task: str | Task, *, threshold: float | None = None, n_boot: int = N_BOOT, seed: int = 0) -> dict:
    """The task's brain-level metrics of slice predictions: one prediction per subject (mean of its slices).

    Parameters
    ----------
    y_true : array-like of int, shape (n_slices,)
        Task labels.
    y_prob : array-like of shape (n_slices, n_classes)
    groups : array-like of shape (n_slices,)
        Subject of every slice.
    task : str or Task
    threshold : float, optional
        Binary decision threshold on P(demented) (:func:`validation_threshold`).
    n_boot, seed
        Bootstrap replicates (brains resampled) and seed.

    Returns
    -------
    dict
        :func:`alzmri.evaluation.task_metrics.brain_metrics` plus ``aggregation``
        (:data:`AGGREGATION_RULE`).
    """
    _, yg, pg = aggregate_by_group(y_true, y_prob, groups)
    return {**brain_metrics(yg, pg, task, threshold=threshold, n_boot=n_boot, seed=seed), "aggregation": AGGREGATION_RULE}


def validation_threshold(model, info, task: Task, images: np.ndarray, splits: np.ndarray, labels: np.ndarray, groups: np.ndarray) -> float | None:
    """Binary decision threshold chosen by Youden's J on the run's validation brains (None without any).

    The validation slices are predicted and averaged per subject as the scored split is
    (:func:`alzmri.evaluation.task_metrics.choose_threshold`, :data:`~alzmri.evaluation.task_metrics.THRESHOLD_RULE`).

    Parameters
    ----------
    images : ndarray of shape (n_images, H, W), dtype uint8
        Every image of the dataset.
    splits, labels, groups : ndarray of shape (n_images,)
        The run's split, canonical labels and subjects of every image.
    """
    val = np.flatnonzero(splits == "val")
    if len(val) == 0:
        return None
    pv = predict_proba(model, info, images[val])
    _, yv, pvg = aggregate_by_group(task.map_labels(labels[val]), pv, groups[val])
    return choose_threshold(yv, pvg)


__all__ = ["AGGREGATION_RULE", "N_BOOT", "brain_level_metrics", "evaluate_run", "validation_threshold"]
