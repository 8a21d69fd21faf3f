"""Split manifests: which image is in which split, with its content hash.

A manifest is a CSV with the columns ``path`` (POSIX, relative to the dataset root),
``class`` (canonical name), ``split`` (``train``/``val``/``test``) and ``sha256`` (of the
file's bytes), one row per image, plus the optional columns ``group`` (the subject, or
scan group, of the image: :mod:`alzmri.data.groups`) and ``strategy`` (the split strategy
that made it, e.g. ``subject``), written when known, and, when the data hold augmented
copies, ``kind`` (``original``/``copy``) and ``copy_of`` (the original's path, empty for
originals). Such a manifest also lists the copies left out of the run (out of validation
and test, :mod:`alzmri.data.eval_copies`) with an empty ``split``, so that a reused
manifest still knows them. Readers accept manifests with or without the optional columns.
Giving the same manifest to two runs makes them see identical images.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from alzmri.data.classes import CLASS_NAMES, class_index
from alzmri.data.csv_reader import read_csv_rows
from alzmri.data.discovery import DatasetIndex
from alzmri.errors import AlzmriError
from alzmri.utils.io import atomic_write_text

REQUIRED_COLUMNS = ("path", "class", "split", "sha256")
#: Optional columns: subject (scan group) and split strategy.
GROUP_COLUMN = "group"
STRATEGY_COLUMN = "strategy"
#: Optional columns for augmented copies (written only when the data hold copies).
KIND_COLUMN = "kind"
COPY_OF_COLUMN = "copy_of"


@dataclass
class Manifest:
    """A manifest aligned with a dataset index (:func:`load_manifest`).

    Attributes
    ----------
    splits : ndarray of shape (n_images,), dtype str
        ``"train"``/``"val"``/``"test"``; ``""`` for images the manifest does not list.
    groups : ndarray of shape (n_images,), dtype int64, or None
        Subject (scan group) id per image, ``-1`` for images not listed; None when the
        manifest has no ``group`` column. Non-negative integer ids are kept as written;
        other labels (subject IDs) are renumbered 0.. in order of first appearance in the
        index (equal values in the file = one group).
    strategy : str or None
        The split strategy named in the ``strategy`` column, None when absent.
    copy_of : ndarray of shape (n_images,), dtype int64, or None
        Index of the original of every augmented copy the manifest lists (in a split or
        left out), -1 for originals and images not listed; None when the manifest has no
        ``kind``/``copy_of`` columns (copies unknown).
    """

    splits: np.ndarray
    groups: np.ndarray | None = None
    strategy: str | None = None
    copy_of: np.ndarray | None = None


def write_manifest(
    path: str | Path,
    index: DatasetIndex,
    splits,
    *,
    extra: dict[str, list] | None = None,
    groups=None,
    strategy: str | None = None,
    copy_of=None,
) -> Path:
    """Write the split of ``index`` as a manifest CSV (atomically).

    Parameters
    ----------
    path : path-like
        Output CSV.
    index : DatasetIndex
    splits : array-like of shape (n_images,)
        ``"train"``, ``"val"``, ``"test"``, or ``""`` for images left out.
    extra : dict of column name -> list, optional
        Extra columns aligned with ``index.records``.
    groups : array-like of shape (n_images,), optional
        Subject (scan group) of every image: written as the ``group`` column.
    strategy : str, optional
        The split strategy: written as the ``strategy`` column.
    copy_of : array-like of shape (n_images,), int, optional
        Index of each image's original, -1 for originals. When some image is a copy,
        the columns ``kind`` and ``copy_of`` (the original's path) are written and copies
        with an empty split are listed too (left out of the run); otherwise the file is
        as without it.

    Returns
    -------
    Path
        The written file.
    """
    splits = np.asarray(splits, dtype=str)
    src = None if copy_of is None else np.asarray(copy_of, dtype=np.int64).reshape(-1)
    if src is not None and len(src) != len(index):
        raise AlzmriError(f"{path}: copy_of must give one value per image ({len(index)}); got {len(src)}")
    if src is not None and not (src >= 0).any():
        src = None
    hashes = index.file_hashes()
    extra = dict(extra or {})
    if groups is not None:
        g = np.asarray(groups).reshape(-1)
        if len(g) != len(index):
            raise AlzmriError(f"{path}: groups must give one group per image ({len(index)}); got {len(g)}")
        extra[GROUP_COLUMN] = [str(v.item() if hasattr(v, "item") else v) for v in g]
    if strategy is not None:
        extra[STRATEGY_COLUMN] = [strategy] * len(index)
    if src is not None:
        extra[KIND_COLUMN] = ["copy" if j >= 0 else "original" for j in src]
        extra[COPY_OF_COLUMN] = [index.paths[j] if j >= 0 else "" for j in src]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([*REQUIRED_COLUMNS, *extra])
    for i, rec in enumerate(index.records):
        if not splits[i] and (src is None or src[i] < 0):
            continue
        w.writerow([rec.path, rec.class_name, splits[i], hashes[i], *(extra[k][i] for k in extra)])
    return atomic_write_text(path, buf.getvalue())


def read_manifest(path: str | Path, index: DatasetIndex) -> np.ndarray:
    """Read a manifest and align it with ``index``.

    Returns
    -------
    ndarray of shape (n_images,), dtype str
        The split of each record of ``index``; ``""`` for images of the dataset that the
        manifest does not list (they are left out of the run).

    Raises
    ------
    AlzmriError
        As :func:`load_manifest`.

    See Also
    --------
    load_manifest : the splits with the subject groups and the strategy.
    """
    return load_manifest(path, index).splits


def load_manifest(path: str | Path, index: DatasetIndex) -> Manifest:
    """Read a manifest, with its optional ``group``, ``strategy``, ``kind`` and ``copy_of`` columns, aligned with ``index``.

    Returns
    -------
    Manifest
        ``splits`` as :func:`read_manifest`; ``groups`` (int64, -1 where not listed),
        ``strategy`` and ``copy_of`` when the file has those columns, else None.

    Raises
    ------
    AlzmriError
        The file is missing or not a manifest; it names files that are not in the dataset,
        files whose content changed, or a class that disagrees with the folder; an empty
        split on a row that is not a copy; a bad ``kind`` or ``copy_of``.
    """
    path = Path(path)
    if not path.is_file():
        raise AlzmriError(f"{path}: manifest not found; pass --split PATH to a manifest.csv written by an earlier run")
    header, rows = read_csv_rows(path, what="manifest", fix="pass a manifest.csv written by alzmri")
    missing_cols = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing_cols:
        raise AlzmriError(f"{path}: not a manifest, missing column(s) {', '.join(missing_cols)}; pass a manifest.csv written by alzmri")
    if not rows:
        raise AlzmriError(f"{path}: manifest lists no images")
    has_groups = GROUP_COLUMN in header
    has_kind = KIND_COLUMN in header and COPY_OF_COLUMN in header
    raw_groups = np.full(len(index), None, dtype=object)
    sources: list[tuple[int, int, str]] = []  # (image, line, original's path)

    pos = {rec.path: i for i, rec in enumerate(index.records)}
    hashes = index.file_hashes()
    out = np.full(len(index), "", dtype=object)
    gone: list[str] = []
    changed: list[str] = []
    for n, row in enumerate(rows, start=2):
        p, split = row["path"], row["split"]
        kind = (row.get(KIND_COLUMN) or "").strip() if has_kind else "original"
        if kind not in ("original", "copy"):
            raise AlzmriError(f"{path}:{n}: kind must be original or copy; got {kind!r}")
        allowed = ("train", "val", "test", "") if kind == "copy" else ("train", "val", "test")
        if split not in allowed:
            raise AlzmriError(f"{path}:{n}: split must be train, val or test"
                              + (" (empty only for an augmented copy left out)" if split == "" and has_kind else "") + f"; got {split!r}")
        i = pos.get(p)
        if i is None:
            gone.append(p)
            continue
        if row["sha256"] != hashes[i]:
            changed.append(p)
            continue
        label = class_index(row["class"])
        if label != index.records[i].label:
            raise AlzmriError(
                f"{path}:{n}: {p} is class {row['class']!r} in the manifest but {CLASS_NAMES[index.records[i].label]} in {index.root}"
            )
        out[i] = split
        if kind == "copy":
            sources.append((i, n, (row.get(COPY_OF_COLUMN) or "").strip()))
        if has_groups:
            g = (row.get(GROUP_COLUMN) or "").strip()
            if not g:
                raise AlzmriError(f"{path}:{n}: {p} has an empty group; give every image a group or drop the group column")
            raw_groups[i] = g
    if gone:
        raise AlzmriError(
            f"{path}: {len(gone)} file(s) named in the manifest are not in {index.root} (first: {gone[0]}); "
            "point --data at the dataset the manifest was made from, or make a new split"
        )
    if changed:
        raise AlzmriError(
            f"{path}: {len(changed)} file(s) changed since the manifest was written (first: {changed[0]}); "
            "make a new split or restore the original files"
        )
    groups = None
    if has_groups:
        groups = np.full(len(index), -1, dtype=np.int64)
        listed = [g for g in raw_groups if g is not None]
        if all(g.isdigit() for g in listed):  # alzmri's own ids: kept as written
            for i, g in enumerate(raw_groups):
                if g is not None:
                    groups[i] = int(g)
        else:
            ids: dict[str, int] = {}
            for i, g in enumerate(raw_groups):
                if g is not None:
                    groups[i] = ids.setdefault(g, len(ids))
    strategies = {(r.get(STRATEGY_COLUMN) or "").strip() for r in rows} if STRATEGY_COLUMN in header else set()
    strategies.discard("")
    strategy = ", ".join(sorted(strategies)) if strategies else None
    copy_of = _copy_sources(path, sources, pos, groups, len(index)) if has_kind else None
    return Manifest(splits=out.astype(str), groups=groups, strategy=strategy, copy_of=copy_of)


def _copy_sources(path: Path, sources: list[tuple[int, int, str]], pos: dict[str, int], groups: np.ndarray | None, n: int) -> np.ndarray:
    """``copy_of`` (int64, shape (n,), -1 for originals) from (image, line, original path) triples, checked."""
    copy_of = np.full(n, -1, dtype=np.int64)
    for i, line, src in sources:
        j = pos.get(src)
        if j is None or j == i:
            what = "names no original" if not src else f"names {src!r}, " + ("the image itself" if j == i else "which is not in the dataset")
            raise AlzmriError(f"{path}:{line}: the copy's copy_of {what}; write the path of the original it was made from")
        if groups is not None and groups[j] >= 0 and groups[j] != groups[i]:
            raise AlzmriError(f"{path}:{line}: this copy and its original {src!r} are in different groups; a copy belongs to its original's group")
        copy_of[i] = j
    return copy_of
