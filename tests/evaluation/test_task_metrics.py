"""Brain-level task metrics: binary and ordinal measures, the paired bootstrap."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, cohen_kappa_score, roc_auc_score

from alzmri.evaluation.task_metrics import brain_metrics, paired_bootstrap_difference
from alzmri.training.selection import THRESHOLD_RULE, roc_auc_demented, roc_auc_ovr_macro


def _binary(p):
    p = np.asarray(p, dtype=float)
    return np.stack([1 - p, p], axis=1)


def test_binary_metrics_at_the_threshold_and_against_scikit_learn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 60)
    p = np.clip(0.35 * y + rng.random(60) * 0.65, 0, 1)
    m = brain_metrics(y, _binary(p), "binary", threshold=0.5, n_boot=300, seed=1)
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, p))
    assert m["pr_auc"] == pytest.approx(average_precision_score(y, p))
    pred = p >= 0.5
    assert m["sensitivity"] == pytest.approx(pred[y == 1].mean())
    assert m["specificity"] == pytest.approx((~pred[y == 0]).mean())
    assert m["balanced_accuracy"] == pytest.approx((m["sensitivity"] + m["specificity"]) / 2)
    lo, hi = m["ci"]["roc_auc"]
    assert lo < m["roc_auc"] < hi and hi - lo < 0.4
    # one threshold per brain (pooled folds): each brain judged by its own fold's threshold
    thr = np.where(np.arange(60) < 30, 0.3, 0.7)
    m2 = brain_metrics(y, _binary(p), "binary", threshold=thr, n_boot=10)
    pred2 = p >= thr
    assert m2["sensitivity"] == pytest.approx(pred2[y == 1].mean())
    assert m2["threshold"] == {"min": 0.3, "max": 0.7, "per": "fold"}
    assert m2["threshold_rule"] == THRESHOLD_RULE


def test_ordinal_metrics_match_scikit_learn():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 4, 80)
    prob = rng.dirichlet(np.ones(4), 80) + np.eye(4)[y] * 0.5
    prob /= prob.sum(1, keepdims=True)
    m = brain_metrics(y, prob, "4class", n_boot=50)
    pred = prob.argmax(1)
    assert m["quadratic_weighted_kappa"] == pytest.approx(cohen_kappa_score(y, pred, weights="quadratic"))
    assert m["mae_classes"] == pytest.approx(np.abs(pred - y).mean())
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y > 0, 1 - prob[:, 0]))
    assert "sensitivity" not in m and "threshold" not in m


def test_paired_bootstrap_by_hand_and_identical_models():
    y = np.array([0, 0, 1, 1, 0, 1])
    a = _binary([0.2, 0.6, 0.4, 0.9, 0.3, 0.5])
    b = _binary([0.1, 0.3, 0.8, 0.9, 0.4, 0.7])
    res = paired_bootstrap_difference(roc_auc_demented, y, a, b, n_boot=200, seed=3)
    assert res["difference"] == pytest.approx(roc_auc_score(y, b[:, 1]) - roc_auc_score(y, a[:, 1]))
    # by hand: the same brains drawn for both models in each replicate (the same generator and draws)
    from alzmri.evaluation.bootstrap import _bootstrap_replicates

    _, reps = _bootstrap_replicates(np.arange(6), y, True, 200, 3)
    deltas = [roc_auc_ovr_macro(y[i], b[i]) - roc_auc_ovr_macro(y[i], a[i]) for i in reps]
    deltas = [d for d in deltas if np.isfinite(d)]
    assert res["ci_low"] == pytest.approx(np.percentile(deltas, 2.5))
    assert res["ci_high"] == pytest.approx(np.percentile(deltas, 97.5))
    same = paired_bootstrap_difference(roc_auc_demented, y, a, a.copy(), n_boot=200, seed=3)
    assert same["difference"] == 0.0 and same["ci_low"] == 0.0 and same["ci_high"] == 0.0 and not same["excludes_zero"]
    with pytest.raises(ValueError, match="must both have shape"):
        paired_bootstrap_difference(roc_auc_demented, y, a, a[:5])
