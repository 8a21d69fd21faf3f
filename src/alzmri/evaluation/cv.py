"""Scoring a K-fold cross-validation by subject: per-fold metrics, their mean and spread, pooled out-of-fold metrics.

:func:`summarize_cv` reads the fold run folders ``OUT/fold-<i>/`` (their ``run.json``,
``metrics.json`` and ``predictions.csv``) and returns what ``OUT/cv.json`` holds; it
writes nothing (:func:`alzmri.pipeline.train_cv` writes it).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from alzmri.evaluation.aggregation import subject_level_metrics
from alzmri.evaluation.bootstrap import CI_METRICS, metrics_with_ci
from alzmri.evaluation.evaluate import read_predictions
from alzmri.evaluation.metrics import classification_metrics

__all__ = ["CV_FILE", "SUMMARY_METRICS", "summarize_cv"]

CV_FILE = "cv.json"
#: Metrics summarised across folds (slice level and subject level).
SUMMARY_METRICS = CI_METRICS


def _mean_std(values: list) -> dict:
    v = [x for x in values if x is not None]
    if not v:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": float(np.mean(v)), "std": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0, "n": len(v)}


def summarize_cv(out: str | Path, *, k: int, seed: int, groups_source: str = "", n_boot: int = 1000, warnings=(), task: str = "4class") -> dict:
    """The contents of ``OUT/cv.json``, from the fold runs ``OUT/fold-<i>``.

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
            pred = read_predictions(run)
            class_names = class_names or pred.class_names
            paths += pred.paths
            ys.append(pred.y_true)
            ps.append(pred.probs)
            if pred.groups is None:
                has_groups = False
            else:
                gs.append(pred.groups)
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
    return summary
