"""The cluster bootstrap (resampling subjects, not slices) and its vectorised metric functions."""

import numpy as np
import pytest

from alzmri.evaluation.bootstrap import CI_METRICS, METRIC_FUNCTIONS, balanced_accuracy, bootstrap_ci, metrics_with_ci
from alzmri.evaluation.metrics import classification_metrics
from _helpers import clustered_predictions


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


def test_bootstrap_ci_contains_the_estimate_and_is_deterministic():
    y, p, g = clustered_predictions()
    a = bootstrap_ci(balanced_accuracy, y, p, g, n_boot=300, seed=1)
    assert a["estimate"] == pytest.approx(classification_metrics(y, p, class_names=["A", "B", "C"])["balanced_accuracy"])
    assert a["ci_low"] <= a["estimate"] <= a["ci_high"]
    assert a["n_groups"] == 15 and a["n_valid"] == 300 and a["confidence"] == 0.95
    assert a == bootstrap_ci(balanced_accuracy, y, p, g, n_boot=300, seed=1)
    assert a != bootstrap_ci(balanced_accuracy, y, p, g, n_boot=300, seed=2)


def test_bootstrap_resamples_groups_not_slices():
    y, p, g = clustered_predictions()
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
    y, p, g = clustered_predictions()
    r = bootstrap_ci(METRIC_FUNCTIONS["roc_auc_ovr_macro"], y, p, g, n_boot=200, seed=0, stratify=False)
    assert r["resampled"] == "groups" and r["ci_low"] <= r["estimate"] <= r["ci_high"]
    # a metric undefined on every replicate: no interval, counted
    none = bootstrap_ci(lambda yt, yp: None, y, p, g, n_boot=10)
    assert none["ci_low"] is None and none["n_valid"] == 0
    with pytest.raises(ValueError, match="alpha"):
        bootstrap_ci(balanced_accuracy, y, p, g, alpha=1.5)


def test_metrics_with_ci_draws_what_bootstrap_ci_draws():
    y, p, g = clustered_predictions()
    many = metrics_with_ci(y, p, g, n_boot=200, seed=0)
    assert set(CI_METRICS) <= set(many) and many["n_groups"] == 15 and many["n_boot"] == 200
    # the shared-replicate helper draws exactly what bootstrap_ci draws, metric by metric
    for name in CI_METRICS:
        single = bootstrap_ci(METRIC_FUNCTIONS[name], y, p, g, n_boot=200, seed=0)
        assert many[name] == [round(single["ci_low"], 6), round(single["ci_high"], 6)], name
    assert metrics_with_ci(y, p, g, n_boot=200, seed=1) != many
