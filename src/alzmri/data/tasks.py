"""Task framings of the ordinal CDR scale: the notebook's 4 classes, 3 classes, and demented vs not.

The data always carries the four canonical labels (:data:`alzmri.data.classes.CLASS_NAMES`,
0 = NonDemented .. 3 = ModerateDemented); a task maps them onto its own classes:

=========  ==========================================================  ========
task       classes (index order)                                       ordinal
=========  ==========================================================  ========
4class     NonDemented, VeryMildDemented, MildDemented, ModerateDemented  yes
3class     NonDemented, VeryMildDemented, MildModerateDemented          yes
binary     NonDemented, Demented (VeryMild, Mild or Moderate)           no
=========  ==========================================================  ========

The 3-class task merges Mild and Moderate because the public 6,400-slice set holds only
2 ModerateDemented brains. Splits are always made on the four canonical labels, so the
same seed gives the same brains in every split whatever the task.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from alzmri.data.classes import CLASS_NAMES, class_index
from alzmri.errors import AlzmriError

__all__ = ["TASKS", "Task", "get_task", "task_label"]


@dataclass(frozen=True)
class Task:
    """One framing of the classes.

    Attributes
    ----------
    name : str
        ``"4class"``, ``"3class"`` or ``"binary"``.
    class_names : tuple of str
        The task's classes in index order.
    mapping : tuple of int
        ``mapping[k]`` is the task class of canonical class ``k`` (0..3).
    ordinal : bool
        Whether the classes are ordered (quadratic weighted kappa and the mean absolute
        error in classes apply; ``loss: ordinal`` is allowed).
    """

    name: str
    class_names: tuple[str, ...]
    mapping: tuple[int, ...]
    ordinal: bool

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def is_binary(self) -> bool:
        return self.num_classes == 2

    def map_labels(self, labels) -> np.ndarray:
        """Canonical labels (0..3) to this task's labels.

        Parameters
        ----------
        labels : array-like of int, shape (n,)

        Returns
        -------
        ndarray of shape (n,), dtype int64

        Raises
        ------
        AlzmriError
            A label outside 0..3.
        """
        labels = np.asarray(labels, dtype=np.int64)
        if labels.size and (labels.min() < 0 or labels.max() >= len(self.mapping)):
            raise AlzmriError(f"labels must be canonical class indices 0..{len(self.mapping) - 1}; got {labels.min()}..{labels.max()}")
        return np.asarray(self.mapping, dtype=np.int64)[labels]

    def label_of(self, name: str) -> int | None:
        """Task class of a class name in any spelling (canonical, folder spelling or this task's own name)."""
        norm = "".join(ch for ch in name.lower() if ch.isalnum())
        for k, c in enumerate(self.class_names):
            if c.lower() == norm:
                return k
        canonical = class_index(name)
        return None if canonical is None else self.mapping[canonical]


TASKS: dict[str, Task] = {
    "4class": Task("4class", CLASS_NAMES, (0, 1, 2, 3), ordinal=True),
    "3class": Task("3class", ("NonDemented", "VeryMildDemented", "MildModerateDemented"), (0, 1, 2, 2), ordinal=True),
    "binary": Task("binary", ("NonDemented", "Demented"), (0, 1, 1, 1), ordinal=False),
}


def get_task(name: str) -> Task:
    """The :class:`Task` named ``name``.

    Raises
    ------
    AlzmriError
        Unknown task (the message lists the known ones).
    """
    try:
        return TASKS[name]
    except (KeyError, TypeError):
        raise AlzmriError(f"unknown task {name!r}; use one of {', '.join(TASKS)} (--task)") from None


def task_label(name: str, task: str | Task = "4class") -> int | None:
    """Task class index of a class name in any spelling, else None.

    >>> task_label("Very_Mild_Demented", "binary"), task_label("Moderate Dementia", "3class")
    (1, 2)
    """
    return (task if isinstance(task, Task) else get_task(task)).label_of(name)
