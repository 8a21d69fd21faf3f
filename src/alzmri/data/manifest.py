"""Split manifests: which image is in which split, with its content hash.

A manifest is a CSV with the columns ``path`` (POSIX, relative to the dataset root),
``class`` (canonical name), ``split`` (``train``/``val``/``test``) and ``sha256`` (of the
file's bytes), one row per image, plus optional columns (``group``, ...) that later
strategies add. Giving the same manifest to two runs makes them see identical images.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from alzmri.data.classes import CLASS_NAMES, class_index
from alzmri.data.discovery import DatasetIndex
from alzmri.errors import AlzmriError
from alzmri.utils.io import atomic_write_text

REQUIRED_COLUMNS = ("path", "class", "split", "sha256")


def write_manifest(path: str | Path, index: DatasetIndex, splits, *, extra: dict[str, list] | None = None) -> Path:
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
    """
    splits = np.asarray(splits, dtype=str)
    hashes = index.file_hashes()
    extra = extra or {}
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([*REQUIRED_COLUMNS, *extra])
    for i, rec in enumerate(index.records):
        if not splits[i]:
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
        The file is missing or not a manifest; it names files that are not in the dataset,
        files whose content changed, or a class that disagrees with the folder.
    """
    path = Path(path)
    if not path.is_file():
        raise AlzmriError(f"{path}: manifest not found; pass --split PATH to a manifest.csv written by an earlier run")
    try:
        text = path.read_text(encoding="utf-8")
        reader = csv.DictReader(io.StringIO(text))
        header = list(reader.fieldnames or [])
        rows = list(reader)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise AlzmriError(f"{path}: not a manifest CSV ({exc}); pass a manifest.csv written by alzmri") from None
    missing_cols = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing_cols:
        raise AlzmriError(f"{path}: not a manifest, missing column(s) {', '.join(missing_cols)}; pass a manifest.csv written by alzmri")
    if not rows:
        raise AlzmriError(f"{path}: manifest lists no images")

    pos = {rec.path: i for i, rec in enumerate(index.records)}
    hashes = index.file_hashes()
    out = np.full(len(index), "", dtype=object)
    gone: list[str] = []
    changed: list[str] = []
    for n, row in enumerate(rows, start=2):
        p, split = row["path"], row["split"]
        if split not in ("train", "val", "test"):
            raise AlzmriError(f"{path}:{n}: split must be train, val or test; got {split!r}")
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
    return out.astype(str)
