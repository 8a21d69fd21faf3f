"""Groups as CSV: :func:`write_groups_csv` and :func:`read_groups_csv`.

Columns: ``path``, ``class``, ``group``, ``position``, ``kind`` (``original`` or ``copy``:
an augmented copy of another image of the set) and ``copy_of`` (the path of the original a
copy was made from, empty for originals). Files without ``kind``/``copy_of`` (written
before copies were recognised, or by hand) read as all originals.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import numpy as np

from alzmri.data.classes import CLASS_NAMES, class_index
from alzmri.data.csv_reader import read_csv_rows
from alzmri.data.discovery import DatasetIndex
from alzmri.data.groups.filenames import _canonical_ids
from alzmri.data.groups.result import GroupResult
from alzmri.errors import AlzmriError
from alzmri.utils.io import atomic_write_text

GROUP_COLUMNS = ("path", "class", "group", "position", "kind", "copy_of")
#: Values of the ``kind`` column.
KINDS = ("original", "copy")


def write_groups_csv(path: str | os.PathLike, index: DatasetIndex, result: GroupResult) -> Path:
    """Write groups as CSV (atomically): ``path``, ``class``, ``group``, ``position``, ``kind``, ``copy_of``.

    Parameters
    ----------
    path : path-like
        Output file.
    index : DatasetIndex
        The index ``result`` was computed for.
    result : GroupResult

    Returns
    -------
    Path
        The written file. ``path`` column: POSIX relative to the data folder; ``class``:
        canonical class name; ``position``: empty where not inferable; ``kind``:
        ``original`` or ``copy``; ``copy_of``: the original's path for a copy, else empty.

    Raises
    ------
    AlzmriError
        ``result`` does not belong to ``index``.
    """
    if list(result.paths) != index.paths:
        raise AlzmriError(f"{path}: the groups were computed for a different dataset than {index.root}; recompute them for this data")
    copy_of = np.asarray(result.copy_of, dtype=np.int64)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(GROUP_COLUMNS)
    for rec, g, pos, src in zip(index.records, result.group, result.position, copy_of):
        w.writerow([rec.path, rec.class_name, int(g), int(pos) if pos >= 0 else "",
                    KINDS[1] if src >= 0 else KINDS[0], index.paths[src] if src >= 0 else ""])
    return atomic_write_text(path, buf.getvalue())


def read_groups_csv(path: str | os.PathLike, index: DatasetIndex) -> GroupResult:
    """Read a groups CSV and align it with ``index``.

    Parameters
    ----------
    path : path-like
        CSV with at least the columns ``path`` and ``group``; ``class``, ``position``,
        ``kind`` and ``copy_of`` are checked and read when present. Group values may be
        any labels (integers, subject IDs); equal values are one group.
    index : DatasetIndex

    Returns
    -------
    GroupResult
        ``method="csv"``, aligned with ``index.records``; group ids are renumbered by each
        group's first path, so a file written by :func:`write_groups_csv` reads back with
        the same ids. ``copy_of`` (int64, shape (n_images,)) holds the index of each copy's
        original, -1 for originals (all -1 without the columns).

    Raises
    ------
    AlzmriError
        The file is missing or not a CSV; a required column is missing; a path is listed
        twice, is not in the dataset, or a dataset image is not listed; a class disagrees
        with the data folder; a group is empty or a position is not an integer; a
        ``kind`` is not original/copy, a copy has no ``copy_of`` or an original has one,
        or ``copy_of`` names a path that is not listed, is not in the copy's group, is
        itself a copy or is the copy. Each message names the file (and line).
    """
    path = Path(path)
    fix = "write it again with the groups command for this data folder"
    if not path.is_file():
        raise AlzmriError(f"{path}: groups file not found; {fix}")
    header, rows = read_csv_rows(path, what="groups", fix=fix, encoding="utf-8-sig")
    missing = [c for c in ("path", "group") if c not in header]
    if missing:
        raise AlzmriError(f"{path}: missing column(s) {', '.join(missing)} (has {', '.join(header) or 'none'}); {fix}")
    pos_of = {p: i for i, p in enumerate(index.paths)}
    raw: list[str | None] = [None] * len(index)
    position = np.full(len(index), -1, dtype=np.int64)
    sources: list[tuple[int, int, str]] = []  # (image, line, copy_of path)
    unknown: list[str] = []
    for line, row in enumerate(rows, start=2):
        p = (row.get("path") or "").strip()
        i = pos_of.get(p)
        if i is None:
            unknown.append(p)
            continue
        if raw[i] is not None:
            raise AlzmriError(f"{path}:{line}: {p} is listed twice; keep one row per image")
        g = (row.get("group") or "").strip()
        if not g:
            raise AlzmriError(f"{path}:{line}: {p} has an empty group; give every image a group")
        if "class" in header and (row.get("class") or "").strip():
            label = class_index(row["class"])
            if label != index.records[i].label:
                raise AlzmriError(
                    f"{path}:{line}: {p} is class {row['class']!r} in the file but {CLASS_NAMES[index.records[i].label]} in {index.root}; {fix}"
                )
        if "position" in header:
            v = (row.get("position") or "").strip()
            if v:
                try:
                    position[i] = int(v)
                except ValueError:
                    raise AlzmriError(f"{path}:{line}: position {v!r} is not an integer; leave it empty when unknown") from None
        src = _copy_source(row, header, f"{path}:{line}", p)
        if src:
            sources.append((i, line, src))
        raw[i] = g
    if unknown:
        raise AlzmriError(
            f"{path}: {len(unknown)} path(s) are not in {index.root} (first: {unknown[0]!r}); point --data at the dataset the groups were made for, or {fix}"
        )
    absent = [index.paths[i] for i, g in enumerate(raw) if g is None]
    if absent:
        raise AlzmriError(f"{path}: {len(absent)} image(s) of {index.root} are not listed (first: {absent[0]!r}); {fix}")
    copy_of = _check_copies(sources, raw, pos_of, len(index), str(path))
    group = _canonical_ids(np.asarray([str(g) for g in raw]), index.paths)
    n_groups = int(group.max()) + 1 if len(group) else 0
    return GroupResult(
        paths=index.paths,
        labels=index.labels,
        group=group,
        position=position,
        method="csv",
        threshold=None,
        weakest_link=np.full(n_groups, np.nan),
        unreadable=np.zeros(len(index), dtype=bool),
        params={"source": str(path)},
        copy_of=copy_of,
    )


def _copy_source(row: dict, header: list[str], where: str, p: str) -> str:
    """The ``copy_of`` path of one row ('' for an original), its ``kind`` checked against it."""
    src = (row.get("copy_of") or "").strip() if "copy_of" in header else ""
    if "kind" not in header:
        return src  # copy_of alone: a non-empty value marks a copy
    kind = (row.get("kind") or "").strip().lower() or "original"
    if kind not in KINDS:
        raise AlzmriError(f"{where}: kind {row.get('kind')!r} of {p} is not original or copy; write original, copy or leave it empty")
    if kind == "copy" and not src:
        raise AlzmriError(f"{where}: {p} is a copy but names no original; put the original's path in copy_of, or write kind original")
    if kind == "original" and src:
        raise AlzmriError(f"{where}: {p} is an original but names copy_of {src!r}; write kind copy, or empty copy_of")
    return src


def _check_copies(sources: list[tuple[int, int, str]], raw: list, pos_of: dict[str, int], n: int, where: str) -> np.ndarray:
    """``copy_of`` index array (int64, shape (n,), -1 for originals) from (image, line, original path) triples."""
    copy_of = np.full(n, -1, dtype=np.int64)
    for i, _, src in sources:
        copy_of[i] = pos_of.get(src, -2)
    for i, line, src in sources:
        j = int(copy_of[i])
        if j == -2:
            raise AlzmriError(f"{where}:{line}: copy_of {src!r} is not a listed path; name the original's path as in the path column")
        if j == i:
            raise AlzmriError(f"{where}:{line}: copy_of names the image itself; name the original it was made from")
        if copy_of[j] >= 0:
            raise AlzmriError(f"{where}:{line}: copy_of {src!r} is itself a copy; name the original it was made from (that row's copy_of)")
        if raw[i] != raw[j]:
            raise AlzmriError(f"{where}:{line}: copy_of {src!r} is in group {raw[j]!r} but this copy is in group {raw[i]!r}; "
                              "a copy belongs to its original's group: give it the same group")
    return copy_of
