import os
import shutil

import numpy as np
import pytest

from alzmri.data.classes import CLASS_NAMES
from alzmri.data.discovery import discover
from alzmri.errors import AlzmriError
from _helpers import copy_subset


def test_class_folders_layout_of_the_6400_set(data_6400):
    index = discover(data_6400)
    assert index.layout == "class_folders"
    assert index.class_counts() == {"NonDemented": 3200, "VeryMildDemented": 2240, "MildDemented": 896, "ModerateDemented": 64}
    assert index.class_folders == {
        "Non_Demented": "NonDemented",
        "Very_Mild_Demented": "VeryMildDemented",
        "Mild_Demented": "MildDemented",
        "Moderate_Demented": "ModerateDemented",
    }
    # every record's label agrees with its folder
    folder_of = {"Non_Demented": 0, "Very_Mild_Demented": 1, "Mild_Demented": 2, "Moderate_Demented": 3}
    assert all(folder_of[r.path.split("/")[0]] == r.label for r in index.records)
    assert np.all(np.diff(index.labels) >= 0)


def test_split_folders_layout_of_the_176x208_set(data_176):
    index = discover(data_176)
    assert index.layout == "split_folders"
    assert len(index) == 6400
    test = [r for r in index.records if r.source_split == "test"]
    train = [r for r in index.records if r.source_split == "train"]
    assert len(test) == 1279 and len(train) == 5121
    assert sum(r.label == 3 for r in test) == 12  # ModerateDemented in test/
    assert all(r.path.startswith(("train/", "test/")) for r in index.records)


def test_class_order_does_not_depend_on_folder_names_or_listing(tmp_path, data_6400):
    # the same images under other spellings, created in reverse order
    rename = {"Non_Demented": "Non Demented", "Very_Mild_Demented": "Very mild Dementia", "Mild_Demented": "Mild Dementia", "Moderate_Demented": "Moderate Dementia"}
    a = copy_subset(data_6400, tmp_path / "a", 3)
    b = tmp_path / "b"
    for src, dst in reversed(list(rename.items())):
        shutil.copytree(a / src, b / dst)
    ia, ib = discover(a), discover(b)
    assert [r.label for r in ia.records] == [r.label for r in ib.records]
    assert [r.path.split("/")[1] for r in ia.records] == [r.path.split("/")[1] for r in ib.records]
    assert set(ib.class_folders.values()) == set(CLASS_NAMES)


def test_wrapper_folder_is_descended(tmp_path, data_6400):
    copy_subset(data_6400, tmp_path / "Alzheimer_s Dataset", 2)
    index = discover(tmp_path)
    assert len(index) == 8 and index.records[0].path.startswith("Alzheimer_s Dataset/")


def test_unknown_class_folder_lists_the_names(tmp_path, data_6400):
    d = copy_subset(data_6400, tmp_path / "d", 2)
    (d / "Severe").mkdir()
    shutil.copy(next((d / "Mild_Demented").iterdir()), d / "Severe" / "x.jpg")
    with pytest.raises(AlzmriError, match=r"unknown class folder\(s\) 'Severe'"):
        discover(d)


def test_empty_class_folder_is_an_error(tmp_path, data_6400):
    d = copy_subset(data_6400, tmp_path / "d", 2)
    for f in (d / "Moderate_Demented").iterdir():
        f.unlink()
    with pytest.raises(AlzmriError, match="Moderate_Demented: class folder holds no images"):
        discover(d)


def test_non_image_file_is_an_error_but_hidden_files_are_ignored(tmp_path, data_6400):
    d = copy_subset(data_6400, tmp_path / "d", 2)
    (d / "Mild_Demented" / ".DS_Store").write_bytes(b"junk")
    (d / "Mild_Demented" / "Thumbs.db").write_bytes(b"junk")
    assert len(discover(d)) == 8
    (d / "Mild_Demented" / "notes.txt").write_text("hello")
    with pytest.raises(AlzmriError, match=r"non-image file\(s\) in class folder 'Mild_Demented' \(Mild_Demented/notes.txt\)"):
        discover(d)


def test_missing_path_and_file_path(tmp_path):
    with pytest.raises(AlzmriError, match="data folder does not exist"):
        discover(tmp_path / "nope")
    f = tmp_path / "f.jpg"
    f.write_bytes(b"x")
    with pytest.raises(AlzmriError, match="is a file, not a data folder"):
        discover(f)


def test_symlink_loop_terminates(tmp_path, data_6400):
    d = copy_subset(data_6400, tmp_path / "d", 2)
    os.symlink(d / "Mild_Demented", d / "Mild_Demented" / "loop")
    index = discover(d)
    assert index.class_counts()["MildDemented"] == 2


def test_content_hash_changes_with_one_byte(tmp_path, data_6400):
    d = copy_subset(data_6400, tmp_path / "d", 2)
    h1 = discover(d).content_hash()
    assert discover(d).content_hash() == h1
    f = sorted((d / "Non_Demented").iterdir())[0]
    data = bytearray(f.read_bytes())
    data[-3] ^= 0xFF
    f.write_bytes(bytes(data))
    assert discover(d).content_hash() != h1


def test_a_lone_unknown_folder_is_named_in_the_error(tmp_path, data_6400):
    src = sorted((data_6400 / "Mild_Demented").glob("*.jpg"))[0]
    (tmp_path / "wrapper" / "Foo").mkdir(parents=True)
    shutil.copy(src, tmp_path / "wrapper" / "Foo" / "a.jpg")
    with pytest.raises(AlzmriError, match=r"no class folders found \(the only folder, 'wrapper/Foo', is not a class name\)"):
        discover(tmp_path)
