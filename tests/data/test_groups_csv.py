"""The groups CSV and the groups cache carry the augmented copies: ``kind`` and ``copy_of``.

Real slices of 17 known brains plus 40 augmented copies made from them (truth from
construction, conftest ``augmented_brains``).
"""

from __future__ import annotations

import csv

import numpy as np
import pytest

from alzmri.data.discovery import discover
from alzmri.data.groups import GroupResult, load_or_recover_groups, read_groups_csv, write_groups_csv
from alzmri.errors import AlzmriError
from _helpers import truth_result


@pytest.fixture(scope="module")
def truth(augmented_brains):
    index = discover(augmented_brains["root"])
    return index, truth_result(index, augmented_brains["brain"], augmented_brains["copy_of"]), augmented_brains


def test_truth_csv_reads_with_every_copy_and_its_original(truth):
    index, _, ab = truth
    res = read_groups_csv(ab["groups_csv"], index)
    assert res.method == "csv" and res.n_groups == 17
    assert int(res.is_copy.sum()) == 40 == len(ab["copy_of"])
    for c, s in ab["copy_of"].items():
        i = index.paths.index(c)
        assert index.paths[res.copy_of[i]] == s and res.group[i] == res.group[index.paths.index(s)]
    assert res.summary()["n_copies"] == 40
    assert res.summary()["n_originals_copied"] == len(set(ab["copy_of"].values()))


def test_round_trip_of_kind_and_copy_of(truth, tmp_path):
    index, res, ab = truth
    path = write_groups_csv(tmp_path / "g.csv", index, res)
    rows = list(csv.DictReader(path.open()))
    assert list(rows[0]) == ["path", "class", "group", "position", "kind", "copy_of"]
    by_path = {r["path"]: r for r in rows}
    for p in index.paths:
        r = by_path[p]
        assert r["kind"] == ("copy" if p in ab["copy_of"] else "original")
        assert r["copy_of"] == ab["copy_of"].get(p, "")
    back = read_groups_csv(path, index)
    assert np.array_equal(back.copy_of, res.copy_of) and np.array_equal(back.group, res.group)
    assert list(back.kind) == list(res.kind)


def test_old_csv_without_kind_reads_as_originals(truth, tmp_path):
    index, res, _ = truth
    lines = write_groups_csv(tmp_path / "g.csv", index, res).read_text().splitlines()
    old = [",".join(line.split(",")[:4]) for line in lines]  # the test paths hold no commas
    assert old[0] == "path,class,group,position"
    (tmp_path / "old.csv").write_text("\n".join(old) + "\n")
    back = read_groups_csv(tmp_path / "old.csv", index)
    assert not back.is_copy.any() and np.array_equal(back.group, res.group)
    # copy_of alone (no kind column) marks copies
    only = [",".join(line.split(",")[:4] + line.split(",")[5:]) for line in lines]
    (tmp_path / "only.csv").write_text("\n".join(only) + "\n")
    assert np.array_equal(read_groups_csv(tmp_path / "only.csv", index).copy_of, res.copy_of)


def _edit(lines: list[str], pick, kind=None, copy_of=None, group=None) -> list[str]:
    """Change the first row that ``pick(parts)`` selects (parts: path,class,group,position,kind,copy_of)."""
    out = list(lines)
    for k, line in enumerate(out[1:], start=1):
        parts = line.split(",")
        if pick(parts):
            if kind is not None:
                parts[4] = kind
            if copy_of is not None:
                parts[5] = copy_of(parts) if callable(copy_of) else copy_of
            if group is not None:
                parts[2] = group
            out[k] = ",".join(parts)
            return out
    raise AssertionError("no row picked")


def is_copy(parts):
    return parts[4] == "copy"


def is_original(parts):
    return parts[4] == "original"


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda ls: _edit(ls, is_copy, copy_of="NonDemented/nope.jpg"), r"copy_of 'NonDemented/nope.jpg' is not a listed path"),
        (lambda ls: _edit(ls, is_copy, copy_of=""), r"is a copy but names no original; put the original's path in copy_of"),
        (lambda ls: _edit(ls, is_original, copy_of="NonDemented/26 (62).jpg"), r"is an original but names copy_of"),
        (lambda ls: _edit(ls, is_copy, kind="augmented"), r"kind 'augmented' .* is not original or copy"),
        (lambda ls: _edit(ls, is_copy, copy_of=lambda p: p[0]), r"copy_of names the image itself"),
        (lambda ls: _edit(ls, is_copy, group="99"), r"is in group .* but this copy is in group '99'; a copy belongs to its original's group"),
    ],
)
def test_bad_copy_rows_are_one_line_naming_file_line_and_fix(truth, tmp_path, edit, message):
    index, res, _ = truth
    lines = write_groups_csv(tmp_path / "g.csv", index, res).read_text().splitlines()
    bad = edit(lines)
    (tmp_path / "bad.csv").write_text("\n".join(bad) + "\n")
    line_no = next(k for k, (a, b) in enumerate(zip(lines, bad), start=1) if a != b)
    with pytest.raises(AlzmriError, match=message) as exc:
        read_groups_csv(tmp_path / "bad.csv", index)
    assert str(exc.value).startswith(f"{tmp_path / 'bad.csv'}:{line_no}: ") and "\n" not in str(exc.value)


def test_copy_of_a_copy_is_refused(truth, tmp_path):
    index, res, ab = truth
    lines = write_groups_csv(tmp_path / "g.csv", index, res).read_text().splitlines()
    copies = sorted(ab["copy_of"])
    a, b = copies[0], next(c for c in copies[1:] if ab["brain"][c] == ab["brain"][copies[0]])
    bad = _edit(lines, lambda p: p[0] == b, copy_of=a)
    (tmp_path / "bad.csv").write_text("\n".join(bad) + "\n")
    with pytest.raises(AlzmriError, match=r"is itself a copy; name the original it was made from"):
        read_groups_csv(tmp_path / "bad.csv", index)


def test_groups_cache_stores_and_restores_copy_of(truth, tmp_path, monkeypatch):
    import alzmri.data.groups.cache as cache

    import functools

    index, res, _ = truth
    calls = []

    @functools.wraps(cache.recover_groups)  # keeps its signature: the cache key lists its settings
    def fake_recover(index_, images=None, **kw):
        calls.append(1)
        return truth_result(index_, truth[2]["brain"], truth[2]["copy_of"], gap=0.01)

    monkeypatch.setattr(cache, "recover_groups", fake_recover)
    first = load_or_recover_groups(index, cache_dir=tmp_path)
    second = load_or_recover_groups(index, cache_dir=tmp_path)
    assert calls == [1] and first.params["cache"] == "miss" and second.params["cache"] == "hit"
    assert isinstance(second, GroupResult) and np.array_equal(second.copy_of, res.copy_of)
    assert second.separation_gap == pytest.approx(0.01) and not second.reliable
    assert cache.cached_groups(index, cache_dir=tmp_path).copy_of.tolist() == res.copy_of.tolist()
    assert cache.cached_groups(index, cache_dir=tmp_path, threshold=0.9) is None
