"""The "looks like an MRI slice" rule (alzmri.data.slice_check) on real slices and on pictures built here."""

import io

import numpy as np
import pytest
from PIL import Image

from alzmri.data.slice_check import DARK_LEVEL, MAX_CHROMA, check_image, check_slice_file


def _sample(root, step=50):
    files = sorted(p for p in root.rglob("*.jpg"))
    assert len(files) == 6400
    return files[::step]


def test_real_slices_of_both_sets_pass(data_6400, data_176):
    for f in _sample(data_6400) + _sample(data_176):
        c = check_slice_file(f)
        assert c.looks_like_mri, (f, c)
        assert c.chroma == 0.0 and c.dark_border > 0.99 and 0.4 < c.dark_fraction < 0.7


def test_each_criterion_fails_on_its_own(data_6400):
    g = np.asarray(Image.open(sorted((data_6400 / "Non_Demented").iterdir())[0]).convert("L"))
    # the slice saved as an RGB JPEG is still grayscale
    buf = io.BytesIO()
    Image.fromarray(g).convert("RGB").save(buf, "JPEG", quality=75)
    assert check_image(Image.open(buf)).looks_like_mri
    # tinted red: colour only
    tinted = np.dstack([np.clip(g.astype(int) + 60 * (g > DARK_LEVEL), 0, 255), g, g]).astype(np.uint8)
    c = check_image(Image.fromarray(tinted))
    assert not c.looks_like_mri and c.chroma > MAX_CHROMA and len(c.reasons) == 1 and c.reasons[0].startswith("colour image")
    # a bright frame around the slice: border only
    framed = g.copy()
    framed[:4], framed[-4:], framed[:, :4], framed[:, -4:] = 200, 200, 200, 200
    c = check_image(Image.fromarray(framed))
    assert not c.looks_like_mri and len(c.reasons) == 1 and c.reasons[0].startswith("no dark frame")
    # background lifted to grey: border and background share
    c = check_image(Image.fromarray(np.maximum(g, 80)))
    assert not c.looks_like_mri and [r.split(":")[0] for r in c.reasons] == ["no dark frame", "no dark background"]
    # a black frame
    c = check_image(Image.fromarray(np.zeros_like(g)))
    assert not c.looks_like_mri and c.reasons[-1].startswith("almost empty frame")
    # 16-bit copy of the slice: same verdict as the 8-bit one
    assert check_image(Image.fromarray(g.astype(np.uint16) * 257)).looks_like_mri


@pytest.mark.parametrize("name", ["astronaut", "chelsea", "coffee", "rocket", "camera", "moon"])
def test_photos_are_flagged(tmp_path, name):
    skdata = pytest.importorskip("skimage.data")
    path = tmp_path / f"{name}.jpg"
    Image.fromarray(getattr(skdata, name)()).save(path, quality=90)
    c = check_slice_file(path)
    assert not c.looks_like_mri and c.reasons
    assert c.warning("x.jpg").startswith("x.jpg does not look like a brain MRI slice (")
