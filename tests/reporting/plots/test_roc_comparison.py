"""All-models ROC plot: one macro-averaged curve per model, the evaluation's AUC in the legend."""

from __future__ import annotations

import numpy as np

from alzmri.data.classes import CLASS_NAMES
from alzmri.reporting.plots import plot_roc_comparison, roc_comparison_figure


def test_roc_comparison_png_and_legend(tmp_path, assert_png):
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 5)
    p = rng.dirichlet(np.ones(4), size=20)
    models = {"a": (y, p), "b": (y, p[::-1])}
    assert_png(plot_roc_comparison(models, CLASS_NAMES, tmp_path / "roc.png", aucs={"a": 0.5}))
    ax = roc_comparison_figure(models, CLASS_NAMES, aucs={"a": 0.5, "b": float("nan")}).axes[0]
    assert ax.get_legend_handles_labels()[1] == ["a (macro AUC = 0.500)", "b", "chance"]
    curve = ax.get_lines()[0]
    assert curve.get_xdata()[0] == 0.0 and curve.get_ydata()[0] == 0.0
    assert curve.get_xdata()[-1] == 1.0 and curve.get_ydata()[-1] == 1.0


def test_perfect_model_reaches_the_top_left_corner():
    y = np.repeat(np.arange(4), 5)
    ax = roc_comparison_figure({"perfect": (y, np.eye(4)[y]), "one class": (np.zeros(4, int), np.eye(4)[[0] * 4])}, CLASS_NAMES).axes[0]
    assert ax.get_legend_handles_labels()[1] == ["perfect", "chance"]  # a model without two classes is left out
    x, tpr = ax.get_lines()[0].get_data()
    assert np.all(tpr[1:] == 1.0) and x[1] == 0.0
