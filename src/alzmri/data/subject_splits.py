"""Split by subject (scan group), stratified by class: every subject lies in exactly one split.

Built on scikit-learn's ``StratifiedGroupKFold``; fractions are honoured approximately
(whole subjects). The release's own ``test/`` folder is kept only when it shares no
subject with its training folder; the public 176x208 release does share all of them (it
splits each brain by slice level, see ``docs/honest-evaluation.md``), so there the
release folders are ignored and all images are split by subject.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from alzmri.data.slice_splits import check_fractions
from alzmri.errors import AlzmriError

#: Strategy names that split by subject (no subject in two splits).
SUBJECT_STRATEGIES = ("subject", "subject-cv")
#: Folds of the fine partition the ``subject`` splitter draws its three splits from.
_SUBJECT_FOLDS = 20


def group_codes(groups, n: int) -> np.ndarray:
    """Groups as int64 codes 0..n_groups-1 (any hashable labels in, equal labels = one group).

    Parameters
    ----------
    groups : array-like of shape (n,) or None
        Subject (scan group) of every image, any labels.
    n : int
        Number of images.

    Returns
    -------
    ndarray of shape (n,), dtype int64
        Each image's code: the rank of its group among the sorted distinct groups (object
        labels compared as text).

    Raises
    ------
    AlzmriError
        ``groups`` is None, or not one group per image.
    """
    if groups is None:
        raise AlzmriError(
            "split strategy 'subject' needs subject groups: pass --groups FILE (written by `alzmri data groups`) "
            "or let alzmri recover them from the images"
        )
    arr = np.asarray(groups)
    if arr.ndim != 1 or len(arr) != n:
        raise AlzmriError(f"groups must give one subject group per image ({n}); got shape {arr.shape}")
    _, codes = np.unique(arr.astype(str) if arr.dtype == object else arr, return_inverse=True)
    return codes.astype(np.int64).reshape(-1)


def group_labels(labels: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Majority class of each group (ties: the lower label), int64 array of shape (n_groups,).

    Parameters
    ----------
    labels : ndarray of shape (n_images,), int
    codes : ndarray of shape (n_images,), int
        Group codes 0..n_groups-1.
    """
    n_groups = int(codes.max()) + 1 if len(codes) else 0
    n_classes = int(labels.max()) + 1 if len(labels) else 1
    counts = np.zeros((n_groups, n_classes), dtype=np.int64)
    np.add.at(counts, (codes, labels), 1)
    return counts.argmax(axis=1).astype(np.int64)


