"""Leakage audit of a train/val/test split: duplicates, shared scans and a trivial baseline.

:func:`audit_split` looks for the ways a slice-level split lets a model see its test
images during training:

* **exact duplicates**: files with the same SHA-256 in different splits;
* **near-duplicates**: different files whose images match after mirroring, small
  rotations, blur or re-compression (fine similarity >= ``near_threshold``, the same
  measure as :func:`alzmri.data.groups.recover_groups`);
* **shared groups**: a recovered scan (group) with slices in more than one split;
* **cross-split copies**: val/test images with an image in an earlier split of pose
  similarity >= ``copy_threshold`` (invariant to rotation, flips, shift and zoom; see
  :mod:`alzmri.data.audit_neighbours`), and augmented copies whose original (``copy_of`` of a
  :class:`~alzmri.data.groups.GroupResult`) sits in another split;
* **two trivial baselines**: 1-nearest-neighbour classifiers trained on the train split,
  one on 32 x 32 raw pixels, one by pose-invariant similarity. They have no notion of
  disease; when one scores far above chance on the test split, the test images have
  near-copies (or neighbouring slices) in train.

:func:`alzmri.data.audit_format.format_audit` renders the report for the terminal; the
duplicate and shared-scan checks are in :mod:`alzmri.data.audit_duplicates`.
"""

from __future__ import annotations

import os

import numpy as np

from alzmri.data.audit_duplicates import exact_duplicates, near_duplicates, shared_groups
from alzmri.data.audit_neighbours import (
    POSE_CANDIDATES,
    POSE_COPY_THRESHOLD,
    SPLIT_ORDER,
    cross_split_copies,
    pixel_baseline,
    pose_baseline,
    split_matches,
)
from alzmri.data.classes import CLASS_NAMES
from alzmri.data.discovery import DatasetIndex
from alzmri.data.groups import (
    DEFAULT_IMAGE_SIZE,
    GroupResult,
    image_array,
    image_aspects,
    similarity_features,
)
from alzmri.data.groups.pose import pose_features
from alzmri.errors import AlzmriError

#: Fine similarity at or above which two different files count as the same slice.
#: Augmented copies (flip, rotation <= 10 deg, blur radius 1 px at 128 px, JPEG q >= 30,
#: noise, contrast) score >= 0.99; adjacent slices of one brain score 0.906-0.965 on the
#: 6,400 set, so they are not near-duplicates (they are the same *group*).
NEAR_DUPLICATE_THRESHOLD = 0.98
#: The baseline is "far above chance" when its balanced accuracy exceeds chance by more
#: than this (see docs/honest-evaluation.md for the measurements behind it).
BASELINE_MARGIN = 0.25
BASELINE_SIZE = 32


def _check_splits(index: DatasetIndex, splits) -> np.ndarray:
    arr = np.asarray(splits, dtype=object)
    if arr.ndim != 1 or len(arr) != len(index):
        raise AlzmriError(f"splits must give one split name per image ({len(index)}); got {len(arr)}")
    arr = np.array(["" if s is None else str(s) for s in arr], dtype=object)
    bad = sorted({s for s in arr if s not in ("", *SPLIT_ORDER)})
    if bad:
        raise AlzmriError(f"unknown split name(s) {', '.join(map(repr, bad))}; use train, val, test (or '' for images left out)")
    return np.array([str(s) for s in arr], dtype=object)


def _group_array(index: DatasetIndex, groups) -> np.ndarray | None:
    if groups is None:
        return None
    if isinstance(groups, GroupResult):
        if list(groups.paths) != index.paths:
            raise AlzmriError("the groups were computed for a different dataset; recompute them for this data folder")
        return np.asarray(groups.group)
    arr = np.asarray(groups)
    if arr.ndim != 1 or len(arr) != len(index):
        raise AlzmriError(f"groups must give one group per image ({len(index)}); got shape {arr.shape}")
    return arr


