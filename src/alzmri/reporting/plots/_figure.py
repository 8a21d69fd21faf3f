"""What every plot shares: a standalone Agg figure, the one PNG writer, small drawing helpers.

Figures are built as standalone :class:`matplotlib.figure.Figure` objects rendered by the
Agg canvas, so nothing touches pyplot's global state, no window ever opens and nothing
needs closing. :func:`save_figure` is the only place in alzmri that writes a figure to
disk: it renders the PNG in memory and writes it with
:func:`alzmri.utils.io.atomic_write_bytes`.
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from alzmri.utils.io import atomic_write_bytes

__all__ = ["DEFAULT_DPI", "save_figure"]

#: Resolution of saved PNGs.
DEFAULT_DPI = 120


def _new_figure(figsize: tuple[float, float]) -> Figure:
    """A :class:`~matplotlib.figure.Figure` of ``figsize`` (inches) on its own Agg canvas."""
    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: str | os.PathLike[str], *, dpi: int = DEFAULT_DPI) -> Path:
    """Write ``fig`` to ``path`` as a PNG, atomically.

    The image is rendered to bytes in memory, then written with
    :func:`alzmri.utils.io.atomic_write_bytes`: a temporary file beside ``path``, fsynced
    and renamed over it, so readers never see a partial file and a failure leaves an
    earlier ``path`` as it was. The file gets the mode a plain ``open`` would give
    (0666 minus the umask). The folder is created if needed.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        Figure to save.
    path : str or os.PathLike
        Destination file (PNG format regardless of the suffix).
    dpi : int, default=120
        Resolution in dots per inch.

    Returns
    -------
    path : pathlib.Path
        The destination path.
    """
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return atomic_write_bytes(path, buf.getvalue())


def _finite_or_none(value: Any) -> float | None:
    """``value`` as a float, or None when it is missing, not a number, NaN or infinite."""
    if value is None:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _style_roc_axes(ax, title: str) -> None:
    """Unit square, equal aspect, axis labels, grid and legend of a ROC plot."""
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_aspect("equal")
    ax.set_xlabel("False positive rate (1 - specificity)")
    ax.set_ylabel("True positive rate (sensitivity)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
