"""Training curves: loss and accuracy panels that skip missing values, and an empty history."""

from __future__ import annotations

from alzmri.reporting.plots import plot_training_curves, training_curves_figure


def test_training_curves_png_with_gaps(tmp_path, assert_png):
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


def test_training_curves_empty_history(tmp_path, assert_png):
    out = plot_training_curves([], tmp_path / "empty.png")
    assert_png(out)
