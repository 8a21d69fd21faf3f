"""Bootstrap intervals over subjects, and the vectorised metric functions they resample.

:func:`bootstrap_ci` resamples *subjects* with replacement (a cluster bootstrap), each
resampled subject bringing all its slices, so the interval reflects the number of brains
rather than the number of slices. Resampling is done within each class (stratified by the
subject's class), so every replicate keeps the test set's class composition; intervals are
percentile intervals. A class with a single test subject contributes no between-subject
variation: with the 2 ModerateDemented brains of the public sets, that class's
uncertainty is not captured by any interval.

Metric functions (:data:`METRIC_FUNCTIONS`) take ``(y_true, y_prob)`` and compute the same
quantities as :func:`alzmri.evaluation.metrics.classification_metrics` (balanced accuracy,
macro-F1, quadratic weighted kappa, macro one-vs-rest ROC-AUC), vectorised for speed.

References
----------
Efron, B., & Tibshirani, R. J. (1993). *An Introduction to the Bootstrap*. Chapman &
Hall/CRC (percentile intervals, ch. 13; resampling of independent units).
Field, C. A., & Welsh, A. H. (2007). Bootstrapping clustered data. *Journal of the Royal
Statistical Society B* 69(3), 369-390.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from alzmri.training.selection import roc_auc_ovr_macro

__all__ = [
    "CI_METRICS",
    "METRIC_FUNCTIONS",
    "accuracy",
    "balanced_accuracy",
    "bootstrap_ci",
    "macro_f1",
    "metrics_with_ci",
    "quadratic_weighted_kappa",
]

CI_METRICS = ("balanced_accuracy", "macro_f1", "roc_auc_ovr_macro", "quadratic_weighted_kappa", "accuracy")


def _confusion(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> np.ndarray:
    return np.bincount(y_true * k + y_pred, minlength=k * k).reshape(k, k).astype(np.float64)


def balanced_accuracy(y_true, y_prob) -> float | None:
    """Mean recall over the classes present in ``y_true`` (predicted class = argmax)."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_prob = np.asarray(y_prob)
    cm = _confusion(y_true, y_prob.argmax(axis=1), y_prob.shape[1])
    support = cm.sum(axis=1)
    present = support > 0
    if not present.any():
        return None
    return float(np.mean(np.diag(cm)[present] / support[present]))


def accuracy(y_true, y_prob) -> float | None:
    """Share of correct predictions (predicted class = argmax)."""
    y_true = np.asarray(y_true, dtype=np.int64)
    if len(y_true) == 0:
        return None
    return float(np.mean(np.asarray(y_prob).argmax(axis=1) == y_true))


def macro_f1(y_true, y_prob) -> float | None:
    """Unweighted mean F1 over the classes in ``y_true`` or the predictions (as scikit-learn with ``zero_division=nan``)."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_prob = np.asarray(y_prob)
    cm = _confusion(y_true, y_prob.argmax(axis=1), y_prob.shape[1])
    tp = np.diag(cm)
    denom = cm.sum(axis=0) + cm.sum(axis=1)  # 2TP + FP + FN
    ok = denom > 0
    if not ok.any():
        return None
    return float(np.mean(2 * tp[ok] / denom[ok]))


def quadratic_weighted_kappa(y_true, y_prob) -> float | None:
    """Cohen's kappa with quadratic weights over the ordinal labels (None where undefined)."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_prob = np.asarray(y_prob)
    k = y_prob.shape[1]
    cm = _confusion(y_true, y_prob.argmax(axis=1), k)
    n = cm.sum()
    if n == 0:
        return None
    i = np.arange(k)
    w = (i[:, None] - i[None, :]) ** 2 / max((k - 1) ** 2, 1)
    expected = np.outer(cm.sum(axis=1), cm.sum(axis=0)) / n
    den = float((w * expected).sum())
    if den == 0:
        return None
    return float(1.0 - (w * cm).sum() / den)


