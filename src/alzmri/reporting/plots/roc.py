"""One-vs-rest ROC curves of one model, one curve per class, AUC in the legend."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from sklearn.metrics import roc_auc_score, roc_curve

from alzmri.evaluation.checks import check_targets_and_probabilities
from alzmri.reporting.plots._figure import _new_figure, _style_roc_axes, save_figure

__all__ = ["plot_roc_curves", "roc_curves_figure"]


def roc_curves_figure(y_true: Any, y_prob: Any, class_names: Sequence[str]) -> Figure:
    """Build one-vs-rest ROC curves, one per class, with AUC in the legend.

    Classes without both positives and negatives in ``y_true`` (absent, or the only
    class) are skipped, since their ROC curve is undefined.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Integer labels in ``[0, n_classes)``.
    y_prob : array-like of shape (n_samples, n_classes)
        Class probabilities; rows sum to 1.
    class_names : sequence of str of length n_classes
        Legend names, in label order.

    Returns
    -------
    fig : matplotlib.figure.Figure
    """
    class_names = [str(c) for c in class_names]
    y_true, y_prob = check_targets_and_probabilities(y_true, y_prob, len(class_names))

    fig = _new_figure((6.5, 6.0))
    ax = fig.add_subplot()
    n_plotted = 0
    for k, name in enumerate(class_names):
        positives = y_true == k
        n_pos = int(positives.sum())
        if n_pos == 0 or n_pos == y_true.shape[0]:
            continue
        fpr, tpr, _ = roc_curve(positives, y_prob[:, k])
        auc = roc_auc_score(positives, y_prob[:, k])
        ax.plot(fpr, tpr, linewidth=1.5, label=f"{name} (AUC = {auc:.3f}, n = {n_pos})")
        n_plotted += 1
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="chance (AUC = 0.5)")
    if n_plotted == 0:
        ax.text(
            0.5, 0.6, "ROC undefined: y_true has fewer than 2 classes",
            ha="center", va="center", transform=ax.transAxes,
        )
    _style_roc_axes(ax, "One-vs-rest ROC curves")
    fig.tight_layout()
    return fig


def plot_roc_curves(
    y_true: Any, y_prob: Any, class_names: Sequence[str], path: str | os.PathLike[str]
) -> Path:
    """Save one-vs-rest ROC curves as a PNG (see :func:`roc_curves_figure`).

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Integer labels.
    y_prob : array-like of shape (n_samples, n_classes)
        Class probabilities.
    class_names : sequence of str of length n_classes
        Legend names, in label order.
    path : str or os.PathLike
        Destination PNG, written atomically.

    Returns
    -------
    path : pathlib.Path
    """
    return save_figure(roc_curves_figure(y_true, y_prob, class_names), path)
