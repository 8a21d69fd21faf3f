"""Subject-level results: slice predictions aggregated per subject, and bootstrap intervals over subjects.

Slices of one brain are not independent samples: neighbouring slices are nearly identical,
so a test set of 960 slices from 30 brains holds about 30 independent observations, not
960. Two consequences, both handled here:

* **Subject-level metrics.** :func:`aggregate_by_group` turns slice probabilities into one
  prediction per subject (scan group): the *mean of its slices' class probabilities*,
  predicted class = argmax of that mean. The subject's true class is its slices' class
  (the majority class if they disagree, with a warning). Metrics on these aggregated
  predictions answer "how well are *brains* classified".
* **Confidence intervals** over subjects: :mod:`alzmri.evaluation.bootstrap`.

References
----------
Yagis, E., et al. (2021). Effect of data leakage in brain MRI classification using 2D
convolutional neural networks. *Scientific Reports* 11, 22544.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from alzmri.data.classes import CLASS_NAMES
from alzmri.evaluation.bootstrap import metrics_with_ci

__all__ = ["AGGREGATION_RULE", "MixedLabelGroupWarning", "aggregate_by_group", "subject_level_metrics"]

#: How slice predictions become a subject prediction (written into metrics.json).
AGGREGATION_RULE = (
    "mean of the slices' class probabilities per subject (scan group); predicted class = argmax of the mean; "
    "true class = the slices' class (majority if mixed)"
)
#: Metrics that get bootstrap confidence intervals.


class MixedLabelGroupWarning(UserWarning):
    """A subject (group) whose slices carry different class labels."""


# --------------------------------------------------------------------------------------
# aggregation


def aggregate_by_group(y_true, y_prob, groups) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Aggregate slice predictions per subject: mean of the slices' probabilities.

    Parameters
    ----------
    y_true : array-like of shape (n_slices,)
        Integer class labels of the slices.
    y_prob : array-like of shape (n_slices, n_classes)
        Class probabilities of the slices (rows sum to 1).
    groups : array-like of shape (n_slices,)
        Subject (scan group) of every slice; any labels (ints, strings).

    Returns
    -------
    group_ids : ndarray of shape (n_groups,)
        The distinct values of ``groups``, sorted (dtype of ``groups``).
    y_true_group : ndarray of shape (n_groups,), dtype int64
        Each group's label: its slices' label; the most frequent one when they differ
        (ties: the lower label), with a :class:`MixedLabelGroupWarning`.
    y_prob_group : ndarray of shape (n_groups, n_classes), dtype float64
        Mean probability of each class over the group's slices (rows still sum to 1).

    Raises
    ------
    ValueError
        Shapes disagree (the message gives expected and actual shapes) or there are no
        slices.

    Examples
    --------
    >>> ids, y, p = aggregate_by_group([0, 0, 1], [[0.9, 0.1], [0.5, 0.5], [0.2, 0.8]], ["a", "a", "b"])
    >>> ids.tolist(), y.tolist(), p.round(2).tolist()
    (['a', 'b'], [0, 1], [[0.7, 0.3], [0.2, 0.8]])
    """
    y_true = np.asarray(y_true)
    y_prob = np.asarray(y_prob, dtype=np.float64)
    groups = np.asarray(groups)
    if y_true.ndim != 1:
        raise ValueError(f"y_true must have shape (n_slices,), got shape {y_true.shape}")
    n = len(y_true)
    if n == 0:
        raise ValueError("y_true is empty; need at least one slice")
    if y_prob.ndim != 2 or y_prob.shape[0] != n:
        raise ValueError(f"y_prob must have shape (n_slices, n_classes) = ({n}, n_classes), got shape {y_prob.shape}")
    if groups.shape != (n,):
        raise ValueError(f"groups must have shape (n_slices,) = ({n},), got shape {groups.shape}")
    y_true = y_true.astype(np.int64)
    ids, codes = np.unique(groups, return_inverse=True)
    codes = codes.reshape(-1)
    g = len(ids)
    size = np.bincount(codes, minlength=g).astype(np.float64)
    sums = np.zeros((g, y_prob.shape[1]), dtype=np.float64)
    np.add.at(sums, codes, y_prob)
    prob = sums / size[:, None]
    n_lab = max(int(y_true.max()) + 1, y_prob.shape[1])
    counts = np.zeros((g, n_lab), dtype=np.int64)
    np.add.at(counts, (codes, y_true), 1)
    label = counts.argmax(axis=1).astype(np.int64)
    mixed = np.flatnonzero((counts > 0).sum(axis=1) > 1)
    if len(mixed):
        first = ids[mixed[0]].item() if hasattr(ids[mixed[0]], "item") else ids[mixed[0]]
        warnings.warn(
            f"{len(mixed)} subject group(s) hold slices of more than one class (first: group {first!r}, "
            f"counts {counts[mixed[0]].tolist()}); each gets its majority class",
            MixedLabelGroupWarning,
            stacklevel=2,
        )
    return ids, label, prob


# --------------------------------------------------------------------------------------
# fast metric functions (same definitions as classification_metrics)


def subject_level_metrics(y_true, y_prob, groups, *, class_names: Sequence[str] = CLASS_NAMES, n_boot: int = 1000, seed: int = 0,
                          alpha: float = 0.05) -> dict:
    """Metrics of the per-subject aggregated predictions, with bootstrap intervals over subjects.

    Parameters
    ----------
    y_true, y_prob, groups, n_boot, seed, alpha
        As :func:`metrics_with_ci`: slice labels (n_slices,), probabilities
        (n_slices, n_classes), the subject of every slice (n_slices,); each subject is one
        resampling unit.
    class_names : sequence of str, default=CLASS_NAMES

    Returns
    -------
    dict
        ``aggregation`` (:data:`AGGREGATION_RULE`), ``n_subjects``, every key of
        :func:`alzmri.evaluation.metrics.classification_metrics` computed on the subjects
        (``n_samples`` = subjects), and ``confidence_intervals`` (:func:`metrics_with_ci`).
    """
    from alzmri.evaluation.metrics import classification_metrics

    ids, yg, pg = aggregate_by_group(y_true, y_prob, groups)
    m = classification_metrics(yg, pg, class_names=class_names)
    return {
        "aggregation": AGGREGATION_RULE,
        "n_subjects": int(len(ids)),
        **m,
        "confidence_intervals": metrics_with_ci(yg, pg, np.arange(len(ids)), n_boot=n_boot, seed=seed, alpha=alpha),
    }
