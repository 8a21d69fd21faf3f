"""The folds of a K-fold cross-validation by subject (``alzmri train --folds K``, ``alzmri compare --folds K``).

:func:`make_fold_splits` cuts them; :func:`alzmri.pipeline.train_cv` trains one ordinary
run per fold and :func:`alzmri.evaluation.cv.summarize_cv` scores them (the folder is
described in :mod:`alzmri.pipeline.cv`).

Folds come from :func:`alzmri.data.folds.subject_folds`: test = one fold of
``StratifiedGroupKFold``, validation carved from the remaining subjects, so no subject is in
two splits of a fold and every subject is tested exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from alzmri.config import TrainConfig
from alzmri.data.folds import subject_folds



@dataclass
class FoldSplits:
    """The K splits of a cross-validation by subject (:func:`make_fold_splits`).

    Attributes
    ----------
    splits : list of ndarray of shape (n_images,), dtype str
        ``"train"``/``"val"``/``"test"``/``""`` (left out) per image, one array per fold.
    groups : ndarray of shape (n_images,)
        Subject (scan group) of every image.
    groups_source : str
    copy_of : ndarray or None
        The original of each augmented copy (None without copies).
    warnings : list of str
        Warnings about the groups (unreliable recovered groups), already printed.
    """

    splits: list[np.ndarray]
    groups: np.ndarray
    groups_source: str
    copy_of: np.ndarray | None
    warnings: list[str]


def make_fold_splits(cfg: TrainConfig, index, image_size: int) -> FoldSplits:
    """The ``cfg.folds`` subject folds of a dataset, checked (every class in train and test).

    The images are decoded (or read from the decode-once cache) at ``image_size`` to learn
    which are readable; folds come from :func:`alzmri.data.folds.subject_folds` with
    ``cfg.seed`` and validation share ``cfg.fractions[1]``; copies of validation/test brains
    are left out unless ``cfg.keep_eval_copies``. Shared by ``alzmri train --folds`` and
    ``alzmri compare --folds``, so both cut identical folds from identical settings.

    Raises
    ------
    AlzmriError
        Unreadable images (unless ``skip_unreadable``), more folds than subjects, a fold
        without a class in train or test.
    """
    from alzmri.data.eval_copies import leave_out_eval_copies
    from alzmri.data.subjects import resolve_subjects
    from alzmri.data.tasks import get_task
    from alzmri.training.train import _check_split, load_checked_images
    from alzmri.utils.console import print_warning

    task = get_task(cfg.task)
    k = int(cfg.folds or 0)
    cached = load_checked_images(cfg, index, image_size)
    subjects = resolve_subjects(index, groups_file=cfg.groups)
    groups, copy_of = subjects.group, subjects.copy_of
    unreliable = [w for w in (subjects.warning(),) if w]
    for w in unreliable:
        print_warning(w)
    readable = np.flatnonzero(cached.readable)
    fold_splits = []
    for sub in subject_folds(index.labels[readable], groups[readable], k, seed=cfg.seed, val_fraction=cfg.fractions[1]):
        s = np.full(len(index), "", dtype=object)
        s[readable] = sub
        # a brain and its copies share a group, so they share a fold; copies of validation/test brains are left out
        s = leave_out_eval_copies(s.astype(str), copy_of, keep=cfg.keep_eval_copies)
        _check_split(s, task.map_labels(index.labels), f"{index.root} (fold {len(fold_splits) + 1} of {k})", task.class_names)
        fold_splits.append(s)
    return FoldSplits(fold_splits, groups, subjects.source, copy_of, unreliable)
