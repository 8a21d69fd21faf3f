"""Nearest-neighbour checks of the leakage audit: two trivial 1-NN baselines and cross-split copies.

The raw-pixel 1-NN and the image-frame near-duplicate search of :mod:`alzmri.data.audit`
compare slices where they lie in the frame, so a copy of a test slice that was shifted,
zoomed or rotated beyond 10 degrees before it went into training looks like a different
image to both. This module compares slices with the pose-invariant similarity of
:mod:`alzmri.data.groups.pose` (polar Laplacian-of-Gaussian features about the brain's
centroid, scaled by its radius of gyration, correlated over every rotation and mirror):

* :func:`pose_matches`: each query image's most similar reference images (candidates by
  the invariant ring-spectrum descriptor, verified by the polar correlation);
* :func:`pixel_baseline` and :func:`pose_baseline`: 1-nearest-neighbour classifiers
  trained on the train split, on raw pixels and by pose similarity (the neighbour is the
  train image of highest pose similarity);
* :func:`cross_split_copies`: val/test images with a train (or, for test, a val) image
  of pose similarity >= :data:`POSE_COPY_THRESHOLD`, and the augmented copies whose
  original (per ``GroupResult.copy_of``) sits in another split.

Thresholds (measured on the 6,400-slice set, 200 brains; see docs/honest-evaluation.md):
the highest pose similarity between slices of *different* brains, over all 20.4 million
pairs, is 0.927 (8 pairs >= 0.92, none >= 0.93); an augmented copy (rotation, shift, zoom,
perspective, flips, blur, sharpening, intensity, JPEG, combined) scores >= 0.95 with its
source in 71 % of 3,000 copies, and adjacent slices of one brain score 0.97 (median), so
the measure finds copies *and* neighbouring slices of one brain, which are both leaks.
Pose refinement (resampling each query at nearby poses) was measured and left out: it
moved 0.4 % of copies across 0.95 and cost 24 s per 2,800 queries on 2 cores, against
0.3 s without.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from alzmri.data.classes import CLASS_NAMES
from alzmri.data.groups.pose import PoseFeatures, pose_candidates, pose_similarity

SPLIT_ORDER = ("train", "val", "test")
#: Pose similarity at or above which a val/test image counts as a copy (or an adjacent
#: slice of the same brain) of a train image: above the 0.927 maximum between brains.
POSE_COPY_THRESHOLD = 0.95
#: Candidates per query, ranked by the invariant descriptor, verified by the correlation.
#: The source of an augmented copy is among the first 20 in 97.9 % of 3,000 copies (97.6 % at 10, 98.4 % at 50).
POSE_CANDIDATES = 20


@dataclass(eq=False)
class PoseMatches:
    """Candidate references of each query image with their pose similarity.

    Built by :func:`pose_matches`; row ``i`` of each array belongs to query ``query[i]``.

    Attributes
    ----------
    query : ndarray of shape (m,), dtype int64
        Image indices of the queries.
    candidates : ndarray of shape (m, k), dtype int64
        Reference image indices, most similar first.
    similarity : ndarray of shape (m, k), dtype float32
        Pose similarity of each query with each candidate, descending along a row.
    """

    query: np.ndarray
    candidates: np.ndarray
    similarity: np.ndarray

    @property
    def best(self) -> np.ndarray:
        """ndarray of shape (m,), dtype int64: each query's most similar reference."""
        return self.candidates[:, 0]

    @property
    def best_similarity(self) -> np.ndarray:
        """ndarray of shape (m,), dtype float32."""
        return self.similarity[:, 0]


def pose_matches(feats: PoseFeatures, query: np.ndarray, reference: np.ndarray, *, k: int = POSE_CANDIDATES) -> PoseMatches:
    """The ``k`` references of highest pose similarity to each query (candidates by descriptor).

    Parameters
    ----------
    feats : PoseFeatures
        From :func:`alzmri.data.groups.pose.pose_features`.
    query, reference : ndarray of int
        Image indices into ``feats`` (disjoint sets), both non-empty.
    k : int, default=POSE_CANDIDATES
        Candidates per query (fewer when ``reference`` is smaller).

    Returns
    -------
    PoseMatches
        Sorted by similarity within each row.
    """
    q, r = np.asarray(query, dtype=np.int64), np.asarray(reference, dtype=np.int64)
    cand = pose_candidates(feats, k, query=q, reference=r)
    if cand.shape[1] == 0:  # a single reference: it is every query's only candidate
        cand = np.broadcast_to(r[:1], (len(q), 1)).copy()
    sim = pose_similarity(feats, np.repeat(q, cand.shape[1]), cand.ravel()).reshape(cand.shape)
    order = np.argsort(-sim, axis=1, kind="stable")
    return PoseMatches(q, np.take_along_axis(cand, order, axis=1), np.take_along_axis(sim, order, axis=1))


