"""One-vs-rest ROC curves: one curve per class present, AUC in the legend, shapes checked."""

from __future__ import annotations

import numpy as np
import pytest

from alzmri.data.classes import CLASS_NAMES
from alzmri.reporting.plots import plot_roc_curves, roc_curves_figure


def test_roc_curves_png_and_legend(tmp_path, assert_png):
    rng = np.random.default_rng(0)
    y_true = np.repeat([0, 1, 2], 20)  # ModerateDemented absent -> skipped
    logits = rng.normal(size=(60, 4))
    logits[np.arange(60), y_true] += 2.0
    y_prob = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)

    fig = roc_curves_figure(y_true, y_prob, CLASS_NAMES)
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert len(labels) == 4  # three classes + chance line
    assert any(label.startswith("NonDemented (AUC = ") for label in labels)
    assert not any("ModerateDemented" in label for label in labels)

    out = plot_roc_curves(y_true, y_prob, CLASS_NAMES, tmp_path / "roc.png")
    assert_png(out)


def test_roc_curves_validate_shapes():
    with pytest.raises(ValueError, match=r"\(2, 4\).*\(2, 3\)"):
        roc_curves_figure(np.array([0, 1]), np.full((2, 3), 1 / 3), CLASS_NAMES)
