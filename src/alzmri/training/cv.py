"""K-fold cross-validation by subject: K ordinary runs and one summary, ``cv.json``.

``train_cv(cfg)`` writes::

    OUT/config.yaml              the settings (read back by --resume)
    OUT/cv-splits/fold-<i>.csv   the split of fold i (a manifest with group and strategy columns)
    OUT/fold-<i>/                an ordinary run folder trained on that manifest (alzmri.runs)
    OUT/cv.json                  per-fold metrics, their mean and standard deviation, and the
                                 pooled out-of-fold metrics (every image scored once, by the
                                 model that did not see its subject)

Folds come from :func:`alzmri.data.splits.subject_folds`: test = one fold of
``StratifiedGroupKFold``, validation carved from the remaining subjects, so no subject is in
two splits of a fold and every subject is tested exactly once.
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from alzmri.config import TrainConfig, dump_config
from alzmri.data.classes import CLASS_NAMES
from alzmri.data.discovery import discover
from alzmri.data.manifest import write_manifest
from alzmri.data.splits import cv_strategy_name, subject_folds  # noqa: F401 (cv_strategy_name: public here too)
from alzmri.errors import AlzmriError, RunInterrupted
from alzmri.models import get_spec
from alzmri.training.resume import check_manifest, manifest_bytes, run_finished, saved_settings
from alzmri.utils.io import atomic_write_json, atomic_write_text

CV_FILE = "cv.json"
#: Metrics summarised across folds (slice level and subject level).
SUMMARY_METRICS = ("balanced_accuracy", "macro_f1", "roc_auc_ovr_macro", "quadratic_weighted_kappa", "accuracy")


@dataclass
class FoldSplits:
    """The K splits of a cross-validation by subject (:func:`make_fold_splits`).

    Attributes
    ----------
    splits : list of ndarray of shape (n_images,), dtype str
        ``"train"``/``"val"``/``"test"``/``""`` (left out) per image, one array per fold.
    groups : ndarray of shape (n_images,)
        Subject (scan group) of every image.
    groups_source : str
    copy_of : ndarray or None
        The original of each augmented copy (None without copies).
    warnings : list of str
        Warnings about the groups (unreliable recovered groups), already printed.
    """

    splits: list[np.ndarray]
    groups: np.ndarray
    groups_source: str
    copy_of: np.ndarray | None
    warnings: list[str]


def make_fold_splits(cfg: TrainConfig, index, image_size: int) -> FoldSplits:
    """The ``cfg.folds`` subject folds of a dataset, checked (every class in train and test).

    The images are decoded (or read from the decode-once cache) at ``image_size`` to learn
    which are readable; folds come from :func:`alzmri.data.splits.subject_folds` with
    ``cfg.seed`` and validation share ``cfg.fractions[1]``; copies of validation/test brains
    are left out unless ``cfg.keep_eval_copies``. Shared by ``alzmri train --folds`` and
    ``alzmri compare --folds``, so both cut identical folds from identical settings.

    Raises
    ------
    AlzmriError
        Unreadable images (unless ``skip_unreadable``), more folds than subjects, a fold
        without a class in train or test.
    """
    from alzmri.data.eval_copies import leave_out_eval_copies
    from alzmri.data.subjects import resolve_subjects
    from alzmri.data.tasks import get_task
    from alzmri.training.train import _check_split, load_checked_images
    from alzmri.utils.console import print_warning

    task = get_task(cfg.task)
    k = int(cfg.folds or 0)
    cached = load_checked_images(cfg, index, image_size)
    subjects = resolve_subjects(index, groups_file=cfg.groups)
    groups, copy_of = subjects.group, subjects.copy_of
    unreliable = [w for w in (subjects.warning(),) if w]
    for w in unreliable:
        print_warning(w)
    readable = np.flatnonzero(cached.readable)
    fold_splits = []
    for sub in subject_folds(index.labels[readable], groups[readable], k, seed=cfg.seed, val_fraction=cfg.fractions[1]):
        s = np.full(len(index), "", dtype=object)
        s[readable] = sub
        # a brain and its copies share a group, so they share a fold; copies of validation/test brains are left out
        s = leave_out_eval_copies(s.astype(str), copy_of, keep=cfg.keep_eval_copies)
        _check_split(s, task.map_labels(index.labels), f"{index.root} (fold {len(fold_splits) + 1} of {k})", task.class_names)
        fold_splits.append(s)
    return FoldSplits(fold_splits, groups, subjects.source, copy_of, unreliable)


def train_cv(cfg: TrainConfig, *, progress: bool = True) -> Path:
    """Cross-validate ``cfg.model`` by subject with ``cfg.folds`` folds.

    A thin loop over :func:`alzmri.training.train.train`: the fold splits are written as
    manifests first, then each fold is an ordinary run reusing its manifest. With
    ``cfg.resume`` the folder ``cfg.out`` is continued with its saved settings
    (``OUT/config.yaml``): the recomputed folds must equal ``cv-splits/``, finished folds
    are kept, a started fold is resumed from its last checkpoint, the others are trained.

    Parameters
    ----------
    cfg : TrainConfig
        ``folds`` >= 2; ``split_strategy`` must be ``"subject"`` and ``split`` unset.
        ``fractions[1]`` is the share of all images held out for validation in each fold.
    progress : bool, default=True

    Returns
    -------
    Path
        The output folder holding ``fold-<i>/`` and ``cv.json``.

    Raises
    ------
    AlzmriError
        ``folds`` missing; a strategy other than ``subject`` or a reused manifest; an
        existing non-empty output folder; more folds than subjects; bad data (as
        :func:`~alzmri.training.train.train`); with ``resume``: nothing started or
        already finished there, a setting or fold that differs from the saved one.
    RunInterrupted
        Ctrl-C or SIGTERM while a fold trains (names the command that resumes the whole
        cross-validation).
    """
    if cfg.level == "brain" or cfg.model.startswith("baseline:"):  # one prediction per brain: training/brain_runs.py
        from alzmri.training.brain_runs import train_brain_cv

        return train_brain_cv(cfg, progress=progress)
    from alzmri.data.tasks import get_task
    from alzmri.models.ordinal import check_loss
    from alzmri.training.train import resolve_data_dir, train

    if cfg.resume:
        cfg = _resume_settings(cfg)
    task = get_task(cfg.task)
    check_loss(task, cfg.loss)
    k = cfg.folds
    if k is None:
        raise AlzmriError("train_cv needs folds (alzmri train --folds K)")
    if cfg.split is not None:
        raise AlzmriError("--folds makes its own splits by subject; drop --split (or drop --folds to reuse the manifest)")
    if cfg.devices * cfg.num_nodes > 1:
        raise AlzmriError("--folds trains its folds one after another in one process and does not run under DDP; "
                          "drop --devices/--num-nodes (docs/scaling.md)")
    if cfg.split_strategy != "subject":
        raise AlzmriError(f"--folds K is cross-validation by subject; it needs --split-strategy subject, got {cfg.split_strategy!r}")
    data_dir = resolve_data_dir(cfg.data)
    spec = get_spec(cfg.model)
    image_size = cfg.image_size or spec.image_size
    out = Path(cfg.out) if cfg.out is not None else Path("runs") / f"{cfg.model}-cv{k}-{time.strftime('%Y%m%d-%H%M%S')}"
    if not cfg.resume and out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise AlzmriError(f"{out}: output folder already exists and is not empty; choose another --out (earlier runs are never overwritten)")

    index = discover(data_dir)
    folds = make_fold_splits(cfg, index, image_size)
    fold_splits, groups, groups_source, copy_of, unreliable = folds.splits, folds.groups, folds.groups_source, folds.copy_of, folds.warnings

    out.mkdir(parents=True, exist_ok=True)
    if not cfg.resume:  # the settings, for --resume
        atomic_write_text(out / "config.yaml", dump_config(cfg.model_copy(update={"data": index.root, "out": out.resolve(), "resume": False})))
    runs = []
    for i, s in enumerate(fold_splits):
        manifest = out / "cv-splits" / f"fold-{i}.csv"
        if cfg.resume and manifest.is_file():  # resuming: the same folds, or one clear error
            check_manifest(manifest, manifest_bytes(index, s, groups=groups, strategy=cv_strategy_name(i, k), copy_of=copy_of), index.root)
        else:
            write_manifest(manifest, index, s, groups=groups, strategy=cv_strategy_name(i, k), copy_of=copy_of)
        fold_out = out / f"fold-{i}"
        if cfg.resume and run_finished(fold_out, cfg.evaluate):
            runs.append(fold_out)
            continue
        update = {"out": fold_out, "split": manifest, "folds": None, "groups": None, "data": index.root,
                  "resume": cfg.resume and (fold_out / "config.yaml").is_file()}
        try:
            runs.append(train(cfg.model_copy(update=update), progress=progress))
        except RunInterrupted as exc:
            raise RunInterrupted(exc.what, f"alzmri train --folds {k} --out {out} --resume", exit_code=exc.exit_code) from None
    summarize_cv(out, k=k, seed=cfg.seed, groups_source=groups_source, warnings=unreliable, task=task.name)
    return out


def _resume_settings(cfg: TrainConfig) -> TrainConfig:
    """The saved settings of the cross-validation folder ``cfg.out``, checked against ``cfg`` (``--resume``).

    Raises
    ------
    AlzmriError
        No ``out``; no cross-validation started there (no ``config.yaml`` and
        ``cv-splits/``); already finished (``cv.json``); an option differs from the saved one.
    """
    if cfg.out is None:
        raise AlzmriError("--resume needs --out DIR, the cross-validation folder to continue")
    out = Path(cfg.out)
    if not (out / "config.yaml").is_file() or not (out / "cv-splits").is_dir():
        raise AlzmriError(f"{out}: no cross-validation was started here (no config.yaml and cv-splits/), nothing to resume; "
                          "start it without --resume")
    if (out / CV_FILE).is_file():
        raise AlzmriError(f"{out}: this cross-validation already finished ({CV_FILE} is there), nothing to resume; "
                          "start a new one with another --out")
    return saved_settings(cfg, out / "config.yaml")


def _read_predictions(run: Path) -> tuple[list[str], list[str], np.ndarray, np.ndarray, np.ndarray | None]:
    """(class names, paths, task labels, probabilities, groups or None) of a fold's predictions.csv."""
    from alzmri.data.tasks import get_task

    with (run / "predictions.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return list(CLASS_NAMES), [], np.zeros(0, np.int64), np.zeros((0, len(CLASS_NAMES))), None
    names = [c[2:] for c in rows[0] if c.startswith("p_")]
    try:  # the "class" column holds the image's folder class (4 canonical classes); the columns the task's
        task = get_task(json.loads((run / "run.json").read_text(encoding="utf-8")).get("task", "4class"))
    except (OSError, ValueError, AlzmriError):
        task = get_task("4class")
    y = np.array([task.label_of(r["class"]) for r in rows], dtype=np.int64)
    p = np.array([[float(r[f"p_{c}"]) for c in names] for r in rows], dtype=np.float64)
    g = np.array([r["group"] for r in rows]) if "group" in rows[0] else None
    return names, [r["path"] for r in rows], y, p, g


def _mean_std(values: list) -> dict:
    v = [x for x in values if x is not None]
    if not v:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": float(np.mean(v)), "std": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0, "n": len(v)}


def summarize_cv(out: str | Path, *, k: int, seed: int, groups_source: str = "", n_boot: int = 1000, warnings=(), task: str = "4class") -> dict:
    """Write ``OUT/cv.json`` from the fold runs ``OUT/fold-<i>``.

    Parameters
    ----------
    out : path-like
        Folder holding ``fold-0 .. fold-<k-1>``.
    k : int
    seed : int
        The split seed (recorded).
    groups_source : str, default=""
    n_boot : int, default=1000
        Bootstrap replicates of the pooled intervals (subjects resampled).
    warnings : sequence of str, default=()
        Warnings about the whole cross-validation (unreliable recovered groups), listed
        first.
    task : str, default="4class"
        The folds' task framing (recorded; the classes come from the predictions).

    Returns
    -------
    dict
        ``strategy``, ``task``, ``folds``, ``seed``, ``per_fold`` (run folder, split counts, slice-
        and subject-level metrics of each fold), ``mean_std`` (``slice_level`` and
        ``subject_level``: per metric ``mean``, ``std`` (ddof 1) and ``n`` folds where it
        is defined), ``pooled`` (out-of-fold: all test predictions of all folds scored
        together, with bootstrap intervals resampling subjects, and a ``subject_level``
        block), ``warnings`` (of all folds, each once).
    """
    from alzmri.evaluation.aggregation import metrics_with_ci, subject_level_metrics
    from alzmri.evaluation.metrics import classification_metrics

    out = Path(out)
    per_fold = []
    warns: list[str] = list(dict.fromkeys(warnings))
    paths: list[str] = []
    ys, ps, gs = [], [], []
    class_names: list[str] = []
    has_groups = True
    for i in range(k):
        run = out / f"fold-{i}"
        info = json.loads((run / "run.json").read_text(encoding="utf-8"))
        entry: dict = {"fold": i, "run": str(run), "split_counts": info.get("split_counts", {})}
        mfile = run / "metrics.json"
        if mfile.is_file():
            m = json.loads(mfile.read_text(encoding="utf-8"))
            entry["slice_level"] = {key: m.get(key) for key in SUMMARY_METRICS}
            sl = m.get("subject_level")
            entry["subject_level"] = {key: sl.get(key) for key in SUMMARY_METRICS} if sl else None
            for w in m.get("warnings", []):
                if w not in warns:
                    warns.append(w)
            names, fp, y, p, g = _read_predictions(run)
            class_names = class_names or names
            paths += fp
            ys.append(y)
            ps.append(p)
            if g is None:
                has_groups = False
            else:
                gs.append(g)
        for w in info.get("warnings", []):
            if w not in warns:
                warns.append(w)
        per_fold.append(entry)
    summary: dict = {
        "strategy": "subject-cv",
        "task": task,
        "folds": k,
        "seed": seed,
        "groups_source": groups_source,
        "per_fold": per_fold,
    }
    if ys and all("slice_level" in e for e in per_fold):
        summary["mean_std"] = {
            "slice_level": {key: _mean_std([e["slice_level"][key] for e in per_fold]) for key in SUMMARY_METRICS},
            "subject_level": {
                key: _mean_std([e["subject_level"][key] for e in per_fold if e["subject_level"]]) for key in SUMMARY_METRICS
            }
            if all(e["subject_level"] for e in per_fold)
            else None,
        }
        y, p = np.concatenate(ys), np.concatenate(ps)
        pooled = classification_metrics(y, p, class_names=class_names)
        pooled["n_unique_images"] = len(set(paths))
        if has_groups:
            g = np.concatenate(gs)
            pooled["confidence_intervals"] = metrics_with_ci(y, p, g, n_boot=n_boot, seed=0)
            pooled["subject_level"] = subject_level_metrics(y, p, g, class_names=class_names, n_boot=n_boot, seed=0)
        summary["pooled"] = pooled
    summary["warnings"] = warns
    atomic_write_json(out / CV_FILE, summary)
    return summary
