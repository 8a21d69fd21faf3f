"""The folds of a cross-validation by subject (make_fold_splits) on 17 known brains: every brain tested once, none split, seeded."""

import numpy as np
import pytest

from alzmri.config import load_train_config
from alzmri.data.discovery import discover
from alzmri.errors import AlzmriError
from alzmri.training.cv import make_fold_splits


@pytest.fixture(scope="module")
def folds(brains_176):
    cfg = load_train_config(data=brains_176, folds=3, seed=0, image_size=32)
    index = discover(brains_176)
    return index, make_fold_splits(cfg, index, 32)


def test_every_brain_is_tested_exactly_once_and_never_split(folds):
    index, f = folds
    assert len(f.splits) == 3 and len(index) == 113
    tested = np.zeros(len(index), int)
    for s in f.splits:
        assert s.shape == (len(index),) and set(s) == {"train", "val", "test"}
        tested += s == "test"
        # no brain in two splits of a fold
        for g in np.unique(f.groups):
            assert len(set(s[f.groups == g])) == 1, g
        assert len(set(index.labels[s == "train"])) >= 2
    assert (tested == 1).all()
    assert len(np.unique(f.groups)) == 17
    assert f.copy_of is None or not (f.copy_of >= 0).any()  # no augmented copies among these brains
    assert f.groups_source.startswith("recovered")


def test_folds_are_seeded(brains_176, folds):
    index, f = folds
    same = make_fold_splits(load_train_config(data=brains_176, folds=3, seed=0, image_size=32), index, 32)
    assert all(np.array_equal(a, b) for a, b in zip(f.splits, same.splits))
    other = make_fold_splits(load_train_config(data=brains_176, folds=3, seed=1, image_size=32), index, 32)
    assert not all(np.array_equal(a, b) for a, b in zip(f.splits, other.splits))


def test_more_folds_than_subjects_is_refused(brains_176, folds):
    index, _ = folds
    with pytest.raises(AlzmriError, match=r"--folds 18 is more than the 17 subjects"):
        make_fold_splits(load_train_config(data=brains_176, folds=18, seed=0, image_size=32), index, 32)
