"""Pure, seeded splitters: labels (and subject groups) in, one split name per image out.

Each strategy is a function ``(labels, *, fractions, seed, source_split, groups=None) ->
ndarray of str`` registered in :data:`SPLITTERS`, so that a new strategy plugs in without
touching training.

``subject`` (default in training)
    Group-aware split stratified by class: every subject (scan group, see
    :mod:`alzmri.data.groups`) lies in exactly one split. Built on scikit-learn's
    ``StratifiedGroupKFold``; fractions are honoured approximately (whole subjects).
``stratified``
    Random 70/15/15 split of *slices*, stratified by class (scikit-learn
    ``train_test_split``).
``image``
    The notebook's plain random split of slices, not stratified.

:func:`subject_folds` gives k-fold cross-validation by subject, and
:func:`split_warnings` the warnings a split deserves (a class with fewer subjects than
splits, subjects shared between splits, a release split that leaks).

When the release ships its own ``test/`` folder (``split_folders`` layout), ``stratified``
and ``image`` keep those images as the test split and carve validation from the rest.
``subject`` keeps the release's test folder only when it shares no subject with the
release's training folder; the public 176x208 release does share all of them (it splits
each brain by slice level, see ``docs/honest-evaluation.md``), so there the release folders
are ignored and all images are split by subject.

Warning: ``stratified`` and ``image`` split slices, not brains. Neighbouring slices of one
scan are nearly identical, so slice-level splits inflate test accuracy (Yagis et al. 2021).

References
----------
Yagis, E., Atnafu, S. W., Garcia Seco de Herrera, A., et al. (2021). Effect of data
leakage in brain MRI classification using 2D convolutional neural networks. *Scientific
Reports* 11, 22544.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold, train_test_split

from alzmri.data.classes import CLASS_NAMES
from alzmri.errors import AlzmriError

SPLIT_NAMES = ("train", "val", "test")
#: Strategy names that split by subject (no subject in two splits).
SUBJECT_STRATEGIES = ("subject", "subject-cv")
#: Folds of the fine partition the ``subject`` splitter draws its three splits from.
_SUBJECT_FOLDS = 20


def _check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
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
    f_train, f_val, f_test = _check_fractions(fractions)
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
        subject land in different splits. :func:`split_warnings` counts them.

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


# --------------------------------------------------------------------------------------
# subject (group-aware) splits


def _group_codes(groups, n: int) -> np.ndarray:
    """Groups as int64 codes 0..n_groups-1 (any hashable labels in, equal labels = one group)."""
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


def _quiet_sgkf(n_splits: int, seed: int, labels: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Fold (0..n_splits-1) of every group from ``StratifiedGroupKFold``."""
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


def _assign_groups(labels: np.ndarray, codes: np.ndarray, fractions: tuple[float, float, float], seed: int) -> np.ndarray:
    """Split name per image, whole groups to each split, class-stratified (see :func:`subject_split`)."""
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
    fold_of_group = _quiet_sgkf(n_folds, seed, labels, codes)
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


