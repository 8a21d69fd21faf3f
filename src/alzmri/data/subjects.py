"""Who is who in a dataset: the subject (scan group) of every image and which images are augmented copies.

:func:`resolve_subjects` gathers both from the first source that has them, in the order
a run uses: a groups CSV given by the user (``--groups``, with optional ``kind`` and
``copy_of`` columns), a reused manifest's ``group`` (and ``kind``/``copy_of``) columns,
else recovery from the images (:func:`alzmri.data.groups.load_or_recover_groups`,
cached on disk per dataset content and settings).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from alzmri.data.discovery import DatasetIndex
from alzmri.data.groups import GroupResult
from alzmri.data.manifest import Manifest


@dataclass
class Subjects:
    """The subjects and copies of a dataset, and where they came from.

    Attributes
    ----------
    result : GroupResult
        Aligned with the index; ``method`` is ``"images"``/``"filename"`` (recovered),
        ``"csv"`` (groups file) or ``"manifest"``.
    source : str
        ``"file:PATH"``, ``"manifest"`` or ``"recovered (images, threshold 0.83)"``.
    """

    result: GroupResult
    source: str

    @property
    def group(self) -> np.ndarray:
        """Subject id per image, int64 array of shape (n_images,)."""
        return np.asarray(self.result.group, dtype=np.int64)

    @property
    def copy_of(self) -> np.ndarray:
        """Index of each augmented copy's original, -1 for originals; int64 array of shape (n_images,)."""
        return np.asarray(self.result.copy_of, dtype=np.int64)

    def warning(self) -> str | None:
        """The one-line unreliable-groups warning, without its ``warning:`` prefix; None when the groups are trusted."""
        line = self.result.reliability_warning()
        return None if line is None else line.removeprefix("warning: ").strip()


def _has_copy_columns(path) -> bool:
    """Whether a groups CSV's header names ``kind`` or ``copy_of``."""
    import csv

    with open(path, newline="", encoding="utf-8-sig") as f:
        header = next(csv.reader(f), [])
    return bool({"kind", "copy_of"} & {h.strip() for h in header})


def resolve_subjects(
    index: DatasetIndex,
    *,
    groups_file: str | os.PathLike | None = None,
    manifest: Manifest | None = None,
) -> Subjects:
    """Subject (scan group) and augmented-copy source of every image, and where they came from.

    Order: ``groups_file`` (a CSV from ``alzmri data groups``; copies from its
    ``kind``/``copy_of`` columns, or, when it has neither, found in the images as
    recovery finds them and kept where the original is in the same subject); the ``group`` column of a reused manifest, when it has
    one for every image it lists (copies from its ``kind``/``copy_of`` columns, none when
    it has none); else recovered from the images by
    :func:`alzmri.data.groups.recover_groups`, cached on disk per dataset content and
    settings, so it is computed once.

    Parameters
    ----------
    index : DatasetIndex
    groups_file : path-like, optional
    manifest : Manifest, optional

    Returns
    -------
    Subjects

    Raises
    ------
    AlzmriError
        The groups file is missing, malformed or made for other data.
    """
    from alzmri.data.groups import load_or_recover_groups, read_groups_csv

    if groups_file is not None:
        res = read_groups_csv(groups_file, index)
        if _has_copy_columns(groups_file):
            return Subjects(res, f"file:{groups_file}")
        # known subject IDs without kind/copy_of: the copies are still found in the images
        # (cached), and kept where their original is in the same subject of the file
        found = np.asarray(load_or_recover_groups(index).copy_of, dtype=np.int64)
        same = (found >= 0) & (res.group[found.clip(0)] == res.group)
        res.copy_of = np.where(same, found, -1)
        return Subjects(res, f"file:{groups_file} (augmented copies found in the images: {int(same.sum())})")
    if manifest is not None and manifest.groups is not None:
        listed = manifest.splits != ""
        if np.all(manifest.groups[listed] >= 0):
            g = manifest.groups.copy()
            # images the manifest does not list get their own ids (they are not used)
            missing = g < 0
            g[missing] = (g.max() + 1 if len(g) else 0) + np.arange(int(missing.sum()))
            res = GroupResult(
                paths=index.paths,
                labels=index.labels,
                group=g.astype(np.int64),
                position=np.full(len(index), -1, dtype=np.int64),
                method="manifest",
                weakest_link=np.full(int(g.max()) + 1 if len(g) else 0, np.nan),
                unreadable=np.zeros(len(index), dtype=bool),
                copy_of=None if manifest.copy_of is None else manifest.copy_of.copy(),
            )
            return Subjects(res, "manifest")
    res = load_or_recover_groups(index)
    how = f"images, threshold {res.threshold:g}" if res.method == "images" else res.method
    return Subjects(res, f"recovered ({how})")
