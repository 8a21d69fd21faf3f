"""Group recovery: :func:`recover_groups` (see :mod:`alzmri.data.groups` for the method)."""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import PurePosixPath

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components, minimum_spanning_tree

from alzmri.data.discovery import DatasetIndex
from alzmri.data.groups.copies import (
    ATTACH_THRESHOLD,
    MIN_SETTLED_SIZE,
    NEAR_DUPLICATE_SIMILARITY,
    attach_copies,
    near_duplicate_copies,
)
from alzmri.data.groups.filenames import (
    OASIS_ID_PATTERN,
    _canonical_ids,
    _filename_groups,
)
from alzmri.data.groups.pose import background_and_peak, estimate_pose, pose_features
from alzmri.data.groups.result import GroupResult
from alzmri.data.groups.seriation import _chain_orders, _orient
from alzmri.data.groups.similarity import (
    DEFAULT_IMAGE_SIZE,
    SimilarityFeatures,
    _single_thread_blas,
    pair_similarity,
    similar_pairs,
    similarity_features,
)
from alzmri.errors import AlzmriError

#: Default link threshold on the fine similarity (see the module docstring and docs).
DEFAULT_THRESHOLD = 0.83


def image_array(index: DatasetIndex, images=None, *, image_size: int = DEFAULT_IMAGE_SIZE, cache_dir: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Decoded images of ``index`` and their readable mask.

    Parameters
    ----------
    index : DatasetIndex
    images : CachedImages or ndarray of shape (n_images, S, S), optional
        Already decoded images; default :func:`alzmri.data.cache.load_images` at
        ``image_size``.
    image_size : int, default=64
    cache_dir : path-like, optional

    Returns
    -------
    images : ndarray of shape (n_images, S, S), dtype uint8
    readable : ndarray of shape (n_images,), dtype bool

    Raises
    ------
    AlzmriError
        ``images`` is not (n_images, S, S) for this index.
    """
    from alzmri.data.cache import CachedImages, load_images

    if images is None:
        images = load_images(index, image_size, cache_dir=cache_dir)
    if isinstance(images, CachedImages):
        arr, readable = images.images, np.asarray(images.readable, dtype=bool)
    else:
        arr = np.asarray(images)
        readable = np.ones(len(arr), dtype=bool)
    if arr.ndim != 3 or arr.shape[1] != arr.shape[2]:
        raise AlzmriError(f"images must have shape (n_images, S, S); got {arr.shape}")
    if len(arr) != len(index):
        raise AlzmriError(f"images hold {len(arr)} rows but the dataset index has {len(index)} images; decode the same index")
    return arr, readable


def image_aspects(index: DatasetIndex) -> np.ndarray:
    """Height / width of every file of ``index`` (from the header; 1.0 where unreadable).

    Returns
    -------
    ndarray of shape (n_images,), dtype float32
    """
    from PIL import Image

    out = np.ones(len(index), dtype=np.float32)
    for i, rec in enumerate(index.records):
        try:
            with Image.open(index.root / rec.path) as im:
                w, h = im.size
            if w > 0 and h > 0:
                out[i] = h / w
        except Exception:  # noqa: BLE001 - unreadable files are reported by the decoder
            pass
    return out


def recover_groups(
    index: DatasetIndex,
    images=None,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    n_neighbors: int = 10,
    mutual: bool = False,
    image_size: int = DEFAULT_IMAGE_SIZE,
    log_sigma: float = 1.0,
    max_rotation: float = 10.0,
    rotation_step: float = 2.0,
    use_filenames: bool | str = "auto",
    id_pattern: str = OASIS_ID_PATTERN,
    find_copies: bool = True,
    copy_threshold: float = ATTACH_THRESHOLD,
    cache_dir: str | os.PathLike | None = None,
) -> GroupResult:
    """Assign every image to a group of slices from the same scan.

    Parameters
    ----------
    index : DatasetIndex
        From :func:`alzmri.data.discovery.discover`.
    images : CachedImages or ndarray of shape (n_images, S, S), dtype uint8, optional
        Decoded images aligned with ``index`` (any square size; resized to
        ``image_size``). Default: :func:`alzmri.data.cache.load_images` at ``image_size``.
    threshold : float, default=0.83
        Link two images when their fine similarity (Pearson correlation of LoG-filtered
        64 x 64 images, maximised over mirror and rotation) is at least this. On the
        6,400 set adjacent slices of one brain score >= 0.906 and slices of different
        brains <= 0.707; 0.83 sits in the middle of that gap (equal distance ratios).
    n_neighbors : int, default=10
        Candidate neighbours per image; must exceed the number of augmented copies of a
        slice plus 2 (its chain neighbours) for every link to be found.
    mutual : bool, default=False
        Keep only links between mutual candidates (a guard against hub images chaining
        different brains). Off by default: on the 6,400 set plus 800 augmented copies it
        cut some true links (copies crowd each other's candidate lists) and never
        prevented a wrong one.
    image_size : int, default=64
        Working resolution in pixels.
    log_sigma : float, default=1.0
        Laplacian-of-Gaussian sigma in pixels of a 64-pixel image.
    max_rotation, rotation_step : float, default=10.0, 2.0
        Rotation search for augmented copies, in degrees. A copy rotated half a step off
        the grid still scores about 0.95, far above ``threshold``.
    use_filenames : {"auto", True, False}, default="auto"
        Use subject IDs in file names (``id_pattern``) as groups. ``"auto"``: when every
        file name has one. True: required (error otherwise). False: never.
    id_pattern : str, default=OASIS_ID_PATTERN
        Regular expression searched in each base name; group 1 (or the whole match) is
        the subject ID.
    find_copies : bool, default=True
        Look for augmented copies (:mod:`alzmri.data.groups.copies`): near-identical
        images in a group become copies of its medoid, and images left in groups of fewer
        than :data:`~alzmri.data.groups.copies.MIN_SETTLED_SIZE` join the brain of their
        best pose-invariant match (rotation, flips, shift, zoom) when it reaches
        ``copy_threshold``. Fills ``GroupResult.copy_of``.
    copy_threshold : float, default=0.85
        Pose-invariant similarity needed to attach an image as a copy.
    cache_dir : path-like, optional
        Image cache folder for :func:`~alzmri.data.cache.load_images`.

    Returns
    -------
    GroupResult
        Unreadable images are singletons with position -1.

    Raises
    ------
    AlzmriError
        ``threshold`` outside (-1, 1]; ``images`` of the wrong shape or length;
        ``use_filenames=True`` and some file name has no ID.
    """
    if not (-1.0 < float(threshold) <= 1.0):
        raise AlzmriError(f"group threshold must be in (-1, 1]; got {threshold}")
    if int(n_neighbors) < 1:
        raise AlzmriError(f"n_neighbors must be at least 1; got {n_neighbors}")
    if use_filenames not in ("auto", True, False):
        raise AlzmriError(f"use_filenames must be 'auto', True or False; got {use_filenames!r}")
    paths = index.paths
    labels = index.labels
    n = len(paths)
    params = {
        "n_neighbors": int(n_neighbors),
        "mutual": bool(mutual),
        "image_size": int(image_size),
        "log_sigma": float(log_sigma),
        "max_rotation": float(max_rotation),
        "rotation_step": float(rotation_step),
        "find_copies": bool(find_copies),
        "copy_threshold": float(copy_threshold),
    }

    if use_filenames is not False:
        named = _filename_groups(paths, id_pattern)
        if named is None and use_filenames is True:
            bad = next(p for p in paths if re.search(id_pattern, PurePosixPath(p).name, re.IGNORECASE) is None)
            raise AlzmriError(f"{index.root}: file name {bad!r} carries no subject ID matching {id_pattern!r}; use image-based recovery (use_filenames=False)")
        if named is not None:
            ids, slices = named
            group = _canonical_ids(np.asarray(ids), paths)
            position = np.full(n, -1, dtype=np.int64)
            n_groups = int(group.max()) + 1 if n else 0
            for g in range(n_groups):
                members = np.flatnonzero(group == g)
                if all(slices[i] is not None for i in members):
                    order = sorted(members, key=lambda i: (slices[i], paths[i]))
                    position[np.asarray(order)] = np.arange(len(order))
            return GroupResult(paths=list(paths), labels=labels, group=group, position=position, method="filename", threshold=None,
                               weakest_link=np.full(n_groups, np.nan), unreadable=np.zeros(n, dtype=bool), params={"id_pattern": id_pattern})

    arr, readable = image_array(index, images, image_size=image_size, cache_dir=cache_dir)
    feats = similarity_features(arr, valid=readable, aspect=image_aspects(index), image_size=image_size, log_sigma=log_sigma)
    qi, rj, s = similar_pairs(feats, n_neighbors=n_neighbors, max_rotation=max_rotation, rotation_step=rotation_step)

    # undirected edges: similarity = max over both directions; mutual = seen from both sides
    lo, hi = np.minimum(qi, rj), np.maximum(qi, rj)
    key = lo * n + hi
    order = np.argsort(key, kind="stable")
    key, s_sorted = key[order], s[order]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]]) if len(key) else np.zeros(0, dtype=np.int64)
    ukey = key[starts]
    usim = np.maximum.reduceat(s_sorted, starts) if len(key) else np.zeros(0, dtype=np.float32)
    ucount = np.diff(np.r_[starts, len(key)])
    ei, ej = ukey // n, ukey % n
    link = usim >= threshold
    if mutual:
        link &= ucount >= 2
    adj = sp.coo_matrix((np.ones(int(link.sum())), (ei[link], ej[link])), shape=(n, n)).tocsr()
    _, comp = connected_components(adj, directed=False)
    group = _canonical_ids(comp, paths)
    match = np.full(n, -1, dtype=np.int64)
    attach_score = np.full(n, np.nan, dtype=np.float32)
    upright = np.ones(n, dtype=bool)
    before = group
    if find_copies and n and (np.bincount(group)[group] < MIN_SETTLED_SIZE).any():
        # shifted / zoomed copies left in small groups join the brain they were made from
        pose = pose_features(arr, valid=readable)
        attached, match, attach_score, upright = attach_copies(pose, arr, group, threshold=copy_threshold, labels=labels)
        before, group = group, _canonical_ids(attached, paths)
    n_groups = int(group.max()) + 1 if n else 0
    copy_of = _copy_origins(arr, feats, max_rotation, rotation_step, n, ei, ej, usim, group, paths, match, before, upright) if find_copies else np.full(n, -1, dtype=np.int64)

    # separation diagnostics, over the originals: the chain of slices that makes a brain.
    # (a heavily augmented copy links just above the threshold and another brain's copy
    # scores just under it, which says nothing about whether two brains were merged)
    originals = (copy_of[ei] < 0) & (copy_of[ej] < 0)
    between = (group[ei] != group[ej]) & originals
    strongest = float(usim[between].max()) if between.any() else None
    # bottleneck of each group's maximum spanning tree over its links
    weakest = np.full(n_groups, np.nan)
    olink = link & originals
    if olink.any():
        w = sp.coo_matrix((2.0 - usim[olink].astype(np.float64), (ei[olink], ej[olink])), shape=(n, n)).tocsr()
        mst = minimum_spanning_tree(w).tocoo()
        sim_mst = 2.0 - mst.data
        gm = group[mst.row]
        np.fmin.at(weakest, gm, sim_mst)

    # positions: the chain of originals; a copy takes its original's position
    position = np.full(n, -1, dtype=np.int64)
    chain_feats = dataclasses.replace(feats, valid=feats.valid & (copy_of < 0))
    within = group[ei] == group[ej]
    w_order = np.argsort(group[ei[within]], kind="stable")
    wi, wj, ws = ei[within][w_order], ej[within][w_order], usim[within][w_order]
    wg = group[wi]
    bounds = np.searchsorted(wg, np.arange(n_groups + 1))
    with _single_thread_blas():  # many tiny products: BLAS threads only add overhead
        orders = _chain_orders(group, n_groups, chain_feats, wi, wj, ws, bounds)
        oriented = _orient(orders, feats)
    for o in oriented:
        position[o] = np.arange(len(o))
    position[copy_of >= 0] = position[copy_of[copy_of >= 0]]
    attached = match >= 0
    unplaced = ~np.isnan(attach_score) & ~attached & (np.bincount(before)[before] < MIN_SETTLED_SIZE) if n else np.zeros(0, dtype=bool)
    # a small group moves with its best-scoring member: its score is the group's
    lead = np.full(int(before.max()) + 1 if n else 0, -np.inf)
    np.maximum.at(lead, before[attached], attach_score[attached])
    params["copies"] = {
        "threshold": float(copy_threshold),
        "attached": int(attached.sum()),
        "attached_as_copies": int((attached & (copy_of >= 0)).sum()),
        "weakest_attached": round(float(lead[np.isfinite(lead)].min()), 4) if attached.any() else None,
        "strongest_unattached": round(float(attach_score[unplaced].max()), 4) if unplaced.any() else None,
    }

    return GroupResult(
        paths=list(paths),
        labels=labels,
        group=group,
        position=position,
        method="images",
        threshold=float(threshold),
        weakest_link=weakest,
        strongest_between=strongest,
        unreadable=~readable,
        params=params,
        copy_of=copy_of,
    )


def _odd_angles(max_rotation: float, rotation_step: float) -> np.ndarray:
    """Midpoints between the angles of the rotation search, in degrees."""
    if max_rotation <= 0 or rotation_step <= 0:
        return np.zeros(1)
    half = rotation_step / 2.0
    return np.arange(-max_rotation + half, max_rotation, rotation_step)


#: Centroid offset from the set's usual one, in radii of gyration, below which a slice is
#: in the usual pose (the 6,400 originals: median 0.018, 99th percentile 0.051).
TYPICAL_POSE = 0.06


def _pose_atypicality(images: np.ndarray) -> np.ndarray:
    """Distance of each slice's brain centroid from the median centroid, in radii of gyration (n,)."""
    pose, valid = estimate_pose(images)
    centre = np.median(pose[valid, :2], axis=0) if valid.any() else np.zeros(2)
    return np.where(valid, np.linalg.norm(pose[:, :2] - centre, axis=1) / pose[:, 2], np.inf)


def _tone_atypicality(images: np.ndarray) -> np.ndarray:
    """How far each slice's intensities are from the set's usual ones (n,): background level,
    99th percentile and the brain's median relative to it (brightness, contrast and gamma
    changes move them; originals of a release share them)."""
    feats = np.empty((len(images), 3))
    for start in range(0, len(images), 2048):
        x = images[start : start + 2048].astype(np.float32)
        k = len(x)
        bg, hi = background_and_peak(x, 99)
        hi = np.maximum(hi, 1.0)
        flat = x.reshape(k, -1)
        brain = np.where(flat > (bg + 0.2 * (hi - bg))[:, None], flat, np.nan)
        brain[np.isnan(brain).all(axis=1), 0] = 1.0  # a blank (unreadable) image: no brain pixels
        mid = np.nanmedian(brain, axis=1) if brain.size else np.ones(k)
        feats[start : start + k] = np.stack([bg / 255.0, np.log(hi), np.log(np.maximum(mid, 1.0) / hi)], axis=1)
    return np.abs(feats - np.median(feats, axis=0)).sum(axis=1) if len(feats) else np.zeros(0)


def _copy_origins(images: np.ndarray, feats: SimilarityFeatures, max_rotation: float, rotation_step: float, n: int, ei: np.ndarray, ej: np.ndarray, sim: np.ndarray, group: np.ndarray, paths: list[str], match: np.ndarray, before: np.ndarray, upright: np.ndarray) -> np.ndarray:
    """Original of every copy (-1 for originals): near-duplicates in a group, and attached images.

    ``before`` is the group of every image before attachment; ``upright`` says whether a
    moved image matched without rotation, up-down flip or zoom.

    An attached image is a copy of the original of the image it matched; chains of copies
    are followed to their root so that ``copy_of`` always points at an original.
    """
    # pairs of one group just under the copy similarity: a rotated copy may sit between the
    # steps of the rotation search; searching the midpoints tells it from an adjacent slice
    sim = sim.copy()
    near = np.flatnonzero((group[ei] == group[ej]) & (sim >= 0.93) & (sim < NEAR_DUPLICATE_SIMILARITY))
    angles = _odd_angles(max_rotation, rotation_step)
    for start in range(0, len(near), 4096):  # in chunks: each pair copies two feature rows
        k = near[start : start + 4096]
        sim[k] = np.maximum(sim[k], pair_similarity(feats, ei[k], ej[k], angles=angles))
    atypical = _pose_atypicality(images)
    copy_of = near_duplicate_copies(n, ei, ej, sim, group, paths, atypical=atypical, tone=_tone_atypicality(images))
    # an attached group of one slice (and its near-identical copies) is a copy. A group of
    # several distinct slices, all in the set's usual position and matching their brain
    # upright, is a fragment of the brain whose other slices are missing (a subsampled set):
    # it joins the brain as originals. Copies that chained among themselves were moved
    # (shifted, zoomed, flipped up-down, rotated).
    attached = match >= 0
    n_before = int(before.max()) + 1 if n else 0
    slices = np.bincount(before[attached & (copy_of < 0)], minlength=n_before)
    moved = np.bincount(before[attached & ((atypical > TYPICAL_POSE) | ~upright)], minlength=n_before)
    fragment = (slices >= 2) & (moved == 0)
    take = np.flatnonzero(attached & ~fragment[before])
    copy_of[take] = match[take]
    # attached images point at settled images, settled copies at settled originals: no
    # cycles, and at most two hops to an original
    for _ in range(3):
        target = copy_of.clip(0)
        hop = (copy_of >= 0) & (copy_of[target] >= 0)
        if not hop.any():
            break
        copy_of[hop] = copy_of[target[hop]]
    return copy_of
