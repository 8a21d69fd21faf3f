"""Split manifests: write and read back, optional group/strategy/copy columns, and the errors of a bad or stale file."""

import csv

import numpy as np
import pytest

from alzmri.data.classes import CLASS_NAMES, class_index
from alzmri.data.discovery import discover
from alzmri.data.manifest import load_manifest, read_manifest, write_manifest
from alzmri.data.splits import make_split
from alzmri.errors import AlzmriError
from _helpers import copy_subset


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


def test_manifest_records_groups_and_strategy(tmp_path, data_6400):
    d = copy_subset(data_6400, tmp_path / "d", 8)
    index = discover(d)
    groups = np.arange(len(index)) // 2
    s = make_split("subject", index.labels, seed=0, groups=groups)
    path = write_manifest(tmp_path / "m.csv", index, s, groups=groups, strategy="subject")
    assert path.read_text().splitlines()[0] == "path,class,split,sha256,group,strategy"
    m = load_manifest(path, discover(d))
    assert np.array_equal(m.splits, s) and m.strategy == "subject"
    assert np.array_equal(m.groups, groups)  # integer ids are kept as written
    # other labels (subject IDs) are renumbered; the partition is the same
    named = write_manifest(tmp_path / "named.csv", index, s, groups=[f"OAS1_{g:04d}" for g in groups])
    m_named = load_manifest(named, discover(d))
    assert np.array_equal(m_named.groups[1:] == m_named.groups[:-1], groups[1:] == groups[:-1])
    assert np.array_equal(read_manifest(path, discover(d)), s)
    # a manifest without the optional columns still reads
    old = write_manifest(tmp_path / "old.csv", index, s)
    m_old = load_manifest(old, discover(d))
    assert m_old.groups is None and m_old.strategy is None and np.array_equal(m_old.splits, s)

@pytest.fixture
def small(tmp_path, data_6400):
    """A 6-per-class copy of the 6,400 set, its index and a seeded stratified split."""
    d = copy_subset(data_6400, tmp_path / "d", 6)
    index = discover(d)
    return d, index, make_split("stratified", index.labels, seed=0)


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _rewrite(path, rows):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


def test_every_row_holds_the_file_hash_and_class(small, tmp_path):
    import hashlib

    d, index, s = small
    path = write_manifest(tmp_path / "m.csv", index, s, strategy="stratified")
    rows = _rows(path)
    assert [r["path"] for r in rows] == index.paths and {r["strategy"] for r in rows} == {"stratified"}
    for r in rows:
        assert r["sha256"] == hashlib.sha256((d / r["path"]).read_bytes()).hexdigest()
        assert r["class"] == CLASS_NAMES[class_index(r["path"].split("/")[0])]  # canonical name of the folder's class
    # images with an empty split (left out) are not listed, and read back as ""
    s2 = s.copy()
    s2[:3] = ""
    m = load_manifest(write_manifest(tmp_path / "m2.csv", index, s2), index)
    assert len(_rows(tmp_path / "m2.csv")) == len(index) - 3 and np.array_equal(m.splits, s2)


def test_groups_of_the_wrong_length_are_refused(small, tmp_path):
    _, index, s = small
    with pytest.raises(AlzmriError, match=f"groups must give one group per image \\({len(index)}\\); got 3"):
        write_manifest(tmp_path / "m.csv", index, s, groups=[0, 1, 2])
    assert not (tmp_path / "m.csv").exists()


@pytest.mark.parametrize(
    "content, message",
    [
        (None, r"manifest not found; pass --split PATH"),
        (b"\xff\xfe\x00\x81 not text", r"not a manifest CSV \(.*\); pass a manifest.csv written by alzmri"),
        (b"a,b\n1,2\n", r"not a manifest, missing column\(s\) path, class, split, sha256"),
        (b"path,class,split,sha256\n", r"manifest lists no images"),
    ],
)
def test_bad_csv_is_one_line_naming_the_file(small, tmp_path, content, message):
    _, index, _ = small
    path = tmp_path / "bad.csv"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(AlzmriError, match=message) as exc:
        load_manifest(path, index)
    msg = str(exc.value)
    assert msg.startswith(f"{path}: ") and "\n" not in msg


