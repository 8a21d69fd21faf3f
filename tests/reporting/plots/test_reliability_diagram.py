"""Reliability diagram: bars at each filled bin's accuracy, the gap to confidence, ECE in the title."""

from __future__ import annotations

import numpy as np
import pytest

from alzmri.reporting.plots import plot_reliability_diagram, reliability_figure

# four samples at confidence 0.8 (one bin), three right: accuracy 0.75, ECE |0.75 - 0.8| = 0.05
Y = [0, 0, 0, 1]
P = np.array([[0.8, 0.2]] * 4)


def test_one_panel_bars_and_title():
    fig = reliability_figure(Y, P, n_bins=10)
    (ax,) = fig.axes
    acc, gap = ax.containers
    assert len(acc) == 1 and len(gap) == 1  # only the filled bin
    bar = acc[0]
    assert bar.get_height() == pytest.approx(0.75) and bar.get_width() == pytest.approx(0.1)
    assert bar.get_x() == pytest.approx(0.7)  # bins are closed on the right: 0.8 lies in (0.7, 0.8]
    assert gap[0].get_y() == pytest.approx(0.75) and gap[0].get_height() == pytest.approx(0.05)
    assert ax.get_title() == "uncalibrated\nECE 0.050, n = 4"


def test_two_panels_and_png(tmp_path, assert_png):
    after = np.array([[0.75, 0.25]] * 4)
    fig = reliability_figure(Y, P, after, temperature=1.5)
    assert [ax.get_title() for ax in fig.axes] == ["uncalibrated\nECE 0.050, n = 4", "temperature scaled (T = 1.5)\nECE 0.000, n = 4"]
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 200)
    p = rng.dirichlet(np.ones(4), size=200)
    out = plot_reliability_diagram(y, p, p, tmp_path / "sub" / "reliability_diagram.png")
    assert out == tmp_path / "sub" / "reliability_diagram.png"
    assert_png(out)