#: name -> ``f(y_true, y_prob) -> float or None``.
METRIC_FUNCTIONS: dict[str, Callable[[Any, Any], float | None]] = {
    "balanced_accuracy": balanced_accuracy,
    "macro_f1": macro_f1,
    "roc_auc_ovr_macro": roc_auc_ovr_macro,
    "quadratic_weighted_kappa": quadratic_weighted_kappa,
    "accuracy": accuracy,
}


# --------------------------------------------------------------------------------------
# cluster bootstrap


def _finite(v) -> float | None:
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def _resample_plan(groups: np.ndarray, y_true: np.ndarray, stratify: bool) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per stratum: the group codes in it; and per group code: its slice indices."""
    _, codes = np.unique(groups, return_inverse=True)
    codes = codes.reshape(-1)
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(codes.max() + 2))
    members = [order[bounds[g] : bounds[g + 1]] for g in range(len(bounds) - 1)]
    if stratify:
        counts = np.zeros((len(members), int(y_true.max()) + 1), dtype=np.int64)
        np.add.at(counts, (codes, y_true), 1)
        glab = counts.argmax(axis=1)
        strata = [np.flatnonzero(glab == c) for c in np.unique(glab)]
    else:
        strata = [np.arange(len(members))]
    return strata, members


def _bootstrap_replicates(groups: np.ndarray, y_true: np.ndarray, stratify: bool, n_boot: int, seed: int):
    """``(n_groups, iterator)``: the iterator yields ``n_boot`` slice-index arrays, each
    one cluster-bootstrap replicate (groups drawn with replacement, within each class
    stratum when ``stratify``), from ``np.random.default_rng(seed)``."""
    strata, members = _resample_plan(groups, y_true, stratify)
    rng = np.random.default_rng(seed)

    def draws():
        for _ in range(int(n_boot)):
            drawn = np.concatenate([rng.choice(s, size=len(s), replace=True) for s in strata])
            yield np.concatenate([members[g] for g in drawn])

    return len(members), draws()


def _percentile_interval(values: list[float], alpha: float) -> tuple[float, float] | None:
    """The ``(alpha/2, 1 - alpha/2)`` percentiles of ``values``, or None when empty."""
    if not values:
        return None
    lo, hi = np.percentile(values, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(lo), float(hi)


def bootstrap_ci(
    metric_fn: Callable[[np.ndarray, np.ndarray], float | None],
    y_true,
    y_prob,
    groups,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    *,
    stratify: bool = True,
) -> dict:
    """Percentile bootstrap confidence interval of a metric, resampling subjects (groups).

    Each replicate draws groups with replacement (within each class of group when
    ``stratify``; as many as there are) and evaluates ``metric_fn`` on all slices of the
    drawn groups, a group drawn twice counting twice (cluster bootstrap). Replicates where
    the metric is undefined (None or NaN) are skipped and counted.

    Parameters
    ----------
    metric_fn : callable ``(y_true, y_prob) -> float or None``
        E.g. a value of :data:`METRIC_FUNCTIONS`.
    y_true : array-like of shape (n_slices,)
        Integer class labels.
    y_prob : array-like of shape (n_slices, n_classes)
        Class probabilities.
    groups : array-like of shape (n_slices,)
        Subject of every slice. Pass ``np.arange(n)`` for an ordinary (slice) bootstrap;
        to bootstrap subject-level metrics, pass the aggregated predictions with one
        group per row.
    n_boot : int, default=1000
        Replicates.
    seed : int, default=0
        Seed of ``numpy.random.default_rng``; the same inputs and seed give the same
        interval.
    alpha : float, default=0.05
        1 - confidence level (0.05: a 95 % interval from the 2.5th and 97.5th percentiles).
    stratify : bool, default=True
        Resample groups within each class of group (majority label), so every replicate
        keeps the class composition. False: resample all groups together.

    Returns
    -------
    dict
        ``estimate`` (the metric on the data, float or None), ``ci_low``, ``ci_high``
        (float or None when no replicate was defined), ``confidence`` (1 - alpha),
        ``n_boot``, ``n_valid`` (defined replicates), ``n_groups``, ``resampled``
        (``"groups stratified by class"`` or ``"groups"``), ``method``
        (``"percentile"``). Plain data, JSON-serialisable.

    Raises
    ------
    ValueError
        Shapes disagree, ``n_boot < 1`` or ``alpha`` outside (0, 1).

    Notes
    -----
    Resampling slices instead of subjects treats 32 nearly identical slices of one brain
    as 32 independent observations and gives intervals several times too narrow. The
    percentile method follows Efron & Tibshirani (1993, ch. 13); resampling whole clusters
    follows Field & Welsh (2007).

    References
    ----------
    Efron, B., & Tibshirani, R. J. (1993). *An Introduction to the Bootstrap*. Chapman & Hall/CRC.
    Field, C. A., & Welsh, A. H. (2007). Bootstrapping clustered data. *JRSS B* 69(3), 369-390.
    """
    y_true = np.asarray(y_true).astype(np.int64)
    y_prob = np.asarray(y_prob, dtype=np.float64)
    groups = np.asarray(groups)
    n = len(y_true)
    if y_prob.ndim != 2 or y_prob.shape[0] != n or groups.shape != (n,):
        raise ValueError(
            f"y_true (n,), y_prob (n, n_classes) and groups (n,) must agree; got {y_true.shape}, {y_prob.shape}, {groups.shape}"
        )
    if n == 0:
        raise ValueError("no samples to bootstrap")
    if int(n_boot) < 1:
        raise ValueError(f"n_boot must be at least 1; got {n_boot}")
    if not (0.0 < float(alpha) < 1.0):
        raise ValueError(f"alpha must be in (0, 1); got {alpha}")
    estimate = _finite(metric_fn(y_true, y_prob))
    n_groups, replicates = _bootstrap_replicates(groups, y_true, stratify, n_boot, seed)
    values = []
    for idx in replicates:
        v = _finite(metric_fn(y_true[idx], y_prob[idx]))
        if v is not None:
            values.append(v)
    lo, hi = _percentile_interval(values, alpha) or (None, None)
    return {
        "estimate": estimate,
        "ci_low": lo,
        "ci_high": hi,
        "confidence": round(1.0 - float(alpha), 6),
        "n_boot": int(n_boot),
        "n_valid": len(values),
        "n_groups": n_groups,
        "resampled": "groups stratified by class" if stratify else "groups",
        "method": "percentile",
    }


def metrics_with_ci(
    y_true,
    y_prob,
    groups,
    *,
    metrics: Sequence[str] = CI_METRICS,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict:
    """Bootstrap intervals (resampling subjects) of several metrics at once.

    Parameters
    ----------
    y_true : array-like of shape (n_slices,)
    y_prob : array-like of shape (n_slices, n_classes)
    groups : array-like of shape (n_slices,)
    metrics : sequence of str, default=CI_METRICS
        Keys of :data:`METRIC_FUNCTIONS`.
    n_boot, seed, alpha
        As :func:`bootstrap_ci`.

    Returns
    -------
    dict
        ``method`` (one sentence), ``n_boot``, ``confidence``, ``n_groups``, and per
        metric ``[low, high]`` (None where undefined).
    """
    y_true = np.asarray(y_true).astype(np.int64)
    y_prob = np.asarray(y_prob, dtype=np.float64)
    groups = np.asarray(groups)
    n_groups, replicates = _bootstrap_replicates(groups, y_true, True, n_boot, seed)
    fns = {m: METRIC_FUNCTIONS[m] for m in metrics}
    values: dict[str, list[float]] = {m: [] for m in fns}
    for idx in replicates:  # one set of replicates shared by all metrics
        yt, yp = y_true[idx], y_prob[idx]
        for m, fn in fns.items():
            v = _finite(fn(yt, yp))
            if v is not None:
                values[m].append(v)
    out: dict[str, Any] = {
        "method": f"percentile cluster bootstrap: subjects resampled with replacement within each class, {int(n_boot)} replicates, seed {seed}",
        "n_boot": int(n_boot),
        "confidence": round(1.0 - float(alpha), 6),
        "n_groups": n_groups,
    }
    for m, vals in values.items():
        interval = _percentile_interval(vals, alpha)
        out[m] = None if interval is None else [round(interval[0], 6), round(interval[1], 6)]
    return out
