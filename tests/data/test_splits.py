import numpy as np
import pytest

from alzmri.data.discovery import discover
from alzmri.data.folds import subject_folds
from alzmri.data.slice_splits import SPLIT_NAMES, stratified_split
from alzmri.data.split_checks import split_warnings
from alzmri.data.splits import make_split
from alzmri.data.subject_splits import subject_split
from alzmri.errors import AlzmriError


def test_stratified_split_fractions_and_class_balance(data_6400):
    labels = discover(data_6400).labels
    s = stratified_split(labels, seed=0)
    counts = {k: int((s == k).sum()) for k in ("train", "val", "test")}
    assert counts == {"train": 4480, "val": 960, "test": 960}
    for split, frac in (("train", 0.7), ("val", 0.15), ("test", 0.15)):
        for c, n in enumerate(np.bincount(labels)):
            got = int(((s == split) & (labels == c)).sum())
            assert abs(got - frac * n) <= 1.5, (split, c, got, frac * n)


def test_split_is_reproducible_and_seed_dependent():
    labels = np.repeat(np.arange(4), [50, 30, 15, 5])
    a = make_split("stratified", labels, seed=7)
    assert np.array_equal(a, make_split("stratified", labels, seed=7))
    assert not np.array_equal(a, make_split("stratified", labels, seed=8))
    b = make_split("image", labels, seed=7)
    assert set(np.unique(b)) == {"train", "val", "test"} and (b == "test").sum() == 15


def test_release_test_folder_stays_test(data_176):
    index = discover(data_176)
    s = make_split("stratified", index.labels, seed=1, source_split=[r.source_split for r in index.records])
    src = np.array([r.source_split for r in index.records])
    assert np.all(s[src == "test"] == "test")
    assert set(s[src == "train"]) == {"train", "val"}
    assert abs((s == "val").sum() / (src == "train").sum() - 0.15 / 0.85) < 0.01


def test_bad_strategy_and_fractions():
    with pytest.raises(AlzmriError, match="unknown split strategy 'subjectt'"):
        make_split("subjectt", [0, 1])
    with pytest.raises(AlzmriError, match="summing to 1"):
        make_split("stratified", [0, 1], fractions=(0.5, 0.5, 0.5))


# --------------------------------------------------------------------------------------
# subject (group-aware) splits


def _groups_per_split(splits, groups):
    return {s: set(groups[splits == s].tolist()) for s in SPLIT_NAMES}


def _assert_no_group_crosses(splits, groups):
    per = _groups_per_split(splits, groups)
    assert not (per["train"] & per["val"]) and not (per["train"] & per["test"]) and not (per["val"] & per["test"])


@pytest.mark.parametrize("seed", [0, 1, 42])
def test_subject_split_on_real_6400_keeps_every_brain_in_one_split(groups_6400, seed):
    index, res = groups_6400
    labels, groups = index.labels, res.group
    assert res.n_groups == 200
    s = make_split("subject", labels, seed=seed, groups=groups)
    _assert_no_group_crosses(s, groups)
    # fractions honoured approximately (whole brains of 32 slices)
    for name, frac in zip(SPLIT_NAMES, (0.7, 0.15, 0.15)):
        assert abs((s == name).mean() - frac) < 0.03, (name, (s == name).mean())
    # stratified by class: each class's share of a split within 5 points of its overall
    # share, for the classes with enough brains (100, 70, 28); ModerateDemented has 2
    overall = np.bincount(labels, minlength=4) / len(labels)
    for name in SPLIT_NAMES:
        share = np.bincount(labels[s == name], minlength=4) / (s == name).sum()
        assert np.all(np.abs(share[:3] - overall[:3]) < 0.05), (name, share, overall)
    # the two ModerateDemented brains: one in train, one in test
    mod = s[labels == 3]
    assert set(mod) == {"train", "test"}
    warns = split_warnings(labels, s, groups=groups, strategy="subject")
    assert warns == ["ModerateDemented has 2 subjects: it cannot appear in all 3 splits (train, val, test); it is in train, test only"]


def test_subject_split_is_reproducible_and_seed_dependent(groups_6400):
    index, res = groups_6400
    a = subject_split(index.labels, seed=3, groups=res.group)
    assert np.array_equal(a, subject_split(index.labels, seed=3, groups=res.group))
    assert not np.array_equal(a, subject_split(index.labels, seed=4, groups=res.group))
    # group labels are any values: string ids give the same split
    named = np.array([f"brain-{g:03d}" for g in res.group])
    assert np.array_equal(a, subject_split(index.labels, seed=3, groups=named))