def split_matches(feats: PoseFeatures, splits: np.ndarray, *, k: int = POSE_CANDIDATES) -> dict[tuple[str, str], PoseMatches]:
    """:func:`pose_matches` of every later split against every earlier one.

    Parameters
    ----------
    feats : PoseFeatures
    splits : ndarray of shape (n_images,), dtype object
        ``"train"``, ``"val"``, ``"test"`` or ``""``.
    k : int, default=POSE_CANDIDATES

    Returns
    -------
    dict
        ``(reference split, query split)`` -> matches, for ``("train", "val")``,
        ``("train", "test")`` and ``("val", "test")`` where both splits hold valid images.
    """
    out = {}
    for ai, a in enumerate(SPLIT_ORDER):
        ref = np.flatnonzero((splits == a) & feats.valid)
        for b in SPLIT_ORDER[ai + 1 :]:
            q = np.flatnonzero((splits == b) & feats.valid)
            if len(ref) and len(q):
                out[(a, b)] = pose_matches(feats, q, ref, k=k)
    return out


def _scores(model: str, eval_split: str, y: np.ndarray, pred: np.ndarray, train_labels: np.ndarray, margin: float) -> dict:
    from sklearn.metrics import accuracy_score, balanced_accuracy_score

    majority = int(np.bincount(train_labels, minlength=len(CLASS_NAMES)).argmax())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bal = float(balanced_accuracy_score(y, pred))
    return {
        "model": model,
        "train_split": "train",
        "eval_split": eval_split,
        "n_train": len(train_labels),
        "n_eval": len(y),
        "accuracy": round(float(accuracy_score(y, pred)), 4),
        "balanced_accuracy": round(bal, 4),
        "chance_accuracy": round(float((y == majority).mean()), 4),
        "chance_balanced_accuracy": round(1.0 / len(np.unique(y)), 4),
        "majority_class": CLASS_NAMES[majority],
        "margin": float(margin),
    }


def pixel_baseline(images: np.ndarray, readable: np.ndarray, labels: np.ndarray, splits: np.ndarray, size: int, margin: float) -> dict | None:
    """1-NN on ``size`` x ``size`` raw pixels (scikit-learn), trained on train, scored on test (else val).

    Parameters
    ----------
    images : ndarray of shape (n_images, S, S), dtype uint8
    readable : ndarray of shape (n_images,), dtype bool
        Images to use (readable and in a split).
    labels : ndarray of shape (n_images,), dtype int64
        Class index per image.
    splits : ndarray of shape (n_images,), dtype object
        ``"train"``, ``"val"``, ``"test"`` or ``""``.
    size : int
        Side in pixels of the compared images.
    margin : float
        Balanced accuracy above chance beyond which the audit warns (stored in the result).

    Returns
    -------
    dict or None
        ``model``, ``eval_split``, ``n_train``, ``n_eval``, ``accuracy``,
        ``balanced_accuracy``, ``chance_accuracy`` (share of the train majority class in
        the evaluated split), ``chance_balanced_accuracy`` (1 / classes present),
        ``majority_class``, ``margin``; None without train and val/test images.
    """
    from sklearn.neighbors import KNeighborsClassifier

    from alzmri.data.groups.similarity import _resize_stack

    eval_split = "test" if ((splits == "test") & readable).any() else "val"
    tr = np.flatnonzero((splits == "train") & readable)
    ev = np.flatnonzero((splits == eval_split) & readable)
    if len(tr) == 0 or len(ev) == 0:
        return None
    x = _resize_stack(images, size).reshape(len(images), -1) / 255.0
    clf = KNeighborsClassifier(n_neighbors=1, algorithm="brute").fit(x[tr], labels[tr])
    return _scores(f"1-nearest-neighbour on {size}x{size} raw pixels", eval_split, labels[ev], clf.predict(x[ev]), labels[tr], margin)


def pose_baseline(matches: dict, labels: np.ndarray, splits: np.ndarray, margin: float) -> dict | None:
    """1-NN whose neighbour is the train image of highest pose similarity, scored on test (else val).

    Parameters
    ----------
    matches : dict
        From :func:`split_matches`.
    labels : ndarray of shape (n_images,), dtype int64
    splits : ndarray of shape (n_images,), dtype object
    margin : float

    Returns
    -------
    dict or None
        The keys of :func:`pixel_baseline`; None without train and val/test images.
    """
    eval_split = "test" if ("train", "test") in matches else "val"
    m = matches.get(("train", eval_split))
    if m is None:
        return None
    model = "1-nearest-neighbour by pose-invariant similarity (rotation, flips, shift, zoom)"
    return _scores(model, eval_split, labels[m.query], labels[m.best], labels[splits == "train"], margin)


