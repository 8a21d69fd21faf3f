"""Metrics against values worked out by hand from a known confusion matrix."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from alzmri.data.classes import CLASS_NAMES
from alzmri.evaluation.metrics import (
    classification_metrics,
    roc_auc_ovr_scores,
    specificity_score,
)

# Known 12-sample confusion matrix (rows = true, cols = predicted).
#   true counts (row sums):  [4, 3, 3, 2]
#   pred counts (col sums):  [4, 4, 3, 1]
#   diagonal:                [3, 2, 2, 1] -> 8 correct
CM = np.array(
    [
        [3, 1, 0, 0],
        [1, 2, 0, 0],
        [0, 1, 2, 0],
        [0, 0, 1, 1],
    ]
)


def probs_from_cm(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Samples whose argmax reproduces ``cm``: 0.7 on the predicted class, 0.1 elsewhere."""
    n = cm.shape[0]
    y_true, rows = [], []
    for i in range(n):
        for j in range(n):
            for _ in range(cm[i, j]):
                p = np.full(n, 0.3 / (n - 1))
                p[j] = 0.7
                y_true.append(i)
                rows.append(p)
    return np.array(y_true), np.array(rows)


def pairwise_auc(pos_scores, neg_scores) -> float:
    """Mann-Whitney AUC: share of (pos, neg) pairs ranked right, ties count one half."""
    total = 0.0
    for p in pos_scores:
        for q in neg_scores:
            total += 1.0 if p > q else 0.5 if p == q else 0.0
    return total / (len(pos_scores) * len(neg_scores))


@pytest.fixture
def known_case():
    y_true, y_prob = probs_from_cm(CM)
    return y_true, y_prob, classification_metrics(y_true, y_prob)


def test_confusion_matrix_and_counts(known_case):
    y_true, _, m = known_case
    assert m["n_samples"] == 12
    assert m["class_names"] == list(CLASS_NAMES)
    assert m["confusion_matrix"] == CM.tolist()
    expected_norm = [
        [3 / 4, 1 / 4, 0, 0],
        [1 / 3, 2 / 3, 0, 0],
        [0, 1 / 3, 2 / 3, 0],
        [0, 0, 1 / 2, 1 / 2],
    ]
    np.testing.assert_allclose(m["confusion_matrix_normalized"], expected_norm)
    assert [m["per_class"][c]["support"] for c in CLASS_NAMES] == [4, 3, 3, 2]


def test_accuracy_and_balanced_accuracy(known_case):
    _, _, m = known_case
    assert m["accuracy"] == pytest.approx((3 + 2 + 2 + 1) / 12)
    assert m["balanced_accuracy"] == pytest.approx((3 / 4 + 2 / 3 + 2 / 3 + 1 / 2) / 4)


def test_per_class_sensitivity_specificity_precision_f1(known_case):
    _, _, m = known_case
    # sensitivity = diag / row sum
    sens = [3 / 4, 2 / 3, 2 / 3, 1 / 2]
    # precision = diag / column sum
    prec = [3 / 4, 2 / 4, 2 / 3, 1 / 1]
    # specificity = TN / (TN + FP); FP = col sum - diag; TN = 12 - row - col + diag
    #   class 0: FP = 4-3 = 1, TN = 12-4-4+3 = 7  -> 7/8
    #   class 1: FP = 4-2 = 2, TN = 12-3-4+2 = 7  -> 7/9
    #   class 2: FP = 3-2 = 1, TN = 12-3-3+2 = 8  -> 8/9
    #   class 3: FP = 1-1 = 0, TN = 12-2-1+1 = 10 -> 10/10
    spec = [7 / 8, 7 / 9, 8 / 9, 10 / 10]
    f1 = [2 * p * r / (p + r) for p, r in zip(prec, sens)]
    for k, name in enumerate(CLASS_NAMES):
        pc = m["per_class"][name]
        assert pc["sensitivity"] == pytest.approx(sens[k]), name
        assert pc["precision"] == pytest.approx(prec[k]), name
        assert pc["specificity"] == pytest.approx(spec[k]), name
        assert pc["f1"] == pytest.approx(f1[k]), name
    assert m["macro_f1"] == pytest.approx(sum(f1) / 4)
    # explicit numbers for the record: F1 = [0.75, 4/7, 2/3, 2/3]
    assert f1 == pytest.approx([0.75, 4 / 7, 2 / 3, 2 / 3])