def audit_split(
    index: DatasetIndex, splits, *, images=None, groups=None,
    near_threshold: float = NEAR_DUPLICATE_THRESHOLD, n_neighbors: int = 10, rotation_step: float = 1.0, image_size: int = DEFAULT_IMAGE_SIZE,
    baseline_size: int = BASELINE_SIZE, baseline_margin: float = BASELINE_MARGIN,
    copy_threshold: float = POSE_COPY_THRESHOLD, pose_candidates: int = POSE_CANDIDATES,
    max_examples: int = 5, cache_dir: str | os.PathLike | None = None,
) -> dict:
    """Audit a split for leakage between train, val and test.

    Parameters
    ----------
    index : DatasetIndex
    splits : array-like of str, shape (n_images,)
        ``"train"``, ``"val"``, ``"test"`` or ``""`` (left out) per record of ``index``
        (e.g. from :func:`alzmri.data.splits.make_split` or
        :func:`alzmri.data.manifest.read_manifest`).
    images : CachedImages or ndarray of shape (n_images, S, S), dtype uint8, optional
        Decoded images; default :func:`alzmri.data.cache.load_images` at ``image_size``.
    groups : GroupResult or array-like of shape (n_images,), optional
        Scan group per image (:func:`alzmri.data.groups.recover_groups` or
        :func:`~alzmri.data.groups.read_groups_csv`); enables the shared-group check.
        A GroupResult's ``copy_of`` also counts augmented copies outside their
        original's split.
    near_threshold : float, default=0.98
        Fine similarity (see :mod:`alzmri.data.groups`) at or above which two files are
        near-duplicates.
    n_neighbors : int, default=10
        Candidates per query image in the near-duplicate search.
    rotation_step : float, default=1.0
        Rotation search step in degrees (up to 10 degrees either way). A copy rotated
        half a step off the grid scores about 0.99 at 1 degree but 0.95 at 2 degrees,
        below ``near_threshold``; group recovery (threshold 0.83) can use 2 degrees.
    image_size : int, default=64
        Working resolution in pixels for the near-duplicate search.
    baseline_size : int, default=32
        Side in pixels of the images the 1-NN baseline compares.
    baseline_margin : float, default=0.25
        Balanced accuracy above chance beyond which either baseline raises the warning.
    copy_threshold : float, default=0.95
        Pose similarity at or above which a val/test image counts as a copy (or an
        adjacent slice of one brain) of an image in an earlier split; the highest
        similarity between different brains of the 6,400 set is 0.927.
    pose_candidates : int, default=20
        Candidates per val/test image in the pose-invariant search.
    max_examples : int, default=5
        Example pairs/groups listed per check.
    cache_dir : path-like, optional
        Image cache folder.

    Returns
    -------
    dict
        ``n_images`` (per split), ``class_counts`` (per split and class),
        ``exact_duplicates`` and ``near_duplicates`` (``n_pairs`` across splits,
        ``n_images`` involved, ``by_splits`` such as ``{"train-test": 3}``, ``examples``),
        ``shared_groups`` (None without ``groups``; else ``n_groups``,
        ``n_groups_shared``, ``n_images_in_shared_groups``,
        ``n_images_outside_majority_split`` (images that would have to move for each
        shared group to sit in one split), ``by_splits``, ``examples``), ``baseline`` (None without train and val/test images; else
        ``accuracy``, ``balanced_accuracy``, ``chance_accuracy`` (share of the train
        majority class in the evaluated split), ``chance_balanced_accuracy``
        (1 / classes present), ...), ``pose_baseline`` (the same keys, neighbour by
        pose similarity), ``cross_split_copies`` (``n_images`` of val/test with a copy
        across splits, ``n_pairs``, ``by_splits``, ``examples`` with ``similarity``,
        ``threshold``, ``known``: None, or counts from ``copy_of``, see
        :func:`alzmri.data.audit_neighbours.cross_split_copies`), ``leakage_warning`` (bool), ``reasons`` (list of
        str) and ``message`` (one line). Plain data, JSON-serialisable.

    Raises
    ------
    AlzmriError
        ``splits`` or ``groups`` do not match ``index``; unknown split names; ``images``
        of the wrong shape.
    """
    splits = _check_splits(index, splits)
    group = _group_array(index, groups)
    copy_of = groups.copy_of if isinstance(groups, GroupResult) else None
    arr, readable = image_array(index, images, image_size=image_size, cache_dir=cache_dir)
    labels = index.labels
    used = splits != ""

    report: dict = {
        "n_images": {s: int((splits == s).sum()) for s in SPLIT_ORDER},
        "n_left_out": int((~used).sum()),
        "n_unreadable": int((~readable & used).sum()),
        "class_counts": {
            s: {name: int(((splits == s) & (labels == k)).sum()) for k, name in enumerate(CLASS_NAMES)} for s in SPLIT_ORDER
        },
    }
    report["exact_duplicates"] = exact_duplicates(index, splits, max_examples)
    feats = similarity_features(arr, valid=readable & used, aspect=image_aspects(index), image_size=image_size)
    report["near_duplicates"] = near_duplicates(index, splits, feats, near_threshold, n_neighbors, rotation_step, max_examples)
    report["shared_groups"] = None if group is None else shared_groups(index, splits, group, max_examples)
    base = pixel_baseline(arr, readable & used, labels, splits, baseline_size, baseline_margin)
    report["baseline"] = base
    matches = split_matches(pose_features(arr, valid=readable & used), splits, k=pose_candidates)
    pose_base = report["pose_baseline"] = pose_baseline(matches, labels, splits, baseline_margin)
    cc = report["cross_split_copies"] = cross_split_copies(
        index.paths, splits, matches, threshold=copy_threshold, copy_of=copy_of, max_examples=max_examples
    )

    reasons = []
    ex, nd, sg = report["exact_duplicates"], report["near_duplicates"], report["shared_groups"]
    if ex["n_pairs"]:
        reasons.append(f"{ex['n_pairs']} byte-identical file pair(s) across splits")
    if nd["n_pairs"]:
        reasons.append(f"{nd['n_pairs']} near-duplicate pair(s) across splits (similarity >= {near_threshold:g})")
    if sg is not None and sg["n_groups_shared"]:
        reasons.append(f"{sg['n_groups_shared']} of {sg['n_groups']} scan group(s) have slices in more than one split")
    if cc["n_images"]:
        reasons.append(
            f"{cc['n_images']} val/test image(s) have a copy or neighbouring slice in an earlier split "
            f"(pose similarity >= {copy_threshold:g}, through rotation, flips, shift and zoom)"
        )
    if cc["known"] is not None and cc["known"]["n_copies_outside_original_split"]:
        k = cc["known"]
        reasons.append(f"{k['n_copies_outside_original_split']} augmented copies sit outside their original's split ({k['n_families_across']} original(s))")
    for b, what in ((base, "on raw pixels"), (pose_base, "by pose-invariant similarity")):
        if b is not None and b["balanced_accuracy"] > b["chance_balanced_accuracy"] + baseline_margin:
            reasons.append(
                f"a 1-NN {what} reaches balanced accuracy {b['balanced_accuracy']:.3f} on {b['eval_split']} "
                f"(chance {b['chance_balanced_accuracy']:.3f}); near-copies identify the test images"
            )
    report["leakage_warning"] = bool(reasons)
    report["reasons"] = reasons
    if reasons:
        fix = " - split by scan group" + (" (recover groups first)" if group is None else "") + " so no scan spans two splits"
        if cc["n_images"] and (sg is None or not sg["n_groups_shared"]):
            fix += ", with every augmented copy in its source brain's group (recover groups from the images)"
        report["message"] = "possible leakage: " + "; ".join(reasons) + fix
    else:
        report["message"] = "no leakage found: no duplicates or shifted/zoomed copies across splits" + (
            ", no shared scan groups" if group is not None else " (scan groups not checked)"
        ) + (", trivial baselines near chance" if base is not None else "")
    return report
