"""``alzmri.reporting`` names its public functions and loads matplotlib only when a figure is asked for."""

from __future__ import annotations

import subprocess
import sys

import pytest

import alzmri.reporting
import alzmri.reporting.plots


def test_import_is_light_and_names_resolve():
    code = "import sys, alzmri.reporting; print([m for m in ('matplotlib', 'sklearn', 'torch') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
    assert set(alzmri.reporting.plots.__all__) <= set(alzmri.reporting.__all__)
    assert {"write_report", "format_table", "write_cv_report", "cv_table", "write_model_card"} <= set(alzmri.reporting.__all__)
    for name in alzmri.reporting.__all__:
        assert getattr(alzmri.reporting, name) is not None, name
    assert alzmri.reporting.save_figure is alzmri.reporting.plots.save_figure
    assert alzmri.reporting.plot_forest.__module__ == "alzmri.reporting.plots.forest"
    assert "plot_pareto" in dir(alzmri.reporting)
    with pytest.raises(AttributeError, match="no_such_plot"):
        alzmri.reporting.no_such_plot  # noqa: B018


def test_plots_all_is_what_the_package_imports():
    names = alzmri.reporting.plots.__all__
    assert names == sorted(set(names))
    for name in names:
        assert getattr(alzmri.reporting.plots, name) is not None, name