def test_slice_split_on_real_6400_shares_every_brain(groups_6400):
    index, res = groups_6400
    s = make_split("stratified", index.labels, seed=0, groups=res.group)
    warns = split_warnings(index.labels, s, groups=res.group, strategy="stratified")
    assert len(warns) == 1 and "puts slices of 200 of 200 subjects (scan groups) in more than one split" in warns[0]
    assert "--split-strategy subject" in warns[0]


def test_subject_folds_partition_the_brains(groups_6400):
    index, res = groups_6400
    labels, groups = index.labels, res.group
    folds = subject_folds(labels, groups, 5, seed=0)
    assert len(folds) == 5
    tested = np.zeros(len(labels), dtype=int)
    test_groups = []
    for f in folds:
        _assert_no_group_crosses(f, groups)
        assert set(np.unique(f)) == {"train", "val", "test"}
        assert abs((f == "test").mean() - 0.2) < 0.03 and abs((f == "val").mean() - 0.15) < 0.03
        assert set(labels[f == "train"]) == {0, 1, 2, 3}  # every class is trained on in every fold
        tested += f == "test"
        test_groups.append(set(groups[f == "test"].tolist()))
    assert np.all(tested == 1)  # every image (so every brain) is tested exactly once
    assert sum(len(g) for g in test_groups) == 200 and set().union(*test_groups) == set(range(200))
    assert [np.array_equal(a, b) for a, b in zip(folds, subject_folds(labels, groups, 5, seed=0))] == [True] * 5


def test_class_with_two_subjects_gets_a_warning():
    # 10 brains of class 0, 6 of class 1, 2 of class 3; 4 slices each
    labels = np.repeat([0] * 10 + [1] * 6 + [3] * 2, 4)
    groups = np.repeat(np.arange(18), 4)
    s = subject_split(labels, seed=0, groups=groups)
    _assert_no_group_crosses(s, groups)
    assert set(s[labels == 3]) == {"train", "test"}
    warns = split_warnings(labels, s, groups=groups, strategy="subject")
    assert "ModerateDemented has 2 subjects: it cannot appear in all 3 splits (train, val, test)" in warns[0]
    # one subject: train only
    labels1 = np.repeat([0] * 10 + [1] * 6 + [2], 4)
    groups1 = np.repeat(np.arange(17), 4)
    s1 = subject_split(labels1, seed=0, groups=groups1)
    assert set(s1[labels1 == 2]) == {"train"}
    assert any(w.startswith("MildDemented has 1 subject: it cannot appear") for w in split_warnings(labels1, s1, groups=groups1, strategy="subject"))
    # no groups known: nothing to say
    assert split_warnings(labels, s) == []


def test_subject_split_on_known_brains(brains_176):
    from alzmri.data.groups import recover_groups

    index = discover(brains_176)
    res = recover_groups(index)
    assert res.n_groups == 17
    s = make_split("subject", index.labels, seed=0, groups=res.group)
    _assert_no_group_crosses(s, res.group)
    assert all((s == name).any() for name in SPLIT_NAMES)


def test_release_split_folders_with_subject_strategy():
    labels = np.repeat([0, 0, 0, 0, 1, 1, 1, 1], 8)
    groups = np.repeat(np.arange(8), 8)
    # every brain has its top slices in the release's test folder: the release split leaks
    leaky = np.tile(["train"] * 6 + ["test"] * 2, 8)
    s = make_split("subject", labels, seed=0, source_split=leaky, groups=groups)
    _assert_no_group_crosses(s, groups)
    warns = split_warnings(labels, s, groups=groups, strategy="subject", source_split=leaky)
    assert warns[0].startswith("the release's test/ folder shares 8 of its 8 subjects with its train/ folder")
    # a release split by brain is kept
    clean = np.where(np.isin(groups, [3, 7]), "test", "train")
    s2 = make_split("subject", labels, seed=0, source_split=clean, groups=groups)
    assert np.array_equal(s2 == "test", clean == "test")
    _assert_no_group_crosses(s2, groups)
    assert not any("release" in w for w in split_warnings(labels, s2, groups=groups, strategy="subject", source_split=clean))
    # the slice strategies keep the release's test folder as before
    s3 = make_split("stratified", labels, seed=0, source_split=leaky, groups=groups)
    assert np.array_equal(s3 == "test", leaky == "test")


def test_subject_split_bad_input():
    with pytest.raises(AlzmriError, match="split strategy 'subject' needs subject groups"):
        make_split("subject", [0, 1, 0, 1])
    with pytest.raises(AlzmriError, match="one subject group per image"):
        make_split("subject", [0, 1, 0, 1], groups=[0, 1])
    with pytest.raises(AlzmriError, match="--folds 5 is more than the 4 subjects"):
        subject_folds([0, 1, 0, 1], [0, 1, 2, 3], 5)
    with pytest.raises(AlzmriError, match="at least 2"):
        subject_folds([0, 1, 0, 1], [0, 1, 2, 3], 1)


