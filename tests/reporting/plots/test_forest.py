"""Forest plot of a paired comparison: two panels, one interval per row, the zero line, a PNG."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from matplotlib.container import ErrorbarContainer

from alzmri.reporting.plots import forest_figure, plot_forest

RESULT = {
    "reference": "cnn",
    "n_brains": 40,
    "n_boot": 200,
    "n_valid": 200,
    "alpha": 0.05,
    "ci_method": "paired percentile bootstrap",
    "rows": {
        "cnn": {"estimate": 0.70, "ci": [0.60, 0.80], "difference": 0.0, "difference_ci": [0.0, 0.0], "verdict": "reference", "p_best": 0.10},
        "resnet": {"estimate": 0.85, "ci": [0.76, 0.92], "difference": 0.15, "difference_ci": [0.05, 0.25], "verdict": "better", "p_best": 0.80},
        "lite0": {"estimate": 0.66, "ci": [0.55, 0.77], "difference": -0.04, "difference_ci": [-0.12, 0.03], "verdict": "not distinguishable", "p_best": 0.10},
    },
}


def _bars(ax) -> list[ErrorbarContainer]:
    return [c for c in ax.containers if isinstance(c, ErrorbarContainer)]


def test_two_panels_one_interval_per_row_and_the_zero_line():
    fig = forest_figure(RESULT, metric_label="ROC-AUC")
    assert len(fig.axes) == 2
    left, right = fig.axes
    assert len(_bars(left)) == 3 and len(_bars(right)) == 3
    # points sit at the estimates / differences, rows top to bottom in input order
    assert [float(c.lines[0].get_xdata()[0]) for c in _bars(left)] == [0.70, 0.85, 0.66]
    assert [float(c.lines[0].get_xdata()[0]) for c in _bars(right)] == [0.0, 0.15, -0.04]
    ylo, yhi = left.get_ylim()
    assert ylo > yhi  # inverted: row 0 on top
    zero = [ln for ln in right.lines if ln.get_linestyle() == "--" and np.allclose(ln.get_xdata(), 0.0)]
    assert len(zero) == 1
    labels = [t.get_text() for t in left.get_yticklabels()]
    assert labels == ["cnn (reference)", "resnet", "lite0"]
    texts = " | ".join(t.get_text() for t in right.texts)
    for p in ("P(best) = 0.10", "P(best) = 0.80"):
        assert p in texts
    assert "better" in texts and "not distinguishable" in texts
    assert "95 % interval" in left.get_xlabel() and "minus cnn" in right.get_xlabel()
    assert "40 brains" in fig._suptitle.get_text()


def test_png_is_written(tmp_path):
    out = plot_forest(RESULT, tmp_path / "sub" / "forest.png", metric_label="ROC-AUC", title="binary task")
    assert out == tmp_path / "sub" / "forest.png"
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5_000
    assert not [p for p in out.parent.iterdir() if p.name.endswith(".tmp")]


def test_rows_without_numbers_are_drawn_as_na(tmp_path):
    result = copy.deepcopy(RESULT)
    result["rows"]["lite0"] = {"estimate": None, "ci": None, "difference": None, "difference_ci": None, "verdict": "not distinguishable", "p_best": None}
    result["rows"]["resnet"]["ci"] = None
    fig = forest_figure(result, metric_label="ROC-AUC")
    left, right = fig.axes
    assert len(_bars(left)) == 2 and len(_bars(right)) == 2
    assert [t.get_text() for t in left.texts] == ["n/a"]
    assert "n/a" in [t.get_text() for t in right.texts]
    assert any("P(best) = n/a" in t.get_text() for t in right.texts)
    plot_forest(result, tmp_path / "na.png", metric_label="ROC-AUC")


def test_not_a_result():
    with pytest.raises(ValueError, match=r"lacks the key\(s\) \['rows'\]"):
        forest_figure({"reference": "a"}, metric_label="x")
    with pytest.raises(ValueError, match="non-empty mapping"):
        forest_figure({"reference": "a", "rows": {}}, metric_label="x")
