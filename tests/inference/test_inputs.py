"""Reading what a user predicts: image files, one brain's slices (folder, files, volume), and the MRI-slice check."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from alzmri.data.images import decode_image
from alzmri.errors import AlzmriError
from alzmri.inference.inputs import input_check, load_image_files, natural_key, read_brain_input


@pytest.fixture(scope="module")
def slices(small_data):
    """Three real slices of one class folder."""
    return sorted((small_data / "Mild_Demented").iterdir())[:3]


def test_image_files_are_decoded_as_training_decodes_them(slices):
    images = load_image_files(slices, 32)
    assert images.shape == (3, 32, 32) and images.dtype == np.uint8
    for img, f in zip(images, slices):
        np.testing.assert_array_equal(img, decode_image(f, 32))
    empty = load_image_files([], 24)
    assert empty.shape == (0, 24, 24) and empty.dtype == np.uint8


def test_missing_or_unreadable_image_file_is_named(tmp_path, slices):
    with pytest.raises(AlzmriError, match=r"nowhere.jpg: image file not found"):
        load_image_files([slices[0], tmp_path / "nowhere.jpg"], 32)
    fake = tmp_path / "fake.jpg"
    fake.write_text("a text file renamed .jpg")
    with pytest.raises(AlzmriError, match=r"fake.jpg: .*; replace it with a readable JPEG or PNG slice, or pass a NIfTI or DICOM volume") as exc:
        load_image_files([fake], 32)
    assert "\n" not in str(exc.value)


def test_natural_key_compares_digit_runs_as_numbers():
    names = ["slice_10.jpg", "Slice_2.jpg", "slice_1.jpg", "slice_1b.jpg", "a.jpg"]
    assert sorted(names, key=natural_key) == ["a.jpg", "slice_1.jpg", "slice_1b.jpg", "Slice_2.jpg", "slice_10.jpg"]


def test_a_folder_is_one_brain_in_natural_order(tmp_path, slices):
    folder = tmp_path / "brain"
    folder.mkdir()
    for k, f in zip((10, 2, 1), slices):
        shutil.copy2(f, folder / f"slice_{k}.jpg")
    (folder / "slice_3.jpg").write_text("not an image")
    (folder / "notes.txt").write_text("not an image file: ignored")
    (folder / ".hidden.jpg").write_text("hidden: ignored")
    b = read_brain_input([folder], 32)
    assert b.source == "folder" and b.inputs == [str(folder)] and b.volume is None
    assert b.names == ["slice_1.jpg", "slice_2.jpg", "slice_10.jpg"]
    assert b.images.shape == (3, 32, 32) and b.images.dtype == np.uint8
    np.testing.assert_array_equal(b.images[0], decode_image(slices[2], 32))  # slice_1 is the third file copied
    assert len(b.skipped) == 1 and b.skipped[0].startswith("slice_3.jpg: ")
    # the same slices given as files keep the order given; one file is a brain of one slice
    files = read_brain_input([folder / "slice_10.jpg", folder / "slice_1.jpg"], 32)
    assert files.source == "files" and files.names == ["slice_10.jpg", "slice_1.jpg"]
    one = read_brain_input([folder / "slice_2.jpg"], 32)
    assert one.source == "file" and one.images.shape == (1, 32, 32)


def test_a_nifti_volume_gives_its_central_slices(tmp_path):
    nib = pytest.importorskip("nibabel")
    vol = np.zeros((40, 48, 30), dtype=np.uint8)
    zz, yy, xx = np.meshgrid(np.arange(40), np.arange(48), np.arange(30), indexing="ij")
    vol[((zz - 20) / 15) ** 2 + ((yy - 24) / 18) ** 2 + ((xx - 15) / 12) ** 2 <= 1] = 200  # an ellipsoid "brain"
    path = tmp_path / "brain.nii.gz"
    nib.save(nib.Nifti1Image(vol, np.eye(4)), path)
    b = read_brain_input([path], 32, n_central=8)
    first, stop = b.volume["central_slices"]
    assert b.source == "volume" and b.volume["n_slices"] == 30 and stop - first == 8
    assert b.names == [f"slice {k}" for k in range(first, stop)] and b.images.shape == (8, 32, 32)
    assert b.images.max() > 0  # brain, not background


@pytest.mark.parametrize(
    "case, message",
    [
        ("nothing", r"^no input: pass one folder"),
        ("missing", r"nowhere: not found; pass an existing folder"),
        ("folder among files", r"brain: a folder or volume among 2 inputs of one brain"),
        ("empty folder", r"empty: no slice images \(.jpg, .png, ...\) and no DICOM files in this folder \(it holds nothing\)"),
        ("text folder", r"texts: no slice images .* \(it holds 1 other files\)"),
        ("unreadable", r"bad: no readable slice among 1 image file\(s\) \(first: x.jpg: "),
    ],
)
def test_bad_brain_input_is_one_line(case, message, tmp_path, slices):
    folder = tmp_path / "brain"
    folder.mkdir()
    shutil.copy2(slices[0], folder / "s.jpg")
    for name in ("empty", "texts", "bad"):
        (tmp_path / name).mkdir()
    (tmp_path / "texts" / "notes.txt").write_text("notes")
    (tmp_path / "bad" / "x.jpg").write_text("not an image")
    paths = {"nothing": [], "missing": [tmp_path / "nowhere"], "folder among files": [folder / "s.jpg", folder],
             "empty folder": [tmp_path / "empty"], "text folder": [tmp_path / "texts"], "unreadable": [tmp_path / "bad"]}[case]
    with pytest.raises(AlzmriError, match=message) as exc:
        read_brain_input(paths, 32)
    assert "\n" not in str(exc.value)


def test_input_check_flags_a_colour_photo_not_a_slice(tmp_path, slices):
    from PIL import Image

    ok = input_check(slices[0], {"predicted_class": "MildDemented", "confidence": 0.9})
    assert ok["looks_like_mri"] is True and "warning" not in ok and ok["input_check"]["reasons"] == []
    photo = tmp_path / "photo.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), "RGB").save(photo)
    bad = input_check(photo, {"predicted_class": "NonDemented", "confidence": 0.876})
    assert bad["looks_like_mri"] is False and bad["input_check"]["chroma"] > 0.02
    assert bad["warning"].startswith(f"{photo} does not look like a brain MRI slice (")
    assert bad["warning"].endswith("its prediction (NonDemented, probability 0.88) is not meaningful")
