"""What brain-level training decides on validation brains: the early-stopping score and the decision threshold.

* :func:`roc_auc_demented`: ROC-AUC of P(demented) = 1 - P(NonDemented), the validation
  score of a binary brain-level model (:class:`alzmri.training.brain_module.BrainModule`);
  it rests on :func:`roc_auc_ovr_macro`, the rank ROC-AUC that evaluation reports too.
* :func:`choose_threshold`: the binary decision threshold on P(demented) maximising
  Youden's J on the validation brains (:data:`THRESHOLD_RULE`), saved with the model and
  applied unchanged to the test brains.

Evaluation (:mod:`alzmri.evaluation.task_metrics`) imports these functions from here, so
that a score is computed one way whether it selects a model or reports one.

References
----------
Youden, W. J. (1950). Index for rating diagnostic tests. *Cancer* 3(1), 32-35.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata
from sklearn.metrics import roc_curve

__all__ = ["THRESHOLD_RULE", "choose_threshold", "demented_score", "roc_auc_demented", "roc_auc_ovr_macro"]

#: How the binary decision threshold is chosen (written next to the metrics).
THRESHOLD_RULE = "Youden's J (sensitivity + specificity - 1) maximised on the validation brains; 0.5 where no validation brains"


def demented_score(y_prob) -> np.ndarray:
    """P(demented) = 1 - P(NonDemented) of every row, for any task's probabilities.

    Parameters
    ----------
    y_prob : array-like of shape (n, n_classes), class 0 = NonDemented

    Returns
    -------
    ndarray of shape (n,), dtype float64
    """
    y_prob = np.asarray(y_prob, dtype=np.float64)
    return 1.0 - y_prob[:, 0]


def roc_auc_ovr_macro(y_true, y_prob) -> float | None:
    """Mean one-vs-rest ROC-AUC over classes with positives and negatives (None if fewer than 2)."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_prob = np.asarray(y_prob, dtype=np.float64)
    n = len(y_true)
    aucs = []
    for c in range(y_prob.shape[1]):
        pos = y_true == c
        n_pos = int(pos.sum())
        if n_pos == 0 or n_pos == n:
            continue
        r = rankdata(y_prob[:, c])
        aucs.append((r[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * (n - n_pos)))
    if len(aucs) < 2:
        return None
    return float(np.mean(aucs))


def roc_auc_demented(y_true, y_prob) -> float | None:
    """ROC-AUC of P(demented) against the truth "class > 0" (None with a single class present).

    ``y_true`` holds task labels of any task (0 = NonDemented); ``y_prob`` its probabilities.
    """
    y = (np.asarray(y_true) > 0).astype(np.int64)
    if y.min(initial=1) == y.max(initial=0):
        return None
    s = demented_score(y_prob)
    return roc_auc_ovr_macro(y, np.stack([1 - s, s], axis=1))


def choose_threshold(y_true, y_prob) -> float:
    """Decision threshold on P(demented) maximising Youden's J on these (validation) brains.

    Parameters
    ----------
    y_true : array-like of int, shape (n,)
        Task labels (0 = NonDemented, anything else demented).
    y_prob : array-like of shape (n, n_classes)

    Returns
    -------
    float
        The threshold in [0, 1] (predict demented when P(demented) >= threshold): the
        midpoint between the score that maximises J and the next lower score, so that it
        does not sit exactly on a validation brain; among equal J, the highest such score.
        0.5 when ``y_true`` holds one class.
    """
    y = (np.asarray(y_true) > 0).astype(np.int64)
    s = demented_score(y_prob)
    if len(y) == 0 or y.min() == y.max():
        return 0.5
    fpr, tpr, thr = roc_curve(y, s)
    j = tpr - fpr
    best = int(np.flatnonzero(j >= j.max() - 1e-9)[0])  # ties (up to rounding): the highest threshold, the more specific rule
    t = float(thr[best])
    if not np.isfinite(t):
        return 1.0
    lower = s[s < t]
    return float((t + lower.max()) / 2) if len(lower) else t
