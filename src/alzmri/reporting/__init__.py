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

from alzmri.reporting import plots  # its names only: the figures' modules load on first use
from alzmri.utils.lazy import lazy_submodules

#: Module -> the public names it defines, each imported on first use (:mod:`alzmri.utils.lazy`).
__all__, __getattr__, __dir__ = lazy_submodules(__name__, {
    "plots": plots.__all__,
    "report": "format_table leakage_note table_columns task_text write_report",
    "cv_report": "cv_table fold_table write_cv_report",
    "model_card": "model_card_text write_model_card",
}, globals())