def test_quadratic_weighted_kappa(known_case):
    _, _, m = known_case
    n, total = 4, CM.sum()
    rows, cols = CM.sum(axis=1), CM.sum(axis=0)  # [4,3,3,2], [4,4,3,1]
    observed = 0.0
    expected = 0.0
    for i in range(n):
        for j in range(n):
            w = (i - j) ** 2 / (n - 1) ** 2
            observed += w * CM[i, j] / total
            expected += w * rows[i] * cols[j] / total**2
    qwk = 1 - observed / expected
    # by hand: observed disagreement = 4 off-by-one cells * 1/9 / 12;
    # expected = sum_ij (i-j)^2 r_i c_j / (9 * 144) = 306 / 1296
    assert observed == pytest.approx(4 / 9 / 12)
    assert expected == pytest.approx(306 / 1296)
    assert qwk == pytest.approx(1 - (4 / 108) / (306 / 1296))
    assert m["quadratic_weighted_kappa"] == pytest.approx(qwk)


def test_roc_auc_per_class_and_macro(known_case):
    y_true, y_prob, m = known_case
    aucs = []
    for k, name in enumerate(CLASS_NAMES):
        auc = pairwise_auc(y_prob[y_true == k, k], y_prob[y_true != k, k])
        aucs.append(auc)
        assert m["per_class"][name]["roc_auc"] == pytest.approx(auc), name
    # class 3: positives score 0.7 and 0.1, all 10 negatives 0.1 -> (10 + 5) / 20
    assert aucs[3] == pytest.approx(15 / 20)
    assert m["roc_auc_ovr_macro"] == pytest.approx(sum(aucs) / 4)
    # agrees with sklearn's own multi-class one-vs-rest macro AUC when all classes occur
    assert m["roc_auc_ovr_macro"] == pytest.approx(
        roc_auc_score(y_true, y_prob, multi_class="ovr", average="macro")
    )


def test_result_is_strict_json(known_case):
    _, _, m = known_case
    json.dumps(m, allow_nan=False)


def test_specificity_score_helper():
    y_true = np.array([0, 0, 1, 1, 2])
    y_pred = np.array([0, 1, 1, 1, 0])
    # class 0: negatives are the 3 samples of classes 1,2; one (the class-2 sample) -> 0: 2/3
    # class 1: negatives are 0,0,2; one class-0 sample predicted 1: 2/3
    # class 2: negatives 4 samples, none predicted 2: 4/4
    np.testing.assert_allclose(
        specificity_score(y_true, y_pred, labels=[0, 1, 2, 3]), [2 / 3, 2 / 3, 1.0, 1.0]
    )
    # a class that every sample belongs to has no negatives: undefined
    out = specificity_score(np.array([1, 1]), np.array([1, 0]), labels=[0, 1])
    assert out[0] == pytest.approx(0.5)
    assert math.isnan(out[1])
    assert specificity_score(np.array([1, 1]), np.array([1, 0]), labels=[0, 1], zero_division=0.0)[1] == 0.0


