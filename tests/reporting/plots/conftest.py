"""What every plot test checks of a written figure: a valid, complete PNG and no temporary file."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image


def _assert_png(path: Path) -> None:
    assert path.is_file()
    with Image.open(path) as img:
        assert img.format == "PNG"
        img.verify()
    with Image.open(path) as img:
        assert img.width > 300 and img.height > 300
    assert path.stat().st_size > 5_000
    leftovers = [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


@pytest.fixture
def assert_png():
    """``assert_png(path)``: a readable PNG over 300 x 300 pixels and 5 kB, no ``.tmp`` beside it."""
    return _assert_png
