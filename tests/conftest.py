"""Shared fixtures: the real datasets in ../shared/datasets and small subsets of them."""

from __future__ import annotations

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
    from alzmri.training.train import train

    out = tmp_path_factory.mktemp("tiny-runs") / "altz32"
    cfg = load_train_config(data=small_data, out=out, epochs=4, batch_size=8, lr=3e-4, image_size=32, augment=False, seed=0,
                            split_strategy="stratified", model_kwargs={"fc_dropout": 0.0, "conv_dropout": 0.0, "init": "he"})
    return train(cfg, progress=False)