# --------------------------------------------------------------------------------------
# augmented copies: a brain with all its copies is one unit; validation and test hold
# originals only by default (real slices of 17 known brains + 40 planted copies)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_subject_split_leaves_copies_of_val_and_test_brains_out(aug, seed):
    from alzmri.data.eval_copies import leave_out_eval_copies, summarize_copies

    index, res, ab, pairs = aug
    s = make_split("subject", index.labels, seed=seed, groups=res.group)
    final = leave_out_eval_copies(s, res.copy_of)
    # the brain is the unit: every copy was put in its original's split
    assert all(s[c] == s[o] for c, o in pairs)
    # validation and test hold originals only; copies of training brains stay in training
    assert not any(final[c] in ("val", "test") for c, _ in pairs)
    assert all(final[c] == ("train" if s[o] == "train" else "") for c, o in pairs)
    n_eval = sum(s[o] in ("val", "test") for _, o in pairs)
    assert n_eval > 0, "this seed puts no copied brain in val/test; the test would prove nothing"
    summary = summarize_copies(final, res.copy_of)
    assert (summary.n_copies, summary.left_out, summary.train, summary.val, summary.test) == (40, n_eval, 40 - n_eval, 0, 0)
    assert summary.warning() is None and f"{n_eval} were left out of validation and test" in summary.note()
    # originals are never moved
    originals = res.copy_of < 0
    assert np.array_equal(final[originals], s[originals])
    # keep_eval_copies keeps them, with the pseudo-replicate warning
    kept = leave_out_eval_copies(s, res.copy_of, keep=True)
    assert np.array_equal(kept, s)
    ks = summarize_copies(kept, res.copy_of)
    assert ks.left_out == 0 and ks.val + ks.test == n_eval
    assert ks.warning().startswith(f"validation and test hold {n_eval} augmented copies")


@pytest.mark.parametrize("strategy", ["image", "stratified"])
def test_slice_split_warns_with_the_copies_and_brains_that_cross(aug, strategy):
    from alzmri.data.eval_copies import leave_out_eval_copies

    index, res, ab, pairs = aug
    for keep in (False, True):
        s = leave_out_eval_copies(make_split(strategy, index.labels, seed=4), res.copy_of, keep=keep)
        crossing = [(c, o) for c, o in pairs if s[c] and s[o] and s[c] != s[o]]
        brains = {ab["brain"][index.paths[c]] for c, _ in crossing}
        assert crossing and len(brains) > 1
        warns = split_warnings(index.labels, s, groups=res.group, strategy=strategy, copy_of=res.copy_of)
        line = f"split strategy '{strategy}' puts {len(crossing)} augmented copies of {len(brains)} brains (scan groups) in a different split"
        assert sum(w.startswith(line) for w in warns) == 1, warns
        assert any("subjects (scan groups) in more than one split" in w for w in warns)
    # a split by subject never separates a copy from its original: no such warning
    s = leave_out_eval_copies(make_split("subject", index.labels, seed=4, groups=res.group), res.copy_of)
    assert not any("augmented copies" in w for w in split_warnings(index.labels, s, groups=res.group, strategy="subject", copy_of=res.copy_of))


def test_subject_folds_keep_every_copy_with_its_brain(aug):
    index, res, _, pairs = aug
    folds = subject_folds(index.labels, res.group, 3, seed=0)
    assert all(f[c] == f[o] for f in folds for c, o in pairs)


def test_known_subject_ids_without_copy_columns_still_find_the_copies(aug, tmp_path):
    # a user's own IDs file (path,group only), as the unreliable-groups warning advises:
    # the copies are found in the images and kept within the file's subjects
    import csv

    from alzmri.data.subjects import resolve_subjects

    index, res, ab, pairs = aug
    ids = tmp_path / "ids.csv"
    with ids.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "group"])
        for p in index.paths:
            w.writerow([p, f"subject-{ab['brain'][p]}"])
    subj = resolve_subjects(index, groups_file=ids)
    assert "copies found in the images" in subj.source
    found = subj.copy_of
    # most planted copies are found, every found copy's original is in its subject, and
    # default splits then leave them out of validation and test
    assert sum(found[c] >= 0 or found[o] == c for c, o in pairs) >= 0.85 * len(pairs)
    assert all(subj.group[i] == subj.group[found[i]] for i in np.flatnonzero(found >= 0))
