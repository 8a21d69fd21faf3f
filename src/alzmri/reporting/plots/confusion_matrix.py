"""Confusion-matrix heat map: row-normalised fractions annotated with the raw counts."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from sklearn.metrics import ConfusionMatrixDisplay

from alzmri.reporting.plots._figure import _new_figure, save_figure

__all__ = ["confusion_matrix_figure", "plot_confusion_matrix"]


def confusion_matrix_figure(
    cm: Any,
    class_names: Sequence[str],
    *,
    normalize: bool = True,
    title: str | None = None,
) -> Figure:
    """Build a confusion-matrix heat map.

    Parameters
    ----------
    cm : array-like of shape (n_classes, n_classes), dtype int
        Counts; rows = true class, columns = predicted class.
    class_names : sequence of str of length n_classes
        Tick labels for both axes, in label order.
    normalize : bool, default=True
        If True, colour by the row-normalised fraction (rows without samples are 0) and
        annotate each cell with the fraction and the raw count, e.g. ``"0.93\\n(412)"``.
        If False, colour and annotate by raw counts.
    title : str, default=None
        Figure title; a default naming the normalisation is used when None.

    Returns
    -------
    fig : matplotlib.figure.Figure
    """
    counts = np.asarray(cm)
    n = len(class_names)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1]:
        raise ValueError(f"cm must be a square (n_classes, n_classes) array, got shape {counts.shape}")
    if counts.shape != (n, n):
        raise ValueError(
            f"cm must have shape ({n}, {n}) to match {n} class names, got shape {counts.shape}"
        )
    if not np.all(np.isfinite(counts)) or np.any(counts < 0) or not np.all(counts == np.round(counts)):
        raise ValueError("cm must hold non-negative integer counts")
    counts = counts.astype(np.int64)

    if normalize:
        row_sums = counts.sum(axis=1, keepdims=True)
        shown = np.divide(
            counts, row_sums, out=np.zeros(counts.shape, dtype=np.float64), where=row_sums > 0
        )
        im_kw = {"vmin": 0.0, "vmax": 1.0}
        values_format = ".2f"
    else:
        shown = counts
        im_kw = {"vmin": 0}
        values_format = "d"

    size = max(5.5, 1.3 * n + 2.5)
    fig = _new_figure((size + 1.0, size))
    ax = fig.add_subplot()
    disp = ConfusionMatrixDisplay(shown, display_labels=list(class_names))
    disp.plot(
        ax=ax,
        cmap="Blues",
        values_format=values_format,
        xticks_rotation=35,
        colorbar=True,
        im_kw=im_kw,
    )
    if normalize:
        for i in range(n):
            for j in range(n):
                disp.text_[i, j].set_text(f"{shown[i, j]:.2f}\n({counts[i, j]})")
    for label in ax.get_xticklabels():
        label.set_horizontalalignment("right")
        label.set_rotation_mode("anchor")
    ax.set_xlabel("Predicted class")
    ax.set_ylabel("True class")
    if title is None:
        title = "Confusion matrix (row-normalised)" if normalize else "Confusion matrix (counts)"
    ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_confusion_matrix(cm: Any, class_names: Sequence[str], path: str | os.PathLike[str], *, normalize: bool = True,
                          title: str | None = None) -> Path:
    """Save a confusion-matrix heat map as a PNG (see :func:`confusion_matrix_figure`).

    Parameters
    ----------
    cm, class_names, normalize, title
        As :func:`confusion_matrix_figure`.
    path : str or os.PathLike
        Destination PNG, written atomically.

    Returns
    -------
    path : pathlib.Path
    """
    fig = confusion_matrix_figure(cm, class_names, normalize=normalize, title=title)
    return save_figure(fig, path)
