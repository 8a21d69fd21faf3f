"""A comparison's ROC plot: one macro-averaged one-vs-rest ROC curve per model, on shared axes."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from sklearn.metrics import roc_curve

from alzmri.evaluation.checks import check_targets_and_probabilities
from alzmri.reporting.plots._figure import _finite_or_none, _new_figure, _style_roc_axes, save_figure

__all__ = ["plot_roc_comparison", "roc_comparison_figure"]


def _macro_roc(y_true: np.ndarray, y_prob: np.ndarray, grid: np.ndarray) -> np.ndarray | None:
    """Mean one-vs-rest TPR on ``grid`` over classes with positives and negatives."""
    tprs = []
    for k in range(y_prob.shape[1]):
        pos = y_true == k
        if pos.all() or not pos.any():
            continue
        fpr, tpr, _ = roc_curve(pos, y_prob[:, k])
        tprs.append(np.interp(grid, fpr, tpr))
    return np.mean(tprs, axis=0) if tprs else None


def roc_comparison_figure(
    models: Mapping[str, tuple[Any, Any]],
    class_names: Sequence[str],
    *,
    aucs: Mapping[str, float | None] | None = None,
) -> Figure:
    """Macro-averaged one-vs-rest ROC curves, one per model, on shared axes.

    Each model's curve is the mean over classes (with both positives and negatives in
    ``y_true``) of the per-class ROC curves, interpolated on a common false-positive-rate
    grid.

    Parameters
    ----------
    models : mapping of str -> (y_true, y_prob)
        Per model name: integer labels of shape (n_samples,) and class probabilities of
        shape (n_samples, n_classes).
    class_names : sequence of str of length n_classes
    aucs : mapping of str -> float, optional
        Macro ROC-AUC of each model for the legend, as computed by the evaluation
        (``metrics.json``'s ``roc_auc_ovr_macro``); not recomputed here.

    Returns
    -------
    fig : matplotlib.figure.Figure
    """
    aucs = dict(aucs or {})
    grid = np.linspace(0.0, 1.0, 501)
    fig = _new_figure((6.5, 6.0))
    ax = fig.add_subplot()
    for name, (y_true, y_prob) in models.items():
        yt, yp = check_targets_and_probabilities(y_true, y_prob, len(class_names))
        tpr = _macro_roc(yt, yp, grid)
        if tpr is None:
            continue
        auc = _finite_or_none(aucs.get(name))
        label = f"{name} (macro AUC = {auc:.3f})" if auc is not None else name
        ax.plot(np.concatenate([[0.0], grid]), np.concatenate([[0.0], tpr]), linewidth=1.5, label=label)
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="chance")
    _style_roc_axes(ax, "Macro-averaged one-vs-rest ROC, all models")
    fig.tight_layout()
    return fig


def plot_roc_comparison(
    models: Mapping[str, tuple[Any, Any]],
    class_names: Sequence[str],
    path: str | os.PathLike[str],
    *,
    aucs: Mapping[str, float | None] | None = None,
) -> Path:
    """Save the all-models ROC plot as a PNG (see :func:`roc_comparison_figure`).

    Parameters
    ----------
    models : mapping of str -> (y_true, y_prob)
    class_names : sequence of str
    path : str or os.PathLike
        Destination PNG, written atomically.
    aucs : mapping of str -> float, optional

    Returns
    -------
    path : pathlib.Path
    """
    return save_figure(roc_comparison_figure(models, class_names, aucs=aucs), path)
