"""Augmented copies in a split: validation and test hold originals only, by default.

An *augmented copy* is an image made from another image of the set (rotated, shifted,
zoomed, flipped, blurred, ...; :attr:`alzmri.data.groups.GroupResult.copy_of` names its
original). It belongs to its original's brain, so a split by subject keeps them together.
In validation or test a copy is a pseudo-replicate: it weights its original's slice
several times and its score is not that of an independent slice. So, unless asked to
keep them (``keep_eval_copies``), copies that land in validation or test are left out
of the run (split ``""``; listed in the manifest with an empty split), while copies in
training stay there.

:func:`leave_out_eval_copies` applies that rule, :func:`summarize_copies` describes a
split's copies (for run.json, the model card and the comparison report) and
:func:`crossing_copies` counts copies that sit in another split than their original (the
leak of slice-level splits on augmented sets).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from alzmri.errors import AlzmriError

#: Why copies are left out of validation and test (recorded with the counts).
LEFT_OUT_REASON = (
    "validation and test hold originals only: an augmented copy is a pseudo-replicate of its original "
    "that would weight that slice several times"
)


def _arrays(splits, copy_of) -> tuple[np.ndarray, np.ndarray]:
    splits = np.asarray(splits, dtype=object)
    splits = np.array(["" if s is None else str(s) for s in splits], dtype=object)
    copy_of = np.asarray(copy_of, dtype=np.int64).reshape(-1)
    if len(copy_of) != len(splits):
        raise AlzmriError(f"copy_of must give one value per image ({len(splits)}); got {len(copy_of)}")
    return splits, copy_of


def leave_out_eval_copies(splits, copy_of, *, keep: bool = False) -> np.ndarray:
    """The split with every augmented copy in validation or test left out (``""``), unless ``keep``.

    Parameters
    ----------
    splits : array-like of shape (n_images,), str
        ``"train"``/``"val"``/``"test"``, ``""`` for images left out.
    copy_of : array-like of shape (n_images,), int
        Index of each image's original, -1 for originals
        (:attr:`~alzmri.data.groups.GroupResult.copy_of`).
    keep : bool, default=False
        Keep the copies where they are (the notebook's protocol).

    Returns
    -------
    ndarray of shape (n_images,), dtype str
        The new split; copies in training are never moved.
    """
    splits, copy_of = _arrays(splits, copy_of)
    out = splits.copy()
    if not keep:
        out[(copy_of >= 0) & np.isin(splits, ("val", "test"))] = ""
    return out.astype(str)


@dataclass
class CopySummary:
    """The augmented copies of a split (plain counts, JSON-ready via :meth:`as_dict`).

    Attributes
    ----------
    n_copies : int
        Images known to be augmented copies (in the run or left out of it).
    n_originals_copied : int
        Originals with at least one copy.
    train, val, test : int
        Copies in each split.
    left_out : int
        Copies not in any split (left out of validation and test; also unreadable copies).
    """

    n_copies: int = 0
    n_originals_copied: int = 0
    train: int = 0
    val: int = 0
    test: int = 0
    left_out: int = 0

    def as_dict(self) -> dict:
        """The counts, plus ``reason`` (why copies are left out) when some are."""
        d = asdict(self)
        if self.left_out:
            d["reason"] = LEFT_OUT_REASON
        return d

    def note(self) -> str | None:
        """One sentence on the copies for run.json, the model card and the report; None without copies."""
        if not self.n_copies:
            return None
        text = f"{self.n_copies} images are augmented copies of {self.n_originals_copied} originals; "
        if self.left_out or not (self.val or self.test):
            text += f"{self.left_out} were left out of validation and test ({LEFT_OUT_REASON}); "
        text += f"{self.train} stay in training with their brain"
        if self.val or self.test:
            text += f"; {self.val} are in validation and {self.test} in test (kept: --keep-eval-copies)"
        return text

    def warning(self) -> str | None:
        """The warning for copies kept in validation or test (``keep_eval_copies``); None when there are none."""
        if not (self.val or self.test):
            return None
        return (f"validation and test hold {self.val + self.test} augmented copies ({self.val} validation, {self.test} test): "
                "pseudo-replicates weight some slices several times, so validation and test scores and their intervals "
                "count copies of one slice as independent evidence (leakage of the notebook's protocol); "
                "drop --keep-eval-copies (keep_eval_copies) to score originals only")


def summarize_copies(splits, copy_of) -> CopySummary:
    """Count the augmented copies of a split.

    Parameters
    ----------
    splits : array-like of shape (n_images,), str
        The final split (``""`` = not in the run).
    copy_of : array-like of shape (n_images,), int
        Index of each image's original, -1 for originals (and for images whose kind is
        unknown).

    Returns
    -------
    CopySummary
    """
    splits, copy_of = _arrays(splits, copy_of)
    is_copy = copy_of >= 0
    return CopySummary(
        n_copies=int(is_copy.sum()),
        n_originals_copied=int(len(np.unique(copy_of[is_copy]))),
        train=int(np.sum(is_copy & (splits == "train"))),
        val=int(np.sum(is_copy & (splits == "val"))),
        test=int(np.sum(is_copy & (splits == "test"))),
        left_out=int(np.sum(is_copy & (splits == ""))),
    )


def crossing_copies(splits, copy_of, groups=None) -> tuple[int, int]:
    """Copies that sit in a different split from their original, and the brains they belong to.

    Parameters
    ----------
    splits : array-like of shape (n_images,), str
    copy_of : array-like of shape (n_images,), int
        Index of each image's original, -1 for originals.
    groups : array-like of shape (n_images,), optional
        Subject (scan group) per image; without it each crossing original counts as one
        brain.

    Returns
    -------
    n_copies : int
        Copies in a split (not ``""``) whose original is in another split (not ``""``).
    n_brains : int
        Distinct groups (or originals) of those copies.
    """
    splits, copy_of = _arrays(splits, copy_of)
    idx = np.flatnonzero(copy_of >= 0)
    src = copy_of[idx]
    cross = (splits[idx] != "") & (splits[src] != "") & (splits[idx] != splits[src])
    if not cross.any():
        return 0, 0
    owners = np.asarray(groups)[idx[cross]] if groups is not None else src[cross]
    return int(cross.sum()), int(len(np.unique(owners)))
