"""Choices made on validation brains: the rank ROC-AUC, ROC-AUC of P(demented), Youden's J threshold."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from alzmri.training.selection import choose_threshold, demented_score, roc_auc_demented, roc_auc_ovr_macro


def _binary(p):
    p = np.asarray(p, dtype=float)
    return np.stack([1 - p, p], axis=1)


def test_threshold_maximises_youden_j_between_validation_scores():
    y = np.array([0, 0, 0, 1, 1, 1])
    p = _binary([0.1, 0.3, 0.6, 0.4, 0.7, 0.9])
    t = choose_threshold(y, p)
    # J is 2/3 at >= 0.7 (sens 2/3, spec 1) and at >= 0.4 (sens 1, spec 2/3); roc_curve's first maximum is 0.7,
    # and the threshold sits halfway to the next lower score 0.6
    assert t == pytest.approx(0.65)
    assert choose_threshold(np.zeros(4, dtype=int), _binary([0.2, 0.4, 0.6, 0.8])) == 0.5  # one class: no choice
    assert choose_threshold(np.zeros(0, dtype=int), np.zeros((0, 2))) == 0.5  # no brains
    # perfectly separated: halfway between the lowest demented and the highest non-demented score
    assert choose_threshold([0, 0, 1, 1], _binary([0.1, 0.2, 0.8, 0.9])) == pytest.approx(0.5)


def test_roc_auc_of_p_demented_against_scikit_learn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 50)
    prob = rng.dirichlet(np.ones(4), 50)
    np.testing.assert_allclose(demented_score(prob), 1 - prob[:, 0])
    assert roc_auc_demented(y, prob) == pytest.approx(roc_auc_score(y > 0, 1 - prob[:, 0]))
    assert roc_auc_demented(np.ones(5, dtype=int), prob[:5]) is None  # one class: undefined
    assert roc_auc_demented([0, 0, 1, 1], _binary([0.1, 0.4, 0.4, 0.9])) == pytest.approx(0.875)  # a tie counts one half


def test_rank_roc_auc_ovr_macro_skips_classes_without_positives_or_negatives():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 40)
    prob = rng.dirichlet(np.ones(4), 40)  # class 3 never occurs: left out of the mean
    expected = np.mean([roc_auc_score(y == c, prob[:, c]) for c in range(3)])
    assert roc_auc_ovr_macro(y, prob) == pytest.approx(expected)
    assert roc_auc_ovr_macro(np.zeros(6, dtype=int), prob[:6]) is None  # fewer than two classes scorable
