"""K-fold cross-validation by subject: every image is tested once, no subject in two splits of a fold."""

from __future__ import annotations

import numpy as np

from alzmri.data.subject_splits import assign_groups, group_codes, quiet_sgkf
from alzmri.errors import AlzmriError


def cv_strategy_name(fold: int, k: int) -> str:
    """Strategy name of fold ``fold`` (0-based) of ``k``, as written in manifests and run.json."""
    return f"subject-cv (fold {fold + 1} of {k})"


def subject_folds(labels, groups, k: int = 5, *, seed: int = 42, val_fraction: float = 0.15) -> list[np.ndarray]:
    """K-fold cross-validation by subject: one split array per fold.

    Fold ``i``'s test split is the ``i``-th fold of scikit-learn's
    ``StratifiedGroupKFold(k, shuffle=True, random_state=seed)``; its validation split is
    carved from the remaining subjects as by
    :func:`alzmri.data.subject_splits.subject_split` (whole subjects, about
    ``val_fraction`` of all images), the rest is train. Every image is in exactly one test
    split, so the test predictions of all folds together cover the data once
    (out-of-fold predictions).

    Parameters
    ----------
    labels : array-like of shape (n_images,)
        Integer class labels.
    groups : array-like of shape (n_images,)
        Subject (scan group) of every image.
    k : int, default=5
        Number of folds, at least 2 and at most the number of groups.
    seed : int, default=42
    val_fraction : float, default=0.15
        Share of all images to hold out for validation in each fold (0 for none).

    Returns
    -------
    list of ndarray of shape (n_images,), dtype str
        ``k`` arrays of ``"train"``/``"val"``/``"test"``.

    Raises
    ------
    AlzmriError
        ``k`` below 2 or above the number of groups; ``val_fraction`` leaves no training
        subjects; ``groups`` missing or misaligned.
    """
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    codes = group_codes(groups, len(labels))
    n_groups = int(codes.max()) + 1 if len(codes) else 0
    if not isinstance(k, (int, np.integer)) or k < 2:
        raise AlzmriError(f"--folds must be an integer of at least 2; got {k!r}")
    if k > n_groups:
        raise AlzmriError(f"--folds {k} is more than the {n_groups} subjects of the data; use at most {n_groups} folds")
    if k > int(np.bincount(labels).max()):
        raise AlzmriError(f"--folds {k} is more than the images of the largest class ({int(np.bincount(labels).max())}); use fewer folds")
    rest_share = 1.0 - 1.0 / k
    v = float(val_fraction) / rest_share
    if not (0.0 <= v < 1.0):
        raise AlzmriError(f"validation fraction {val_fraction} leaves no training subjects with {k} folds; use a smaller fraction")
    fold_of_group = quiet_sgkf(k, seed, labels, codes)
    folds = []
    for i in range(k):
        out = np.full(len(labels), "test", dtype=object)
        rest = np.flatnonzero(fold_of_group[codes] != i)
        sub_codes = np.unique(codes[rest], return_inverse=True)[1].reshape(-1)
        out[rest] = assign_groups(labels[rest], sub_codes, (1.0 - v, v, 0.0), seed + 1 + i)
        folds.append(out.astype(str))
    return folds
