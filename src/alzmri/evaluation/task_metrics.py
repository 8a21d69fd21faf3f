"""Metrics of a task framing, at the level of the brain, with intervals resampling brains.

* Binary (NonDemented vs demented): ROC-AUC and PR-AUC of P(demented), and balanced
  accuracy, sensitivity and specificity at a decision threshold chosen on *validation*
  brains by Youden's J (:func:`alzmri.training.selection.choose_threshold`), never on the brains scored.
* Ordinal (3class, 4class): balanced accuracy, macro-F1, quadratic weighted kappa, mean
  absolute error in classes and macro one-vs-rest ROC-AUC of the argmax prediction; also
  the binary ROC-AUC of P(demented) = 1 - P(NonDemented), which every task has.

Intervals are percentile bootstrap intervals over brains, stratified by class (each row
of the inputs is one brain, see :func:`alzmri.evaluation.bootstrap.bootstrap_ci`).
:func:`paired_bootstrap_difference` compares two models scored on the same brains, drawing
the same brains for both in every replicate.

References
----------
Youden, W. J. (1950). Index for rating diagnostic tests. *Cancer* 3(1), 32-35.
Efron, B., & Tibshirani, R. J. (1993). *An Introduction to the Bootstrap*. Chapman & Hall/CRC.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score

from alzmri.data.tasks import Task, get_task
from alzmri.evaluation.bootstrap import _bootstrap_replicates, _finite, _percentile_interval, balanced_accuracy, macro_f1, quadratic_weighted_kappa
from alzmri.training.selection import THRESHOLD_RULE, demented_score, roc_auc_demented, roc_auc_ovr_macro

__all__ = [
    "brain_metrics",
    "mean_absolute_error_classes",
    "paired_bootstrap_difference",
]

def _binary_at(y_true, y_prob, threshold) -> dict[str, float | None]:
    """Balanced accuracy, sensitivity, specificity of "P(demented) >= threshold" (a float, or one per row)."""
    y = np.asarray(y_true) > 0
    pred = demented_score(y_prob) >= np.asarray(threshold, dtype=np.float64)
    sens = float(np.mean(pred[y])) if y.any() else None
    spec = float(np.mean(~pred[~y])) if (~y).any() else None
    bal = None if sens is None or spec is None else (sens + spec) / 2
    return {"balanced_accuracy": bal, "sensitivity": sens, "specificity": spec}


def mean_absolute_error_classes(y_true, y_prob) -> float | None:
    """Mean absolute difference between the true and the argmax class index, in classes."""
    y = np.asarray(y_true, dtype=np.int64)
    if len(y) == 0:
        return None
    return float(np.mean(np.abs(np.asarray(y_prob).argmax(axis=1) - y)))


def _pr_auc(y_true, y_prob) -> float | None:
    y = (np.asarray(y_true) > 0).astype(np.int64)
    if y.min(initial=1) == y.max(initial=0):
        return None
    return float(average_precision_score(y, demented_score(y_prob)))


def metric_functions(task: Task) -> dict[str, Any]:
    """name -> ``f(y_true, y_prob, thresholds) -> float or None`` for a task.

    ``thresholds`` (one per row) is the binary decision threshold on P(demented); the
    ordinal tasks' metrics ignore it (they use the argmax class).
    """
    fns: dict[str, Any] = {"roc_auc": lambda y, p, t: roc_auc_demented(y, p)}
    if task.is_binary:
        fns.update({
            "pr_auc": lambda y, p, t: _pr_auc(y, p),
            "balanced_accuracy": lambda y, p, t: _binary_at(y, p, t)["balanced_accuracy"],
            "sensitivity": lambda y, p, t: _binary_at(y, p, t)["sensitivity"],
            "specificity": lambda y, p, t: _binary_at(y, p, t)["specificity"],
        })
    else:
        for name, fn in (("balanced_accuracy", balanced_accuracy), ("macro_f1", macro_f1), ("quadratic_weighted_kappa", quadratic_weighted_kappa),
                         ("mae_classes", mean_absolute_error_classes), ("roc_auc_ovr_macro", roc_auc_ovr_macro)):
            fns[name] = lambda y, p, t, fn=fn: fn(y, p)
    return fns


def brain_metrics(y_true, y_prob, task: str | Task, *, threshold=None, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05) -> dict:
    """Brain-level metrics of a task with percentile bootstrap intervals over brains.

    Parameters
    ----------
    y_true : array-like of int, shape (n_brains,)
        Task labels (see :class:`alzmri.data.tasks.Task`).
    y_prob : array-like of shape (n_brains, n_classes)
        The task's class probabilities of each brain.
    task : str or Task
    threshold : float or array-like of shape (n_brains,), optional
        Binary decision threshold on P(demented), chosen on validation brains
        (:func:`alzmri.training.selection.choose_threshold`); one per brain when brains of several folds are pooled
        (each fold's own threshold); default 0.5.
    n_boot, seed, alpha
        Bootstrap replicates, seed, 1 - confidence.

    Returns
    -------
    dict
        ``task``, ``n_brains``, ``class_counts``, every metric of
        :func:`metric_functions` (``roc_auc`` is that of P(demented) for every task), ``ci``
        (metric -> [low, high] or None), ``threshold`` and ``threshold_rule`` (binary),
        ``ci_method``.

    Raises
    ------
    ValueError
        Shapes disagree or there are no brains.
    """
    task = task if isinstance(task, Task) else get_task(task)
    y_true = np.asarray(y_true, dtype=np.int64)
    y_prob = np.asarray(y_prob, dtype=np.float64)
    if y_prob.ndim != 2 or y_prob.shape[0] != len(y_true) or len(y_true) == 0:
        raise ValueError(f"y_true (n_brains,) and y_prob (n_brains, n_classes) must agree and be non-empty; got {y_true.shape}, {y_prob.shape}")
    thr = np.broadcast_to(np.asarray(0.5 if threshold is None else threshold, dtype=np.float64), (len(y_true),))
    fns = metric_functions(task)
    out: dict[str, Any] = {
        "task": task.name,
        "n_brains": int(len(y_true)),
        "class_counts": {c: int(np.sum(y_true == k)) for k, c in enumerate(task.class_names)},
    }
    for name, fn in fns.items():
        out[name] = _finite(fn(y_true, y_prob, thr))
    if task.is_binary:
        out["threshold"] = float(thr[0]) if np.all(thr == thr[0]) else {"min": float(thr.min()), "max": float(thr.max()), "per": "fold"}
        out["threshold_rule"] = THRESHOLD_RULE if threshold is not None else "fixed at 0.5 (no validation brains given)"
    _, replicates = _bootstrap_replicates(np.arange(len(y_true)), y_true, True, n_boot, seed)
    values: dict[str, list[float]] = {m: [] for m in fns}
    for idx in replicates:
        yt, yp, tt = y_true[idx], y_prob[idx], thr[idx]
        for m, fn in fns.items():
            v = _finite(fn(yt, yp, tt))
            if v is not None:
                values[m].append(v)
    out["ci"] = {m: (None if (iv := _percentile_interval(v, alpha)) is None else [round(iv[0], 6), round(iv[1], 6)]) for m, v in values.items()}
    out["ci_method"] = f"percentile bootstrap over brains, stratified by class, {int(n_boot)} replicates, seed {seed}, {100 * (1 - alpha):g} %"
    return out


def paired_bootstrap_difference(metric_fn, y_true, prob_a, prob_b, *, n_boot: int = 2000, seed: int = 0, alpha: float = 0.05) -> dict:
    """Difference ``metric(b) - metric(a)`` of two models scored on the same brains, with a paired interval.

    Every replicate draws brains with replacement (within each class) and evaluates both
    models on the *same* drawn brains, so the interval reflects the models' difference
    and not the brains' difficulty.

    Parameters
    ----------
    metric_fn : callable ``(y_true, y_prob) -> float or None``
    y_true : array-like of int, shape (n_brains,)
    prob_a, prob_b : array-like of shape (n_brains, n_classes)
        The two models' probabilities, rows aligned with ``y_true``.
    n_boot, seed, alpha
        Replicates, seed, 1 - confidence.

    Returns
    -------
    dict
        ``difference`` (b - a on all brains), ``ci_low``, ``ci_high``, ``n_valid``,
        ``p_b_better`` (share of replicates where b > a), ``excludes_zero`` (bool).

    Raises
    ------
    ValueError
        Shapes disagree.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    a = np.asarray(prob_a, dtype=np.float64)
    b = np.asarray(prob_b, dtype=np.float64)
    if a.shape != b.shape or a.shape[0] != len(y_true):
        raise ValueError(f"prob_a {a.shape} and prob_b {b.shape} must both have shape (n_brains, n_classes) with n_brains = {len(y_true)}")
    est_a, est_b = _finite(metric_fn(y_true, a)), _finite(metric_fn(y_true, b))
    diff = None if est_a is None or est_b is None else est_b - est_a
    _, replicates = _bootstrap_replicates(np.arange(len(y_true)), y_true, True, n_boot, seed)
    deltas = []
    for idx in replicates:
        va, vb = _finite(metric_fn(y_true[idx], a[idx])), _finite(metric_fn(y_true[idx], b[idx]))
        if va is not None and vb is not None:
            deltas.append(vb - va)
    lo, hi = _percentile_interval(deltas, alpha) or (None, None)
    return {
        "difference": diff,
        "ci_low": lo,
        "ci_high": hi,
        "n_valid": len(deltas),
        "p_b_better": float(np.mean(np.asarray(deltas) > 0)) if deltas else None,
        "excludes_zero": bool(lo is not None and (lo > 0 or hi < 0)),
    }
