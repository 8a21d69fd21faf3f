"""The CSV files of a brain-level run: ``history.csv`` and ``predictions.csv``.

:mod:`alzmri.training.brain_runs` writes them into each run folder; every file is written
atomically (:func:`alzmri.utils.io.atomic_write_text`).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from alzmri.training.brain import BrainData
from alzmri.utils.io import atomic_write_text

__all__ = ["HISTORY_COLUMNS", "write_brain_history", "write_brain_predictions"]

HISTORY_COLUMNS = ("epoch", "train_loss", "val_loss", "val_score")


def write_brain_history(path: Path, rows: list[dict]) -> None:
    """history.csv of a brain-level run: epoch, train_loss, val_loss, val_score (the early-stopping score).

    Parameters
    ----------
    path : Path
        The file to write.
    rows : list of dict
        One per epoch, keyed by :data:`HISTORY_COLUMNS`; a missing or None value is written empty.
    """
    lines = [",".join(HISTORY_COLUMNS)]
    for r in rows:
        lines.append(",".join("" if r.get(k) is None else (str(int(r[k])) if k == "epoch" else f"{r[k]:.6g}") for k in HISTORY_COLUMNS))
    atomic_write_text(path, "\n".join(lines) + "\n")


def write_brain_predictions(path: Path, data: BrainData, r: dict) -> None:
    """predictions.csv of a brain-level run: one row per validation and test brain.

    Columns: ``brain``, ``split``, ``n_slices``, ``class``, ``predicted``, ``threshold`` and
    ``p_<class>`` of each class; a binary task predicts at ``threshold``, others take the argmax.

    Parameters
    ----------
    path : Path
        The file to write.
    data : BrainData
        The brains the indices refer to.
    r : dict
        ``val_b``, ``test_b`` (brain indices), ``val_prob``, ``test_prob`` (ndarray of shape
        (n, n_classes)) and ``threshold`` (float).
    """
    names = data.task.class_names
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["brain", "split", "n_slices", "class", "predicted", "threshold", *(f"p_{c}" for c in names)])
    for split, idx, prob in (("val", r["val_b"], r["val_prob"]), ("test", r["test_b"], r["test_prob"])):
        for i, p in zip(idx, prob):
            pred = (int(1 - p[0] >= r["threshold"]) if data.task.is_binary else int(np.argmax(p)))
            w.writerow([int(data.bags.brain_ids[i]), split, len(data.bags.members[i]), names[data.y[i]], names[pred], f"{r['threshold']:.6f}", *(f"{v:.6f}" for v in p)])
    atomic_write_text(path, buf.getvalue())
