"""``score_run(run) -> RunScores``: one split of a run, scored per slice and per subject.

Computing and writing are separate: :func:`score_run` returns the metrics with the
predictions they came from and writes nothing; :func:`write_scores` writes
``metrics.json`` and ``predictions.csv``. :func:`alzmri.pipeline.evaluate` chains the two
with the figures and the model card (``alzmri evaluate``).
"""

from __future__ import annotations

import csv
import io
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from alzmri.data.cache import load_images
from alzmri.data.discovery import DatasetIndex, discover
from alzmri.data.locations import default_cache_dir
from alzmri.data.manifest import load_manifest
from alzmri.data.split_checks import split_warnings
from alzmri.data.tasks import Task, get_task
from alzmri.errors import AlzmriError
from alzmri.evaluation.aggregation import AGGREGATION_RULE, MixedLabelGroupWarning, aggregate_by_group, subject_level_metrics
from alzmri.evaluation.bootstrap import metrics_with_ci
from alzmri.evaluation.metrics import classification_metrics
from alzmri.evaluation.task_metrics import brain_metrics
from alzmri.training.selection import choose_threshold
from alzmri.runs import RunInfo, load_model, predict_proba
from alzmri.utils.distributed import node_cache_lock
from alzmri.utils.io import atomic_write_json, atomic_write_text

#: Bootstrap replicates for the confidence intervals in metrics.json.
N_BOOT = 1000


@dataclass
class RunScores:
    """What :func:`score_run` computed for one split of a run.

    Attributes
    ----------
    metrics : dict
        The contents of ``metrics.json`` (``metrics_<split>.json``).
    info : RunInfo
        The run's ``run.json``.
    split : str
    paths : list of str
        The scored images, in manifest order.
    y_true : ndarray of shape (n,), dtype int64
        Their true classes in the run's task.
    probs : ndarray of shape (n, n_classes), dtype float64
    groups : ndarray of shape (n,) or None
        Their subjects.
    """

    metrics: dict
    info: RunInfo
    split: str
    paths: list
    y_true: np.ndarray
    probs: np.ndarray
    groups: np.ndarray | None

    @property
    def suffix(self) -> str:
        """``""`` for the test split, else ``"_<split>"`` (the file names' suffix)."""
        return "" if self.split == "test" else f"_{self.split}"


def score_run(
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
) -> RunScores | None:
    """Score a run's best model on one split of its manifest; writes nothing.

    Slice-level metrics are those of
    :func:`alzmri.evaluation.metrics.classification_metrics`. With subject groups (from
    the manifest, or recovered for older manifests), metrics.json also holds ``confidence_intervals`` (95 % percentile
    bootstrap intervals resampling *subjects*, not slices:
    :func:`alzmri.evaluation.bootstrap.metrics_with_ci`) and ``subject_level``: the same
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
    RunScores or None
        None on the ranks other than 0 of a multi-process ``layout``; else the scores,
        whose ``metrics`` are what ``metrics.json`` holds: run facts (``model``, ``split``,
        ``split_strategy``, ``task``, ...), the slice-level metrics, ``n_subjects``, ``groups_source``,
        ``confidence_intervals``, ``subject_level`` and ``brain_level`` (None without groups), ``warnings``.

    Raises
    ------
    AlzmriError
        Not a run; the data no longer matches the run's manifest; the split is empty.
    """
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
    return RunScores(result, info, split, [index.records[i].path for i in sel], y_true, probs, groups)


def write_scores(run_dir: str | Path, scores: RunScores) -> list[Path]:
    """Write ``predictions.csv`` and then ``metrics.json`` (``*_<split>`` for other splits than test).

    ``predictions.csv``: path, class (the true class of the run's task), group (when the
    scores have subjects), predicted, ``p_<class>`` per class. ``metrics.json`` is written
    last: its presence marks a finished evaluation. Both atomically.

    Returns
    -------
    list of Path
        The two files.
    """
    run_dir = Path(run_dir)
    names = scores.info.class_names
    groups = scores.groups
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["path", "class", *(["group"] if groups is not None else []), "predicted", *(f"p_{c}" for c in names)])
    for j, (path, p) in enumerate(zip(scores.paths, scores.probs)):
        g = [int(groups[j])] if groups is not None else []
        w.writerow([path, names[int(scores.y_true[j])], *g, names[int(np.argmax(p))], *(f"{v:.6f}" for v in p)])
    preds = atomic_write_text(run_dir / f"predictions{scores.suffix}.csv", buf.getvalue())
    metrics = atomic_write_json(run_dir / f"metrics{scores.suffix}.json", scores.metrics)
    return [Path(preds), Path(metrics)]


