"""Calibration metrics on hand-built examples and temperature scaling on synthetic logits."""

import numpy as np
import pytest

from alzmri.evaluation.calibration import brier_score_multiclass, calibration_summary, expected_calibration_error, fit_temperature, nll, reliability_bins


def test_ece_on_hand_built_examples():
    # four samples at confidence 0.8 (one bin), three right: |0.75 - 0.8| = 0.05
    p = np.array([[0.8, 0.2]] * 4)
    assert expected_calibration_error([0, 0, 0, 1], p) == pytest.approx(0.05)
    # two bins of two samples: conf 0.6 acc 0.5 and conf 0.9 acc 1.0 -> (0.1 + 0.1) / 2
    p = np.array([[0.6, 0.4], [0.4, 0.6], [0.9, 0.1], [0.1, 0.9]])
    assert expected_calibration_error([0, 0, 0, 1], p) == pytest.approx(0.1)
    # perfectly confident and right
    assert expected_calibration_error([0, 1], np.eye(2)) == 0.0
    b = reliability_bins([0, 0, 0, 1], p, n_bins=10)
    assert sum(b["count"]) == 4 and b["count"][5] == 2 and b["accuracy"][5] == 0.5 and b["confidence"][8] == pytest.approx(0.9)


def test_brier_on_hand_built_examples():
    assert brier_score_multiclass([0, 1, 2], np.eye(3)) == 0.0
    assert brier_score_multiclass([0], np.full((1, 4), 0.25)) == pytest.approx(0.75**2 + 3 * 0.25**2)
    assert brier_score_multiclass([1], [[1.0, 0.0]]) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="shape"):
        brier_score_multiclass([0, 1], np.eye(3))
    with pytest.raises(ValueError, match="labels must lie"):
        expected_calibration_error([0, 5], np.eye(2))


def test_temperature_recovers_a_known_overconfidence():
    rng = np.random.default_rng(0)
    z = rng.normal(0, 1.5, (20000, 4))  # a calibrated model's logits
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    y = (rng.random(len(z))[:, None] > np.cumsum(p, 1)).sum(1)  # labels drawn from its probabilities
    t = fit_temperature(3.0 * z, y)
    assert t == pytest.approx(3.0, rel=0.05)
    assert fit_temperature(z, y) == pytest.approx(1.0, rel=0.05)
    s = calibration_summary(3.0 * z, y, t)
    assert s["after"]["ece"] < 0.02 < s["before"]["ece"]
    assert s["after"]["brier"] < s["before"]["brier"] and s["after"]["nll"] < s["before"]["nll"]
    assert s["after"]["accuracy"] == s["before"]["accuracy"]
    assert nll(3.0 * z, y, t) == pytest.approx(s["after"]["nll"])
