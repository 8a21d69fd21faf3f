"""Scores of brain-level runs: ``metrics.json`` of one run, ``cv.json`` of a cross-validation by brain.

Training (:mod:`alzmri.training.brain_runs`) fits, predicts the validation and test brains
and returns them; these functions turn that into the written dicts and write nothing
(:mod:`alzmri.pipeline.brains` writes them). Every metric is
:func:`alzmri.evaluation.task_metrics.brain_metrics` of the test brains at the threshold
chosen on the validation brains.
"""

from __future__ import annotations

import numpy as np

from alzmri.evaluation.task_metrics import brain_metrics
from alzmri.training.brain_runs import BrainCV, BrainRun

__all__ = ["VALIDATION_METRICS", "brain_cv_summary", "brain_run_metrics"]

#: Validation metrics recorded per fold (those the task has) and averaged over folds in cv.json.
VALIDATION_METRICS = ("roc_auc", "balanced_accuracy", "quadratic_weighted_kappa")
#: Per-fold keys of brain_metrics left out of cv.json's ``per_fold`` rows.
_FOLD_OMITTED = ("ci", "ci_method", "class_counts", "task", "threshold", "threshold_rule", "n_brains")


def brain_run_metrics(run: BrainRun) -> dict:
    """The ``metrics.json`` of a brain-level run: its test brains scored, with 95 % intervals.

    Parameters
    ----------
    run : BrainRun
        With at least one test brain.

    Returns
    -------
    dict
        ``run``, ``model``, ``level`` ("brain"), ``task``, ``split`` ("test"),
        ``split_strategy``, ``train_time_s`` (s), ``best_epoch``, ``n_subjects`` (test
        brains), ``groups_source``, ``brain_level`` (:func:`brain_metrics` at the run's
        threshold, 1,000 bootstrap replicates) and ``warnings``.

    Raises
    ------
    ValueError
        No test brains.
    """
    m = brain_metrics(run.y_test, run.test_prob, run.task, threshold=run.threshold)
    return {"run": str(run.out), "model": run.cfg.model, "level": "brain", "task": run.task.name, "split": "test", "split_strategy": run.split_strategy,
            "train_time_s": round(run.seconds, 2), "best_epoch": run.best_epoch, "n_subjects": int(len(run.test_brains)),
            "groups_source": run.groups_source, "brain_level": m, "warnings": run.warnings}


def _mean(values) -> float | None:
    v = [x for x in values if x is not None]
    return round(float(np.mean(v)), 6) if v else None


def _fold_row(i: int, r: BrainRun) -> dict:
    """cv.json's row of fold ``i``: its test metrics (200 replicates) and validation metrics at the fold's threshold."""
    fm = brain_metrics(r.y_test, r.test_prob, r.task, threshold=r.threshold, n_boot=200)
    vm = brain_metrics(r.y_val, r.val_prob, r.task, threshold=r.threshold, n_boot=1)
    return {"fold": i, "n_brains": int(len(r.test_brains)), "n_val_brains": int(len(r.val_brains)), "best_epoch": r.best_epoch, "epochs_run": r.epochs_run,
            "threshold": r.threshold, "train_time_s": round(r.seconds, 2),
            "validation": {m: vm[m] for m in VALIDATION_METRICS if m in vm}, **{m: fm[m] for m in fm if m not in _FOLD_OMITTED}}


def brain_cv_summary(cv: BrainCV) -> dict:
    """The ``cv.json`` of a brain-level cross-validation: pooled out-of-fold metrics and one row per fold.

    Every brain is scored once, by the fold model that did not see it; a binary decision
    uses the threshold of that brain's fold (chosen on the fold's validation brains).

    Parameters
    ----------
    cv : BrainCV

    Returns
    -------
    dict
        ``model``, ``level`` ("brain"), ``task``, ``folds``, ``seed``, ``pooling``,
        ``slice_position``, ``frozen_encoder``, ``loss``, ``n_brains``,
        ``validation_mean`` (mean over folds of each :data:`VALIDATION_METRICS`, None where
        no fold has it), ``feature_seconds`` (s), ``wall_time_s`` (s), ``pooled``
        (:func:`brain_metrics` of all test brains, 1,000 replicates), ``per_fold`` and
        ``notes``.

    Raises
    ------
    ValueError
        A fold without test or validation brains.
    """
    cfg = cv.cfg
    per_fold = [_fold_row(i, r) for i, r in enumerate(cv.folds)]
    y = np.concatenate([r.y_test for r in cv.folds])
    p = np.concatenate([r.test_prob for r in cv.folds])
    t = np.concatenate([np.full(len(r.test_brains), r.threshold) for r in cv.folds])
    pooled = brain_metrics(y, p, cv.task, threshold=t)
    return {
        "model": cfg.model, "level": "brain", "task": cv.task.name, "folds": int(cfg.folds or 5), "seed": cfg.seed, "pooling": None if cfg.model.startswith("baseline:") else cfg.pooling,
        "slice_position": cfg.slice_position, "frozen_encoder": cfg.frozen_encoder, "loss": cfg.loss, "n_brains": int(len(y)),
        "validation_mean": {m: _mean([f["validation"].get(m) for f in per_fold]) for m in VALIDATION_METRICS},
        "feature_seconds": round(cv.feature_seconds, 2), "wall_time_s": round(cv.wall_seconds, 2), "pooled": pooled, "per_fold": per_fold,
        "notes": cv.notes,
    }
