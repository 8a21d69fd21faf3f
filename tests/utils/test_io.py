"""Atomic writes and the folder swap of alzmri.utils.io."""

import os
import stat

import pytest

from alzmri.utils.io import atomic_write_bytes, replace_dir


def _tree(folder):
    return {p.relative_to(folder).as_posix(): p.read_text() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_replace_dir_swaps_in_the_new_folder_and_removes_the_old(tmp_path):
    dest = tmp_path / "ds"
    (dest / "a").mkdir(parents=True)
    (dest / "a" / "old.txt").write_text("old")
    new = tmp_path / ".ds.tmp-1"
    (new / "b").mkdir(parents=True)
    (new / "b" / "new.txt").write_text("new")
    assert replace_dir(new, dest) == dest
    assert _tree(dest) == {"b/new.txt": "new"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]  # neither the source nor the old copy is left


def test_replace_dir_into_an_absent_destination(tmp_path):
    new = tmp_path / "new"
    new.mkdir()
    (new / "x.txt").write_text("x")
    assert replace_dir(new, tmp_path / "dest") == tmp_path / "dest"
    assert _tree(tmp_path / "dest") == {"x.txt": "x"} and not new.exists()


def test_replace_dir_puts_the_old_folder_back_when_the_move_fails(tmp_path):
    dest = tmp_path / "ds"
    dest.mkdir()
    (dest / "keep.txt").write_text("keep me")
    (tmp_path / "sub").mkdir()
    with pytest.raises(FileNotFoundError):
        replace_dir(tmp_path / "missing", dest)  # the second rename fails
    assert _tree(dest) == {"keep.txt": "keep me"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds", "sub"]


def test_atomic_write_follows_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        path = atomic_write_bytes(tmp_path / "out" / "f.bin", b"abc")
    finally:
        os.umask(old)
    assert path.read_bytes() == b"abc" and stat.S_IMODE(path.stat().st_mode) == 0o640
    assert os.listdir(path.parent) == ["f.bin"]
