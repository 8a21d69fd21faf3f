"""Forest plot of a paired model comparison (the dict of :func:`alzmri.evaluation.paired.paired_comparison`).

Reporting only draws: every number comes from the result dict, nothing is recomputed.
Like every plot in :mod:`alzmri.reporting.plots`, the figure is a standalone Agg
:class:`~matplotlib.figure.Figure` (no pyplot state) and :func:`plot_forest` writes it
atomically with :func:`~alzmri.reporting.plots.save_figure`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from matplotlib.transforms import blended_transform_factory

from alzmri.reporting.plots._figure import _new_figure, save_figure

__all__ = ["VERDICT_COLORS", "forest_figure", "plot_forest"]

#: Colour of each verdict in the difference panel.
VERDICT_COLORS = {
    "reference": "black",
    "better": "tab:green",
    "worse": "tab:red",
    "not distinguishable": "tab:gray",
}


def _check_result(result: Any) -> tuple[list[str], dict[str, dict[str, Any]], str | None]:
    if not isinstance(result, Mapping):
        raise TypeError(f"result must be the dict returned by paired_comparison; got {type(result).__name__}")
    missing = [k for k in ("reference", "rows") if k not in result]
    if missing:
        raise ValueError(f"result must be the dict returned by paired_comparison; it lacks the key(s) {missing} (has {sorted(result)})")
    rows = result["rows"]
    if not isinstance(rows, Mapping) or len(rows) == 0:
        raise ValueError(f"result['rows'] must be a non-empty mapping row name -> numbers; got {rows!r}")
    return list(rows), dict(rows), result["reference"]


def _interval_bar(ax, y: float, point, interval, *, color: str) -> bool:
    """Point with a horizontal interval line at row ``y``; False (nothing drawn) when ``point`` is None."""
    if point is None:
        return False
    xerr = None
    if interval is not None and None not in interval:
        lo, hi = interval
        xerr = [[max(point - lo, 0.0)], [max(hi - point, 0.0)]]
    ax.errorbar([point], [y], xerr=xerr, fmt="o", color=color, ecolor=color, elinewidth=2, capsize=4, markersize=6)
    return True


def _na(ax, y: float) -> None:
    ax.text(0.5, y, "n/a", transform=blended_transform_factory(ax.transAxes, ax.transData), ha="center", va="center", color="tab:gray", fontstyle="italic")


def forest_figure(result: Mapping[str, Any], *, metric_label: str, title: str | None = None) -> Figure:
    """Two-panel forest plot of a paired comparison.

    Left panel: each row's estimate (point) with its percentile interval (horizontal
    line). Right panel: each row's paired difference to the reference with its interval,
    a dashed vertical line at 0, the point coloured by the row's verdict
    (:data:`VERDICT_COLORS`) and annotated on the right with the verdict and
    ``"P(best) = 0.xx"``. Rows run top to bottom in the result's order; the reference's
    tick label ends in ``"(reference)"``. A missing number (None) is drawn as ``"n/a"``.

    Parameters
    ----------
    result : dict
        The return value of :func:`alzmri.evaluation.paired.paired_comparison` (keys
        ``reference``, ``rows`` and, optionally, ``alpha``, ``n_brains``, ``n_valid``,
        ``n_boot``).
    metric_label : str
        Name of the metric, with its units if any (axis labels), e.g. ``"ROC-AUC"``.
    title : str, default=None
        Figure title; a default naming the metric, brains and replicates when None.

    Returns
    -------
    fig : matplotlib.figure.Figure
        ``fig.axes`` is ``[estimates, differences]``, sharing the row axis.

    Raises
    ------
    ValueError
        ``result`` lacks ``reference`` or ``rows``, or has no rows.
    TypeError
        ``result`` is not a mapping.
    """
    names, rows, reference = _check_result(result)
    alpha = result.get("alpha")
    level = f"{100 * (1 - alpha):g} % interval" if isinstance(alpha, (int, float)) else "interval"
    n = len(names)
    fig = _new_figure((10.5, 1.4 + 0.55 * n))
    ax_est = fig.add_subplot(1, 2, 1)
    ax_diff = fig.add_subplot(1, 2, 2, sharey=ax_est)
    right = blended_transform_factory(ax_diff.transAxes, ax_diff.transData)

    for y, name in enumerate(names):
        row = rows[name] or {}
        verdict = row.get("verdict")
        color = VERDICT_COLORS.get(verdict, "tab:blue")
        if not _interval_bar(ax_est, y, row.get("estimate"), row.get("ci"), color="tab:blue"):
            _na(ax_est, y)
        if not _interval_bar(ax_diff, y, row.get("difference"), row.get("difference_ci"), color=color):
            _na(ax_diff, y)
        p_best = row.get("p_best")
        note = f"P(best) = {p_best:.2f}" if p_best is not None else "P(best) = n/a"
        if verdict and verdict != "reference":
            note = f"{verdict}\n{note}"
        ax_diff.text(1.03, y, note, transform=right, ha="left", va="center", fontsize=8, color=color)

    ax_diff.axvline(0.0, color="black", linestyle="--", linewidth=1)
    ax_est.set_yticks(range(n))
    ax_est.set_yticklabels([f"{name} (reference)" if name == reference else name for name in names])
    ax_est.set_ylim(n - 0.5, -0.5)  # first row on top (shared with the right panel)
    ax_diff.tick_params(axis="y", labelleft=False)
    ax_est.set_xlabel(f"{metric_label}\n({level})")
    ax_diff.set_xlabel(f"minus {reference}\n(paired {level})")
    ax_est.set_title("estimate", fontsize=10)
    ax_diff.set_title("paired difference to the reference", fontsize=10)
    for ax in (ax_est, ax_diff):
        ax.grid(axis="x", alpha=0.3)
    if title is None:
        title = f"{metric_label}: paired comparison"
        if result.get("n_brains") is not None:
            title += f" over {result['n_brains']} brains"
        if result.get("n_valid") is not None and result.get("n_boot") is not None:
            title += f" ({result['n_valid']} of {result['n_boot']} bootstrap replicates valid)"
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def plot_forest(result: Mapping[str, Any], path: str | os.PathLike[str], *, metric_label: str, title: str | None = None) -> Path:
    """Write :func:`forest_figure` as a PNG, atomically.

    Parameters
    ----------
    result : dict
        The return value of :func:`alzmri.evaluation.paired.paired_comparison`.
    path : str or os.PathLike
        Destination PNG; its folder is created if needed.
    metric_label : str
        Name of the metric (axis labels).
    title : str, default=None
        Figure title (see :func:`forest_figure`).

    Returns
    -------
    path : pathlib.Path
        The destination path.
    """
    return save_figure(forest_figure(result, metric_label=metric_label, title=title), path)
