"""Subject IDs and slice numbers from file names (OASIS style), and stable group numbering."""

from __future__ import annotations

import re
from pathlib import PurePosixPath

import numpy as np

#: OASIS subject ID in a file's base name; group 1 is the subject (``OAS1_0001``).
OASIS_ID_PATTERN = r"(OAS[123]_\d{4})(?:_MR\d+)?"
#: Trailing slice number of a base name (``..._mpr-1_100.jpg`` -> 100).
SLICE_NUMBER_PATTERN = r"_(\d+)\.[A-Za-z0-9]+$"


def _canonical_ids(raw: np.ndarray, paths: list[str]) -> np.ndarray:
    """Renumber group labels 0.. by each group's smallest path."""
    raw = np.asarray(raw)
    _, inv = np.unique(raw, return_inverse=True)
    first: dict[int, str] = {}
    for i, g in enumerate(inv):
        p = paths[i]
        if g not in first or p < first[g]:
            first[g] = p
    order = sorted(first, key=lambda g: first[g])
    remap = np.empty(len(order), dtype=np.int64)
    for new, old in enumerate(order):
        remap[old] = new
    return remap[inv].astype(np.int64)


def _filename_groups(paths: list[str], id_pattern: str) -> tuple[list[str], list[int | None]] | None:
    rx = re.compile(id_pattern, re.IGNORECASE)
    srx = re.compile(SLICE_NUMBER_PATTERN)
    ids: list[str] = []
    slices: list[int | None] = []
    for p in paths:
        base = PurePosixPath(p).name
        m = rx.search(base)
        if m is None:
            return None
        ids.append((m.group(1) if m.groups() else m.group(0)).upper())
        s = srx.search(base)
        slices.append(int(s.group(1)) if s else None)
    return ids, slices
