"""t-SNE scatter: one colour per class present, counts in the legend, shapes checked."""

from __future__ import annotations

import numpy as np
import pytest

from alzmri.data.classes import CLASS_NAMES
from alzmri.reporting.plots import plot_tsne, tsne_figure


def test_tsne_png_and_legend(tmp_path, assert_png):
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(40, 2))
    labels = np.repeat(np.arange(4), 10)
    assert_png(plot_tsne(emb, labels, CLASS_NAMES, tmp_path / "tsne.png", title="t"))
    fig = tsne_figure(emb[:30], labels[:30], CLASS_NAMES)
    ax = fig.axes[0]
    assert ax.get_legend_handles_labels()[1] == [f"{c} (n = 10)" for c in CLASS_NAMES[:3]]  # class 3 absent
    assert ax.get_title() == "t-SNE of penultimate-layer features"


def test_tsne_validates_shapes_and_labels(tmp_path):
    emb = np.zeros((8, 2))
    labels = np.repeat(np.arange(4), 2)
    with pytest.raises(ValueError, match="shape"):
        plot_tsne(emb[:, :1], labels, CLASS_NAMES, tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"labels must have shape \(8,\)"):
        tsne_figure(emb, labels[:5], CLASS_NAMES)
    with pytest.raises(ValueError, match=r"\[0, 3\] for 4 class names"):
        tsne_figure(emb, labels + 1, CLASS_NAMES)
    assert not (tmp_path / "x.png").exists()
