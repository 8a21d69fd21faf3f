"""Augmented copies: which images are copies of which original, and in which brain.

Group recovery first chains slices by their fine similarity in the image frame
(:mod:`alzmri.data.groups.similarity`); originals and mildly augmented copies (mirror,
rotation up to 10 degrees, blur, intensity changes, JPEG) join their brain there.
Copies that were also shifted, zoomed or perspective-distorted do not, and stay in small
groups of their own. This module places them:

1. :func:`near_duplicate_copies`: inside the chained groups, images whose fine
   similarity is at least :data:`NEAR_DUPLICATE_SIMILARITY` are one slice; in each such
   cluster the member most similar to all others (the medoid: every copy was made from
   the original, so it sits at the centre of the star) is the original, the others its
   copies.
2. :func:`attach_copies`: every image of a small group looks for its most similar image
   among the settled groups with the pose-invariant similarity of
   :mod:`alzmri.data.groups.pose` (invariant to rotation, flips, shift and zoom). A
   small group whose best member score reaches ``threshold`` joins that brain. Images
   that touch the frame (zoomed in and shifted, part of the brain cut off) have a biased
   pose, so for them and for any image still unmatched the search is repeated with poses
   moved towards the cut edge and scaled up, then on a wide grid of poses. A copy only
   matches images of its own class. Settled groups made of copies only (copies of neighbouring
   slices flipped up-down alike chain among themselves) move into a bigger group when half
   their images match there with a median score of at least
   :data:`GROUP_MOVE_SIMILARITY`. Groups only move into bigger ones and two brains never
   reach that median, so distinct brains do not merge through a copy.

Which moved images are copies, and of which original, is decided in
:mod:`alzmri.data.groups.recover` (a moved group of one slice is a copy; several
distinct slices in the set's usual pose that match upright are a fragment of a brain).
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from alzmri.data.groups.pose import (
    PoseFeatures,
    _descriptor,
    _log_images,
    _max_correlation,
    _polar_spectra,
    background_and_peak,
    upright_match,
)
from alzmri.data.groups.similarity import top_k

#: Fine similarity at or above which two images are the same slice (adjacent slices of one
#: brain score 0.906-0.965 on the 6,400 set; copies made by mirror, rotation, blur, JPEG
#: and intensity changes score >= 0.98).
NEAR_DUPLICATE_SIMILARITY = 0.98
#: Pose-invariant similarity at or above which an image of a small group is taken as a copy
#: of its best match (measured: benchmarks/augmented_groups.py, docs/honest-evaluation.md).
ATTACH_THRESHOLD = 0.85
#: A settled group moves only when the median score of its majority's matches reaches
#: this: no pair of slices of two different brains of the 6,400 set scores above 0.927
#: (all 20 M pairs; docs/honest-evaluation.md), while groups of copies score about 0.99.
GROUP_MOVE_SIMILARITY = 0.93
#: Groups smaller than this are candidates for attachment (a chained brain has more slices).
MIN_SETTLED_SIZE = 4
#: Candidates per query and pose variant.
ATTACH_CANDIDATES = 20
VARIANT_CANDIDATES = 8
#: Pose variants for the second pass: scale factors and shifts towards the cut edge
#: (fractions of the radius of gyration).
VARIANT_SCALES = (1.0, 1.08, 1.16)
VARIANT_SHIFTS = (0.0, 0.06, 0.12)


def near_duplicate_copies(
    n: int,
    ei: np.ndarray,
    ej: np.ndarray,
    sim: np.ndarray,
    group: np.ndarray,
    paths: list[str],
    atypical: np.ndarray | None = None,
    tone: np.ndarray | None = None,
) -> np.ndarray:
    """Copies among images linked by near-identical fine similarity.

    Parameters
    ----------
    n : int
        Number of images.
    ei, ej : ndarray of shape (m,), dtype int64
        Examined image pairs (undirected).
    sim : ndarray of shape (m,), dtype float32
        Their fine similarity.
    group : ndarray of shape (n,), dtype int64
        Group of every image; only pairs inside one group count.
    paths : list of str
        Image paths (last tie-break between medoids: the smaller path).
    atypical : ndarray of shape (n,), dtype float, optional
        How far each image's pose is from the set's usual pose (originals of a registered
        release share one centre; shifted copies do not). Between members of equal
        summed similarity (to 0.01; always so in a cluster of two), the less atypical
        one (to 0.05 radii) is the original; then the one whose intensities (``tone``:
        background, 99th percentile, brain median; brightness, contrast and gamma move
        them) are closer to the set's usual ones (to 0.05); then the one more similar to the rest of its
        brain (blur, sharpening, gamma and re-compression move a copy away from the
        neighbouring slices); then the path. A mirrored copy cannot be told from its
        original this way (both stay in one brain either way).

    Returns
    -------
    ndarray of shape (n,), dtype int64
        Index of the original of every copy, -1 for originals.
    """
    copy_of = np.full(n, -1, dtype=np.int64)
    dup = (sim >= NEAR_DUPLICATE_SIMILARITY) & (group[ei] == group[ej])
    if not dup.any():
        return copy_of
    a, b, s = ei[dup], ej[dup], sim[dup].astype(np.float64)
    _, comp = connected_components(coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n)), directed=False)
    strength = np.bincount(a, weights=s, minlength=n) + np.bincount(b, weights=s, minlength=n)
    members = np.flatnonzero(np.bincount(comp, minlength=n)[comp] > 1)
    atyp = np.zeros(n) if atypical is None else np.asarray(atypical, dtype=float)
    # similarity to the rest of the brain (the best slice of the group outside the cluster):
    # blur, sharpening, gamma and re-compression move a copy away from its neighbours
    context = np.zeros(n)
    rest = (group[ei] == group[ej]) & (comp[ei] != comp[ej])
    np.maximum.at(context, ei[rest], sim[rest])
    np.maximum.at(context, ej[rest], sim[rest])
    tones = np.zeros(n) if tone is None else np.asarray(tone, dtype=float)
    order = sorted(members, key=lambda i: (comp[i], -round(float(strength[i]), 2), round(float(atyp[i]) / 0.05), round(float(tones[i]) / 0.05),
                                           -round(float(context[i]), 3), paths[i]))
    seen: dict[int, int] = {}
    for i in order:
        c = int(comp[i])
        if c in seen:
            copy_of[i] = seen[c]
        else:
            seen[c] = int(i)
    return copy_of


def _touch_direction(images: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """(len(idx), 2) unit vectors (row, col) towards the frame edges the brain touches; 0 where none."""
    if len(idx) > 2048:  # in blocks: float temporaries
        return np.concatenate([_touch_direction(images, idx[i : i + 2048]) for i in range(0, len(idx), 2048)])
    x = images[idx].astype(np.float32)
    bg, hi = background_and_peak(x)
    bg, hi = bg[:, None], hi[:, None]
    thr = bg + 0.2 * (hi - bg)
    top, bottom = (x[:, 0] > thr).mean(1), (x[:, -1] > thr).mean(1)
    left, right = (x[:, :, 0] > thr).mean(1), (x[:, :, -1] > thr).mean(1)
    d = np.stack([bottom - top, right - left], axis=1)
    norm = np.linalg.norm(d, axis=1, keepdims=True)
    return np.where(norm > 0.02, d / np.maximum(norm, 1e-9), 0.0).astype(np.float32)


def _pose_variants(pose: np.ndarray, direction: np.ndarray):
    """Yield (rows, poses) of the second-pass pose variants of the queries with ``pose`` (m, 3).

    Queries whose brain touches the frame are moved towards the cut edge by
    :data:`VARIANT_SHIFTS` and scaled up by :data:`VARIANT_SCALES` (the cut makes the
    centroid move away from it and the radius shrink); the others are moved by 0.06 along
    the four axes and scaled by 0.94 and 1.06.
    """
    touched = np.abs(direction).sum(axis=1) > 0
    rows = np.flatnonzero(touched)
    if len(rows):
        for s in VARIANT_SCALES:
            for shift in VARIANT_SHIFTS:
                if s == 1.0 and shift == 0.0:
                    continue
                p = pose[rows].copy()
                p[:, :2] += shift * direction[rows] * p[:, 2:3]
                p[:, 2] *= s
                yield rows, p
    rows = np.flatnonzero(~touched)
    if len(rows):
        for s, dy, dx in [(0.94, 0, 0), (1.06, 0, 0), (1, 0.06, 0), (1, -0.06, 0), (1, 0, 0.06), (1, 0, -0.06)]:
            p = pose[rows].copy()
            p[:, 0] += dy * p[:, 2]
            p[:, 1] += dx * p[:, 2]
            p[:, 2] *= s
            yield rows, p


def _best_matches(
    feats: PoseFeatures, spec: np.ndarray, desc: np.ndarray, reference: np.ndarray, k: int, q_labels: np.ndarray, labels: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Best reference (index, similarity) of each query given its polar spectra and descriptors."""
    k = min(k, len(reference))
    best_j = np.full(len(spec), -1, dtype=np.int64)
    best_s = np.full(len(spec), -np.inf, dtype=np.float32)
    if k == 0 or len(spec) == 0:
        return best_j, best_s
    rd = feats.descriptor[reference]
    block = 512
    for start in range(0, len(spec), block):
        sl = slice(start, start + block)
        sc = desc[sl] @ rd.T
        sc[labels[reference][None, :] != q_labels[sl][:, None]] = -np.inf  # a copy keeps its class
        part = top_k(sc, k)
        ok = np.isfinite(np.take_along_axis(sc, part, axis=1))
        cj = reference[part]
        rows = np.repeat(np.arange(len(part)), k)
        sim = _max_correlation(spec[sl][rows], feats.spectrum[cj.ravel()]).reshape(len(part), k)
        sim[~ok] = -np.inf
        a = sim.argmax(axis=1)
        best_j[sl] = cj[np.arange(len(part)), a]
        best_s[sl] = sim.max(axis=1)
    return best_j, best_s


