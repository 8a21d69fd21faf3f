"""Report figures: valid PNGs written atomically, with the expected content."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from alzmri.data.classes import CLASS_NAMES
from alzmri.reporting.figures import (
    confusion_matrix_figure,
    plot_confusion_matrix,
    plot_roc_curves,
    plot_training_curves,
    roc_curves_figure,
    save_figure,
    training_curves_figure,
)

CM = np.array(
    [
        [412, 25, 3, 0],
        [30, 280, 10, 0],
        [2, 20, 120, 1],
        [0, 0, 2, 0],
    ]
)


def assert_png(path: Path) -> None:
    assert path.is_file()
    with Image.open(path) as img:
        assert img.format == "PNG"
        img.verify()
    with Image.open(path) as img:
        assert img.width > 300 and img.height > 300
    assert path.stat().st_size > 5_000
    leftovers = [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def cell_texts(fig) -> list[str]:
    ax = fig.axes[0]
    return [t.get_text() for t in ax.texts]


def test_confusion_matrix_png(tmp_path):
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


def test_training_curves_png_with_gaps(tmp_path):
    history = [
        {"epoch": 1, "train_loss": 1.2, "val_loss": 1.1, "train_accuracy": 0.45,
         "val_accuracy": 0.5, "val_balanced_accuracy": 0.4},
        {"epoch": 2, "train_loss": 0.9, "val_loss": None, "train_accuracy": 0.6},
        {"epoch": 3, "train_loss": 0.7, "val_loss": 0.8, "train_accuracy": 0.7,
         "val_accuracy": 0.68, "val_balanced_accuracy": float("nan")},
    ]
    fig = training_curves_figure(history)
    ax_loss, ax_acc = fig.axes[:2]
    lines = {line.get_label(): line for line in ax_loss.get_lines()}
    assert list(lines["train loss"].get_xdata()) == [1, 2, 3]
    assert list(lines["val loss"].get_xdata()) == [1, 3]  # None skipped
    acc_lines = {line.get_label(): line for line in ax_acc.get_lines()}
    assert set(acc_lines) == {"train accuracy", "val accuracy", "val balanced accuracy"}
    assert list(acc_lines["val balanced accuracy"].get_ydata()) == [0.4]  # NaN skipped

    out = plot_training_curves(history, tmp_path / "sub" / "curves.png")
    assert_png(out)


def test_training_curves_empty_history(tmp_path):
    out = plot_training_curves([], tmp_path / "empty.png")
    assert_png(out)


def test_roc_curves_png_and_legend(tmp_path):
    rng = np.random.default_rng(0)
    y_true = np.repeat([0, 1, 2], 20)  # ModerateDemented absent -> skipped
    logits = rng.normal(size=(60, 4))
    logits[np.arange(60), y_true] += 2.0
    y_prob = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)

    fig = roc_curves_figure(y_true, y_prob, CLASS_NAMES)
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert len(labels) == 4  # three classes + chance line
    assert any(label.startswith("NonDemented (AUC = ") for label in labels)
    assert not any("ModerateDemented" in label for label in labels)

    out = plot_roc_curves(y_true, y_prob, CLASS_NAMES, tmp_path / "roc.png")
    assert_png(out)


def test_roc_curves_validate_shapes():
    with pytest.raises(ValueError, match=r"\(2, 4\).*\(2, 3\)"):
        roc_curves_figure(np.array([0, 1]), np.full((2, 3), 1 / 3), CLASS_NAMES)


def test_save_figure_replaces_existing_file(tmp_path):
    target = tmp_path / "cm.png"
    target.write_bytes(b"old")
    save_figure(confusion_matrix_figure(CM, CLASS_NAMES), target)
    assert_png(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cm.png"]


def test_save_failure_leaves_no_temp_file(tmp_path, monkeypatch):
    fig = confusion_matrix_figure(CM, CLASS_NAMES)

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(fig, "savefig", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        save_figure(fig, tmp_path / "cm.png")
    assert list(tmp_path.iterdir()) == []
