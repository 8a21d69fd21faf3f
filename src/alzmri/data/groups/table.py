"""Groups as CSV: :func:`write_groups_csv` and :func:`read_groups_csv`."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import numpy as np

from alzmri.data.classes import CLASS_NAMES, class_index
from alzmri.data.discovery import DatasetIndex
from alzmri.data.groups.filenames import _canonical_ids
from alzmri.data.groups.result import GroupResult
from alzmri.errors import AlzmriError
from alzmri.utils.io import atomic_write_text

GROUP_COLUMNS = ("path", "class", "group", "position")


def write_groups_csv(path: str | os.PathLike, index: DatasetIndex, result: GroupResult) -> Path:
    """Write groups as CSV (atomically): ``path``, ``class``, ``group``, ``position``.

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
        canonical class name; ``position``: empty where not inferable.

    Raises
    ------
    AlzmriError
        ``result`` does not belong to ``index``.
    """
    if list(result.paths) != index.paths:
        raise AlzmriError(f"{path}: the groups were computed for a different dataset than {index.root}; recompute them for this data")
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(GROUP_COLUMNS)
    for rec, g, pos in zip(index.records, result.group, result.position):
        w.writerow([rec.path, rec.class_name, int(g), int(pos) if pos >= 0 else ""])
    return atomic_write_text(path, buf.getvalue())


def read_groups_csv(path: str | os.PathLike, index: DatasetIndex) -> GroupResult:
    """Read a groups CSV and align it with ``index``.

    Parameters
    ----------
    path : path-like
        CSV with at least the columns ``path`` and ``group``; ``class`` and ``position``
        are checked and read when present. Group values may be any labels (integers,
        subject IDs); equal values are one group.
    index : DatasetIndex

    Returns
    -------
    GroupResult
        ``method="csv"``, aligned with ``index.records``; group ids are renumbered by each
        group's first path, so a file written by :func:`write_groups_csv` reads back with
        the same ids.

    Raises
    ------
    AlzmriError
        The file is missing or not a CSV; a required column is missing; a path is listed
        twice, is not in the dataset, or a dataset image is not listed; a class disagrees
        with the data folder; a group is empty or a position is not an integer.
    """
    path = Path(path)
    fix = "write it again with the groups command for this data folder"
    if not path.is_file():
        raise AlzmriError(f"{path}: groups file not found; {fix}")
    try:
        text = path.read_text(encoding="utf-8-sig")
        reader = csv.DictReader(io.StringIO(text))
        header = list(reader.fieldnames or [])
        rows = list(reader)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise AlzmriError(f"{path}: not a groups CSV ({exc}); {fix}") from None
    missing = [c for c in ("path", "group") if c not in header]
    if missing:
        raise AlzmriError(f"{path}: missing column(s) {', '.join(missing)} (has {', '.join(header) or 'none'}); {fix}")
    pos_of = {p: i for i, p in enumerate(index.paths)}
    raw: list[str | None] = [None] * len(index)
    position = np.full(len(index), -1, dtype=np.int64)
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
        raw[i] = g
    if unknown:
        raise AlzmriError(
            f"{path}: {len(unknown)} path(s) are not in {index.root} (first: {unknown[0]!r}); point --data at the dataset the groups were made for, or {fix}"
        )
    absent = [index.paths[i] for i, g in enumerate(raw) if g is None]
    if absent:
        raise AlzmriError(f"{path}: {len(absent)} image(s) of {index.root} are not listed (first: {absent[0]!r}); {fix}")
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
    )
