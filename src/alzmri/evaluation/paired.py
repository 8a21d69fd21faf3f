"""Paired bootstrap comparison of several models scored on the same brains.

:func:`paired_comparison` extends the two-model
:func:`alzmri.evaluation.task_metrics.paired_bootstrap_difference` to any number of rows
(models, framings, ...): every bootstrap replicate draws one set of brains (with
replacement, within each class) and evaluates *every* row on those same brains, so each
row's difference to a reference row is judged against the spread of the paired
difference, not against the spread of the brains' difficulty.

The result is a plain JSON-serialisable dict of numbers; :mod:`alzmri.reporting.plots.forest`
draws it.

References
----------
Efron, B., & Tibshirani, R. J. (1993). *An Introduction to the Bootstrap*. Chapman &
Hall/CRC. Ch. 13 (percentile intervals) and ch. 16 (the paired design: resampling the
units, here brains, jointly for the quantities compared).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from alzmri.evaluation.checks import check_targets_and_probabilities
from alzmri.evaluation.bootstrap import _bootstrap_replicates, _finite, _percentile_interval

__all__ = ["VERDICTS", "paired_comparison"]

#: The verdicts a row can get (see :func:`paired_comparison`).
VERDICTS = ("reference", "better", "worse", "not distinguishable")


def _check_inputs(y_true, probs, reference, n_boot, alpha) -> tuple[np.ndarray, dict[str, np.ndarray], str]:
    y = np.asarray(y_true)
    if y.ndim != 1 or len(y) == 0:
        raise ValueError(f"y_true must be a non-empty array of shape (n_brains,); got shape {y.shape}")
    if not isinstance(probs, Mapping):
        raise TypeError(f"The 'probs' parameter of paired_comparison must be a mapping row name -> (n_brains, n_classes) array. Got {type(probs).__name__} instead.")
    if len(probs) == 0:
        raise ValueError("The 'probs' parameter of paired_comparison must be a non-empty mapping row name -> (n_brains, n_classes) array. Got an empty mapping instead.")
    rows: dict[str, np.ndarray] = {}
    expected: tuple[int, ...] | None = None
    for name, p in probs.items():
        if not isinstance(name, str):
            raise TypeError(f"Row names in 'probs' must be str; got {name!r} ({type(name).__name__})")
        arr = np.asarray(p, dtype=np.float64)
        if expected is None:
            expected = (len(y), arr.shape[1] if arr.ndim == 2 else -1)
        if arr.ndim != 2 or arr.shape != expected:
            want = f"({len(y)}, n_classes)" if expected[1] < 0 else str(expected)
            raise ValueError(f"probs[{name!r}] must have shape {want} (n_brains = len(y_true), n_classes as the first row); got shape {arr.shape}")
        y_checked, rows[name] = check_targets_and_probabilities(y, arr)  # labels in range, finite rows summing to 1
    names = list(rows)
    ref = names[0] if reference is None else reference
    if ref not in rows:
        close = difflib.get_close_matches(str(ref), names, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"The 'reference' parameter of paired_comparison must be one of the rows {names}. Got {reference!r} instead.{hint}")
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise ValueError(f"The 'n_boot' parameter of paired_comparison must be an int >= 1. Got {n_boot!r} instead.")
    if not (isinstance(alpha, (int, float, np.floating)) and 0 < alpha < 1):
        raise ValueError(f"The 'alpha' parameter of paired_comparison must be a float in (0, 1). Got {alpha!r} instead.")
    return y_checked, rows, ref


def _interval(values: np.ndarray, alpha: float) -> list[float] | None:
    iv = _percentile_interval(list(values), alpha)
    return None if iv is None else [iv[0], iv[1]]


def paired_comparison(
    y_true: ArrayLike,
    probs: Mapping[str, ArrayLike],
    metric_fn: Callable[[np.ndarray, np.ndarray], float | None],
    *,
    reference: str | None = None,
    n_boot: int = 2000,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict:
    """Compare several models scored on the same brains with a paired, stratified bootstrap.

    Each of the ``n_boot`` replicates draws one set of brain indices with replacement
    within each class (the stratified brain bootstrap of
    :func:`alzmri.evaluation.task_metrics.brain_metrics`, from
    ``np.random.default_rng(seed)``) and evaluates every row on those same brains. A
    replicate where any row's metric is undefined (None or non-finite) is skipped for all
    rows, so every statistic below uses the same ``n_valid`` replicates.

    Parameters
    ----------
    y_true : array-like of int, shape (n_brains,)
        Class labels of the brains (non-negative; the bootstrap strata).
    probs : mapping of str to array-like of shape (n_brains, n_classes), dtype float
        Ordered row name -> that row's class probabilities, rows aligned with ``y_true``;
        every row has the same shape.
    metric_fn : callable ``(y_true, y_prob) -> float or None``
        Higher is better (e.g. :func:`alzmri.training.selection.roc_auc_demented`);
        None or a non-finite value means undefined on that draw.
    reference : str, default=None
        The row the others are compared with; the first row when None.
    n_boot : int, default=2000
        Bootstrap replicates.
    seed : int, default=0
        Seed of the replicates (the same seed draws the same brains as
        :func:`~alzmri.evaluation.task_metrics.paired_bootstrap_difference`).
    alpha : float, default=0.05
        1 - confidence of the percentile intervals.

    Returns
    -------
    dict
        JSON-serialisable, in the metric's units::

            {"reference": str, "n_brains": int, "n_boot": int, "n_valid": int,
             "alpha": float, "ci_method": str,
             "rows": {name: {"estimate": float | None,        # metric on all brains
                             "ci": [lo, hi] | None,           # marginal percentile interval
                             "difference": float | None,      # estimate - reference estimate
                             "difference_ci": [lo, hi] | None,  # percentiles of the paired
                                                              # per-replicate differences
                             "verdict": str,                  # one of VERDICTS
                             "p_best": float | None}}}        # share of replicates where
                                                              # this row is highest

        Rows keep the input order. The reference row's ``difference`` is exactly 0.0 and
        its verdict ``"reference"``. A row is ``"better"`` when its ``difference_ci`` lies
        above 0, ``"worse"`` when below 0, else ``"not distinguishable"`` (also when no
        replicate is valid). In ``p_best`` rows tied for the highest metric share the
        replicate equally, so ``p_best`` sums to 1 over the rows. A row with predictions
        identical to the reference's gets a difference and interval of exactly 0.0.

    Raises
    ------
    ValueError
        ``y_true`` is not a non-empty 1-D integer array; ``probs`` is empty or a row's
        shape differs from ``(n_brains, n_classes)``; ``reference`` is not a row;
        ``n_boot`` < 1 or ``alpha`` outside (0, 1).
    TypeError
        ``probs`` is not a mapping, or a row name is not a str.

    See Also
    --------
    alzmri.evaluation.task_metrics.paired_bootstrap_difference : the two-model case.
    alzmri.reporting.plots.forest_figure : draws the result.

    Notes
    -----
    The per-replicate difference is computed from the two rows' metric values of that
    replicate (paired design), so its interval is usually much narrower than what the two
    marginal intervals suggest when the rows' errors fall on the same brains.

    References
    ----------
    Efron, B., & Tibshirani, R. J. (1993). *An Introduction to the Bootstrap*. Chapman &
    Hall/CRC, ch. 13 and 16.

    Examples
    --------
    >>> import numpy as np
    >>> from alzmri.training.selection import roc_auc_demented
    >>> y = np.array([0, 0, 0, 1, 1, 1])
    >>> two = lambda p: np.stack([1 - np.asarray(p), np.asarray(p)], axis=1)
    >>> res = paired_comparison(y, {"a": two([.1, .2, .3, .7, .8, .9]), "b": two([.5] * 6)},
    ...                         roc_auc_demented, n_boot=50)
    >>> res["rows"]["a"]["verdict"], res["rows"]["b"]["estimate"]
    ('reference', 0.5)
    """
    y, rows, ref = _check_inputs(y_true, probs, reference, n_boot, alpha)
    names = list(rows)
    r = names.index(ref)
    estimates = [_finite(metric_fn(y, p)) for p in rows.values()]

    _, replicates = _bootstrap_replicates(np.arange(len(y)), y, True, n_boot, seed)
    kept: list[list[float]] = []
    for idx in replicates:
        yi = y[idx]
        vals = []
        for p in rows.values():
            v = _finite(metric_fn(yi, p[idx]))
            if v is None:
                break
            vals.append(v)
        else:
            kept.append(vals)
    values = np.asarray(kept, dtype=np.float64).reshape(len(kept), len(names))  # (n_valid, n_rows)
    deltas = values - values[:, [r]]  # x - x is exactly 0.0: identical rows give exact zeros
    top = values == values.max(axis=1, keepdims=True, initial=-np.inf)  # ties share the replicate equally
    p_best = (top / top.sum(axis=1, keepdims=True)).mean(axis=0) if len(values) else None

    out_rows: dict[str, dict[str, Any]] = {}
    for j, name in enumerate(names):
        diff_ci = _interval(deltas[:, j], alpha)
        if j == r:
            diff, verdict = 0.0, "reference"
        else:
            diff = None if estimates[j] is None or estimates[r] is None else estimates[j] - estimates[r]
            verdict = "not distinguishable"
            if diff_ci is not None and diff_ci[0] > 0:
                verdict = "better"
            elif diff_ci is not None and diff_ci[1] < 0:
                verdict = "worse"
        out_rows[name] = {
            "estimate": estimates[j],
            "ci": _interval(values[:, j], alpha),
            "difference": diff,
            "difference_ci": diff_ci,
            "verdict": verdict,
            "p_best": None if p_best is None else float(p_best[j]),
        }
    return {
        "reference": ref,
        "n_brains": len(y),
        "n_boot": int(n_boot),
        "n_valid": len(kept),
        "alpha": float(alpha),
        "ci_method": (
            f"paired percentile bootstrap over brains, stratified by class: every replicate draws the same brains for all rows; "
            f"{int(n_boot)} replicates ({len(kept)} with every row defined), seed {seed}, {100 * (1 - alpha):g} %"
        ),
        "rows": out_rows,
    }
