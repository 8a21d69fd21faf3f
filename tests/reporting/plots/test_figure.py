"""save_figure, the one PNG writer: atomic, mode from the umask, an earlier file kept on failure."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

import alzmri.utils.io
from alzmri.data.classes import CLASS_NAMES
from alzmri.reporting.plots import confusion_matrix_figure, save_figure
from alzmri.reporting.plots._figure import DEFAULT_DPI, _new_figure

CM = np.array([[412, 25, 3, 0], [30, 280, 10, 0], [2, 20, 120, 1], [0, 0, 2, 0]])


def test_save_figure_replaces_existing_file(tmp_path, assert_png):
    target = tmp_path / "cm.png"
    target.write_bytes(b"old")
    out = save_figure(confusion_matrix_figure(CM, CLASS_NAMES), target)
    assert out == target
    assert_png(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cm.png"]


def test_save_figure_size_follows_dpi_and_folder_is_created(tmp_path):
    fig = _new_figure((5.0, 4.0))
    fig.add_subplot().plot([0, 1], [0, 1])
    with Image.open(save_figure(fig, tmp_path / "a" / "b" / "default.png")) as img:
        assert img.size == (5 * DEFAULT_DPI, 4 * DEFAULT_DPI) == (600, 480)
    with Image.open(save_figure(fig, tmp_path / "low.png", dpi=50)) as img:
        assert img.size == (250, 200)


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_written_png_mode_follows_the_umask(tmp_path, umask, mode):
    fig = confusion_matrix_figure(CM, CLASS_NAMES)
    old = os.umask(umask)
    try:
        plain = tmp_path / "plain.txt"
        plain.write_text("x")
        out = save_figure(fig, tmp_path / "cm.png")
    finally:
        os.umask(old)
    assert (out.stat().st_mode & 0o777) == (plain.stat().st_mode & 0o777) == mode


def test_failed_render_leaves_an_earlier_file_intact(tmp_path, monkeypatch):
    target = tmp_path / "cm.png"
    target.write_bytes(b"earlier figure")
    fig = confusion_matrix_figure(CM, CLASS_NAMES)

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(fig, "savefig", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        save_figure(fig, target)
    assert target.read_bytes() == b"earlier figure"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cm.png"]


def test_failed_write_leaves_an_earlier_file_intact_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "cm.png"
    target.write_bytes(b"earlier figure")
    fig = confusion_matrix_figure(CM, CLASS_NAMES)
    seen = []

    def fail_rename(src, dst):
        seen.append((os.path.basename(src), os.path.getsize(src), dst))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(alzmri.utils.io.os, "replace", fail_rename)
    with pytest.raises(OSError, match="No space left"):
        save_figure(fig, target)
    monkeypatch.undo()
    # the PNG was written in full beside the target, then the rename failed
    assert len(seen) == 1 and seen[0][0].startswith(".cm.png.") and seen[0][1] > 5_000 and seen[0][2] == target
    assert target.read_bytes() == b"earlier figure"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cm.png"]
