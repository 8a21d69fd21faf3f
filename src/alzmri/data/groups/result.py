"""The result of group recovery: :class:`GroupResult` (groups, positions, copies, separation)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from alzmri.data.classes import CLASS_NAMES

#: Below this gap between the weakest link inside groups and the strongest similarity
#: between groups, the recovered groups are not trusted (a warning says so).
MIN_RELIABLE_GAP = 0.05


@dataclass(eq=False)
class GroupResult:
    """Groups of slices from the same scan, aligned with ``index.records``.

    Attributes
    ----------
    paths : list of str
        Relative POSIX paths, aligned with the index.
    labels : ndarray of shape (n_images,), dtype int64
        Class labels (index into :data:`~alzmri.data.classes.CLASS_NAMES`).
    group : ndarray of shape (n_images,), dtype int64
        Group id per image, 0..n_groups-1, numbered by each group's first path in sorted
        order (stable: the same data gives the same ids).
    position : ndarray of shape (n_images,), dtype int64
        Order of the slice along its group's chain, 0..size-1, or -1 where not inferable
        (unreadable images, name groups without slice numbers, groups over
        :data:`MAX_POSITION_GROUP`).
    method : str
        ``"images"``, ``"filename"`` or ``"csv"``.
    threshold : float or None
        Link threshold on the fine similarity (``"images"`` only).
    weakest_link : ndarray of shape (n_groups,), dtype float64
        Per group, the weakest similarity needed to keep its originals connected
        (bottleneck of their maximum spanning tree; augmented copies are left out); NaN
        for singletons and non-image methods.
    strongest_between : float or None
        Largest similarity between two originals of different groups among all
        candidate pairs examined (``"images"`` only). ``strongest_between < threshold <=
        weakest_link`` always; a wide empty gap around the threshold means the grouping is
        not sensitive to its exact value.
    unreadable : ndarray of shape (n_images,), dtype bool
        Images that could not be decoded (each is its own group).
    params : dict
        The settings used, for the record.
    copy_of : ndarray of shape (n_images,), dtype int64, optional
        For an image that is an augmented copy of another image of the set (rotated,
        shifted, zoomed, flipped, blurred, intensity-changed or re-compressed), the index
        of its original; -1 for originals. A copy is always in its original's group and
        takes its position. None (no copies looked for) reads as all -1.
    """

    paths: list[str]
    labels: np.ndarray
    group: np.ndarray
    position: np.ndarray
    method: str
    threshold: float | None = None
    weakest_link: np.ndarray = field(default_factory=lambda: np.zeros(0))
    strongest_between: float | None = None
    unreadable: np.ndarray | None = None
    params: dict = field(default_factory=dict)
    copy_of: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.copy_of is None:
            self.copy_of = np.full(len(self.paths), -1, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def is_copy(self) -> np.ndarray:
        """Bool array of shape (n_images,): True for augmented copies of another image."""
        return np.asarray(self.copy_of) >= 0

    @property
    def kind(self) -> np.ndarray:
        """Str array of shape (n_images,): ``"copy"`` or ``"original"`` (the groups CSV column)."""
        return np.where(self.is_copy, "copy", "original")

    @property
    def separation_gap(self) -> float | None:
        """Weakest link inside groups minus strongest similarity between groups (image method), else None."""
        multi = self.weakest_link[~np.isnan(self.weakest_link)] if len(self.weakest_link) else np.zeros(0)
        if not len(multi) or self.strongest_between is None:
            return None
        return float(multi.min()) - float(self.strongest_between)

    @property
    def reliable(self) -> bool:
        """False when :attr:`separation_gap` is below :data:`MIN_RELIABLE_GAP` (groups not to be trusted)."""
        gap = self.separation_gap
        return gap is None or gap >= MIN_RELIABLE_GAP

    def reliability_warning(self) -> str | None:
        """One warning line when the groups are unreliable (gap too small), else None."""
        if self.reliable:
            return None
        return (f"warning: the recovered groups are unreliable (gap {self.separation_gap:.3f} between the weakest link inside groups and "
                f"the strongest similarity between groups, below {MIN_RELIABLE_GAP}); brains may be merged or split: pass --groups FILE "
                "with known subject IDs (columns path, group)")

    @property
    def n_groups(self) -> int:
        return int(self.group.max()) + 1 if len(self.group) else 0

    def sizes(self) -> np.ndarray:
        """Images per group, int64 array of shape (n_groups,)."""
        return np.bincount(self.group, minlength=self.n_groups).astype(np.int64)

    def summary(self, *, max_listed: int = 50) -> dict:
        """Plain-data summary (JSON-serialisable).

        Parameters
        ----------
        max_listed : int, default=50
            At most this many mixed-class groups are listed (all are counted).

        Returns
        -------
        dict
            ``method``, ``threshold``, ``n_images``, ``n_groups``, ``n_singletons``,
            ``n_unreadable``, ``group_size`` (min/median/mean/max), ``size_histogram``
            (size -> number of groups; power-of-two bins when there are more than 20
            distinct sizes), ``classes_per_group`` (number of classes -> number of groups),
            ``n_copies`` (images that are augmented copies) and ``n_originals_copied`` (originals
            with at least one copy), ``n_mixed_class_groups`` and ``mixed_class_groups`` (group, size, class counts,
            up to 3 example paths; flagged: a scan has one diagnosis, so a mixed group is
            either a recovery error or a labelling error), ``positions_inferred`` (fraction
            of images with a position), and for the image method ``separation``
            (``weakest_link_within``, ``strongest_between``, ``gap``).
        """
        sizes = self.sizes()
        n_groups = self.n_groups
        uniq = np.unique(sizes)
        if len(uniq) <= 20:
            hist = {str(int(s)): int((sizes == s).sum()) for s in uniq}
        else:
            hist = {}
            lo = 1
            while lo <= sizes.max():
                hi = lo * 2 - 1
                c = int(((sizes >= lo) & (sizes <= hi)).sum())
                if c:
                    hist[f"{lo}" if lo == hi else f"{lo}-{hi}"] = c
                lo *= 2
        # classes per group
        order = np.lexsort((self.labels, self.group))
        g_sorted, l_sorted = self.group[order], self.labels[order]
        pair_first = np.ones(len(order), dtype=bool)
        pair_first[1:] = (g_sorted[1:] != g_sorted[:-1]) | (l_sorted[1:] != l_sorted[:-1])
        n_cls = np.bincount(g_sorted[pair_first], minlength=n_groups)
        mixed_ids = np.flatnonzero(n_cls > 1)
        mixed = []
        for g in mixed_ids[:max_listed]:
            members = np.flatnonzero(self.group == g)
            counts = Counter(CLASS_NAMES[self.labels[i]] for i in members)
            minority = sorted(members, key=lambda i: (counts[CLASS_NAMES[self.labels[i]]], self.paths[i]))
            mixed.append(
                {
                    "group": int(g),
                    "size": int(len(members)),
                    "classes": dict(sorted(counts.items())),
                    "examples": [self.paths[i] for i in minority[:3]],
                }
            )
        out = {
            "method": self.method,
            "threshold": self.threshold,
            "n_images": len(self.paths),
            "n_groups": n_groups,
            "n_singletons": int((sizes == 1).sum()),
            "n_unreadable": int(self.unreadable.sum()) if self.unreadable is not None else 0,
            "group_size": {
                "min": int(sizes.min()) if n_groups else 0,
                "median": float(np.median(sizes)) if n_groups else 0.0,
                "mean": round(float(sizes.mean()), 3) if n_groups else 0.0,
                "max": int(sizes.max()) if n_groups else 0,
            },
            "size_histogram": hist,
            "n_copies": int(self.is_copy.sum()),
            "n_originals_copied": int(len(np.unique(self.copy_of[self.is_copy]))),
            "classes_per_group": {str(int(k)): int((n_cls == k).sum()) for k in np.unique(n_cls)},
            "n_mixed_class_groups": int(len(mixed_ids)),
            "mixed_class_groups": mixed,
            "positions_inferred": round(float((self.position >= 0).mean()), 4) if len(self.position) else 0.0,
        }
        if self.method == "images":
            multi = self.weakest_link[~np.isnan(self.weakest_link)] if len(self.weakest_link) else np.zeros(0)
            weakest = float(multi.min()) if len(multi) else None
            strongest = self.strongest_between
            out["separation"] = {
                "weakest_link_within": None if weakest is None else round(weakest, 4),
                "strongest_between": None if strongest is None else round(float(strongest), 4),
                "gap": None if weakest is None or strongest is None else round(weakest - float(strongest), 4),
                "reliable": self.reliable,
            }
        return out
