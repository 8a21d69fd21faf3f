"""Paired bootstrap comparison of several models: by hand, identical rows, clear winners, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from alzmri.evaluation.bootstrap import _bootstrap_replicates
from alzmri.evaluation.paired import paired_comparison
from alzmri.evaluation.task_metrics import paired_bootstrap_difference
from alzmri.training.selection import roc_auc_demented


def _binary(p):
    p = np.asarray(p, dtype=float)
    return np.stack([1 - p, p], axis=1)


def _auc(y, p):
    """sklearn's ROC-AUC of the class-1 column (None when one class is drawn)."""
    return None if len(np.unique(y)) < 2 else roc_auc_score(y, p[:, 1])


Y6 = np.array([0, 0, 1, 1, 0, 1])
PROBS6 = {
    "a": _binary([0.2, 0.6, 0.4, 0.9, 0.3, 0.5]),
    "b": _binary([0.1, 0.3, 0.8, 0.9, 0.4, 0.7]),
    "c": _binary([0.5, 0.4, 0.6, 0.2, 0.7, 0.3]),
}


def test_by_hand_on_six_brains():
    res = paired_comparison(Y6, PROBS6, _auc, n_boot=50, seed=7)
    names = list(PROBS6)
    # by hand: the same generator gives the same brains; every row scored on them
    _, reps = _bootstrap_replicates(np.arange(6), Y6, True, 50, 7)
    vals = np.array([[roc_auc_score(Y6[i], PROBS6[k][i, 1]) for k in names] for i in reps])
    est = {k: roc_auc_score(Y6, PROBS6[k][:, 1]) for k in names}
    top = vals == vals.max(axis=1, keepdims=True)
    p_best = (top / top.sum(axis=1, keepdims=True)).mean(axis=0)

    assert res["reference"] == "a" and res["n_brains"] == 6 and res["n_boot"] == 50 and res["n_valid"] == 50
    assert list(res["rows"]) == names
    for j, k in enumerate(names):
        row = res["rows"][k]
        d = vals[:, j] - vals[:, 0]
        assert row["estimate"] == est[k]
        assert row["ci"] == [np.percentile(vals[:, j], 2.5), np.percentile(vals[:, j], 97.5)]
        assert row["difference"] == est[k] - est["a"]
        assert row["difference_ci"] == [np.percentile(d, 2.5), np.percentile(d, 97.5)]
        assert row["p_best"] == pytest.approx(p_best[j], abs=1e-12)
    assert res["rows"]["a"]["verdict"] == "reference" and res["rows"]["a"]["difference"] == 0.0
    assert sum(r["p_best"] for r in res["rows"].values()) == pytest.approx(1.0)
    json.dumps(res)  # plain numbers only


def test_reference_by_name_and_undefined_replicates_are_skipped():
    res = paired_comparison(Y6, PROBS6, _auc, reference="b", n_boot=30, seed=1)
    assert res["reference"] == "b" and res["rows"]["b"]["verdict"] == "reference"
    assert res["rows"]["a"]["difference"] == pytest.approx(res["rows"]["a"]["estimate"] - res["rows"]["b"]["estimate"])
    # a metric undefined for rows a and b when brain 3 (their only 0.9) is drawn twice: the replicate counts for no row
    flaky = lambda y, p: None if np.sum(p[:, 1] == 0.9) >= 2 else _auc(y, p)
    res = paired_comparison(Y6, PROBS6, flaky, n_boot=60, seed=2)
    assert 0 < res["n_valid"] < 60
    assert sum(r["p_best"] for r in res["rows"].values()) == pytest.approx(1.0)


def test_identical_predictions_give_exact_zeros():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 30)
    p = _binary(rng.random(30))
    res = paired_comparison(y, {"ref": p, "copy": p.copy(), "again": np.array(p)}, roc_auc_demented, n_boot=200, seed=3)
    for name in ("copy", "again"):
        row = res["rows"][name]
        assert row["difference"] == 0.0 and row["difference_ci"] == [0.0, 0.0]
        assert row["verdict"] == "not distinguishable"
        assert row["p_best"] == pytest.approx(1 / 3)  # three-way tie in every replicate
    assert res["rows"]["ref"]["difference_ci"] == [0.0, 0.0]


def test_a_clearly_better_row():
    rng = np.random.default_rng(1)
    y = np.repeat([0, 1], 20)
    perfect = _binary(0.2 + 0.6 * y)
    noise = _binary(rng.random(40))
    res = paired_comparison(y, {"random": noise, "perfect": perfect}, roc_auc_demented, n_boot=300, seed=0)
    assert res["rows"]["perfect"]["estimate"] == 1.0
    assert res["rows"]["perfect"]["verdict"] == "better" and res["rows"]["perfect"]["difference_ci"][0] > 0
    assert res["rows"]["perfect"]["p_best"] > 0.99
    flipped = paired_comparison(y, {"perfect": perfect, "random": noise}, roc_auc_demented, n_boot=300, seed=0)
    assert flipped["reference"] == "perfect" and flipped["rows"]["random"]["verdict"] == "worse"
    assert flipped["rows"]["random"]["p_best"] < 0.01


def test_bad_reference_and_shapes():
    with pytest.raises(ValueError, match=r"must be one of the rows \['a', 'b', 'c'\]. Got 'd' instead"):
        paired_comparison(Y6, PROBS6, _auc, reference="d", n_boot=5)
    with pytest.raises(ValueError, match="Did you mean 'bb'"):
        paired_comparison(Y6, {"a": PROBS6["a"], "bb": PROBS6["b"]}, _auc, reference="b", n_boot=5)
    with pytest.raises(ValueError, match=r"probs\['b'\] must have shape \(6, 2\).*got shape \(5, 2\)"):
        paired_comparison(Y6, {"a": PROBS6["a"], "b": PROBS6["b"][:5]}, _auc, n_boot=5)
    with pytest.raises(ValueError, match=r"probs\['a'\] must have shape \(6, n_classes\).*got shape \(6,\)"):
        paired_comparison(Y6, {"a": PROBS6["a"][:, 1]}, _auc, n_boot=5)
    with pytest.raises(ValueError, match=r"y_true must be a non-empty array of shape \(n_brains,\); got shape \(2, 3\)"):
        paired_comparison(Y6.reshape(2, 3), PROBS6, _auc, n_boot=5)
    with pytest.raises(ValueError, match="non-empty mapping"):
        paired_comparison(Y6, {}, _auc, n_boot=5)
    with pytest.raises(ValueError, match="'alpha' parameter"):
        paired_comparison(Y6, PROBS6, _auc, n_boot=5, alpha=1.5)
    with pytest.raises(ValueError, match="'n_boot' parameter"):
        paired_comparison(Y6, PROBS6, _auc, n_boot=0)


def test_agrees_with_the_two_model_paired_bootstrap():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 40)
    a = _binary(np.clip(0.3 * y + 0.7 * rng.random(40), 0, 1))
    b = _binary(np.clip(0.5 * y + 0.5 * rng.random(40), 0, 1))
    two = paired_bootstrap_difference(roc_auc_demented, y, a, b, n_boot=400, seed=5)
    many = paired_comparison(y, {"a": a, "b": b}, roc_auc_demented, n_boot=400, seed=5)
    row = many["rows"]["b"]
    assert row["difference"] == two["difference"]
    assert row["difference_ci"] == [two["ci_low"], two["ci_high"]]
    assert many["n_valid"] == two["n_valid"]
    assert (row["verdict"] != "not distinguishable") == two["excludes_zero"]
