"""Reporting: turns computed results into figures, tables, reports and model cards.

Reporting draws and lays out; it never computes a metric. The public functions are named
here and imported on first use (PEP 562), so ``import alzmri.reporting`` (and the table
commands of ``alzmri``) do not load matplotlib until a figure is drawn:

- :mod:`alzmri.reporting.plots`: the figures (``*_figure`` returns a Figure, ``plot_*``
  writes a PNG through :func:`~alzmri.reporting.plots.save_figure`);
- :mod:`alzmri.reporting.report`: a one-split comparison's tables and report;
- :mod:`alzmri.reporting.cv_report`: a cross-validated comparison's tables and report;
- :mod:`alzmri.reporting.model_card`: the ``MODEL_CARD.md`` of a run.
"""

from __future__ import annotations

import importlib
from typing import Any

_PLOTS = (
    "VERDICT_COLORS",
    "confusion_matrix_figure",
    "forest_figure",
    "pareto_figure",
    "pareto_front",
    "plot_confusion_matrix",
    "plot_forest",
    "plot_pareto",
    "plot_reliability_diagram",
    "plot_roc_comparison",
    "plot_roc_curves",
    "plot_training_curves",
    "plot_tsne",
    "reliability_figure",
    "roc_comparison_figure",
    "roc_curves_figure",
    "save_figure",
    "training_curves_figure",
    "tsne_figure",
)

#: Public name -> module that defines it: imported on first access.
_LAZY: dict[str, str] = {
    **dict.fromkeys(_PLOTS, "alzmri.reporting.plots"),
    **dict.fromkeys(("format_table", "leakage_note", "table_columns", "task_text", "write_report"), "alzmri.reporting.report"),
    **dict.fromkeys(("cv_table", "fold_table", "write_cv_report"), "alzmri.reporting.cv_report"),
    **dict.fromkeys(("model_card_text", "write_model_card"), "alzmri.reporting.model_card"),
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    try:
        module = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'alzmri.reporting' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later accesses skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
