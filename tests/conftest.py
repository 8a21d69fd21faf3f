"""Shared fixtures: the real datasets in ../shared/datasets and small subsets of them (helpers in _helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from _helpers import DATA_176, DATA_6400, copy_subset, require

@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets the session's own cache folder, never the user's."""
    cache = tmp_path_factory.getbasetemp() / "alzmri-cache"
    monkeypatch.setenv("ALZMRI_CACHE_DIR", str(cache))
    return cache


@pytest.fixture(scope="session")
def data_6400() -> Path:
    return require(DATA_6400)


@pytest.fixture(scope="session")
def data_176() -> Path:
    return require(DATA_176)


@pytest.fixture(scope="session")
def small_data(tmp_path_factory) -> Path:
    """A real subset of alzheimer-mri-6400: 30 images per class (every 7th file)."""
    src = require(DATA_6400)
    return copy_subset(src, tmp_path_factory.mktemp("small") / "data", 30, stride=2)


@pytest.fixture(scope="session")
def groups_6400(tmp_path_factory):
    """(index, GroupResult) of the full 6,400 set: recovered once per session (about 10 s)."""
    from alzmri.data.discovery import discover
    from alzmri.data.groups import load_or_recover_groups

    index = discover(require(DATA_6400))
    cache = tmp_path_factory.getbasetemp() / "alzmri-cache"
    return index, load_or_recover_groups(index, cache_dir=cache)


@pytest.fixture(scope="session")
def brains_176(tmp_path_factory) -> Path:
    """17 known brains (6-7 consecutive slices each) from the 176x208 test folder, as class folders.

    NonDemented 7 brains, VeryMildDemented 4, MildDemented 4, ModerateDemented 2 (see
    tests/data/test_groups.py); recovered groups match the brains exactly.
    """
    import sys

    src = require(DATA_176)
    sys.path.insert(0, str(Path(__file__).parent / "data"))
    from test_groups import build_brains

    root = tmp_path_factory.mktemp("brains176") / "data"
    build_brains(src, root, planted=False)
    return root


@pytest.fixture(scope="session")
def tiny_run(small_data, tmp_path_factory):
    """A tiny real run (AltzCNN, 32 x 32, 4 epochs on the real subset) shared by the inference tests."""
    from alzmri.config import load_train_config
    from alzmri.pipeline import train

    out = tmp_path_factory.mktemp("tiny-runs") / "altz32"
    cfg = load_train_config(data=small_data, out=out, epochs=4, batch_size=8, lr=3e-4, image_size=32, augment=False, seed=0,
                            split_strategy="stratified", model_kwargs={"fc_dropout": 0.0, "conv_dropout": 0.0, "init": "he"})
    return train(cfg, progress=False)


@pytest.fixture(scope="session")
def augmented_brains(tmp_path_factory):
    """The 17 known brains of ``brains_176`` (113 slices) plus 40 augmented copies, and the truth as a groups CSV.

    Copies come from :func:`alzmri.data.augmented_sets.write_augmented_set` (seeded; every
    kind, combined), named ``aug_<n>.jpg`` in their source's class folder. Returns a dict:
    ``root`` (the data folder), ``groups_csv`` (path,class,group,position,kind,copy_of from
    construction: group = brain, copy_of = source), ``brain`` (path -> brain id, copies
    included) and ``copy_of`` (copy path -> source path).
    """
    import csv
    import sys

    from alzmri.data.augmented_sets import write_augmented_set
    from alzmri.data.classes import CLASS_NAMES

    src = require(DATA_176)
    sys.path.insert(0, str(Path(__file__).parent / "data"))
    from test_groups import build_brains

    base = tmp_path_factory.mktemp("augbrains")
    brain, _, _ = build_brains(src, base / "originals", planted=False)
    made = write_augmented_set(base / "originals", base / "data", 40, seed=0)
    copy_of = {c: v if isinstance(v, str) else v["source"] for c, v in made.items()}  # copy -> source (or its record)
    brain.update({c: brain[s] for c, s in copy_of.items()})
    rows = [["path", "class", "group", "position", "kind", "copy_of"]]
    for p in sorted(brain):
        cls = p.split("/")[0]
        assert cls in CLASS_NAMES
        rows.append([p, cls, f"brain-{brain[p]}", "", "copy" if p in copy_of else "original", copy_of.get(p, "")])
    groups_csv = base / "truth-groups.csv"
    with groups_csv.open("w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)
    return {"root": base / "data", "groups_csv": groups_csv, "brain": brain, "copy_of": copy_of}