def _release_shares_groups(source_split, codes: np.ndarray) -> tuple[int, int]:
    """(subjects in both the release's test folder and its other folders, subjects in the test folder)."""
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
    class with 2 subjects is in train and test; :func:`split_warnings` says so).

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
    subject_folds : k-fold cross-validation by subject.
    split_warnings : classes with fewer subjects than splits.
    """
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    fr = _check_fractions(fractions)
    codes = _group_codes(groups, len(labels))
    if source_split is not None and any(s == "test" for s in source_split):
        shared, _ = _release_shares_groups(source_split, codes)
        if shared == 0:
            src = np.array([s or "train" for s in source_split], dtype=object)
            out = np.full(len(labels), "test", dtype=object)
            rest = np.flatnonzero(src != "test")
            if len(rest):
                sub = _assign_groups(labels[rest], np.unique(codes[rest], return_inverse=True)[1].reshape(-1), (fr[0], fr[1], 0.0), seed)
                given_val = src[rest] == "val"
                out[rest] = np.where(given_val, "val", sub) if given_val.any() else sub
            return out.astype(str)
    return _assign_groups(labels, codes, fr, seed)


def cv_strategy_name(fold: int, k: int) -> str:
    """Strategy name of fold ``fold`` (0-based) of ``k``, as written in manifests and run.json."""
    return f"subject-cv (fold {fold + 1} of {k})"


def subject_folds(labels, groups, k: int = 5, *, seed: int = 42, val_fraction: float = 0.15) -> list[np.ndarray]:
    """K-fold cross-validation by subject: one split array per fold.

    Fold ``i``'s test split is the ``i``-th fold of scikit-learn's
    ``StratifiedGroupKFold(k, shuffle=True, random_state=seed)``; its validation split is
    carved from the remaining subjects by :func:`subject_split` (whole subjects, about
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
    codes = _group_codes(groups, len(labels))
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
    fold_of_group = _quiet_sgkf(k, seed, labels, codes)
    folds = []
    for i in range(k):
        out = np.full(len(labels), "test", dtype=object)
        rest = np.flatnonzero(fold_of_group[codes] != i)
        sub_codes = np.unique(codes[rest], return_inverse=True)[1].reshape(-1)
        out[rest] = _assign_groups(labels[rest], sub_codes, (1.0 - v, v, 0.0), seed + 1 + i)
        folds.append(out.astype(str))
    return folds


Splitter = Callable[..., np.ndarray]
SPLITTERS: dict[str, Splitter] = {
    "subject": subject_split,
    "stratified": stratified_split,
    "image": image_split,
}


def make_split(strategy: str, labels, *, fractions=(0.7, 0.15, 0.15), seed: int = 42, source_split=None, groups=None) -> np.ndarray:
    """Split with the named strategy (see :data:`SPLITTERS`).

    Parameters
    ----------
    strategy : {"subject", "stratified", "image"}
    labels : array-like of shape (n_images,)
        Integer class labels.
    fractions : (float, float, float), default=(0.7, 0.15, 0.15)
    seed : int, default=42
    source_split : sequence of str or None, optional
        The release's own split per image.
    groups : array-like of shape (n_images,), optional
        Subject (scan group) per image; required by ``"subject"``, ignored by the others.

    Returns
    -------
    ndarray of shape (n_images,), dtype str

    Raises
    ------
    AlzmriError
        Unknown strategy; ``"subject"`` without groups; bad fractions.
    """
    fn = SPLITTERS.get(strategy)
    if fn is None:
        raise AlzmriError(f"unknown split strategy {strategy!r}; choose one of {', '.join(SPLITTERS)}")
    return fn(labels, fractions=fractions, seed=seed, source_split=source_split, groups=groups)


def split_warnings(labels, splits, *, groups=None, strategy: str = "", source_split=None, copy_of=None) -> list[str]:
    """Warnings about a split, one sentence each (empty list: nothing to say).

    * augmented copies in a different split from their original, with the number of
      brains they belong to (``copy_of`` given; the leak of slice-level splits on
      augmented sets);
    * subjects with slices in more than one split (any strategy; the leak of slice-level
      splits);
    * for a split by subject: a class with fewer subjects than non-empty splits (e.g. 2
      subjects cannot fill train, val and test), or otherwise missing from a split;
    * for ``"subject"``: the release's own test folder shares subjects with its train
      folder and was therefore ignored.

    Parameters
    ----------
    labels : array-like of shape (n_images,)
        Integer class labels.
    splits : array-like of shape (n_images,), str
        ``"train"``/``"val"``/``"test"``, ``""`` for images left out.
    groups : array-like of shape (n_images,), optional
        Subject per image; without groups only nothing can be said.
    strategy : str, default=""
        The strategy's name, used in the messages.
    source_split : sequence of str or None, optional
        The release's own split per image.
    copy_of : array-like of shape (n_images,), int, optional
        Index of each augmented copy's original, -1 for originals
        (:attr:`alzmri.data.groups.GroupResult.copy_of`).

    Returns
    -------
    list of str
    """
    from alzmri.data.eval_copies import crossing_copies

    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    splits = np.asarray(splits, dtype=str)
    out: list[str] = []
    if copy_of is not None:
        n_cross, n_brains = crossing_copies(splits, copy_of, groups)
        if n_cross:
            name = f"split strategy {strategy!r}" if strategy else "this split"
            out.append(
                f"{name} puts {n_cross} augmented copies of {n_brains} brains (scan groups) in a different split from their "
                "original: a model is scored on slices whose copies it trained on, or the reverse (leakage); "
                "use --split-strategy subject, which keeps every brain with all its copies in one split"
            )
    if groups is None:
        return out
    codes = _group_codes(groups, len(labels))
    used = splits != ""
    if strategy == "subject" and source_split is not None and any(s == "test" for s in source_split):
        shared, n_test_groups = _release_shares_groups(source_split, codes)
        if shared:
            out.append(
                f"the release's test/ folder shares {shared} of its {n_test_groups} subjects with its train/ folder "
                f"(a split by slice, see docs/honest-evaluation.md); the subject split ignores the release folders "
                f"and splits all {len(labels)} images by subject"
            )
    present = [s for s in SPLIT_NAMES if np.any(splits == s)]
    split_sets = {s: set(codes[splits == s].tolist()) for s in present}
    n_groups_used = len(set(codes[used].tolist()))
    shared = set()
    for a in range(len(present)):
        for b in range(a + 1, len(present)):
            shared |= split_sets[present[a]] & split_sets[present[b]]
    if shared:
        name = f"split strategy {strategy!r}" if strategy else "this split"
        out.append(
            f"{name} puts slices of {len(shared)} of {n_groups_used} subjects (scan groups) in more than one split: "
            "test slices have neighbouring slices of the same brain in training, so slice-level scores are inflated "
            "(leakage); use --split-strategy subject for an honest estimate"
        )
        return out
    # split by subject: classes that cannot (or do not) reach every split
    glabel = group_labels(labels[used], np.unique(codes[used], return_inverse=True)[1].reshape(-1)) if used.any() else np.zeros(0, np.int64)
    for c in np.unique(labels[used]):
        n_c = int(np.sum(glabel == c))
        in_splits = [s for s in present if np.any((splits == s) & (labels == c))]
        if len(in_splits) == len(present):
            continue
        subj = f"{n_c} subject" + ("" if n_c == 1 else "s")
        cname = CLASS_NAMES[c] if c < len(CLASS_NAMES) else str(c)
        if n_c < len(present):
            out.append(
                f"{cname} has {subj}: it cannot appear in all {len(present)} splits ({', '.join(present)}); "
                f"it is in {', '.join(in_splits) or 'none'} only"
            )
        else:
            missing = [s for s in present if s not in in_splits]
            out.append(f"{cname} ({subj}) has no images in {', '.join(missing)}")
    return out