def _known_copies(paths: list[str], splits: np.ndarray, copy_of: np.ndarray, max_examples: int) -> dict:
    """Families (an original and its copies) whose members sit in more than one split."""
    copy_of = np.asarray(copy_of, dtype=np.int64)
    family = np.where(copy_of >= 0, copy_of, np.arange(len(copy_of)))
    members: dict[int, list[int]] = defaultdict(list)
    for i in np.flatnonzero((splits != "") & (copy_of >= 0)):
        members[int(family[i])].append(int(i))
    by_splits: dict[str, int] = defaultdict(int)
    examples = []
    n_families = n_copies = 0
    for orig, copies in sorted(members.items()):
        home = splits[orig] or max(SPLIT_ORDER, key=lambda s: sum(splits[c] == s for c in copies))
        away = [c for c in copies if splits[c] != home]
        if not away:
            continue
        n_families += 1
        n_copies += len(away)
        for c in away:
            a, b = sorted((home, splits[c]), key=SPLIT_ORDER.index)
            by_splits[f"{a}-{b}"] += 1
            if len(examples) < max_examples:
                examples.append({"a": paths[orig], "a_split": splits[orig] or "left out", "b": paths[c], "b_split": splits[c]})
    return {
        "n_copies": int(((splits != "") & (copy_of >= 0)).sum()),
        "n_families_across": n_families,
        "n_copies_outside_original_split": n_copies,
        "by_splits": dict(sorted(by_splits.items())),
        "examples": examples,
    }


def cross_split_copies(
    paths: list[str],
    splits: np.ndarray,
    matches: dict,
    *,
    threshold: float = POSE_COPY_THRESHOLD,
    copy_of: np.ndarray | None = None,
    max_examples: int = 5,
) -> dict:
    """Images of a later split with a pose-similar image (>= ``threshold``) in an earlier split.

    Parameters
    ----------
    paths : list of str
        Image paths (for the examples).
    splits : ndarray of shape (n_images,), dtype object
    matches : dict
        From :func:`split_matches`.
    threshold : float, default=POSE_COPY_THRESHOLD
    copy_of : ndarray of shape (n_images,), dtype int64, optional
        ``GroupResult.copy_of`` (original of each augmented copy, -1 for originals).
    max_examples : int, default=5

    Returns
    -------
    dict
        ``threshold``; ``n_images`` (val/test images with such a match, each counted once),
        ``n_pairs`` (matching pairs among the candidates searched), ``by_splits``
        (images per split pair, e.g. ``{"train-test": 12}``), ``examples`` (the
        most similar pairs, one per query image: ``a``/``a_split`` the earlier split);
        ``known`` (None without ``copy_of``; else ``n_copies`` in the splits,
        ``n_families_across`` and ``n_copies_outside_original_split``: copies not in
        their original's split, or in a sibling's when the original is left out).
    """
    flagged: set[int] = set()
    by_splits: dict[str, int] = {}
    best: dict[int, tuple[float, int, str]] = {}
    n_pairs = 0
    for (a, b), m in matches.items():
        hit = m.similarity >= threshold
        n_pairs += int(hit.sum())
        rows = np.flatnonzero(hit[:, 0])
        if len(rows):
            by_splits[f"{a}-{b}"] = len(rows)
        for i in rows:
            q = int(m.query[i])
            flagged.add(q)
            s = float(m.similarity[i, 0])
            if q not in best or s > best[q][0]:
                best[q] = (s, int(m.candidates[i, 0]), a)
    top = sorted(best.items(), key=lambda kv: (-kv[1][0], paths[kv[0]]))[:max_examples]
    return {
        "threshold": float(threshold),
        "n_images": len(flagged),
        "n_pairs": n_pairs,
        "by_splits": dict(sorted(by_splits.items(), key=lambda kv: [SPLIT_ORDER.index(s) for s in kv[0].split("-")])),
        "examples": [
            {"a": paths[r], "a_split": a, "b": paths[q], "b_split": splits[q], "similarity": round(s, 4)}
            for q, (s, r, a) in top
        ],
        "known": None if copy_of is None else _known_copies(paths, splits, copy_of, max_examples),
    }
