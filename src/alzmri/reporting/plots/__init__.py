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
"""

from alzmri.reporting.plots._figure import save_figure
from alzmri.reporting.plots.confusion_matrix import confusion_matrix_figure, plot_confusion_matrix
from alzmri.reporting.plots.forest import VERDICT_COLORS, forest_figure, plot_forest
from alzmri.reporting.plots.pareto import pareto_figure, pareto_front, plot_pareto
from alzmri.reporting.plots.reliability_diagram import plot_reliability_diagram, reliability_figure
from alzmri.reporting.plots.roc import plot_roc_curves, roc_curves_figure
from alzmri.reporting.plots.roc_comparison import plot_roc_comparison, roc_comparison_figure
from alzmri.reporting.plots.training_curves import plot_training_curves, training_curves_figure
from alzmri.reporting.plots.tsne import plot_tsne, tsne_figure

__all__ = [
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
]
