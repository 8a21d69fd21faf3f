"""Confusion-matrix heat map: fractions with counts, labels, the counts mode and shape errors."""

from __future__ import annotations

import numpy as np
import pytest

from alzmri.data.classes import CLASS_NAMES
from alzmri.reporting.plots import confusion_matrix_figure, plot_confusion_matrix

CM = np.array(
    [
        [412, 25, 3, 0],
        [30, 280, 10, 0],
        [2, 20, 120, 1],
        [0, 0, 2, 0],
    ]
)


def cell_texts(fig) -> list[str]:
    ax = fig.axes[0]
    return [t.get_text() for t in ax.texts]


def test_confusion_matrix_png(tmp_path, assert_png):
    out = plot_confusion_matrix(CM, CLASS_NAMES, tmp_path / "cm.png")
    assert out == tmp_path / "cm.png"
    assert_png(out)


def test_confusion_matrix_annotations_and_labels():
    fig = confusion_matrix_figure(CM, CLASS_NAMES)
    ax = fig.axes[0]
    texts = cell_texts(fig)
    assert len(texts) == 16
    # row 0: 412 / 440 = 0.936..., 25 / 440 = 0.056...
    assert f"{412 / 440:.2f}\n(412)" in texts
    assert "0.94\n(412)" in texts
    assert "0.06\n(25)" in texts
    # row 1: 280 / 320 = 0.875 -> "0.88" (round half to even on the binary value)
    assert f"{280 / 320:.2f}\n(280)" in texts
    # row 3 has 2 samples, both predicted MildDemented
    assert "1.00\n(2)" in texts
    assert ax.get_xlabel() == "Predicted class"
    assert ax.get_ylabel() == "True class"
    assert [t.get_text() for t in ax.get_xticklabels()] == list(CLASS_NAMES)
    assert [t.get_text() for t in ax.get_yticklabels()] == list(CLASS_NAMES)
    assert all(t.get_rotation() != 0 for t in ax.get_xticklabels())
    assert "normalised" in ax.get_title()


def test_confusion_matrix_empty_row_and_counts_mode():
    cm = CM.copy()
    cm[3] = 0
    fig = confusion_matrix_figure(cm, CLASS_NAMES, title="Test split")
    assert "0.00\n(0)" in cell_texts(fig)
    assert fig.axes[0].get_title() == "Test split"
    raw = confusion_matrix_figure(CM, CLASS_NAMES, normalize=False)
    texts = cell_texts(raw)
    assert "412" in texts and "280" in texts


def test_confusion_matrix_shape_errors():
    with pytest.raises(ValueError, match=r"\(4, 4\).*\(3, 3\)"):
        confusion_matrix_figure(np.eye(3, dtype=int), CLASS_NAMES)
    with pytest.raises(ValueError, match="square"):
        confusion_matrix_figure(np.zeros((4, 3), dtype=int), CLASS_NAMES)
