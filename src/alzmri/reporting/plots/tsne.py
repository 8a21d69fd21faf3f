"""A comparison's t-SNE scatter of penultimate-layer features, coloured by true class."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from alzmri.reporting.plots._figure import _new_figure, save_figure

__all__ = ["plot_tsne", "tsne_figure"]


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
