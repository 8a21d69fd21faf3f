"""Report figures: confusion matrix, training curves, ROC curves, and the comparison's
Pareto, t-SNE and all-models ROC plots.

Figures are built as standalone :class:`matplotlib.figure.Figure` objects rendered by the
Agg canvas, so nothing touches pyplot's global state, no window ever opens and nothing
needs closing. Each ``*_figure`` function returns the Figure (handy for tests and
notebooks); each ``plot_*`` function builds it and writes a PNG atomically (a temporary
file in the same folder, then :func:`os.replace`), returning the destination path.
"""

from __future__ import annotations

import math
import os
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from sklearn.metrics import ConfusionMatrixDisplay, roc_auc_score, roc_curve

from alzmri.evaluation.metrics import check_targets_and_probabilities

__all__ = [
    "confusion_matrix_figure",
    "pareto_figure",
    "pareto_front",
    "plot_confusion_matrix",
    "plot_pareto",
    "plot_roc_comparison",
    "plot_roc_curves",
    "plot_training_curves",
    "plot_tsne",
    "roc_comparison_figure",
    "roc_curves_figure",
    "save_figure",
    "training_curves_figure",
    "tsne_figure",
]

#: Resolution of saved PNGs.
DEFAULT_DPI = 120


def _new_figure(figsize: tuple[float, float]) -> Figure:
    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: str | os.PathLike[str], *, dpi: int = DEFAULT_DPI) -> Path:
    """Write ``fig`` to ``path`` as a PNG, atomically.

    The image is first written to a temporary file in the destination folder, then
    moved into place with :func:`os.replace`, so readers never see a partial file. The
    folder is created if needed.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        Figure to save.
    path : str or os.PathLike
        Destination file (PNG format regardless of the suffix).
    dpi : int, default=120
        Resolution in dots per inch.

    Returns
    -------
    path : pathlib.Path
        The destination path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Not tempfile.mkstemp: its 0600 mode would stick to the final file; "xb" honours umask.
    tmp = path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        with open(tmp, "xb") as fh:
            fig.savefig(fh, format="png", dpi=dpi)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


# --------------------------------------------------------------------------- confusion


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


def plot_confusion_matrix(
    cm: Any,
    class_names: Sequence[str],
    path: str | os.PathLike[str],
    *,
    normalize: bool = True,
    title: str | None = None,
) -> Path:
    """Save a confusion-matrix heat map as a PNG (see :func:`confusion_matrix_figure`).

    Parameters
    ----------
    cm : array-like of shape (n_classes, n_classes), dtype int
        Counts; rows = true class, columns = predicted class.
    class_names : sequence of str of length n_classes
        Class names for both axes.
    path : str or os.PathLike
        Destination PNG, written atomically.
    normalize : bool, default=True
        Colour by row-normalised fraction and annotate "fraction\\n(count)".
    title : str, default=None
        Figure title.

    Returns
    -------
    path : pathlib.Path
    """
    fig = confusion_matrix_figure(cm, class_names, normalize=normalize, title=title)
    return save_figure(fig, path)


# --------------------------------------------------------------------------- training


def _finite_or_none(value: Any) -> float | None:
    if value is None:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


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


# --------------------------------------------------------------------------- ROC


def _style_roc_axes(ax, title: str) -> None:
    """Unit square, equal aspect, axis labels, grid and legend of a ROC plot."""
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_aspect("equal")
    ax.set_xlabel("False positive rate (1 - specificity)")
    ax.set_ylabel("True positive rate (sensitivity)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")


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


# --------------------------------------------------------------------------- comparison


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
    from matplotlib.colors import to_rgba

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


def tsne_figure(embedding: Any, labels: Any, class_names: Sequence[str], *, title: str | None = None) -> Figure:
    """Scatter a 2-D embedding (t-SNE of penultimate features), coloured by true class.

    Parameters
    ----------
    embedding : array-like of shape (n_samples, 2)
    labels : array-like of shape (n_samples,)
        Integer classes in ``[0, n_classes)``.
    class_names : sequence of str of length n_classes
        Legend names, in label order (the ordinal severity order: colours run from
        light to dark with severity).
    title : str, optional

    Returns
    -------
    fig : matplotlib.figure.Figure
    """
    emb = np.asarray(embedding, dtype=np.float64)
    lab = np.asarray(labels)
    if emb.ndim != 2 or emb.shape[1] != 2:
        raise ValueError(f"embedding must have shape (n_samples, 2), got shape {emb.shape}")
    if lab.shape != (emb.shape[0],):
        raise ValueError(f"labels must have shape ({emb.shape[0]},) to match the embedding, got shape {lab.shape}")
    n = len(class_names)
    if lab.size and (lab.min() < 0 or lab.max() >= n):
        raise ValueError(f"labels must lie in [0, {n - 1}] for {n} class names")
    from matplotlib import colormaps

    cmap = colormaps["viridis_r"]
    fig = _new_figure((7.0, 6.0))
    ax = fig.add_subplot()
    for k, name in enumerate(class_names):
        sel = lab == k
        if not sel.any():
            continue
        colour = cmap(0.1 + 0.8 * k / max(1, n - 1))
        ax.scatter(emb[sel, 0], emb[sel, 1], s=10, color=colour, alpha=0.75, label=f"{name} (n = {int(sel.sum())})", edgecolors="none")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel("t-SNE 1")
    ax.set_ylabel("t-SNE 2")
    ax.set_title(title or "t-SNE of penultimate-layer features")
    if lab.size:
        ax.legend(loc="best", fontsize="small", markerscale=2)
    fig.tight_layout()
    return fig


def plot_tsne(embedding: Any, labels: Any, class_names: Sequence[str], path: str | os.PathLike[str], *, title: str | None = None) -> Path:
    """Save a t-SNE scatter as a PNG (see :func:`tsne_figure`).

    Parameters
    ----------
    embedding : array-like of shape (n_samples, 2)
    labels : array-like of shape (n_samples,)
    class_names : sequence of str
    path : str or os.PathLike
        Destination PNG, written atomically.
    title : str, optional

    Returns
    -------
    path : pathlib.Path
    """
    return save_figure(tsne_figure(embedding, labels, class_names, title=title), path)


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
