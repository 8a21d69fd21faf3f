"""Report figures, one module per figure.

Each figure comes as a pair: ``*_figure`` builds and returns a standalone
:class:`matplotlib.figure.Figure` (Agg canvas, no pyplot state; handy for tests and
notebooks) and ``plot_*`` builds it and writes a PNG with :func:`save_figure`, returning
the destination path. :func:`save_figure` is the one place alzmri writes a figure: the
PNG is rendered in memory and written atomically by
:func:`alzmri.utils.io.atomic_write_bytes` (mode from the umask, an earlier file kept
intact on failure).

Run figures: :mod:`~alzmri.reporting.plots.confusion_matrix`,
:mod:`~alzmri.reporting.plots.training_curves`, :mod:`~alzmri.reporting.plots.roc`,
:mod:`~alzmri.reporting.plots.reliability_diagram`. Comparison figures:
:mod:`~alzmri.reporting.plots.pareto`, :mod:`~alzmri.reporting.plots.tsne`,
:mod:`~alzmri.reporting.plots.roc_comparison`, :mod:`~alzmri.reporting.plots.forest`.
Each name is imported on first use, so ``import alzmri.reporting.plots`` loads no matplotlib.
"""

from __future__ import annotations

from alzmri.utils.lazy import lazy_submodules

#: Module -> the figures it draws; imported on first use, so naming them loads no matplotlib.
__all__, __getattr__, __dir__ = lazy_submodules(__name__, {
    "_figure": "save_figure",
    "confusion_matrix": "confusion_matrix_figure plot_confusion_matrix",
    "forest": "VERDICT_COLORS forest_figure plot_forest",
    "pareto": "pareto_figure pareto_front plot_pareto",
    "reliability_diagram": "plot_reliability_diagram reliability_figure",
    "roc": "plot_roc_curves roc_curves_figure",
    "roc_comparison": "plot_roc_comparison roc_comparison_figure",
    "training_curves": "plot_training_curves training_curves_figure",
    "tsne": "plot_tsne tsne_figure",
}, globals())
