"""Training curves: loss and accuracy against epoch, from a run's per-epoch history."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from alzmri.reporting.plots._figure import _finite_or_none, _new_figure, save_figure

__all__ = ["plot_training_curves", "training_curves_figure"]


def _series(history: Sequence[Mapping[str, Any]], key: str) -> tuple[list[float], list[float]]:
    """(epochs, values) of ``key`` over ``history``, skipping missing/None/NaN values."""
    xs: list[float] = []
    ys: list[float] = []
    for i, row in enumerate(history):
        y = _finite_or_none(row.get(key))
        if y is None:
            continue
        x = _finite_or_none(row.get("epoch"))
        xs.append(float(i) if x is None else x)
        ys.append(y)
    return xs, ys


_LOSS_SERIES = (("train_loss", "train loss"), ("val_loss", "val loss"))
_ACC_SERIES = (
    ("train_accuracy", "train accuracy"),
    ("val_accuracy", "val accuracy"),
    ("val_balanced_accuracy", "val balanced accuracy"),
)


def training_curves_figure(history: Sequence[Mapping[str, Any]]) -> Figure:
    """Build loss and accuracy curves against epoch.

    Parameters
    ----------
    history : sequence of dict
        One dict per epoch with keys ``epoch``, ``train_loss``, ``val_loss``,
        ``train_accuracy``, ``val_accuracy``, ``val_balanced_accuracy``. Any key may be
        missing or None for some epochs (those points are skipped); a missing ``epoch``
        falls back to the row's position in the list.

    Returns
    -------
    fig : matplotlib.figure.Figure
        Two panels: loss (train, val) and accuracy (train, val, val balanced).
    """
    history = list(history)
    for i, row in enumerate(history):
        if not isinstance(row, Mapping):
            raise ValueError(f"history[{i}] must be a dict of per-epoch values, got {type(row).__name__}")

    fig = _new_figure((11.0, 4.5))
    ax_loss, ax_acc = fig.subplots(1, 2)
    panels = ((ax_loss, _LOSS_SERIES, "Loss", "loss"), (ax_acc, _ACC_SERIES, "Accuracy", "accuracy"))
    for ax, series, title, ylabel in panels:
        plotted: list[float] = []
        for key, label in series:
            xs, ys = _series(history, key)
            if ys:
                ax.plot(xs, ys, marker="o", markersize=3, label=label)
                plotted.extend(ys)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        if plotted:
            ax.legend(loc="best")
            if ax is ax_acc and min(plotted) >= 0.0 and max(plotted) <= 1.0:
                ax.set_ylim(0.0, 1.02)
        else:
            ax.text(0.5, 0.5, "no data recorded", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    return fig


def plot_training_curves(history: Sequence[Mapping[str, Any]], path: str | os.PathLike[str]) -> Path:
    """Save loss and accuracy curves as a PNG (see :func:`training_curves_figure`).

    Parameters
    ----------
    history : sequence of dict
        One dict per epoch (``epoch``, ``train_loss``, ``val_loss``, ``train_accuracy``,
        ``val_accuracy``, ``val_balanced_accuracy``; any may be missing or None).
    path : str or os.PathLike
        Destination PNG, written atomically.

    Returns
    -------
    path : pathlib.Path
    """
    return save_figure(training_curves_figure(history), path)
