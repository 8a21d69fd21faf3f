"""The balanced augmented set: built after splitting, from training images only."""

import numpy as np

from alzmri.data.augment import balanced_copies
from alzmri.data.cache import load_images
from alzmri.data.discovery import discover
from alzmri.data.splits import make_split


def test_balanced_copies_equalise_train_and_leave_val_test_alone(small_data):
    index = discover(small_data)
    images = load_images(index, 32).images
    labels = index.labels
    splits = make_split("stratified", labels, seed=0)
    # make the training classes unequal: drop most ModerateDemented and some MildDemented train images
    splits = splits.copy()
    splits[np.flatnonzero((labels == 3) & (splits == "train"))[4:]] = ""
    splits[np.flatnonzero((labels == 2) & (splits == "train"))[10:]] = ""
    before = images.copy()
    copies, copy_labels, src = balanced_copies(images, labels, splits, seed=5)
    # every training class now has as many images as the largest
    train_counts = np.bincount(np.concatenate([labels[splits == "train"], copy_labels]), minlength=4)
    assert len(set(train_counts.tolist())) == 1, train_counts
    assert len(copies) == len(copy_labels) == len(src) == int(train_counts.sum() - (splits == "train").sum())
    # copies come from training images of their own class only; nothing else is touched
    assert np.all(splits[src] == "train") and np.array_equal(labels[src], copy_labels)
    assert np.array_equal(images, before)
    assert copies.dtype == np.uint8 and copies.shape[1:] == images.shape[1:]
    # augmented: almost every copy differs from its source
    changed = (copies != images[src]).reshape(len(copies), -1).any(axis=1)
    assert changed.mean() > 0.9
    # deterministic with the seed, different with another seed
    again = balanced_copies(images, labels, splits, seed=5)
    assert np.array_equal(again[0], copies) and np.array_equal(again[2], src)
    assert not np.array_equal(balanced_copies(images, labels, splits, seed=6)[0], copies)


def test_nothing_to_balance():
    images = np.zeros((4, 8, 8), np.uint8)
    copies, lab, src = balanced_copies(images, np.array([0, 1, 0, 1]), np.array(["train"] * 4))
    assert copies.shape == (0, 8, 8) and len(lab) == len(src) == 0
