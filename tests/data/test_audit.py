"""Leakage audit on real slices: planted duplicates are found, a split by scan is clean."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from alzmri.data.audit import audit_split, format_audit
from alzmri.data.discovery import discover
from alzmri.data.groups import recover_groups
from alzmri.errors import AlzmriError

sys.path.insert(0, str(Path(__file__).parent))
from test_groups import AUGMENT, build_brains  # noqa: E402


def group_split(group: np.ndarray) -> np.ndarray:
    """Whole groups to train / val / test (every 5th group to val, the next to test)."""
    out = np.full(len(group), "train", dtype=object)
    out[group % 5 == 1] = "val"
    out[group % 5 == 2] = "test"
    return out.astype(str)


@pytest.fixture(scope="module")
def clean(data_176, tmp_path_factory):
    root = tmp_path_factory.mktemp("audit-clean") / "data"
    build_brains(data_176, root, planted=False)
    index = discover(root)
    groups = recover_groups(index)
    return index, groups


def test_split_by_groups_is_clean(clean):
    index, groups = clean
    splits = group_split(groups.group)
    rep = audit_split(index, splits, groups=groups)
    assert rep["n_images"]["test"] > 0 and rep["n_images"]["val"] > 0
    assert rep["exact_duplicates"]["n_pairs"] == 0
    assert rep["near_duplicates"]["n_pairs"] == 0
    assert rep["shared_groups"]["n_groups_shared"] == 0
    assert rep["shared_groups"]["n_groups"] == groups.n_groups
    b = rep["baseline"]
    assert b["eval_split"] == "test" and b["n_eval"] == rep["n_images"]["test"]
    assert 0.0 <= b["balanced_accuracy"] <= 1.0
    assert b["chance_balanced_accuracy"] == pytest.approx(1.0 / len(set(index.labels[splits == "test"])), abs=1e-4)
    assert not any("duplicate" in r or "group" in r for r in rep["reasons"])
    json.dumps(rep)  # plain data
    text = format_audit(rep)
    assert "exact duplicates across splits: 0 pair(s)" in text
    assert "scan groups shared between splits: 0 of" in text


def test_random_slice_split_leaks(clean):
    index, groups = clean
    rng = np.random.default_rng(0)
    splits = rng.choice(np.array(["train", "val", "test"]), size=len(index), p=[0.7, 0.15, 0.15])
    rep = audit_split(index, splits, groups=groups)
    assert rep["shared_groups"]["n_groups_shared"] > groups.n_groups // 2
    # neighbouring slices are not near-duplicates (they are the same group)
    assert rep["near_duplicates"]["n_pairs"] == 0
    b = rep["baseline"]
    assert b["balanced_accuracy"] > b["chance_balanced_accuracy"] + b["margin"]
    assert rep["leakage_warning"]
    assert "WARNING" in format_audit(rep)


def test_planted_exact_and_near_duplicates_are_found(data_176, tmp_path):
    root = tmp_path / "data"
    build_brains(data_176, root, planted=False)
    index0 = discover(root)
    split0 = dict(zip(index0.paths, group_split(recover_groups(index0).group)))
    train_files = sorted(p for p, s in split0.items() if s == "train")
    # one byte-identical copy and one augmented copy of each kind of train slices, all in test
    exact_src = train_files[0]
    shutil.copy2(root / exact_src, root / Path(exact_src).parent / "copy-exact.jpg")
    near_src = {}
    for kind, src in zip(AUGMENT, train_files[5::9]):
        with Image.open(root / src) as im:
            out = Path(src).parent / f"copy-{kind}.jpg"
            AUGMENT[kind](im.convert("L")).save(root / out, "JPEG", quality=95)
        near_src[out.as_posix()] = src
    index = discover(root)
    splits = np.array(["test" if Path(p).name.startswith("copy-") else split0[p] for p in index.paths])

    rep = audit_split(index, splits, max_examples=10)
    ex = rep["exact_duplicates"]
    assert ex["n_pairs"] == 1 and ex["by_splits"] == {"train-test": 1}
    e = ex["examples"][0]
    assert (e["a"], e["a_split"], e["b"], e["b_split"]) == (exact_src, "train", str(Path(exact_src).parent / "copy-exact.jpg"), "test")
    nd = rep["near_duplicates"]
    assert len(near_src) == len(AUGMENT)
    found = {(x["a"], x["b"]) for x in nd["examples"]}
    for copy, src in near_src.items():
        assert (src, copy) in found, (copy, nd)
    assert nd["n_pairs"] == len(near_src)
    assert all(x["similarity"] >= 0.98 for x in nd["examples"])
    assert rep["shared_groups"] is None
    assert rep["leakage_warning"]
    assert any("byte-identical" in r for r in rep["reasons"])
    assert any("near-duplicate" in r for r in rep["reasons"])
    text = format_audit(rep)
    assert "copy-exact.jpg" in text and "not checked" in text


def test_left_out_images_are_ignored(clean):
    index, groups = clean
    splits = group_split(groups.group)
    splits[splits == "val"] = ""
    rep = audit_split(index, splits, groups=groups)
    assert rep["n_images"]["val"] == 0
    assert rep["n_left_out"] == int((groups.group % 5 == 1).sum())
    assert rep["shared_groups"]["n_groups_shared"] == 0


def test_bad_inputs(clean):
    index, groups = clean
    with pytest.raises(AlzmriError, match="one split name per image"):
        audit_split(index, ["train"] * 3)
    with pytest.raises(AlzmriError, match="unknown split"):
        audit_split(index, ["train"] * (len(index) - 1) + ["holdout"])
    with pytest.raises(AlzmriError, match="one group per image"):
        audit_split(index, group_split(groups.group), groups=np.zeros(2))