def test_absent_class_predicted_once():
    # No ModerateDemented sample in y_true, but one VeryMild sample is predicted Moderate.
    cm = np.array(
        [
            [2, 0, 0, 0],
            [0, 1, 0, 1],
            [0, 1, 2, 0],
            [0, 0, 0, 0],
        ]
    )
    y_true, y_prob = probs_from_cm(cm)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # absent classes must not spray warnings
        m = classification_metrics(y_true, y_prob)
    json.dumps(m, allow_nan=False)

    moderate = m["per_class"]["ModerateDemented"]
    assert moderate["support"] == 0
    assert moderate["sensitivity"] is None
    assert moderate["roc_auc"] is None
    assert moderate["precision"] == 0.0  # predicted once, never right
    assert moderate["f1"] == 0.0
    assert moderate["specificity"] == pytest.approx(6 / 7)  # 7 negatives, 1 FP
    assert m["confusion_matrix"] == cm.tolist()
    assert m["confusion_matrix_normalized"][3] == [0.0, 0.0, 0.0, 0.0]

    assert m["accuracy"] == pytest.approx(5 / 7)
    # mean recall over the 3 present classes
    assert m["balanced_accuracy"] == pytest.approx((1 + 1 / 2 + 2 / 3) / 3)
    # F1 per class: 1, 2*(1/2*1/2)/(1) = 1/2, 2*(1*2/3)/(5/3) = 4/5, absent-but-predicted 0
    assert m["macro_f1"] == pytest.approx((1 + 1 / 2 + 4 / 5 + 0) / 4)
    # macro AUC over the three classes with positives and negatives
    aucs = [m["per_class"][c]["roc_auc"] for c in CLASS_NAMES[:3]]
    assert all(a is not None for a in aucs)
    assert m["roc_auc_ovr_macro"] == pytest.approx(sum(aucs) / 3)


def test_absent_class_never_predicted_has_undefined_precision():
    cm = np.array(
        [
            [2, 1, 0, 0],
            [0, 2, 0, 0],
            [0, 0, 1, 0],
            [0, 0, 0, 0],
        ]
    )
    y_true, y_prob = probs_from_cm(cm)
    m = classification_metrics(y_true, y_prob)
    moderate = m["per_class"]["ModerateDemented"]
    assert moderate["precision"] is None
    assert moderate["sensitivity"] is None
    assert moderate["f1"] is None
    assert moderate["specificity"] == 1.0
    # macro F1 leaves the undefined class out: F1 = [0.8, 0.8, 1]
    assert m["macro_f1"] == pytest.approx((0.8 + 0.8 + 1.0) / 3)


def test_single_class_present_gives_none_for_undefined_summaries():
    y_true = np.zeros(5, dtype=int)
    y_prob = np.tile([0.7, 0.1, 0.1, 0.1], (5, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = classification_metrics(y_true, y_prob)
    json.dumps(m, allow_nan=False)
    assert m["accuracy"] == 1.0
    assert m["roc_auc_ovr_macro"] is None
    assert m["quadratic_weighted_kappa"] is None
    assert m["per_class"]["NonDemented"]["specificity"] is None  # no negatives
    assert all(m["per_class"][c]["roc_auc"] is None for c in CLASS_NAMES)


def test_roc_auc_ovr_scores_marks_undefined_as_nan():
    y_true = np.array([0, 0, 1])
    y_prob = np.array([[0.9, 0.1, 0.0], [0.4, 0.6, 0.0], [0.2, 0.8, 0.0]])
    auc = roc_auc_ovr_scores(y_true, y_prob)
    assert auc[0] == pytest.approx(1.0)
    assert auc[1] == pytest.approx(1.0)
    assert math.isnan(auc[2])


def test_custom_class_names():
    y_true = np.array([0, 1, 1])
    y_prob = np.array([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    m = classification_metrics(y_true, y_prob, class_names=("neg", "pos"))
    assert set(m["per_class"]) == {"neg", "pos"}
    assert m["per_class"]["pos"]["sensitivity"] == pytest.approx(1 / 2)
    assert m["confusion_matrix"] == [[1, 0], [1, 1]]


def test_bad_input_is_refused_by_the_shared_validator():
    # the checks themselves: tests/evaluation/test_checks.py
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\].*\[4\]"):
        classification_metrics(np.array([0, 4]), np.full((2, 4), 0.25))
    with pytest.raises(ValueError, match=r"\(3, 4\).*\(3, 3\)"):
        classification_metrics(np.array([0, 1, 2]), np.full((3, 3), 1 / 3))
