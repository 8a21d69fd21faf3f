import numpy as np
import pytest

from alzmri.data.discovery import discover
from alzmri.data.manifest import read_manifest, write_manifest
from alzmri.data.splits import make_split, stratified_split
from alzmri.errors import AlzmriError
from conftest import copy_subset


def test_stratified_split_fractions_and_class_balance(data_6400):
    labels = discover(data_6400).labels
    s = stratified_split(labels, seed=0)
    counts = {k: int((s == k).sum()) for k in ("train", "val", "test")}
    assert counts == {"train": 4480, "val": 960, "test": 960}
    for split, frac in (("train", 0.7), ("val", 0.15), ("test", 0.15)):
        for c, n in enumerate(np.bincount(labels)):
            got = int(((s == split) & (labels == c)).sum())
            assert abs(got - frac * n) <= 1.5, (split, c, got, frac * n)


def test_split_is_reproducible_and_seed_dependent():
    labels = np.repeat(np.arange(4), [50, 30, 15, 5])
    a = make_split("stratified", labels, seed=7)
    assert np.array_equal(a, make_split("stratified", labels, seed=7))
    assert not np.array_equal(a, make_split("stratified", labels, seed=8))
    b = make_split("image", labels, seed=7)
    assert set(np.unique(b)) == {"train", "val", "test"} and (b == "test").sum() == 15


def test_release_test_folder_stays_test(data_176):
    index = discover(data_176)
    s = make_split("stratified", index.labels, seed=1, source_split=[r.source_split for r in index.records])
    src = np.array([r.source_split for r in index.records])
    assert np.all(s[src == "test"] == "test")
    assert set(s[src == "train"]) == {"train", "val"}
    assert abs((s == "val").sum() / (src == "train").sum() - 0.15 / 0.85) < 0.01


def test_bad_strategy_and_fractions():
    with pytest.raises(AlzmriError, match="unknown split strategy 'subjectt'"):
        make_split("subjectt", [0, 1])
    with pytest.raises(AlzmriError, match="summing to 1"):
        make_split("stratified", [0, 1], fractions=(0.5, 0.5, 0.5))


def test_manifest_round_trip_and_errors(tmp_path, data_6400):
    d = copy_subset(data_6400, tmp_path / "d", 10)
    index = discover(d)
    s = make_split("stratified", index.labels, seed=3)
    path = write_manifest(tmp_path / "m.csv", index, s)
    header = path.read_text().splitlines()[0]
    assert header == "path,class,split,sha256"
    assert np.array_equal(read_manifest(path, discover(d)), s)
    # a file named by the manifest is gone
    gone = sorted((d / "Moderate_Demented").iterdir())[0]
    gone.unlink()
    with pytest.raises(AlzmriError, match=r"1 file\(s\) named in the manifest are not in .* \(first: Moderate_Demented/"):
        read_manifest(path, discover(d))
    # a file changed
    d2 = copy_subset(data_6400, tmp_path / "d2", 10)
    p2 = write_manifest(tmp_path / "m2.csv", discover(d2), make_split("stratified", discover(d2).labels, seed=3))
    f = sorted((d2 / "Mild_Demented").iterdir())[0]
    f.write_bytes(f.read_bytes() + b"\0")
    with pytest.raises(AlzmriError, match="changed since the manifest was written"):
        read_manifest(p2, discover(d2))
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(AlzmriError, match="not a manifest, missing column"):
        read_manifest(bad, discover(d2))
