"""Helpers shared by the tests: the real datasets, subsets of them, known groupings, CLI runs.

Imported as ``from _helpers import ...`` (``tests/`` is on ``sys.path`` through its
conftest). Fixtures stay in the conftest files; plain functions live here, so no test
imports a conftest module (whose name pytest may bind to another folder's conftest).
"""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATASETS = REPO.parent / "shared" / "datasets"
DATA_6400 = DATASETS / "alzheimer-mri-6400"
DATA_176 = DATASETS / "alzheimers-dataset-176x208"


def require(path: Path) -> Path:
    if not path.is_dir():
        pytest.skip(f"real dataset not found at {path} (expected ../shared/datasets beside the repo)")
    return path


def copy_subset(src: Path, dest: Path, per_class: int, *, rename: dict[str, str] | None = None, stride: int = 1) -> Path:
    """Copy the first ``per_class`` images (every ``stride``-th, sorted by name) of each class folder of ``src``."""
    rename = rename or {}
    for cls_dir in sorted(p for p in src.iterdir() if p.is_dir()):
        files = sorted(p for p in cls_dir.iterdir() if p.is_file())[::stride][:per_class]
        out = dest / rename.get(cls_dir.name, cls_dir.name)
        out.mkdir(parents=True, exist_ok=True)
        for f in files:
            shutil.copy2(f, out / f.name)
    return dest


def run_cli(capsys, *args):
    """Run ``alzmri ARGS`` in this process; ``(exit code, stdout, stderr)``."""
    from alzmri.cli import main

    code = main([str(a) for a in args])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def assert_one_line_error(code, err, pattern):
    """Exit code 2 and exactly one ``error: ...`` line matching ``pattern``, no traceback."""
    assert code == 2
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    assert "Traceback" not in err
    assert re.search(pattern, lines[0]), lines[0]


def tree_digest(folder):
    """SHA-256 over every file's relative path and bytes: equal digests, unchanged folder."""
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(folder).as_posix().encode() + p.read_bytes())
    return h.hexdigest()



def truth_result(index, brain: dict, copy_of: dict, *, gap: float | None = None):
    """A GroupResult of ``index`` built from known brains and copies, as image recovery would return it.

    ``gap``: the separation gap to report (weakest link inside groups minus strongest
    similarity between groups); below ``MIN_RELIABLE_GAP`` the result is unreliable.
    """
    import numpy as np

    from alzmri.data.groups import GroupResult
    from alzmri.data.groups.filenames import _canonical_ids

    pos = {p: i for i, p in enumerate(index.paths)}
    group = _canonical_ids(np.array([brain[p] for p in index.paths]), index.paths)
    n_groups = int(group.max()) + 1
    src = np.array([pos[copy_of[p]] if p in copy_of else -1 for p in index.paths], dtype=np.int64)
    weakest = np.full(n_groups, 0.90)
    return GroupResult(paths=index.paths, labels=index.labels, group=group, position=np.full(len(index), -1, dtype=np.int64),
                       method="images", threshold=0.83, weakest_link=weakest,
                       strongest_between=None if gap is None else 0.90 - gap, unreadable=np.zeros(len(index), bool),
                       params={"truth": True}, copy_of=src)


def clustered_predictions(n_groups_per_class=(6, 5, 4), slices=10, seed=0):
    """(y, p, groups) of slices whose subject shares one noisy prediction (as neighbouring slices do).

    ``n_groups_per_class`` subjects per class, ``slices`` slices each; ``p`` rows are
    class probabilities of 3 classes, near-identical within a subject.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    y, p, g = [], [], []
    gid = 0
    for c, n_g in enumerate(n_groups_per_class):
        for _ in range(n_g):
            logit = rng.normal(size=3) * 1.5
            logit[c] += 1.0
            for _ in range(slices):
                q = np.exp(logit + rng.normal(size=3) * 0.05)
                p.append(q / q.sum())
                y.append(c)
                g.append(gid)
            gid += 1
    return np.array(y), np.array(p), np.array(g)


def write_brain_subset(groups_6400, root: Path, per_class: dict[int, int], *, stride: int, shorten_every_other: int = 0) -> tuple[Path, Path]:
    """Copy whole real brains of alzheimer-mri-6400 into ``root`` and write their true groups CSV beside it.

    ``per_class``: label -> number of brains (the first by group id); every ``stride``-th
    slice in slice order; with ``shorten_every_other``, every other brain loses its last
    that many slices (unequal bags). The CSV gives kind "original" (no copies searched).
    Returns (data folder, groups CSV).
    """
    import csv

    import numpy as np

    index, res = groups_6400
    rows = []
    for label, n in per_class.items():
        gids = sorted({int(g) for g, y in zip(res.group, index.labels) if y == label})[:n]
        for j, g in enumerate(gids):
            members = np.flatnonzero(res.group == g)
            members = members[np.argsort(res.position[members])][::stride]
            if shorten_every_other and j % 2:
                members = members[:-shorten_every_other]
            for pos, i in enumerate(members):
                rec = index.records[i]
                dest = root / Path(rec.path).parent.name / Path(rec.path).name
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(index.root / rec.path, dest)
                rows.append((f"{dest.parent.name}/{dest.name}", dest.parent.name, g, pos, "original", ""))
    groups = root.parent / "groups.csv"
    with open(groups, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "class", "group", "position", "kind", "copy_of"])
        w.writerows(rows)
    return root, groups
