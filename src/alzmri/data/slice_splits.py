"""Seeded random splits of slices (stratified by class, or plain) and the checks every splitter shares.

``stratified`` is scikit-learn's ``train_test_split`` with ``stratify``; ``image`` the
notebook's plain random split. When the release ships its own ``test/`` folder
(``split_folders`` layout), both keep those images as the test split and carve
validation from the rest.

Warning: these split slices, not brains. Neighbouring slices of one scan are nearly
identical, so slice-level splits inflate test accuracy (Yagis et al. 2021; see
:mod:`alzmri.data.splits`). The subject splitter is :mod:`alzmri.data.subject_splits`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.model_selection import train_test_split

from alzmri.errors import AlzmriError

SPLIT_NAMES = ("train", "val", "test")


def check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    """The (train, val, test) fractions as floats, checked.

    Parameters
    ----------
    fractions : sequence of float
        Three non-negative numbers summing to 1; the train fraction positive.

    Returns
    -------
    (float, float, float)

    Raises
    ------
    AlzmriError
        Not three numbers, a negative one, a sum other than 1, or no train fraction.
    """
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
        raise AlzmriError(f"split fractions must be three non-negative numbers summing to 1 (train, val, test); got {tuple(fractions)}")
    if fractions[0] <= 0:
        raise AlzmriError(f"split fractions: the train fraction must be positive; got {tuple(fractions)}")
    return float(fractions[0]), float(fractions[1]), float(fractions[2])


def _can_stratify(labels: np.ndarray, n_take: int) -> bool:
    _, counts = np.unique(labels, return_counts=True)
    return counts.min() >= 2 and n_take >= len(counts) and len(labels) - n_take >= len(counts)


def _two_way(idx: np.ndarray, labels: np.ndarray, frac: float, seed: int, stratify: bool) -> tuple[np.ndarray, np.ndarray]:
    """Split ``idx`` into (rest, taken) with ``frac`` of it taken."""
    if frac <= 0 or len(idx) == 0:
        return idx, idx[:0]
    n_take = int(round(frac * len(idx)))
    if n_take == 0:
        return idx, idx[:0]
    if n_take >= len(idx):
        return idx[:0], idx
    strat = labels[idx] if stratify and _can_stratify(labels[idx], n_take) else None
    rest, taken = train_test_split(idx, test_size=n_take, random_state=seed, shuffle=True, stratify=strat)
    return np.sort(rest), np.sort(taken)


def _split(labels: np.ndarray, fractions: Sequence[float], seed: int, source_split: Sequence[str | None] | None, stratify: bool) -> np.ndarray:
    labels = np.asarray(labels)
    f_train, f_val, f_test = check_fractions(fractions)
    out = np.empty(len(labels), dtype=object)
    idx = np.arange(len(labels))
    if source_split is not None and any(s == "test" for s in source_split):
        src = np.array([s or "train" for s in source_split], dtype=object)
        out[src == "test"] = "test"
        pool = idx[src != "test"]
        given_val = pool[src[pool] == "val"]
        pool = pool[src[pool] != "val"]
        out[given_val] = "val"
        if len(given_val) == 0:
            rest, val = _two_way(pool, labels, f_val / (f_train + f_val), seed, stratify)
        else:
            rest, val = pool, pool[:0]
        out[rest] = "train"
        out[val] = "val"
        return out.astype(str)
    rest, test = _two_way(idx, labels, f_test, seed, stratify)
    train, val = _two_way(rest, labels, f_val / (f_train + f_val) if (f_train + f_val) > 0 else 0.0, seed + 1, stratify)
    out[train] = "train"
    out[val] = "val"
    out[test] = "test"
    return out.astype(str)


def stratified_split(labels, *, fractions=(0.7, 0.15, 0.15), seed: int = 42, source_split=None, groups=None) -> np.ndarray:
    """Random split of slices, stratified by class.

    Parameters
    ----------
    labels : array-like of shape (n_images,)
        Integer class labels.
    fractions : (float, float, float), default=(0.7, 0.15, 0.15)
        Train, validation and test fractions; they sum to 1.
    seed : int, default=42
    source_split : sequence of str or None, optional
        The release's own split per image (``"train"``/``"val"``/``"test"``/None); its
        test images stay test.
    groups : array-like of shape (n_images,), optional
        Ignored (accepted so that every splitter has one signature); slices of one
        subject land in different splits.
        :func:`alzmri.data.split_checks.split_warnings` counts them.

    Returns
    -------
    ndarray of shape (n_images,), dtype str
        ``"train"``, ``"val"`` or ``"test"`` per image. The same inputs and seed always
        give the same split. A class too small to stratify (fewer than 2 images) falls
        back to a plain random split.
    """
    return _split(labels, fractions, seed, source_split, stratify=True)


def image_split(labels, *, fractions=(0.7, 0.15, 0.15), seed: int = 42, source_split=None, groups=None) -> np.ndarray:
    """Plain random split of slices, as in the original notebook (not stratified).

    Parameters and returns as :func:`stratified_split`.
    """
    return _split(labels, fractions, seed, source_split, stratify=False)

