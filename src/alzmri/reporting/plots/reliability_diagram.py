"""Reliability diagram of a classifier's top-class confidence, before and after calibration."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from alzmri.evaluation.calibration import expected_calibration_error, reliability_bins
from alzmri.reporting.plots._figure import _new_figure, save_figure

__all__ = ["plot_reliability_diagram", "reliability_figure"]


def reliability_figure(y_true, prob_before, prob_after=None, *, n_bins: int = 15, temperature: float | None = None) -> Figure:
    """Bars of accuracy per confidence bin against the diagonal, one panel per probability set.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
    prob_before : array-like of shape (n_samples, n_classes)
        Uncalibrated probabilities.
    prob_after : array-like of shape (n_samples, n_classes), optional
        Calibrated probabilities (second panel).
    n_bins : int, default=15
    temperature : float, optional
        Shown in the second panel's title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    sets = [("uncalibrated", prob_before)] + ([(f"temperature scaled (T = {temperature:.3g})" if temperature else "calibrated", prob_after)] if prob_after is not None else [])
    fig = _new_figure((4.2 * len(sets), 4.2))
    width = 1.0 / n_bins
    for i, (title, p) in enumerate(sets):
        ax = fig.add_subplot(1, len(sets), i + 1)
        b = reliability_bins(y_true, p, n_bins=n_bins)
        left = np.asarray(b["edges"][:-1])
        acc = np.array([a if a is not None else 0.0 for a in b["accuracy"]])
        conf = np.array([c if c is not None else 0.0 for c in b["confidence"]])
        filled = np.array([n > 0 for n in b["count"]])
        ax.bar(left[filled], acc[filled], width=width, align="edge", color="tab:blue", edgecolor="black", label="accuracy")
        ax.bar(left[filled], (conf - acc)[filled], bottom=acc[filled], width=width, align="edge", color="tab:red", alpha=0.3, edgecolor="tab:red", label="gap to confidence")
        ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
        ece = expected_calibration_error(y_true, p, n_bins=n_bins)
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence (top-class probability)", ylabel="accuracy", title=f"{title}\nECE {ece:.3f}, n = {len(np.asarray(y_true))}")
        ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return fig


def plot_reliability_diagram(y_true, prob_before, prob_after, path: str | Path, *, n_bins: int = 15, temperature: float | None = None) -> Path:
    """Write :func:`reliability_figure` as a PNG, atomically.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
    prob_before : array-like of shape (n_samples, n_classes)
        Uncalibrated probabilities.
    prob_after : array-like of shape (n_samples, n_classes) or None
        Calibrated probabilities (second panel); None draws one panel.
    path : str or pathlib.Path
        Destination PNG; its folder is created if needed.
    n_bins : int, default=15
    temperature : float, optional
        Shown in the second panel's title.

    Returns
    -------
    path : pathlib.Path
        The destination path.
    """
    return save_figure(reliability_figure(y_true, prob_before, prob_after, n_bins=n_bins, temperature=temperature), path)