def _search(
    feats: PoseFeatures, images: np.ndarray, query: np.ndarray, reference: np.ndarray, threshold: float, labels: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Best reference (index, similarity) of every query over the estimated pose and its variants."""
    # pass 1: the estimated pose
    bj = np.full(len(query), -1, dtype=np.int64)
    bs = np.full(len(query), -np.inf, dtype=np.float32)
    for start in range(0, len(query), 4096):  # in chunks: spectra are 9 kB per image
        q = query[start : start + 4096]
        bj[start : start + 4096], bs[start : start + 4096] = _best_matches(feats, feats.spectrum[q], feats.descriptor[q], reference, ATTACH_CANDIDATES, labels[q], labels)
    # pass 2: pose variants for images that touch the frame or are still unmatched;
    # pass 3: a wide grid of poses for those still unmatched
    touch = _touch_direction(images, query)
    redo = np.flatnonzero((bs < threshold) | (np.abs(touch).sum(axis=1) > 0))
    for wide in (False, True):
        if wide:
            redo = np.flatnonzero(bs < threshold)
        for start in range(0, len(redo), 2048):  # in chunks: the LoG images are float32
            chunk = redo[start : start + 2048]
            logs = _log_images(images[query[chunk]])
            variants = _wide_variants(feats.pose[query[chunk]]) if wide else _pose_variants(feats.pose[query[chunk]], touch[chunk])
            for rows, p in variants:
                spec = _polar_spectra(logs[rows], p)
                j, v = _best_matches(feats, spec, _descriptor(spec), reference, VARIANT_CANDIDATES, labels[query[chunk[rows]]], labels)
                better = v > bs[chunk[rows]]
                bs[chunk[rows[better]]] = v[better]
                bj[chunk[rows[better]]] = j[better]
    return bj, bs


def _wide_variants(pose: np.ndarray):
    """Yield (rows, poses): every query at scales 0.9-1.2 and centre shifts of -0.1, 0, 0.1 radii."""
    rows = np.arange(len(pose))
    for s in (0.9, 1.0, 1.1, 1.2):
        for dy in (-0.1, 0.0, 0.1):
            for dx in (-0.1, 0.0, 0.1):
                if s == 1.0 and dy == 0.0 and dx == 0.0:
                    continue
                p = pose.copy()
                p[:, 0] += dy * p[:, 2]
                p[:, 1] += dx * p[:, 2]
                p[:, 2] *= s
                yield rows, p


def _best_in_bigger_groups(feats: PoseFeatures, query: np.ndarray, rank: np.ndarray, k: int, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Best match (index, similarity) of every query among valid images of groups ranked above its own."""
    best_j = np.full(len(query), -1, dtype=np.int64)
    best_s = np.full(len(query), -np.inf, dtype=np.float32)
    reference = np.flatnonzero(feats.valid)
    if len(query) == 0 or len(reference) == 0:
        return best_j, best_s
    rd, rr = feats.descriptor[reference], rank[reference]
    k = min(k, len(reference))
    for start in range(0, len(query), 256):
        q = query[start : start + 256]
        sc = feats.descriptor[q] @ rd.T
        sc[(rr[None, :] <= rank[q][:, None]) | (labels[reference][None, :] != labels[q][:, None])] = -np.inf
        part = top_k(sc, k)
        ok = np.isfinite(np.take_along_axis(sc, part, axis=1))
        cj = reference[part]
        rows = np.repeat(np.arange(len(q)), k)
        sim = _max_correlation(feats.spectrum[q][rows], feats.spectrum[cj.ravel()]).reshape(len(q), k)
        sim[~ok] = -np.inf
        a = sim.argmax(axis=1)
        best_j[start : start + len(q)] = cj[np.arange(len(q)), a]
        best_s[start : start + len(q)] = sim[np.arange(len(q)), a]
    return best_j, best_s


def attach_copies(
    feats: PoseFeatures,
    images: np.ndarray,
    group: np.ndarray,
    *,
    threshold: float = ATTACH_THRESHOLD,
    min_settled: int = MIN_SETTLED_SIZE,
    labels: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Move groups of copies into the brain they were made from.

    Small groups (fewer than ``min_settled`` images; mostly single shifted or zoomed
    copies) look for their best match among the images of settled groups, over the
    estimated pose and its variants, and move when their best member reaches
    ``threshold``. Settled groups other than brains arise when many copies share an
    augmentation that the image-frame chaining does not undo (an up-down flip, say): such
    a group moves into a bigger group when at least half of its images have their best
    match (estimated pose) there at ``threshold`` or more, with a median score of at least
    :data:`GROUP_MOVE_SIMILARITY` (above every similarity between two brains of the 6,400
    set: similar brains can reach the majority at 0.86-0.89, copies score about 0.99).
    Groups only move into bigger ones, so the moves form a forest.

    Parameters
    ----------
    feats : PoseFeatures
        Of all images (:func:`alzmri.data.groups.pose.pose_features`).
    images : ndarray of shape (n, S, S), dtype uint8
        The images ``feats`` was built from (for the pose variants).
    group : ndarray of shape (n,), dtype int64
        Groups from chaining.
    threshold : float, default=ATTACH_THRESHOLD
    min_settled : int, default=MIN_SETTLED_SIZE
    labels : ndarray of shape (n,), dtype int64, optional
        Class of every image: a copy only matches images of its own class (augmented
        releases copy within a class folder). Default: one class.

    Returns
    -------
    group : ndarray of shape (n,), dtype int64
        Groups after the moves (ids of receiving groups kept; not renumbered).
    match : ndarray of shape (n,), dtype int64
        For every moved image, the image of its new group it matched best (-1 otherwise).
    score : ndarray of shape (n,), dtype float32
        Best pose-invariant similarity found for each image that looked for a match (NaN
        for images of groups that did not look).
    upright : ndarray of shape (n,), dtype bool
        False where a moved image matches its ``match`` only after a rotation, an up-down
        flip or a zoom (:func:`~alzmri.data.groups.pose.upright_match`): a transformed
        copy, not another slice of a registered release.
    """
    n = len(group)
    labels = np.zeros(n, dtype=np.int64) if labels is None else np.asarray(labels, dtype=np.int64)
    score = np.full(n, np.nan, dtype=np.float32)
    match = np.full(n, -1, dtype=np.int64)
    if n == 0:
        return group.copy(), match, score, np.ones(0, dtype=bool)
    n_groups = int(group.max()) + 1
    sizes = np.bincount(group, minlength=n_groups)
    rank = (sizes[group].astype(np.int64) * (n_groups + 1) + group)  # a strict order of groups by size
    small = feats.valid & (sizes[group] < min_settled)
    query, reference = np.flatnonzero(small), np.flatnonzero(feats.valid & ~small)
    best_j = np.full(n, -1, dtype=np.int64)
    best_s = np.full(n, -np.inf, dtype=np.float32)
    if len(query) and len(reference):
        best_j[query], best_s[query] = _search(feats, images, query, reference, threshold, labels)
    others = reference[sizes[group[reference]] < sizes.max()]
    best_j[others], best_s[others] = _best_in_bigger_groups(feats, others, rank, ATTACH_CANDIDATES, labels)
    looked = np.union1d(query, others)
    score[looked] = best_s[looked]
    # each group's target: small groups follow their best member, settled ones a majority
    parent = np.arange(n_groups)
    good = looked[best_s[looked] >= threshold]
    for g in np.unique(group[good]):
        members = good[group[good] == g]
        if sizes[g] < min_settled:
            parent[g] = group[best_j[members[np.argmax(best_s[members])]]]
        else:
            targets, votes = np.unique(group[best_j[members]], return_counts=True)
            t = targets[np.argmax(votes)]
            vote_scores = best_s[members[group[best_j[members]] == t]]
            if votes.max() * 2 >= int(feats.valid[group == g].sum()) and np.median(vote_scores) >= GROUP_MOVE_SIMILARITY:
                parent[g] = t
    # roots: a parent is always bigger, so resolve from the biggest group down
    root = np.arange(n_groups)
    for g in sorted(range(n_groups), key=lambda g: -(sizes[g] * (n_groups + 1) + g)):
        root[g] = g if parent[g] == g else root[parent[g]]
    new = root[group]
    moved = np.flatnonzero(new != group)
    ok = best_j[moved] >= 0
    own = np.zeros(len(moved), dtype=bool)
    own[ok] = new[best_j[moved[ok]]] == new[moved[ok]]
    match[moved[own]] = best_j[moved[own]]
    # a member that moved with its group but matched elsewhere copies its group's best match
    for g in np.unique(group[moved[~own]]):
        members = moved[group[moved] == g]
        cand = members[(best_j[members] >= 0) & (new[best_j[members].clip(0)] == new[members])]
        if len(cand):
            lead = cand[np.argmax(best_s[cand])]
            rest = members[match[members] < 0]
            match[rest] = best_j[lead]
    upright = np.ones(n, dtype=bool)
    has = np.flatnonzero(match >= 0)
    upright[has] = upright_match(feats, has, match[has])
    return new, match, score, upright
