"""The warnings a split deserves: copies or subjects across splits, classes short of subjects, a leaking release split."""

from __future__ import annotations

import numpy as np

from alzmri.data.classes import CLASS_NAMES
from alzmri.data.slice_splits import SPLIT_NAMES
from alzmri.data.subject_splits import group_codes, group_labels, release_shares_groups


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
    codes = group_codes(groups, len(labels))
    used = splits != ""
    if strategy == "subject" and source_split is not None and any(s == "test" for s in source_split):
        shared, n_test_groups = release_shares_groups(source_split, codes)
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
