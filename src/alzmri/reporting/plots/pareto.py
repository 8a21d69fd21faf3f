"""A comparison's Pareto plot: a score against training time, marker area by model size,
and the Pareto front (:func:`pareto_front`) of models no other beats on both."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.colors import to_rgba
from matplotlib.figure import Figure

from alzmri.reporting.plots._figure import _finite_or_none, _new_figure, save_figure

__all__ = ["pareto_figure", "pareto_front", "plot_pareto"]


def pareto_front(costs: Sequence[float], scores: Sequence[float]) -> list[int]:
    """Indices of the points no other point beats on both axes, by increasing cost.

    A point is on the front when no other point has a cost at most as high and a
    strictly higher score (or the same score at a strictly lower cost).

    Parameters
    ----------
    costs : sequence of float
        Lower is better (training time).
    scores : sequence of float
        Higher is better (balanced accuracy).

    Returns
    -------
    list of int
        Indices into ``costs``, sorted by increasing cost.
    """
    order = sorted(range(len(costs)), key=lambda i: (costs[i], -scores[i]))
    front: list[int] = []
    best = -math.inf
    for i in order:
        if scores[i] > best:
            front.append(i)
            best = scores[i]
    return front


def pareto_figure(rows: Sequence[Mapping[str, Any]], *, title: str | None = None, metric: str = "balanced_accuracy",
                  metric_label: str = "balanced accuracy (test)") -> Figure:
    """A score (default balanced accuracy) against training time, marker area proportional to model size.

    Parameters
    ----------
    rows : sequence of dict
        One per model, with ``name`` (str), ``train_time_s`` (float, seconds),
        ``balanced_accuracy`` (float in [0, 1]) and ``size_mb`` (float, MB). Rows missing
        a time or a balanced accuracy are left out of the plot.
    title : str, optional
    metric : str, default="balanced_accuracy"
        The key of the score in each row (a cross-validated comparison plots its pooled
        headline metric); higher is better.
    metric_label : str, default="balanced accuracy (test)"
        The y axis label.

    Returns
    -------
    fig : matplotlib.figure.Figure
        The x axis is logarithmic when the slowest model took more than 20 times as long
        as the fastest. The Pareto front (no other model is both faster and better) is
        drawn as a dashed step line; its models are outlined in black.
    """
    pts = []
    for i, r in enumerate(rows):
        if not isinstance(r, Mapping):
            raise ValueError(f"rows[{i}] must be a dict, got {type(r).__name__}")
        t = _finite_or_none(r.get("train_time_s"))
        y = _finite_or_none(r.get(metric))
        if t is None or y is None or t <= 0:
            continue
        size = _finite_or_none(r.get("size_mb")) or 0.0
        pts.append((str(r.get("name", f"model {i}")), t, y, max(size, 0.0)))

    fig = _new_figure((8.0, 5.5))
    ax = fig.add_subplot()
    if not pts:
        ax.text(0.5, 0.5, f"no model with a training time and a {metric_label}", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    names, ts, ys, sizes = (list(v) for v in zip(*pts))
    max_size = max(sizes) or 1.0
    areas = [40.0 + 1200.0 * s / max_size for s in sizes]
    front = pareto_front(ts, ys)
    colours = [to_rgba(f"C{i % 10}", 0.6) for i in range(len(pts))]
    edge = [(0.0, 0.0, 0.0, 1.0) if i in front else (0.0, 0.0, 0.0, 0.0) for i in range(len(pts))]
    ax.scatter(ts, ys, s=areas, c=colours, edgecolors=edge, linewidths=1.5, zorder=3)
    if len(front) > 1:
        fx = [ts[i] for i in front]
        fy = [ys[i] for i in front]
        ax.step(fx, fy, where="post", linestyle="--", color="grey", linewidth=1, zorder=2, label="Pareto front")
        ax.legend(loc="lower right", fontsize="small")
    for name, t, y in zip(names, ts, ys):
        ax.annotate(name, (t, y), textcoords="offset points", xytext=(6, 6), fontsize="small")
    if max(ts) / min(ts) > 20:
        ax.set_xscale("log")
    ax.margins(x=0.15, y=0.12)
    ax.set_xlabel("training time (s)")
    ax.set_ylabel(metric_label)
    ax.set_title(title or f"{metric_label[:1].upper()}{metric_label[1:]} vs training time (marker area ∝ size; largest {max_size:.1f} MB)")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    return fig


def plot_pareto(rows: Sequence[Mapping[str, Any]], path: str | os.PathLike[str], *, title: str | None = None, metric: str = "balanced_accuracy",
                metric_label: str = "balanced accuracy (test)") -> Path:
    """Save the Pareto plot as a PNG (see :func:`pareto_figure`).

    Parameters
    ----------
    rows : sequence of dict
        ``name``, ``train_time_s`` (s), ``balanced_accuracy``, ``size_mb`` (MB) per model.
    path : str or os.PathLike
        Destination PNG, written atomically.
    title : str, optional
    metric, metric_label : str
        See :func:`pareto_figure`.

    Returns
    -------
    path : pathlib.Path
    """
    return save_figure(pareto_figure(rows, title=title, metric=metric, metric_label=metric_label), path)
