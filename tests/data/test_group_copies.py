"""Augmented copies join their brain: every augmentation kind alone, and combined.

17 known brains of the 176x208 test folder (6-7 slices each at the same levels 26-32, the
hardest case for telling brains apart; see test_groups.py) plus copies planted with
:func:`alzmri.data.augmented_sets.augmented_copy`: two copies per augmentation kind on
its own (rotation up to 15 degrees, shift up to 15 %, zoom 0.8-1.25, perspective,
flips, blur, sharpening, brightness, contrast, gamma, JPEG), and twelve copies with
every geometric kind at once plus random others. Before copy detection, shifted and
zoomed copies stayed in groups of their own.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from alzmri.data.augmented_sets import AUGMENTATION_KINDS, augmented_copy
from alzmri.data.discovery import discover
from alzmri.data.groups import recover_groups

GEOMETRIC = ("rotate", "translate", "zoom", "perspective")


@pytest.fixture(scope="module")
def planted(brains_176, tmp_path_factory):
    import shutil

    root = tmp_path_factory.mktemp("copies") / "data"
    shutil.copytree(brains_176, root)
    originals = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.jpg"))
    rng = np.random.default_rng(7)
    copies: dict[str, tuple[str, list[str]]] = {}
    plan = [[k] for k in AUGMENTATION_KINDS for _ in range(2)]
    plan += [list(GEOMETRIC) + [k for k in AUGMENTATION_KINDS[4:] if rng.random() < 0.5] for _ in range(12)]
    for n, kinds in enumerate(plan):
        src = originals[int(rng.integers(len(originals)))]
        with Image.open(root / src) as im:
            aug, _ = augmented_copy(im, kinds, rng)
        rel = f"{Path(src).parent.as_posix()}/aug_{n:03d}.jpg"
        aug.save(root / rel, "JPEG", quality=95)
        copies[rel] = (src, kinds)
    index = discover(root)
    return index, recover_groups(index), copies, set(originals)


def test_every_copy_joins_its_source_and_brains_do_not_merge(planted, brains_176):
    index, result, copies, _ = planted
    pos = {p: i for i, p in enumerate(index.paths)}
    lost = [(c, kinds) for c, (s, kinds) in copies.items() if result.group[pos[c]] != result.group[pos[s]]]
    assert lost == []
    # 17 brains, none merged: the groups are exactly the brains (copies inside)
    assert result.n_groups == 17
    brains_without = recover_groups(discover(brains_176))
    base = {p: g for p, g in zip(brains_without.paths, brains_without.group)}
    for g in range(result.n_groups):
        members = [index.paths[i] for i in np.flatnonzero(result.group == g) if index.paths[i] in base]
        assert len({base[p] for p in members}) == 1


def test_copies_are_marked_and_point_into_their_brain(planted):
    index, result, copies, originals = planted
    pos = {p: i for i, p in enumerate(index.paths)}
    # a copy that was rotated, shifted, zoomed and distorted at once is always the copy;
    # of all planted copies, most are marked (a copy moved by a fraction of a pixel chains
    # like an adjacent slice and can stay unmarked, in its brain all the same)
    combined = [c for c, (_, kinds) in copies.items() if set(GEOMETRIC) <= set(kinds)]
    assert len(combined) == 12 and all(result.is_copy[pos[c]] for c in combined)
    marked = [c for c in copies if result.is_copy[pos[c]] or result.is_copy[pos[copies[c][0]]]]
    assert len(marked) >= 0.85 * len(copies), (len(marked), len(copies))
    # every copy's original is in its group, and is not itself a copy
    idx = np.flatnonzero(result.is_copy)
    assert np.array_equal(result.group[idx], result.group[result.copy_of[idx]])
    assert not result.is_copy[result.copy_of[idx]].any()
    # at most one image per planted pair is marked, so copies + marked originals stay within the planted count
    assert result.summary()["n_copies"] <= len(copies)
    wrong_originals = [p for p in originals if result.is_copy[pos[p]] and p not in {s for s, _ in copies.values()}]
    assert wrong_originals == []


def test_without_copy_detection_shifted_copies_are_lost(planted):
    index, _, copies, _ = planted
    old = recover_groups(index, find_copies=False)
    pos = {p: i for i, p in enumerate(index.paths)}
    lost = [c for c, (s, _) in copies.items() if old.group[pos[c]] != old.group[pos[s]]]
    # the test above is not trivially met: image-frame similarity alone loses the moved copies
    assert len(lost) >= 10, lost


def test_fragments_of_a_subsampled_brain_stay_originals(small_data):
    # every second slice of the first files of each class: brains fall apart into small
    # groups of distinct slices; any that join a brain join it as originals, not as copies
    index = discover(small_data)
    result = recover_groups(index)
    assert result.params["copies"]["attached"] >= 1  # the case is exercised
    assert result.summary()["n_copies"] == 0
    assert result.params["copies"]["attached_as_copies"] == 0
