"""Bags: the slices of one brain, ordered by position, as the unit a brain-level model sees.

A bag is the recovered group of a brain (:mod:`alzmri.data.groups`), its original slices
ordered by their position in the brain (augmented copies left out: they repeat a slice).
Bags may differ in size (brains with missing slices, NIfTI volumes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from alzmri.errors import AlzmriError

__all__ = ["Bags", "make_bags", "relative_positions"]


@dataclass
class Bags:
    """The brains of a dataset as bags of slice indices.

    Attributes
    ----------
    brain_ids : ndarray of shape (n_brains,), dtype int64
        Group id of each brain (sorted).
    members : list of ndarray of int64
        ``members[b]``: indices (into the dataset index) of brain b's slices, ordered by
        position (then by index where positions are unknown).
    positions : list of ndarray of float32
        Relative position of each member in its brain, 0 (first) .. 1 (last); 0.5 for a
        single slice.
    labels : ndarray of shape (n_brains,), dtype int64
        Canonical class (0..3) of each brain.
    split : ndarray of shape (n_brains,), dtype object
        The split of each brain ("train", "val", "test" or "" when left out).
    """

    brain_ids: np.ndarray
    members: list[np.ndarray]
    positions: list[np.ndarray]
    labels: np.ndarray
    split: np.ndarray

    def __len__(self) -> int:
        return len(self.brain_ids)

    @property
    def sizes(self) -> np.ndarray:
        """Slices per bag, int64 array of shape (n_brains,)."""
        return np.array([len(m) for m in self.members], dtype=np.int64)

    def select(self, which) -> "Bags":
        """The bags at ``which`` (boolean mask or indices of brains)."""
        idx = np.flatnonzero(which) if np.asarray(which).dtype == bool else np.asarray(which, dtype=np.int64)
        return Bags(self.brain_ids[idx], [self.members[i] for i in idx], [self.positions[i] for i in idx], self.labels[idx], self.split[idx])


def relative_positions(n: int) -> np.ndarray:
    """Relative positions 0..1 of ``n`` ordered slices (0.5 for one), float32 array of shape (n,)."""
    if n <= 1:
        return np.full(n, 0.5, dtype=np.float32)
    return (np.arange(n, dtype=np.float32) / (n - 1)).astype(np.float32)


def make_bags(labels, groups, *, position=None, copy_of=None, splits=None, readable=None, where: str = "dataset", paths=None) -> Bags:
    """Group the slices of a dataset into bags, one per brain.

    Parameters
    ----------
    labels : array-like of int, shape (n_images,)
        Canonical class of every image.
    groups : array-like of int, shape (n_images,)
        Brain (subject group) of every image.
    position : array-like of int, shape (n_images,), optional
        Position of each slice in its brain (-1 unknown); default: index order.
    copy_of : array-like of int, shape (n_images,), optional
        Index of the original of each augmented copy, -1 for originals; copies are left out.
    splits : array-like of str, shape (n_images,), optional
        Split of each image; a brain's split is that of its slices.
    readable : array-like of bool, shape (n_images,), optional
        Unreadable images are left out; a brain with none left is dropped.
    where : str
        Names the data (or the groups file) in errors.
    paths : list of str, optional
        Image paths, to name one slice of each class in the error of a mixed brain.

    Returns
    -------
    Bags

    Raises
    ------
    AlzmriError
        A brain whose slices carry two classes (a grouping or labelling error: the message
        names the brain and the fix), or whose slices lie in two splits.
    """
    labels = np.asarray(labels, dtype=np.int64)
    groups = np.asarray(groups, dtype=np.int64)
    n = len(labels)
    keep = np.ones(n, dtype=bool)
    if copy_of is not None:
        keep &= np.asarray(copy_of) < 0
    if readable is not None:
        keep &= np.asarray(readable, dtype=bool)
    pos = np.asarray(position, dtype=np.int64) if position is not None else np.full(n, -1, dtype=np.int64)
    spl = np.asarray(splits, dtype=object) if splits is not None else np.full(n, "", dtype=object)
    idx = np.flatnonzero(keep)
    order = np.lexsort((idx, np.where(pos[idx] < 0, np.iinfo(np.int64).max, pos[idx]), groups[idx]))
    idx = idx[order]
    ids, starts = np.unique(groups[idx], return_index=True)
    bounds = list(starts[1:]) + [len(idx)]
    members, positions, bag_labels, bag_split = [], [], [], []
    for g, s, e in zip(ids, starts, bounds):
        m = idx[s:e]
        cls = np.unique(labels[m])
        if len(cls) > 1:
            from alzmri.data.classes import CLASS_NAMES

            named = [f"{CLASS_NAMES[c]}" + (f" ({paths[m[labels[m] == c][0]]})" if paths is not None else "") for c in cls]
            raise AlzmriError(
                f"{where}: one brain (group) holds slices of {len(cls)} classes: {', '.join(named)}; "
                "a bag must be one brain of one class: fix the class folders or the groups file (--groups)"
            )
        sp = {str(x) for x in spl[m]}
        if len(sp) > 1:
            raise AlzmriError(f"{where}: brain (group) {int(g)} has slices in several splits ({', '.join(sorted(sp))}); split by brain (split_strategy: subject)")
        members.append(m)
        positions.append(relative_positions(len(m)))
        bag_labels.append(int(cls[0]))
        bag_split.append(sp.pop())
    return Bags(ids.astype(np.int64), members, positions, np.array(bag_labels, dtype=np.int64), np.array(bag_split, dtype=object))
