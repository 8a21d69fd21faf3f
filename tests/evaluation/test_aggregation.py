"""Subject-level aggregation and the cluster bootstrap (resampling subjects, not slices)."""

import warnings

import numpy as np
import pytest

from alzmri.evaluation.aggregation import MixedLabelGroupWarning, aggregate_by_group, subject_level_metrics
from alzmri.evaluation.bootstrap import METRIC_FUNCTIONS, balanced_accuracy, bootstrap_ci, metrics_with_ci
from alzmri.evaluation.metrics import classification_metrics


def test_aggregate_by_group_hand_example():
    y = [0, 0, 0, 1, 1, 2]
    p = [
        [0.8, 0.1, 0.1],  # group "a": three slices of class 0
        [0.6, 0.3, 0.1],
        [0.1, 0.8, 0.1],
        [0.2, 0.7, 0.1],  # group "b": two slices of class 1
        [0.4, 0.4, 0.2],
        [0.3, 0.3, 0.4],  # group "c": one slice of class 2
    ]
    g = ["a", "a", "a", "b", "b", "c"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no mixed groups here: no warning
        ids, yg, pg = aggregate_by_group(y, p, g)
    assert ids.tolist() == ["a", "b", "c"]
    assert yg.tolist() == [0, 1, 2] and yg.dtype == np.int64
    np.testing.assert_allclose(pg, [[0.5, 0.4, 0.1], [0.3, 0.55, 0.15], [0.3, 0.3, 0.4]])
    np.testing.assert_allclose(pg.sum(axis=1), 1.0)
    # slice majority vote would call group "a" class 0 too, but by mean probability: 0.5 vs 0.4
    assert pg.argmax(axis=1).tolist() == [0, 1, 2]


def test_mixed_label_group_takes_the_majority_with_a_warning():
    y = [1, 1, 2, 0, 0]
    p = np.full((5, 3), 1 / 3)
    g = [7, 7, 7, 9, 9]
    with pytest.warns(MixedLabelGroupWarning, match=r"1 subject group\(s\) hold slices of more than one class \(first: group 7"):
        ids, yg, _ = aggregate_by_group(y, p, g)
    assert ids.tolist() == [7, 9] and yg.tolist() == [1, 0]


def test_aggregate_shape_errors():
    with pytest.raises(ValueError, match=r"y_prob must have shape \(n_slices, n_classes\) = \(2, n_classes\), got shape \(3, 2\)"):
        aggregate_by_group([0, 1], np.full((3, 2), 0.5), [0, 1])
    with pytest.raises(ValueError, match=r"groups must have shape \(n_slices,\) = \(2,\), got shape \(3,\)"):
        aggregate_by_group([0, 1], np.full((2, 2), 0.5), [0, 1, 2])
    with pytest.raises(ValueError, match="empty"):
        aggregate_by_group([], np.zeros((0, 2)), [])


def test_fast_metrics_equal_classification_metrics():
    rng = np.random.default_rng(0)
    for trial in range(60):
        n = int(rng.integers(2, 50))
        y = rng.integers(0, int(rng.integers(1, 5)), n)
        logits = rng.normal(size=(n, 4)) * 2
        if trial % 3 == 0:
            logits = np.round(logits)  # ties in the scores
        p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        ref = classification_metrics(y, p)
        for name, fn in METRIC_FUNCTIONS.items():
            got = fn(y, p)
            assert (got is None) == (ref[name] is None), (trial, name)
            if got is not None:
                assert got == pytest.approx(ref[name], abs=1e-12), (trial, name)


def _clustered(n_groups_per_class=(6, 5, 4), slices=10, seed=0):
    """Slices of one subject share one noisy prediction (like neighbouring slices do)."""
    rng = np.random.default_rng(seed)
    y, p, g = [], [], []
    gid = 0
    for c, n_g in enumerate(n_groups_per_class):
        for _ in range(n_g):
            logit = rng.normal(size=3) * 1.5
            logit[c] += 1.0
            for _ in range(slices):
                q = np.exp(logit + rng.normal(size=3) * 0.05)
                p.append(q / q.sum())
                y.append(c)
                g.append(gid)
            gid += 1
    return np.array(y), np.array(p), np.array(g)


def test_bootstrap_ci_contains_the_estimate_and_is_deterministic():
    y, p, g = _clustered()
    a = bootstrap_ci(balanced_accuracy, y, p, g, n_boot=300, seed=1)
    assert a["estimate"] == pytest.approx(classification_metrics(y, p, class_names=["A", "B", "C"])["balanced_accuracy"])
    assert a["ci_low"] <= a["estimate"] <= a["ci_high"]
    assert a["n_groups"] == 15 and a["n_valid"] == 300 and a["confidence"] == 0.95
    assert a == bootstrap_ci(balanced_accuracy, y, p, g, n_boot=300, seed=1)
    assert a != bootstrap_ci(balanced_accuracy, y, p, g, n_boot=300, seed=2)


def test_bootstrap_resamples_groups_not_slices():
    y, p, g = _clustered()
    by_subject = bootstrap_ci(balanced_accuracy, y, p, g, n_boot=400, seed=0)
    by_slice = bootstrap_ci(balanced_accuracy, y, p, np.arange(len(y)), n_boot=400, seed=0)
    # 10 near-identical slices per subject: resampling slices pretends there are 150
    # independent observations and gives a much narrower interval
    width = lambda r: r["ci_high"] - r["ci_low"]  # noqa: E731
    assert width(by_subject) > 1.8 * width(by_slice), (by_subject, by_slice)
    # one subject per class: every stratified replicate draws the same subjects, so the
    # interval collapses onto the estimate however many slices there are
    one = g < 0
    for c in range(3):
        one |= g == g[y == c][0]
    single = bootstrap_ci(balanced_accuracy, y[one], p[one], g[one], n_boot=200, seed=0)
    assert single["ci_low"] == single["ci_high"] == single["estimate"]


def test_unstratified_bootstrap_and_undefined_replicates():
    y, p, g = _clustered()
    r = bootstrap_ci(METRIC_FUNCTIONS["roc_auc_ovr_macro"], y, p, g, n_boot=200, seed=0, stratify=False)
    assert r["resampled"] == "groups" and r["ci_low"] <= r["estimate"] <= r["ci_high"]
    # a metric undefined on every replicate: no interval, counted
    none = bootstrap_ci(lambda yt, yp: None, y, p, g, n_boot=10)
    assert none["ci_low"] is None and none["n_valid"] == 0
    with pytest.raises(ValueError, match="alpha"):
        bootstrap_ci(balanced_accuracy, y, p, g, alpha=1.5)


def test_subject_level_metrics_block():
    y, p, g = _clustered()
    block = subject_level_metrics(y, p, g, class_names=["A", "B", "C"], n_boot=200)
    assert block["n_subjects"] == 15 and block["n_samples"] == 15
    assert "mean of the slices' class probabilities" in block["aggregation"]
    ids, yg, pg = aggregate_by_group(y, p, g)
    assert block["balanced_accuracy"] == pytest.approx(classification_metrics(yg, pg, class_names=["A", "B", "C"])["balanced_accuracy"])
    ci = block["confidence_intervals"]
    assert ci["n_groups"] == 15
    lo, hi = ci["balanced_accuracy"]
    assert lo <= block["balanced_accuracy"] <= hi
    many = metrics_with_ci(y, p, g, n_boot=200, seed=0)
    single = bootstrap_ci(balanced_accuracy, y, p, g, n_boot=200, seed=0)
    # the shared-replicate helper draws exactly what bootstrap_ci draws
    assert many["balanced_accuracy"] == [round(single["ci_low"], 6), round(single["ci_high"], 6)]