def quiet_sgkf(n_splits: int, seed: int, labels: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Fold (0..n_splits-1) of every group from ``StratifiedGroupKFold``.

    Parameters
    ----------
    n_splits : int
        Number of folds, at most the image count of the largest class.
    seed : int
        Shuffle seed (taken modulo 2**32).
    labels : ndarray of shape (n_images,), int
    codes : ndarray of shape (n_images,), int
        Group codes 0..n_groups-1 (see :func:`group_codes`).

    Returns
    -------
    ndarray of shape (n_groups,), dtype int64
        scikit-learn's warning about classes with few members is silenced.
    """
    sgkf = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed % (2**32))
    fold_of_group = np.full(int(codes.max()) + 1, -1, dtype=np.int64)
    with warnings.catch_warnings():
        # "the least populated class has only N members": expected with few subjects
        warnings.simplefilter("ignore", UserWarning)
        for f, (_, test) in enumerate(sgkf.split(np.zeros(len(labels)), labels, codes)):
            fold_of_group[codes[test]] = f
    return fold_of_group


def _repair_presence(split_of_group: np.ndarray, glabel: np.ndarray, wanted: Sequence[str], rng: np.random.Generator) -> np.ndarray:
    """Move whole groups so that every class reaches the splits its group count allows.

    A class with ``n`` groups should appear in the first ``min(n, len(wanted))`` of
    ``wanted`` (priority train, then test, then val: a class absent from training can
    never be predicted, and one absent from test cannot be scored). A group is taken from
    the split holding most groups of its class, never emptying a split the class needs.
    """
    out = split_of_group.copy()
    for c in np.unique(glabel):
        members = np.flatnonzero(glabel == c)
        need = list(wanted[: min(len(members), len(wanted))])
        for s in need:
            if np.any(out[members] == s):
                continue
            counts = {t: int(np.sum(out[members] == t)) for t in wanted}
            donors = [t for t in wanted if counts[t] >= (2 if t in need else 1)]
            if not donors:
                continue
            donor = max(donors, key=lambda t: (counts[t], -wanted.index(t)))
            pick = rng.choice(members[out[members] == donor])
            out[pick] = s
    return out


def assign_groups(labels: np.ndarray, codes: np.ndarray, fractions: tuple[float, float, float], seed: int) -> np.ndarray:
    """Split name per image, whole groups to each split, class-stratified (see :func:`subject_split`).

    Parameters
    ----------
    labels : ndarray of shape (n_images,), int
    codes : ndarray of shape (n_images,), int
        Group codes 0..n_groups-1 (see :func:`group_codes`).
    fractions : (float, float, float)
        Checked train, validation and test fractions.
    seed : int

    Returns
    -------
    ndarray of shape (n_images,), dtype str
        ``"train"``, ``"val"`` or ``"test"``; all ``"train"`` with fewer than 2 groups.
    """
    n_groups = int(codes.max()) + 1 if len(codes) else 0
    out = np.full(len(labels), "train", dtype=object)
    if n_groups == 0:
        return out.astype(str)
    f_train, f_val, f_test = fractions
    glabel = group_labels(labels, codes)
    rng = np.random.default_rng(seed)
    if n_groups < 2:
        return out.astype(str)
    # StratifiedGroupKFold needs n_splits <= the image count of the largest class
    n_folds = min(_SUBJECT_FOLDS, n_groups, int(np.bincount(labels).max()))
    fold_of_group = quiet_sgkf(n_folds, seed, labels, codes)
    n_test = int(round(f_test * n_folds))
    n_val = int(round(f_val * n_folds))
    if f_test > 0 and n_test == 0 and n_folds >= 3:
        n_test = 1
    if f_val > 0 and n_val == 0 and n_folds >= 3:
        n_val = 1
    while n_test + n_val >= n_folds:  # keep at least one training fold
        if n_val >= n_test and n_val > 0:
            n_val -= 1
        else:
            n_test -= 1
    order = rng.permutation(n_folds)
    split_of_fold = np.full(n_folds, "train", dtype=object)
    split_of_fold[order[:n_test]] = "test"
    split_of_fold[order[n_test : n_test + n_val]] = "val"
    split_of_group = split_of_fold[fold_of_group]
    wanted = ["train"] + (["test"] if n_test else []) + (["val"] if n_val else [])
    split_of_group = _repair_presence(split_of_group, glabel, wanted, rng)
    return split_of_group[codes].astype(str)


def release_shares_groups(source_split, codes: np.ndarray) -> tuple[int, int]:
    """(subjects in both the release's test folder and its other folders, subjects in the test folder).

    Parameters
    ----------
    source_split : sequence of str or None, length n_images
        The release's own split per image (None counts as train).
    codes : ndarray of shape (n_images,), int
        Group codes (see :func:`group_codes`).

    Returns
    -------
    (int, int)
    """
    src = np.array([s or "train" for s in source_split], dtype=object)
    in_test = set(codes[src == "test"].tolist())
    in_rest = set(codes[src != "test"].tolist())
    return len(in_test & in_rest), len(in_test)


def subject_split(labels, *, fractions=(0.7, 0.15, 0.15), seed: int = 42, source_split=None, groups=None) -> np.ndarray:
    """Split by subject (scan group), stratified by class: no group is in two splits.

    The groups are first dealt into ``min(20, n_groups)`` folds by scikit-learn's
    ``StratifiedGroupKFold`` (shuffled with ``seed``), each fold a class-balanced set of
    whole groups; ``round(fraction * folds)`` seeded-random folds then form the test and
    validation splits, the rest train (so 70/15/15 is met exactly in folds and
    approximately in images). Finally a class with few groups is made to appear in as
    many splits as it can, in the order train, test, val, by moving whole groups (a
    class with 2 subjects is in train and test;
    :func:`alzmri.data.split_checks.split_warnings` says so).

    Parameters
    ----------
    labels : array-like of shape (n_images,)
        Integer class labels.
    fractions : (float, float, float), default=(0.7, 0.15, 0.15)
        Train, validation and test fractions (of subjects; of images approximately).
    seed : int, default=42
    source_split : sequence of str or None, optional
        The release's own split per image. Its test folder stays the test split only
        when no subject has slices both in it and in the other folders; otherwise (the
        public releases) it is ignored and all images are split by subject.
    groups : array-like of shape (n_images,)
        Subject (scan group) of every image, any labels (``GroupResult.group``, IDs).
        A group's class for stratification is its majority label.

    Returns
    -------
    ndarray of shape (n_images,), dtype str
        ``"train"``, ``"val"`` or ``"test"`` per image; identical for identical inputs.

    Raises
    ------
    AlzmriError
        ``groups`` is missing or not one per image; bad ``fractions``.

    See Also
    --------
    alzmri.data.folds.subject_folds : k-fold cross-validation by subject.
    alzmri.data.split_checks.split_warnings : classes with fewer subjects than splits.
    """
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    fr = check_fractions(fractions)
    codes = group_codes(groups, len(labels))
    if source_split is not None and any(s == "test" for s in source_split):
        shared, _ = release_shares_groups(source_split, codes)
        if shared == 0:
            src = np.array([s or "train" for s in source_split], dtype=object)
            out = np.full(len(labels), "test", dtype=object)
            rest = np.flatnonzero(src != "test")
            if len(rest):
                sub = assign_groups(labels[rest], np.unique(codes[rest], return_inverse=True)[1].reshape(-1), (fr[0], fr[1], 0.0), seed)
                given_val = src[rest] == "val"
                out[rest] = np.where(given_val, "val", sub) if given_val.any() else sub
            return out.astype(str)
    return assign_groups(labels, codes, fr, seed)