def test_bad_rows_name_the_line(small, tmp_path):
    _, index, s = small
    path = write_manifest(tmp_path / "m.csv", index, s)
    rows = _rows(path)
    bad_split = [dict(r) for r in rows]
    bad_split[2]["split"] = "dev"
    _rewrite(tmp_path / "split.csv", bad_split)
    with pytest.raises(AlzmriError, match=r"split.csv:4: split must be train, val or test; got 'dev'"):
        load_manifest(tmp_path / "split.csv", index)
    other = next(c for c in ("NonDemented", "MildDemented") if c != rows[0]["class"])
    bad_class = [dict(r) for r in rows]
    bad_class[0]["class"] = other
    _rewrite(tmp_path / "class.csv", bad_class)
    with pytest.raises(AlzmriError, match=rf"class.csv:2: {rows[0]['path']} is class '{other}' in the manifest but {rows[0]['class']} in "):
        load_manifest(tmp_path / "class.csv", index)
    no_group = [{**r, "group": "" if i == 1 else "7"} for i, r in enumerate(rows)]
    _rewrite(tmp_path / "group.csv", no_group)
    with pytest.raises(AlzmriError, match=r"group.csv:3: .* has an empty group; give every image a group or drop the group column"):
        load_manifest(tmp_path / "group.csv", index)


# augmented copies: listed with kind and copy_of, left-out copies with an empty split


def test_manifest_keeps_copies_and_the_copies_left_out(aug, tmp_path):
    from alzmri.data.eval_copies import leave_out_eval_copies, summarize_copies
    from alzmri.data.subjects import resolve_subjects

    index, res, _, pairs = aug
    final = leave_out_eval_copies(make_split("subject", index.labels, seed=0, groups=res.group), res.copy_of)
    path = write_manifest(tmp_path / "m.csv", index, final, groups=res.group, strategy="subject", copy_of=res.copy_of)
    lines = path.read_text().splitlines()
    assert lines[0] == "path,class,split,sha256,group,strategy,kind,copy_of"
    left_out = [c for c, _ in pairs if final[c] == ""]
    assert len(lines) - 1 == int((final != "").sum()) + len(left_out)  # left-out copies are listed, with an empty split
    row = next(line for line in lines if line.startswith(index.paths[left_out[0]] + ","))
    assert row.split(",")[2] == "" and row.endswith(f",copy,{index.paths[res.copy_of[left_out[0]]]}")
    m = load_manifest(path, discover(index.root))
    assert np.array_equal(m.splits, final) and np.array_equal(m.copy_of, res.copy_of)
    assert summarize_copies(m.splits, m.copy_of) == summarize_copies(final, res.copy_of)
    # a reused manifest gives the run its groups and copies without recovery
    subj = resolve_subjects(index, manifest=m)
    assert subj.source == "manifest" and np.array_equal(subj.copy_of, res.copy_of)
    assert all(subj.group[c] == subj.group[o] for c, o in pairs)
    # without copies the file is as before (no kind/copy_of columns, no empty splits)
    plain = write_manifest(tmp_path / "p.csv", index, final, groups=res.group, copy_of=np.full(len(index), -1))
    assert plain.read_text().splitlines()[0] == "path,class,split,sha256,group"
    assert load_manifest(plain, index).copy_of is None


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda p: p[:2] + [""] + p[3:] if p[6] == "original" else None, r"split must be train, val or test \(empty only for an augmented copy left out\)"),
        (lambda p: p[:7] + ["NonDemented/nope.jpg"] if p[6] == "copy" else None, r"copy_of names 'NonDemented/nope.jpg', which is not in the dataset"),
        (lambda p: p[:6] + ["twin", p[7]] if p[6] == "copy" else None, r"kind must be original or copy; got 'twin'"),
        (lambda p: p[:4] + ["999"] + p[5:] if p[6] == "copy" else None, r"this copy and its original .* are in different groups"),
    ],
)
def test_manifest_copy_errors_name_file_and_line(aug, tmp_path, edit, message):
    from alzmri.data.eval_copies import leave_out_eval_copies

    index, res, _, _ = aug
    final = leave_out_eval_copies(make_split("subject", index.labels, seed=0, groups=res.group), res.copy_of)
    lines = write_manifest(tmp_path / "m.csv", index, final, groups=res.group, strategy="subject", copy_of=res.copy_of).read_text().splitlines()
    for k in range(1, len(lines)):
        new = edit(lines[k].split(","))
        if new is not None:
            lines[k] = ",".join(new)
            break
    (tmp_path / "bad.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(AlzmriError, match=message) as exc:
        load_manifest(tmp_path / "bad.csv", index)
    assert str(exc.value).startswith(f"{tmp_path / 'bad.csv'}:{k + 1}: ")
