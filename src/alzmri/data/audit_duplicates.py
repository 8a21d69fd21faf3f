"""Duplicates and shared scans across the splits of the leakage audit (:mod:`alzmri.data.audit`).

* exact duplicates: files with the same SHA-256 in different splits;
* near-duplicates: different files whose images match after mirroring, small rotations,
  blur or re-compression (fine similarity of :mod:`alzmri.data.groups`);
* shared groups: a scan (group) with slices in more than one split.

Each check returns plain data: counts, the split pairs involved (``"train-test"``) and a
few examples.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from alzmri.data.audit_neighbours import SPLIT_ORDER
from alzmri.data.discovery import DatasetIndex
from alzmri.data.groups import similar_pairs


def _pair_key(a: str, b: str) -> str:
    ia, ib = SPLIT_ORDER.index(a), SPLIT_ORDER.index(b)
    return f"{SPLIT_ORDER[min(ia, ib)]}-{SPLIT_ORDER[max(ia, ib)]}"


def exact_duplicates(index: DatasetIndex, splits: np.ndarray, max_examples: int) -> dict:
    """Pairs of byte-identical files (same SHA-256) in different splits.

    Parameters
    ----------
    index : DatasetIndex
    splits : ndarray of shape (n_images,), dtype object
        ``"train"``, ``"val"``, ``"test"`` or ``""`` (left out, ignored).
    max_examples : int
        Pairs listed in ``examples`` at most.

    Returns
    -------
    dict
        ``n_pairs`` across splits, ``n_images`` involved, ``by_splits`` (``{"train-test": 3}``),
        ``n_pairs_within_splits`` and ``examples`` (``a``, ``a_split``, ``b``, ``b_split``,
        ``sha256`` prefix), the earlier split first.
    """
    hashes = index.file_hashes()
    by_hash: dict[str, list[int]] = defaultdict(list)
    for i, h in enumerate(hashes):
        if splits[i]:
            by_hash[h].append(i)
    by_splits: dict[str, int] = defaultdict(int)
    examples = []
    involved: set[int] = set()
    n_pairs = 0
    within = 0
    for h, members in by_hash.items():
        if len(members) < 2:
            continue
        for x in range(len(members)):
            for y in range(x + 1, len(members)):
                a, b = members[x], members[y]
                if splits[a] == splits[b]:
                    within += 1
                    continue
                if SPLIT_ORDER.index(splits[a]) > SPLIT_ORDER.index(splits[b]):
                    a, b = b, a
                n_pairs += 1
                involved.update((a, b))
                by_splits[_pair_key(splits[a], splits[b])] += 1
                if len(examples) < max_examples:
                    examples.append({"a": index.paths[a], "a_split": splits[a], "b": index.paths[b], "b_split": splits[b], "sha256": h[:16]})
    return {
        "n_pairs": n_pairs,
        "n_images": len(involved),
        "by_splits": dict(sorted(by_splits.items())),
        "n_pairs_within_splits": within,
        "examples": examples,
    }


def near_duplicates(index: DatasetIndex, splits: np.ndarray, feats, threshold: float, n_neighbors: int, rotation_step: float,
                    max_examples: int) -> dict:
    """Pairs of different files in different splits whose images match (fine similarity >= ``threshold``).

    Parameters
    ----------
    index, splits
        As :func:`exact_duplicates`.
    feats : SimilarityFeatures
        :func:`alzmri.data.groups.similarity_features` of the images; invalid ones are skipped.
    threshold : float
        Fine similarity at or above which two files count as the same slice.
    n_neighbors : int
        Candidates per query image.
    rotation_step : float
        Rotation search step in degrees.
    max_examples : int
        Pairs listed in ``examples`` at most, most similar first.

    Returns
    -------
    dict
        ``threshold``, ``n_pairs``, ``n_images``, ``by_splits`` and ``examples`` (with
        ``similarity``); byte-identical pairs are left to :func:`exact_duplicates`.
    """
    hashes = index.file_hashes()
    found: dict[tuple[int, int], float] = {}
    for ai, a in enumerate(SPLIT_ORDER):
        ref_idx = np.flatnonzero((splits == a) & feats.valid)
        if len(ref_idx) == 0:
            continue
        ref = feats.subset(ref_idx)
        for b in SPLIT_ORDER[ai + 1 :]:
            q_idx = np.flatnonzero((splits == b) & feats.valid)
            if len(q_idx) == 0:
                continue
            qi, rj, s = similar_pairs(
                feats.subset(q_idx), ref, n_neighbors=n_neighbors, min_similarity=threshold, rotation_step=rotation_step
            )
            for x, y, v in zip(q_idx[qi], ref_idx[rj], s):
                if hashes[x] == hashes[y]:
                    continue  # byte-identical: reported as an exact duplicate
                key = (int(y), int(x))
                found[key] = max(float(v), found.get(key, -1.0))
    by_splits: dict[str, int] = defaultdict(int)
    involved: set[int] = set()
    for a, b in found:
        by_splits[_pair_key(splits[a], splits[b])] += 1
        involved.update((a, b))
    top = sorted(found.items(), key=lambda kv: (-kv[1], index.paths[kv[0][0]], index.paths[kv[0][1]]))
    return {
        "threshold": float(threshold),
        "n_pairs": len(found),
        "n_images": len(involved),
        "by_splits": dict(sorted(by_splits.items())),
        "examples": [
            {"a": index.paths[a], "a_split": splits[a], "b": index.paths[b], "b_split": splits[b], "similarity": round(v, 4)}
            for (a, b), v in top[:max_examples]
        ],
    }


def shared_groups(index: DatasetIndex, splits: np.ndarray, group: np.ndarray, max_examples: int) -> dict:
    """Scan groups with slices in more than one split.

    Parameters
    ----------
    index : DatasetIndex
    splits : ndarray of shape (n_images,), dtype object
        ``"train"``, ``"val"``, ``"test"`` or ``""`` (left out, ignored).
    group : ndarray of shape (n_images,)
        Scan group per image, any labels.
    max_examples : int
        Groups listed in ``examples`` at most, largest first.

    Returns
    -------
    dict
        ``n_groups``, ``n_groups_shared``, ``n_images_in_shared_groups``,
        ``n_images_outside_majority_split`` (images that would have to move for each
        shared group to sit in one split), ``by_splits`` and ``examples`` (``group``,
        ``splits`` counts, up to 4 ``paths``).
    """
    used = splits != ""
    per_group: dict = defaultdict(lambda: defaultdict(int))
    for g, s in zip(group[used].tolist(), splits[used]):
        per_group[g][s] += 1
    shared = [g for g, c in per_group.items() if len(c) > 1]
    by_splits: dict[str, int] = defaultdict(int)
    n_outside = n_in_shared = 0
    for g in shared:
        names = sorted(per_group[g], key=SPLIT_ORDER.index)
        for x in range(len(names)):
            for y in range(x + 1, len(names)):
                by_splits[f"{names[x]}-{names[y]}"] += 1
        counts = per_group[g]
        n_in_shared += sum(counts.values())
        n_outside += sum(counts.values()) - max(counts.values())
    shared_sorted = sorted(shared, key=lambda g: (-sum(per_group[g].values()), str(g)))
    examples = []
    group_list = np.asarray(group).tolist()
    for g in shared_sorted[:max_examples]:
        members = [i for i in np.flatnonzero(used) if group_list[i] == g]
        examples.append(
            {
                "group": g,
                "splits": {s: per_group[g][s] for s in SPLIT_ORDER if per_group[g].get(s)},
                "paths": [f"{splits[i]}: {index.paths[i]}" for i in members[:4]],
            }
        )
    return {
        "n_groups": len(per_group),
        "n_groups_shared": len(shared),
        "n_images_in_shared_groups": int(n_in_shared),
        "n_images_outside_majority_split": int(n_outside),
        "by_splits": dict(sorted(by_splits.items())),
        "examples": examples,
    }