@dataclass
class PredictionTable:
    """The test rows of a run's ``predictions.csv`` (:func:`read_predictions`).

    Attributes
    ----------
    path : Path
        The file.
    class_names : list of str
        From its ``p_<class>`` columns.
    y_true : ndarray of shape (n,), dtype int64
        True classes in the run's task.
    probs : ndarray of shape (n, n_classes), dtype float64
    paths : list of str
        Image paths (slice-level runs; empty strings for brain-level rows).
    groups : ndarray of shape (n,), dtype str, or None
        Subject of each slice (slice-level runs with groups).
    brains : ndarray of shape (n,), dtype int64, or None
        Brain of each row (brain-level runs and baselines: one row per brain).
    n_slices : ndarray of shape (n,), dtype int64, or None
        Slices of each brain (brain-level runs).
    """

    path: Path
    class_names: list
    y_true: np.ndarray
    probs: np.ndarray
    paths: list
    groups: np.ndarray | None
    brains: np.ndarray | None
    n_slices: np.ndarray | None


def read_predictions(run_dir: str | Path, task: Task | None = None) -> PredictionTable:
    """The test rows of ``predictions.csv`` of a slice-level or brain-level run: the one reader of that file.

    Parameters
    ----------
    run_dir : path-like
    task : Task, optional
        The run's task; default: ``run.json``'s (``4class`` when it names none).

    Returns
    -------
    PredictionTable
        Brain-level files list validation brains too (a ``split`` column): only test rows
        are returned.

    Raises
    ------
    AlzmriError
        No ``predictions.csv`` (the run did not finish its evaluation), or an unreadable one.
    """
    path = Path(run_dir) / "predictions.csv"
    try:
        with path.open(encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            columns = list(reader.fieldnames or [])
            rows = [r for r in reader if r.get("split", "test") == "test"]
    except FileNotFoundError:
        raise AlzmriError(f"{path}: missing; the run did not finish its evaluation (evaluate or train it again)") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise AlzmriError(f"{path}: cannot be read ({exc.__class__.__name__}); the run did not finish its evaluation (evaluate or train it again)") from None
    if task is None:
        try:
            task = get_task(json.loads((Path(run_dir) / "run.json").read_text(encoding="utf-8")).get("task") or "4class")
        except (OSError, ValueError, AlzmriError):
            task = get_task("4class")
    names = [c[2:] for c in columns if c.startswith("p_")]
    try:
        y = np.array([task.label_of(r["class"]) for r in rows], dtype=np.int64)
        prob = np.array([[float(r[f"p_{c}"]) for c in names] for r in rows], dtype=np.float64).reshape(len(rows), len(names))
    except (KeyError, ValueError, TypeError, AlzmriError) as exc:
        raise AlzmriError(f"{path}: not a predictions file of this run's task ({exc}); evaluate the run again") from None
    brain = "brain" in columns
    return PredictionTable(
        path, names, y, prob, [r.get("path", "") for r in rows],
        np.array([r["group"] for r in rows]) if "group" in columns else None,
        np.array([int(r["brain"]) for r in rows], dtype=np.int64) if brain else None,
        np.array([int(r["n_slices"]) for r in rows], dtype=np.int64) if brain and "n_slices" in columns else None,
    )


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
    (:func:`alzmri.training.selection.choose_threshold`, :data:`~alzmri.training.selection.THRESHOLD_RULE`).

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


__all__ = ["AGGREGATION_RULE", "N_BOOT", "PredictionTable", "RunScores", "read_predictions", "brain_level_metrics", "score_run", "validation_threshold", "write_scores"]
