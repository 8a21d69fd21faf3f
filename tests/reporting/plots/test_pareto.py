"""Pareto front and plot: a score against training time, log axis on a wide spread."""

from __future__ import annotations

from alzmri.reporting.plots import pareto_figure, pareto_front, plot_pareto


def row(name: str, time_s: float, bacc: float, size: float) -> dict:
    return {"name": name, "size_mb": size, "train_time_s": time_s, "balanced_accuracy": bacc, "macro_f1": bacc - 0.1}


def test_pareto_front():
    # (time, score): b is dominated by a (slower, worse); d ties c's score but is slower
    assert pareto_front([1, 2, 3, 4], [0.5, 0.4, 0.7, 0.7]) == [0, 2]
    assert pareto_front([5.0], [0.1]) == [0]


def test_pareto_png_log_axis_and_front(tmp_path, assert_png):
    rows = [row("a", 10, 0.6, 5), row("b", 2000, 0.8, 90), row("c", 50, 0.5, 20)]
    assert_png(plot_pareto(rows, tmp_path / "pareto.png"))
    fig = pareto_figure(rows)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"  # 200x spread
    assert ax.get_xlabel() == "training time (s)"
    assert ax.get_ylabel() == "balanced accuracy (test)"
    (front,) = [ln for ln in ax.get_lines() if ln.get_label() == "Pareto front"]
    assert list(front.get_xdata()) == [10, 2000] and list(front.get_ydata()) == [0.6, 0.8]  # c is beaten by a
    assert sorted(t.get_text() for t in ax.texts) == ["a", "b", "c"]


def test_pareto_other_metric_and_no_usable_row():
    fig = pareto_figure([row("a", 10, 0.6, 5), row("c", 50, 0.7, 20)], metric="macro_f1", metric_label="macro F1")
    ax = fig.axes[0]
    assert ax.get_xscale() == "linear" and ax.get_ylabel() == "macro F1"
    assert list(ax.collections[0].get_offsets()[:, 1]) == [0.5, 0.6]
    empty = pareto_figure([{"name": "x", "train_time_s": None, "balanced_accuracy": 0.5}])
    assert [t.get_text() for t in empty.axes[0].texts] == ["no model with a training time and a balanced accuracy (test)"]
