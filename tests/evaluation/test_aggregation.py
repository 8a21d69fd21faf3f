"""Subject-level aggregation: one prediction per subject (mean of its slices' probabilities)."""

import warnings

import numpy as np
import pytest

from alzmri.evaluation.aggregation import MixedLabelGroupWarning, aggregate_by_group, subject_level_metrics
from alzmri.evaluation.metrics import classification_metrics
from _helpers import clustered_predictions


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


def test_subject_level_metrics_block():
    y, p, g = clustered_predictions()
    block = subject_level_metrics(y, p, g, class_names=["A", "B", "C"], n_boot=200)
    assert block["n_subjects"] == 15 and block["n_samples"] == 15
    assert "mean of the slices' class probabilities" in block["aggregation"]
    ids, yg, pg = aggregate_by_group(y, p, g)
    assert block["balanced_accuracy"] == pytest.approx(classification_metrics(yg, pg, class_names=["A", "B", "C"])["balanced_accuracy"])
    ci = block["confidence_intervals"]
    assert ci["n_groups"] == 15
    lo, hi = ci["balanced_accuracy"]
    assert lo <= block["balanced_accuracy"] <= hi
