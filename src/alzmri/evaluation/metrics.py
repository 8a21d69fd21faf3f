"""Classification metrics for the ordinal severity classes, built on scikit-learn.

The main entry point is :func:`classification_metrics`, which turns integer labels and
predicted class probabilities into a JSON-serialisable dict (plain ``int``/``float``/
``list``/``dict``; undefined values such as the sensitivity of a class absent from
``y_true`` are ``None``, never NaN).

Conventions follow scikit-learn: ``*_score`` functions are "higher is better", confusion
matrices have true classes on rows and predicted classes on columns, and the predicted
class of a sample is the ``argmax`` of its probability row.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    cohen_kappa_score,
    confusion_matrix,
    f1_score,
    multilabel_confusion_matrix,
    precision_recall_fscore_support,
    roc_auc_score,
)

from alzmri.data.classes import CLASS_NAMES
from alzmri.evaluation.checks import check_targets_and_probabilities

__all__ = [
    "classification_metrics",
    "roc_auc_ovr_scores",
    "specificity_score",
]


def specificity_score(
    y_true: Any,
    y_pred: Any,
    *,
    labels: Sequence[int] | np.ndarray | None = None,
    zero_division: float = np.nan,
) -> np.ndarray:
    """Per-class specificity (true negative rate), one-vs-rest.

    For each class ``k``: ``TN / (TN + FP)``, where negatives are the samples whose true
    class is not ``k``. Counts come from
    :func:`sklearn.metrics.multilabel_confusion_matrix`.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True integer labels.
    y_pred : array-like of shape (n_samples,)
        Predicted integer labels.
    labels : array-like of shape (n_labels,), default=None
        Classes to report, in this order. ``None`` means the sorted union of the labels
        in ``y_true`` and ``y_pred``.
    zero_division : float, default=np.nan
        Value for a class with no negatives (every sample belongs to it), where the
        specificity is undefined.

    Returns
    -------
    specificity : ndarray of shape (n_labels,), dtype float64
        Specificity of each class in ``labels``.
    """
    mcm = multilabel_confusion_matrix(y_true, y_pred, labels=labels)
    tn = mcm[:, 0, 0].astype(np.float64)
    fp = mcm[:, 0, 1].astype(np.float64)
    negatives = tn + fp
    with np.errstate(divide="ignore", invalid="ignore"):
        spec = np.where(negatives > 0, tn / np.where(negatives > 0, negatives, 1.0), zero_division)
    return spec.astype(np.float64)


def roc_auc_ovr_scores(y_true: Any, y_prob: Any) -> np.ndarray:
    """One-vs-rest ROC-AUC of each class, NaN where undefined.

    The AUC of class ``k`` ranks ``y_prob[:, k]`` of samples of class ``k`` against all
    other samples. It is undefined (NaN) when ``y_true`` has no sample of class ``k`` or
    only samples of class ``k``.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Integer labels in ``[0, n_classes)``.
    y_prob : array-like of shape (n_samples, n_classes)
        Class probabilities (or any per-class scores).

    Returns
    -------
    auc : ndarray of shape (n_classes,), dtype float64
        ROC-AUC per class; NaN for classes without both positives and negatives.
    """
    y_true = np.asarray(y_true)
    y_prob = np.asarray(y_prob, dtype=np.float64)
    n_classes = y_prob.shape[1]
    onehot = np.eye(n_classes, dtype=np.int64)[y_true]
    positives = onehot.sum(axis=0)
    valid = (positives > 0) & (positives < y_true.shape[0])
    auc = np.full(n_classes, np.nan)
    for k in np.flatnonzero(valid):
        auc[k] = roc_auc_score(onehot[:, k], y_prob[:, k])
    return auc


def _json_float(x: Any) -> float | None:
    """Python float, or ``None`` for NaN/inf/None."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def classification_metrics(
    y_true: Any,
    y_prob: Any,
    *,
    class_names: Sequence[str] = CLASS_NAMES,
) -> dict[str, Any]:
    """Summary metrics of a multi-class classifier, as a JSON-serialisable dict.

    The predicted class of each sample is ``argmax(y_prob[i])``. All ``len(class_names)``
    classes are reported, including classes absent from ``y_true``; metrics that are
    undefined for such a class (its sensitivity, its ROC-AUC) are ``None``.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True integer labels in ``[0, n_classes)``, the index into ``class_names``.
    y_prob : array-like of shape (n_samples, n_classes)
        Predicted class probabilities (float); rows sum to 1.
    class_names : sequence of str, default=CLASS_NAMES
        Name of each class, in label order; ``n_classes = len(class_names)``.

    Returns
    -------
    metrics : dict
        With keys:

        - ``n_samples`` (int)
        - ``class_names`` (list of str, the order of rows/columns below)
        - ``accuracy`` (float)
        - ``balanced_accuracy`` (float): mean sensitivity over the classes present in
          ``y_true`` (:func:`sklearn.metrics.balanced_accuracy_score`).
        - ``macro_f1`` (float or None): unweighted mean F1 over the classes that occur
          in ``y_true`` or in the predictions; a class absent from ``y_true`` but
          predicted counts with F1 = 0.
        - ``quadratic_weighted_kappa`` (float or None): Cohen's kappa with quadratic
          weights over the ordinal labels; ``None`` when undefined (e.g. a single
          class in both ``y_true`` and predictions).
        - ``roc_auc_ovr_macro`` (float or None): mean one-vs-rest ROC-AUC over the
          classes with both positives and negatives in ``y_true``; ``None`` when fewer
          than 2 classes are present.
        - ``confusion_matrix`` (list of list of int, shape (n_classes, n_classes)):
          rows = true class, columns = predicted class.
        - ``confusion_matrix_normalized`` (list of list of float): each row divided by
          its total; rows of classes without samples are all 0.
        - ``per_class`` (dict): class name -> dict with ``support`` (int),
          ``sensitivity`` (recall), ``specificity``, ``precision``, ``f1`` and
          ``roc_auc``; each float or ``None`` where undefined (sensitivity without
          samples, precision without predictions, specificity without negatives).

    Raises
    ------
    ValueError
        If shapes do not match (the message gives the expected and actual shapes), a
        label is out of range, or ``y_prob`` rows are not probabilities.
    """
    class_names = [str(c) for c in class_names]
    n_classes = len(class_names)
    if n_classes < 2:
        raise ValueError(f"need at least 2 class names, got {n_classes}: {class_names}")
    y_true, y_prob = check_targets_and_probabilities(y_true, y_prob, n_classes)
    y_pred = np.argmax(y_prob, axis=1)
    labels = np.arange(n_classes)

    with warnings.catch_warnings():
        # Absent classes are expected here; they are reported as None instead.
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        warnings.filterwarnings("ignore", message="A single label was found")
        warnings.filterwarnings("ignore", category=UndefinedMetricWarning)
        warnings.filterwarnings("ignore", category=RuntimeWarning)

        accuracy = accuracy_score(y_true, y_pred)
        balanced_accuracy = balanced_accuracy_score(y_true, y_pred)
        macro_f1 = f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=np.nan)
        qwk = cohen_kappa_score(y_true, y_pred, labels=labels, weights="quadratic")
        precision, recall, f1, support = precision_recall_fscore_support(
            y_true, y_pred, labels=labels, zero_division=np.nan
        )
        specificity = specificity_score(y_true, y_pred, labels=labels)
        cm = confusion_matrix(y_true, y_pred, labels=labels)
        cm_norm = confusion_matrix(y_true, y_pred, labels=labels, normalize="true")
        cm_norm = np.nan_to_num(cm_norm, nan=0.0)  # rows without samples -> 0
        auc = roc_auc_ovr_scores(y_true, y_prob)

    defined_auc = auc[~np.isnan(auc)]
    roc_auc_macro = float(np.mean(defined_auc)) if defined_auc.size >= 2 else None

    per_class: dict[str, dict[str, Any]] = {}
    for k, name in enumerate(class_names):
        per_class[name] = {
            "support": int(support[k]),
            "sensitivity": _json_float(recall[k]),
            "specificity": _json_float(specificity[k]),
            "precision": _json_float(precision[k]),
            "f1": _json_float(f1[k]),
            "roc_auc": _json_float(auc[k]),
        }

    return {
        "n_samples": int(y_true.shape[0]),
        "class_names": class_names,
        "accuracy": _json_float(accuracy),
        "balanced_accuracy": _json_float(balanced_accuracy),
        "macro_f1": _json_float(macro_f1),
        "quadratic_weighted_kappa": _json_float(qwk),
        "roc_auc_ovr_macro": _json_float(roc_auc_macro),
        "confusion_matrix": [[int(v) for v in row] for row in cm],
        "confusion_matrix_normalized": [[float(v) for v in row] for row in cm_norm],
        "per_class": per_class,
    }
