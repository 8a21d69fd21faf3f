import os
import shutil
import stat

import numpy as np
import pytest
from PIL import Image

from alzmri.data.cache import load_images
from alzmri.data.discovery import discover
from alzmri.data.images import UnreadableImageError, decode_image
from _helpers import copy_subset


def _first(d, cls="Mild_Demented"):
    return sorted((d / cls).iterdir())[0]


def test_decode_matches_pil_grayscale_resize(data_6400):
    f = _first(data_6400)
    arr = decode_image(f, 64)
    ref = np.asarray(Image.open(f).convert("L").resize((64, 64), Image.Resampling.BILINEAR))
    assert arr.dtype == np.uint8 and arr.shape == (64, 64)
    assert np.array_equal(arr, ref)
    assert decode_image(f, None).shape == (128, 128)


def test_truncated_empty_and_fake_jpeg_are_unreadable(tmp_path, data_6400):
    raw = _first(data_6400).read_bytes()
    (tmp_path / "trunc.jpg").write_bytes(raw[: len(raw) // 2])
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("not an image")
    with pytest.raises(UnreadableImageError, match="truncated"):
        decode_image(tmp_path / "trunc.jpg", 64)
    with pytest.raises(UnreadableImageError, match="empty file"):
        decode_image(tmp_path / "empty.jpg", 64)
    with pytest.raises(UnreadableImageError, match="not an image"):
        decode_image(tmp_path / "text.jpg", 64)


def test_16bit_alpha_and_cmyk_are_converted(tmp_path, data_6400):
    gray = np.asarray(Image.open(_first(data_6400)).convert("L"))
    Image.fromarray(gray.astype(np.uint16) * 256).save(tmp_path / "a16.png")
    Image.fromarray(np.dstack([gray, gray, gray, np.full_like(gray, 255)])).save(tmp_path / "rgba.png")
    Image.fromarray(gray).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    a16 = decode_image(tmp_path / "a16.png", None)
    # min..max rescale of the 16-bit copy reproduces the 8-bit slice up to rounding of the stretch
    g = gray.astype(float)
    expected = np.round((g - g.min()) / (g.max() - g.min()) * 255)
    assert np.abs(a16.astype(float) - expected).max() <= 1
    assert np.array_equal(decode_image(tmp_path / "rgba.png", None), gray)
    cmyk = decode_image(tmp_path / "cmyk.jpg", None)
    assert cmyk.shape == gray.shape and np.corrcoef(cmyk.ravel(), gray.ravel())[0, 1] > 0.95


def test_cache_hit_then_invalidated_by_a_changed_image(tmp_path, data_6400, _isolated_cache):
    d = copy_subset(data_6400, tmp_path / "d", 3)
    first = load_images(discover(d), 32)
    assert not first.hit and first.path.is_file() and first.images.shape == (12, 32, 32)
    second = load_images(discover(d), 32)
    assert second.hit and second.key == first.key
    assert np.array_equal(second.images, first.images)
    # another image size is another cache entry
    assert load_images(discover(d), 48).key != first.key
    # replace one image by another real slice: new key, fresh decode
    target = _first(d, "Non_Demented")
    shutil.copy(_first(d, "Mild_Demented"), target)
    third = load_images(discover(d), 32)
    assert not third.hit and third.key != first.key
    i = [r.path for r in discover(d).records].index(f"Non_Demented/{target.name}")
    assert not np.array_equal(third.images[i], first.images[i])
    assert np.array_equal(third.images[i], decode_image(target, 32))


def test_cache_file_follows_the_umask_and_leaves_no_temporary_file(tmp_path, data_6400):
    d = copy_subset(data_6400, tmp_path / "d", 2)
    old = os.umask(0o022)
    try:
        cached = load_images(discover(d), 24, cache_dir=tmp_path / "cache")
    finally:
        os.umask(old)
    assert not cached.hit and cached.path.parent == tmp_path / "cache" / "arrays"
    assert stat.S_IMODE(cached.path.stat().st_mode) == 0o644  # not mkstemp's 0600
    assert [p.name for p in cached.path.parent.iterdir()] == [cached.path.name]
    again = load_images(discover(d), 24, cache_dir=tmp_path / "cache")
    assert again.hit and np.array_equal(again.images, cached.images)


def test_unreadable_files_are_listed_not_silently_dropped(tmp_path, data_6400):
    d = copy_subset(data_6400, tmp_path / "d", 3)
    bad = _first(d, "Very_Mild_Demented")
    bad.write_bytes(bad.read_bytes()[:200])
    cached = load_images(discover(d), 32)
    assert cached.unreadable and cached.unreadable[0][0] == f"Very_Mild_Demented/{bad.name}"
    assert cached.readable.sum() == 11
