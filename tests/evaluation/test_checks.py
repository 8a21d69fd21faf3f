"""The one validator of labels and class probabilities: shapes, label range, probability rows, and scores."""

from __future__ import annotations

import numpy as np
import pytest

from alzmri.evaluation.checks import check_targets_and_probabilities


@pytest.mark.parametrize(
    ("y_true", "y_prob", "fragment"),
    [
        # wrong number of classes: expected (3, 4), actual (3, 3)
        (np.array([0, 1, 2]), np.full((3, 3), 1 / 3), r"\(3, 4\).*\(3, 3\)"),
        # length mismatch: expected (2, 4), actual (3, 4)
        (np.array([0, 1]), np.full((3, 4), 0.25), r"\(2, 4\).*\(3, 4\)"),
        # y_true not 1-D
        (np.array([[0], [1]]), np.full((2, 4), 0.25), r"\(n_samples,\).*\(2, 1\)"),
        # y_prob 1-D
        (np.array([0, 1]), np.array([0.5, 0.5]), r"\(2, 4\).*\(2,\)"),
    ],
)
def test_shape_mismatch_raises_with_expected_and_actual(y_true, y_prob, fragment):
    with pytest.raises(ValueError, match=fragment):
        check_targets_and_probabilities(y_true, y_prob, 4)


def test_bad_values_raise():
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\].*\[4\]"):
        check_targets_and_probabilities(np.array([0, 4]), np.full((2, 4), 0.25), 4)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\].*\[-1\]"):
        check_targets_and_probabilities(np.array([-1, 0]), np.full((2, 4), 0.25), 4)
    with pytest.raises(ValueError, match=r"2 row\(s\) do not, first is row 0 summing to 4"):
        check_targets_and_probabilities(np.array([0, 1]), np.ones((2, 4)), 4)
    with pytest.raises(ValueError, match="non-integer values"):
        check_targets_and_probabilities(np.array([0.5, 1.0]), np.full((2, 4), 0.25), 4)
    with pytest.raises(ValueError, match="integer class labels, got dtype <U1"):
        check_targets_and_probabilities(np.array(["a", "b"]), np.full((2, 4), 0.25), 4)
    with pytest.raises(ValueError, match="empty"):
        check_targets_and_probabilities(np.array([], dtype=int), np.zeros((0, 4)), 4)
    with pytest.raises(ValueError, match="NaN or infinite"):
        check_targets_and_probabilities([0, 1], [[0.5, np.nan], [0.5, 0.5]])


def test_whole_float_labels_are_accepted():
    y, p = check_targets_and_probabilities([0.0, 1.0], np.full((2, 4), 0.25), 4)
    assert y.dtype == np.int64 and y.tolist() == [0, 1]
    assert p.dtype == np.float64 and p.shape == (2, 4)


def test_n_classes_defaults_to_the_columns_and_booleans_are_labels():
    y, p = check_targets_and_probabilities(np.array([True, False]), [[0.2, 0.8], [0.9, 0.1]])
    assert y.dtype == np.int64 and y.tolist() == [1, 0]
    np.testing.assert_array_equal(p, [[0.2, 0.8], [0.9, 0.1]])
    # rows within 1e-3 of 1 pass (float32 softmax drift), beyond it they do not
    check_targets_and_probabilities([0], [[0.5, 0.5009]])
    with pytest.raises(ValueError, match="summing to 1.002"):
        check_targets_and_probabilities([0], [[0.5, 0.502]])


def test_scores_need_not_sum_to_one_but_must_be_finite():
    logits = np.array([[2.5, -1.0, 0.3], [-0.2, 4.0, 1.1]], dtype=np.float32)
    y, s = check_targets_and_probabilities([0, 1], logits, 3, probabilities=False)
    assert y.tolist() == [0, 1] and s.dtype == np.float64
    np.testing.assert_array_equal(s, logits.astype(np.float64))
    with pytest.raises(ValueError, match="summing to 1"):
        check_targets_and_probabilities([0, 1], logits, 3)
    # the other checks still apply to scores
    with pytest.raises(ValueError, match="NaN or infinite"):
        check_targets_and_probabilities([0, 1], np.array([[np.inf, 0, 0], [0, 0, 0]]), 3, probabilities=False)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\]"):
        check_targets_and_probabilities([0, 3], logits, 3, probabilities=False)
    with pytest.raises(ValueError, match=r"\(2, 4\).*\(2, 3\)"):
        check_targets_and_probabilities([0, 1], logits, 4, probabilities=False)
