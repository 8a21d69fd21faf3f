"""Recover which slices come from the same scan (subject groups), from file names or from the images.

Public MRI slice sets such as the Kaggle "Alzheimer MRI Preprocessed Dataset" (6,400
images) hold many consecutive axial slices of each brain and no subject IDs. Neighbouring
slices of one brain are nearly identical, so any split of *slices* puts the same brain
in train and test. :func:`recover_groups` rebuilds the brains from the pixels so that
splits can be made by group (see ``docs/honest-evaluation.md`` for the measurements).

Method (``method="images"``)
----------------------------
1. **Features.** Each image is taken at 64 x 64 pixels (the decode-once cache). The
   *fine* feature is the image filtered with a Laplacian of Gaussian (sigma 1 px at 64 px),
   z-normalised (zero mean, unit norm). The filter removes the low-frequency anatomy that
   all atlas-registered brains share at one level and keeps the gyral detail that differs
   between people; on the 6,400 set it widens the gap between "adjacent slice of the same
   brain" and "any slice of another brain" from a distance ratio of 2.2 (raw pixels) to 3.1.
   The *coarse* feature is the raw image at 32 x 32, z-normalised.
2. **Candidates.** Every image's ``n_neighbors`` nearest images by coarse Pearson
   correlation, flip-invariant (the larger of the correlation with the other image and
   with its left-right mirror). Coarse raw pixels rank a 5-degree rotated copy's source
   first, where fine features would not.
3. **Similarity.** For each candidate pair, the fine correlation maximised over the
   mirror and over rotations of the query from ``-max_rotation`` to ``+max_rotation``
   degrees in ``rotation_step`` steps (bilinear, about the image centre). An augmented
   copy (flip, small rotation, blur, JPEG re-compression) of a slice therefore scores like
   the slice itself.
4. **Groups.** Pairs with similarity >= ``threshold`` are linked (optionally only mutual
   nearest neighbours); connected components are the groups.
5. **Positions.** Within a group, the order along the slice chain comes from spectral
   seriation (Fiedler vector of a Gaussian-affinity graph whose width is the group's median
   nearest-neighbour distance), polished by 2-opt on the path length; groups are then
   oriented consistently with each other (templates by relative position) and so that
   position 0 is the end with the larger brain cross-section (inferior on these sets).

Method (``method="filename"``)
------------------------------
When every file name carries an OASIS-style subject ID (``OAS1_0001_MR1_mpr-1_100.jpg``),
the subject ID is the group (sessions of one subject are one brain) and the trailing
number orders the slices.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
import scipy.sparse as sp
from scipy import ndimage
from scipy.sparse.csgraph import connected_components, minimum_spanning_tree

from alzmri.data.classes import CLASS_NAMES, class_index
from alzmri.data.discovery import DatasetIndex
from alzmri.errors import AlzmriError
from alzmri.utils.io import atomic_write_text

#: Default link threshold on the fine similarity (see the module docstring and docs).
DEFAULT_THRESHOLD = 0.83
#: Working image side in pixels.
DEFAULT_IMAGE_SIZE = 64
#: OASIS subject ID in a file's base name; group 1 is the subject (``OAS1_0001``).
OASIS_ID_PATTERN = r"(OAS[123]_\d{4})(?:_MR\d+)?"
#: Trailing slice number of a base name (``..._mpr-1_100.jpg`` -> 100).
SLICE_NUMBER_PATTERN = r"_(\d+)\.[A-Za-z0-9]+$"
#: Groups larger than this get no positions (a group that large is not one scan).
MAX_POSITION_GROUP = 1024
_COARSE_SIZE = 32
_TWO_OPT_MAX = 256
#: Fine distances (1 - similarity) below this are copies of one slice, not neighbours.
_COPY_DISTANCE = 0.02
_BLOCK = 512


# --------------------------------------------------------------------------------------
# result


@dataclass(eq=False)
class GroupResult:
    """Groups of slices from the same scan, aligned with ``index.records``.

    Attributes
    ----------
    paths : list of str
        Relative POSIX paths, aligned with the index.
    labels : ndarray of shape (n_images,), dtype int64
        Class labels (index into :data:`~alzmri.data.classes.CLASS_NAMES`).
    group : ndarray of shape (n_images,), dtype int64
        Group id per image, 0..n_groups-1, numbered by each group's first path in sorted
        order (stable: the same data gives the same ids).
    position : ndarray of shape (n_images,), dtype int64
        Order of the slice along its group's chain, 0..size-1, or -1 where not inferable
        (unreadable images, name groups without slice numbers, groups over
        :data:`MAX_POSITION_GROUP`).
    method : str
        ``"images"``, ``"filename"`` or ``"csv"``.
    threshold : float or None
        Link threshold on the fine similarity (``"images"`` only).
    weakest_link : ndarray of shape (n_groups,), dtype float64
        Per group, the weakest similarity needed to keep it connected (bottleneck of its
        maximum spanning tree); NaN for singletons and non-image methods.
    strongest_between : float or None
        Largest similarity between two images of different groups among all candidate
        pairs examined (``"images"`` only). ``strongest_between < threshold <=
        weakest_link`` always; a wide empty gap around the threshold means the grouping is
        not sensitive to its exact value.
    unreadable : ndarray of shape (n_images,), dtype bool
        Images that could not be decoded (each is its own group).
    params : dict
        The settings used, for the record.
    """

    paths: list[str]
    labels: np.ndarray
    group: np.ndarray
    position: np.ndarray
    method: str
    threshold: float | None = None
    weakest_link: np.ndarray = field(default_factory=lambda: np.zeros(0))
    strongest_between: float | None = None
    unreadable: np.ndarray | None = None
    params: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def n_groups(self) -> int:
        return int(self.group.max()) + 1 if len(self.group) else 0

    def sizes(self) -> np.ndarray:
        """Images per group, int64 array of shape (n_groups,)."""
        return np.bincount(self.group, minlength=self.n_groups).astype(np.int64)

    def summary(self, *, max_listed: int = 50) -> dict:
        """Plain-data summary (JSON-serialisable).

        Parameters
        ----------
        max_listed : int, default=50
            At most this many mixed-class groups are listed (all are counted).

        Returns
        -------
        dict
            ``method``, ``threshold``, ``n_images``, ``n_groups``, ``n_singletons``,
            ``n_unreadable``, ``group_size`` (min/median/mean/max), ``size_histogram``
            (size -> number of groups; power-of-two bins when there are more than 20
            distinct sizes), ``classes_per_group`` (number of classes -> number of groups),
            ``n_mixed_class_groups`` and ``mixed_class_groups`` (group, size, class counts,
            up to 3 example paths; flagged: a scan has one diagnosis, so a mixed group is
            either a recovery error or a labelling error), ``positions_inferred`` (fraction
            of images with a position), and for the image method ``separation``
            (``weakest_link_within``, ``strongest_between``, ``gap``).
        """
        sizes = self.sizes()
        n_groups = self.n_groups
        uniq = np.unique(sizes)
        if len(uniq) <= 20:
            hist = {str(int(s)): int((sizes == s).sum()) for s in uniq}
        else:
            hist = {}
            lo = 1
            while lo <= sizes.max():
                hi = lo * 2 - 1
                c = int(((sizes >= lo) & (sizes <= hi)).sum())
                if c:
                    hist[f"{lo}" if lo == hi else f"{lo}-{hi}"] = c
                lo *= 2
        # classes per group
        order = np.lexsort((self.labels, self.group))
        g_sorted, l_sorted = self.group[order], self.labels[order]
        pair_first = np.ones(len(order), dtype=bool)
        pair_first[1:] = (g_sorted[1:] != g_sorted[:-1]) | (l_sorted[1:] != l_sorted[:-1])
        n_cls = np.bincount(g_sorted[pair_first], minlength=n_groups)
        mixed_ids = np.flatnonzero(n_cls > 1)
        mixed = []
        for g in mixed_ids[:max_listed]:
            members = np.flatnonzero(self.group == g)
            counts = Counter(CLASS_NAMES[self.labels[i]] for i in members)
            minority = sorted(members, key=lambda i: (counts[CLASS_NAMES[self.labels[i]]], self.paths[i]))
            mixed.append(
                {
                    "group": int(g),
                    "size": int(len(members)),
                    "classes": dict(sorted(counts.items())),
                    "examples": [self.paths[i] for i in minority[:3]],
                }
            )
        out = {
            "method": self.method,
            "threshold": self.threshold,
            "n_images": len(self.paths),
            "n_groups": n_groups,
            "n_singletons": int((sizes == 1).sum()),
            "n_unreadable": int(self.unreadable.sum()) if self.unreadable is not None else 0,
            "group_size": {
                "min": int(sizes.min()) if n_groups else 0,
                "median": float(np.median(sizes)) if n_groups else 0.0,
                "mean": round(float(sizes.mean()), 3) if n_groups else 0.0,
                "max": int(sizes.max()) if n_groups else 0,
            },
            "size_histogram": hist,
            "classes_per_group": {str(int(k)): int((n_cls == k).sum()) for k in np.unique(n_cls)},
            "n_mixed_class_groups": int(len(mixed_ids)),
            "mixed_class_groups": mixed,
            "positions_inferred": round(float((self.position >= 0).mean()), 4) if len(self.position) else 0.0,
        }
        if self.method == "images":
            multi = self.weakest_link[~np.isnan(self.weakest_link)] if len(self.weakest_link) else np.zeros(0)
            weakest = float(multi.min()) if len(multi) else None
            strongest = self.strongest_between
            out["separation"] = {
                "weakest_link_within": None if weakest is None else round(weakest, 4),
                "strongest_between": None if strongest is None else round(float(strongest), 4),
                "gap": None if weakest is None or strongest is None else round(weakest - float(strongest), 4),
            }
        return out


# --------------------------------------------------------------------------------------
# features and similarity (shared with alzmri.data.audit)


@dataclass(eq=False)
class SimilarityFeatures:
    """Per-image features for :func:`similar_pairs` (built by :func:`similarity_features`).

    Attributes
    ----------
    coarse, coarse_flip : ndarray of shape (n, 1024), dtype float32
        Raw 32 x 32 pixels, z-normalised (rows of unit norm), and of the mirrored image.
    fine_raw : ndarray of shape (n, S*S), dtype float32
        Laplacian-of-Gaussian image (before normalisation), rotated during refinement.
    fine, fine_flip : ndarray of shape (n, S*S), dtype float32
        ``fine_raw`` z-normalised, and of the mirrored image.
    foreground : ndarray of shape (n,), dtype float32
        Fraction of pixels brighter than 20/255 (brain cross-section).
    valid : ndarray of shape (n,), dtype bool
        False for unreadable or constant images (all their similarities are 0).
    size : int
        Side S of the fine grid in pixels.
    aspect : ndarray of shape (n,), dtype float32
        Height / width of each original file (1 for square files), so that the rotation
        search rotates in the file's frame rather than the squashed square one.
    """

    coarse: np.ndarray
    coarse_flip: np.ndarray
    fine_raw: np.ndarray
    fine: np.ndarray
    fine_flip: np.ndarray
    foreground: np.ndarray
    valid: np.ndarray
    size: int
    aspect: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.valid)

    def subset(self, idx) -> "SimilarityFeatures":
        """Features of the images ``idx`` (integer indices or boolean mask), in that order."""
        idx = np.asarray(idx)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        return SimilarityFeatures(
            self.coarse[idx],
            self.coarse_flip[idx],
            self.fine_raw[idx],
            self.fine[idx],
            self.fine_flip[idx],
            self.foreground[idx],
            self.valid[idx],
            self.size,
            None if self.aspect is None else self.aspect[idx],
        )


def _zrows(x: np.ndarray) -> np.ndarray:
    """Rows centred and scaled to unit Euclidean norm (float32); constant rows become 0."""
    x = np.array(x, dtype=np.float32, copy=True).reshape(len(x), -1)
    x -= x.mean(axis=1, keepdims=True)
    norm = np.sqrt(np.einsum("ij,ij->i", x, x))
    scale = np.where(norm > 1e-6, 1.0 / np.maximum(norm, 1e-12), 0.0).astype(np.float32)
    x *= scale[:, None]
    return x


def _resize_stack(images: np.ndarray, size: int) -> np.ndarray:
    """Resize (n, S, S) images to (n, size, size) float32 (block mean, or bilinear PIL)."""
    n, s = images.shape[0], images.shape[1]
    if s == size:
        return images.astype(np.float32)
    if s % size == 0:
        f = s // size
        return images.reshape(n, size, f, size, f).astype(np.float32).mean(axis=(2, 4))
    from PIL import Image

    from alzmri.data.images import RESAMPLE

    out = np.empty((n, size, size), dtype=np.float32)
    for i in range(n):
        out[i] = np.asarray(Image.fromarray(np.ascontiguousarray(images[i]).astype(np.uint8)).resize((size, size), RESAMPLE))
    return out


def similarity_features(
    images: np.ndarray,
    *,
    valid: np.ndarray | None = None,
    aspect: np.ndarray | None = None,
    image_size: int = DEFAULT_IMAGE_SIZE,
    log_sigma: float = 1.0,
) -> SimilarityFeatures:
    """Features for slice similarity.

    Parameters
    ----------
    images : ndarray of shape (n, S, S), dtype uint8
        Grayscale images (any square size; resized to ``image_size``).
    valid : ndarray of shape (n,), dtype bool, optional
        False for rows to ignore (unreadable images).
    aspect : ndarray of shape (n,), optional
        Height / width of each original file (:func:`image_aspects`); default 1.
    image_size : int, default=64
        Side of the fine grid in pixels.
    log_sigma : float, default=1.0
        Laplacian-of-Gaussian sigma in pixels of a 64-pixel grid (scaled with
        ``image_size``).

    Returns
    -------
    SimilarityFeatures

    Raises
    ------
    AlzmriError
        ``images`` is not a stack of square 2-D images.
    """
    images = np.asarray(images)
    if images.ndim != 3 or images.shape[1] != images.shape[2]:
        raise AlzmriError(f"images must have shape (n, S, S); got {images.shape}")
    n = images.shape[0]
    fine_img = _resize_stack(images, image_size)
    coarse_img = _resize_stack(fine_img, _COARSE_SIZE) if image_size % _COARSE_SIZE == 0 else _resize_stack(images, _COARSE_SIZE)
    sigma = float(log_sigma) * image_size / 64.0
    # Laplacian of Gaussian within each image (never across the stack axis)
    lap = ndimage.gaussian_filter(fine_img, sigma=(0, sigma, sigma), order=(0, 2, 0))
    lap += ndimage.gaussian_filter(fine_img, sigma=(0, sigma, sigma), order=(0, 0, 2))
    fine_raw = (-lap).reshape(n, -1).astype(np.float32)
    ok = np.ones(n, dtype=bool) if valid is None else np.asarray(valid, dtype=bool).copy()
    ok &= fine_img.reshape(n, -1).std(axis=1) > 1e-3
    fine_raw[~ok] = 0.0
    coarse = _zrows(coarse_img)
    coarse_flip = _zrows(coarse_img[:, :, ::-1])
    fine = _zrows(fine_raw)
    fine_flip = _zrows(fine_raw.reshape(n, image_size, image_size)[:, :, ::-1])
    for a in (coarse, coarse_flip, fine, fine_flip):
        a[~ok] = 0.0
    fg = (fine_img > 20).reshape(n, -1).mean(axis=1).astype(np.float32)
    asp = np.ones(n, dtype=np.float32) if aspect is None else np.asarray(aspect, dtype=np.float32).reshape(n)
    return SimilarityFeatures(coarse, coarse_flip, fine_raw, fine, fine_flip, fg, ok, image_size, asp)


def _rotation_operator(size: int, degrees: float, aspect: float = 1.0) -> sp.csr_matrix:
    """Sparse (S*S, S*S) bilinear operator rotating an image by ``degrees`` about its centre.

    ``aspect`` is the original file's height / width: the square image is that file
    resized, so a rotation of the file is a rotation in the un-squashed frame.
    """
    c = (size - 1) / 2.0
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    a = math.radians(degrees)
    ca, sa = math.cos(a), math.sin(a)
    # source coordinates of each output pixel (inverse rotation in the file's frame)
    py, px = (yy - c) * aspect, xx - c
    sy = (ca * py - sa * px) / aspect + c
    sx = sa * py + ca * px + c
    y0, x0 = np.floor(sy), np.floor(sx)
    rows, cols, vals = [], [], []
    out_idx = np.arange(size * size)
    for dy in (0, 1):
        for dx in (0, 1):
            yi, xi = (y0 + dy).ravel(), (x0 + dx).ravel()
            w = ((1 - np.abs(sy.ravel() - yi)) * (1 - np.abs(sx.ravel() - xi)))
            ok = (yi >= 0) & (yi < size) & (xi >= 0) & (xi < size) & (w > 0)
            rows.append(out_idx[ok])
            cols.append((yi[ok] * size + xi[ok]).astype(np.int64))
            vals.append(w[ok].astype(np.float32))
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(size * size, size * size))


def _angles(max_rotation: float, rotation_step: float) -> np.ndarray:
    if max_rotation <= 0 or rotation_step <= 0:
        return np.zeros(1)
    pos = np.arange(rotation_step, max_rotation + 1e-9, rotation_step)
    return np.concatenate([-pos[::-1], [0.0], pos])


def _candidates(q: SimilarityFeatures, r: SimilarityFeatures, k: int, *, exclude_self: bool) -> np.ndarray:
    """Indices (n_q, k') of each query's nearest references by flip-invariant coarse correlation."""
    nq, nr = len(q.coarse), len(r.coarse)
    k = min(k, nr - (1 if exclude_self else 0))
    if k <= 0 or nq == 0:
        return np.zeros((nq, 0), dtype=np.int64)
    out = np.empty((nq, k), dtype=np.int64)
    invalid_r = ~r.valid
    for start in range(0, nq, _BLOCK):
        stop = min(nq, start + _BLOCK)
        s = q.coarse[start:stop] @ r.coarse.T
        np.maximum(s, q.coarse[start:stop] @ r.coarse_flip.T, out=s)
        s[:, invalid_r] = -np.inf
        if exclude_self:
            rows = np.arange(stop - start)
            s[rows, start + rows] = -np.inf
        part = np.argpartition(-s, k - 1, axis=1)[:, :k]
        # sort each row's candidates by similarity (deterministic order)
        ps = np.take_along_axis(s, part, axis=1)
        o = np.argsort(-ps, axis=1, kind="stable")
        out[start:stop] = np.take_along_axis(part, o, axis=1)
    return out


def _refine(q: SimilarityFeatures, r: SimilarityFeatures, cand: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """Fine similarity (n_q, k) of each query with its candidates: max over mirror and rotations.

    corr(R q, flip r) = corr(flip R q, r), so the query is rotated and mirrored and every
    variant is compared with the candidates' plain fine features in one batched product.
    """
    nq, k = cand.shape
    out = np.zeros((nq, k), dtype=np.float32)
    if nq == 0 or k == 0:
        return out
    size = q.size
    d = size * size
    mirror = np.arange(d).reshape(size, size)[:, ::-1].ravel()
    n_var = 2 * len(angles) if 0 in angles else 2 * (len(angles) + 1)
    aspect = np.ones(nq, dtype=np.float32) if q.aspect is None else np.round(q.aspect, 2)
    block = 128
    for asp in np.unique(aspect):
        rows = np.flatnonzero(aspect == asp)
        ops = [_rotation_operator(size, float(a), float(asp)) for a in angles if a != 0]
        for start in range(0, len(rows), block):
            idx = rows[start : start + block]
            bsz = len(idx)
            var = np.empty((n_var, bsz, d), dtype=np.float32)
            var[0] = q.fine[idx]
            var[1] = q.fine_flip[idx]
            raw_t = q.fine_raw[idx].T  # (d, B)
            for a, op in enumerate(ops):
                rot = np.asarray(op @ raw_t, dtype=np.float32).T  # (B, d)
                rot -= rot.mean(axis=1, keepdims=True)
                norm = np.sqrt(np.einsum("ij,ij->i", rot, rot))
                rot *= np.where(norm > 1e-6, 1.0 / np.maximum(norm, 1e-12), 0.0).astype(np.float32)[:, None]
                var[2 + 2 * a] = rot
                var[3 + 2 * a] = rot[:, mirror]
            ref = r.fine[cand[idx]]  # (B, k, d)
            sims = np.matmul(var.transpose(1, 0, 2), ref.transpose(0, 2, 1))  # (B, n_var, k)
            out[idx] = sims.max(axis=1)
    out[~q.valid] = 0.0
    return np.where(r.valid[cand], out, np.float32(0.0))


def similar_pairs(
    query: SimilarityFeatures,
    reference: SimilarityFeatures | None = None,
    *,
    n_neighbors: int = 10,
    min_similarity: float = -1.0,
    max_rotation: float = 10.0,
    rotation_step: float = 2.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each query image's most similar reference images, with their fine similarity.

    Candidates are each query's ``n_neighbors`` nearest references by flip-invariant
    coarse (32 x 32 raw pixel) correlation; their similarity is the fine (Laplacian of
    Gaussian) Pearson correlation maximised over the mirror image and over rotations of
    the query. See the module docstring.

    Parameters
    ----------
    query : SimilarityFeatures
    reference : SimilarityFeatures, optional
        Default ``query`` itself (an image is never its own neighbour).
    n_neighbors : int, default=10
        Candidates per query.
    min_similarity : float, default=-1.0
        Only pairs at or above this similarity are returned.
    max_rotation : float, default=10.0
        Largest rotation searched, in degrees (0 disables the search).
    rotation_step : float, default=2.0
        Rotation step in degrees. A copy rotated half a step off the grid scores about
        0.95 at 2 degrees and 0.99 at 1 degree (64 px, LoG features).

    Returns
    -------
    query_index : ndarray of shape (m,), dtype int64
    reference_index : ndarray of shape (m,), dtype int64
    similarity : ndarray of shape (m,), dtype float32
        Pearson correlation in [-1, 1] (1 = identical up to brightness, contrast, mirror
        and the searched rotations). Pairs are directed: with ``reference=None`` a pair
        can appear once from each side.
    """
    self_search = reference is None
    ref = query if reference is None else reference
    if query.size != ref.size:
        raise AlzmriError(f"query and reference features differ in size ({query.size} vs {ref.size}); build both with the same image_size")
    cand = _candidates(query, ref, int(n_neighbors), exclude_self=self_search)
    with _single_thread_blas():  # many small products: threads cost more than they give
        sims = _refine(query, ref, cand, _angles(max_rotation, rotation_step))
    qi = np.repeat(np.arange(len(cand), dtype=np.int64), cand.shape[1])
    rj = cand.ravel().astype(np.int64)
    s = sims.ravel()
    keep = (s >= min_similarity) & query.valid[qi] & ref.valid[rj]
    return qi[keep], rj[keep], s[keep]


# --------------------------------------------------------------------------------------
# ordering within groups


def _fiedler_order(w: np.ndarray) -> np.ndarray:
    """Spectral seriation of a similarity matrix (m, m): indices in chain order.

    Gaussian affinity exp(-(1 - w) / tau) with tau the median distance from a slice to
    its nearest *distinct* slice (copies closer than :data:`_COPY_DISTANCE` are skipped,
    so that a set full of augmented copies still gets a useful width); the order is that
    of the Fiedler vector of the graph Laplacian.
    """
    m = len(w)
    if m < 2:
        return np.arange(m)
    d = np.clip(1.0 - w.astype(np.float64), 0.0, None)
    dd = np.where(d < _COPY_DISTANCE, np.inf, d)
    np.fill_diagonal(dd, np.inf)
    nn = dd.min(axis=1)
    nn = nn[np.isfinite(nn)]
    tau = max(float(np.median(nn)) if len(nn) else _COPY_DISTANCE, 1e-6)
    aff = np.exp(-d / tau)
    np.fill_diagonal(aff, 0.0)
    lap = np.diag(aff.sum(axis=1)) - aff
    _, vec = np.linalg.eigh(lap)
    return np.argsort(vec[:, 1], kind="stable")


def _two_opt(order: np.ndarray, dist: np.ndarray, max_passes: int = 20) -> np.ndarray:
    """Shorten an open path by segment reversals (2-opt); ``dist`` is (m, m)."""
    o = list(order)
    m = len(o)
    for _ in range(max_passes):
        improved = False
        for a in range(0, m - 1):
            for b in range(a + 1, m):
                before = (dist[o[a - 1], o[a]] if a > 0 else 0.0) + (dist[o[b], o[b + 1]] if b < m - 1 else 0.0)
                after = (dist[o[a - 1], o[b]] if a > 0 else 0.0) + (dist[o[a], o[b + 1]] if b < m - 1 else 0.0)
                if after < before - 1e-9:
                    o[a : b + 1] = o[a : b + 1][::-1]
                    improved = True
        if not improved:
            break
    return np.asarray(o, dtype=np.int64)


def _single_thread_blas():
    """Context limiting BLAS to one thread (no-op without threadpoolctl)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - scikit-learn depends on threadpoolctl
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _chain_orders(
    group: np.ndarray,
    n_groups: int,
    feats: SimilarityFeatures,
    wi: np.ndarray,
    wj: np.ndarray,
    ws: np.ndarray,
    bounds: np.ndarray,
) -> list[np.ndarray]:
    """Chain order of every group's readable members (image indices, in order).

    ``wi, wj, ws`` are the examined within-group pairs and their (rotation-searched)
    similarities, sorted by group; ``bounds[g]:bounds[g+1]`` are group ``g``'s pairs.
    Groups over :data:`MAX_POSITION_GROUP` are left out.
    """
    orders: list[np.ndarray] = []
    order_all = np.argsort(group, kind="stable")
    starts = np.searchsorted(group[order_all], np.arange(n_groups + 1))
    for g in range(n_groups):
        members = order_all[starts[g] : starts[g + 1]]
        members = np.sort(members[feats.valid[members]])
        m = len(members)
        if m == 0 or m > MAX_POSITION_GROUP:
            continue
        if m == 1:
            orders.append(members)
            continue
        fm = feats.fine[members]
        w = np.maximum(fm @ fm.T, fm @ feats.fine_flip[members].T)
        # rotation-searched similarities of the examined pairs replace the plain ones
        pi, pj, v = wi[bounds[g] : bounds[g + 1]], wj[bounds[g] : bounds[g + 1]], ws[bounds[g] : bounds[g + 1]]
        a = np.minimum(np.searchsorted(members, pi), m - 1)
        b = np.minimum(np.searchsorted(members, pj), m - 1)
        ok = (members[a] == pi) & (members[b] == pj)
        a, b, v = a[ok], b[ok], v[ok]
        w[a, b] = np.maximum(w[a, b], v)
        w[b, a] = w[a, b]
        o = _fiedler_order(w)
        if m <= _TWO_OPT_MAX:
            o = _two_opt(o, 1.0 - w.astype(np.float64))
        orders.append(members[o])
    return orders


def _orient(groups: list[np.ndarray], feats: SimilarityFeatures, n_bins: int = 8) -> list[np.ndarray]:
    """Flip chain orders so that all groups run the same way (position 0 = larger cross-section)."""
    if not groups:
        return groups

    def rel(o: np.ndarray) -> np.ndarray:
        m = len(o)
        u = np.arange(m) / (m - 1) if m > 1 else np.zeros(1)
        return np.minimum((u * n_bins).astype(int), n_bins - 1)

    # start: each group oriented so that its foreground area decreases along the chain
    oriented = []
    for o in groups:
        if len(o) >= 2:
            fg = feats.foreground[o]
            slope = np.polyfit(np.arange(len(o)), fg, 1)[0] if len(o) > 2 else fg[-1] - fg[0]
            oriented.append(o[::-1] if slope > 0 else o)
        else:
            oriented.append(o)
    for _ in range(2):
        multi = [o for o in oriented if len(o) >= 3]
        if not multi:
            break
        members = np.concatenate(multi)
        bins = np.concatenate([rel(o) for o in multi])
        onehot = sp.csr_matrix((np.ones(len(bins)), (bins, np.arange(len(bins)))), shape=(n_bins, len(bins)))
        tmpl = np.asarray(onehot @ feats.coarse[members].astype(np.float64))
        cnt = np.bincount(bins, minlength=n_bins).astype(np.float64)
        if (cnt == 0).any():
            break
        tmpl /= cnt[:, None]
        new = []
        for o in oriented:
            if len(o) < 2:
                new.append(o)
                continue
            b = rel(o)
            x = np.maximum(feats.coarse[o] @ tmpl.T, feats.coarse_flip[o] @ tmpl.T)  # (m, bins)
            fwd = x[np.arange(len(o)), b].sum()
            bwd = x[np.arange(len(o)), b[::-1]].sum()
            new.append(o[::-1] if bwd > fwd + 1e-9 else o)
        oriented = new
    # global direction: the cross-section shrinks along increasing position
    trend = 0.0
    for o in oriented:
        if len(o) >= 2:
            trend += float(np.corrcoef(np.arange(len(o)), feats.foreground[o])[0, 1]) if feats.foreground[o].std() > 0 else 0.0
    if trend > 0:
        oriented = [o[::-1] for o in oriented]
    return oriented


# --------------------------------------------------------------------------------------
# grouping


def _canonical_ids(raw: np.ndarray, paths: list[str]) -> np.ndarray:
    """Renumber group labels 0.. by each group's smallest path."""
    raw = np.asarray(raw)
    _, inv = np.unique(raw, return_inverse=True)
    first: dict[int, str] = {}
    for i, g in enumerate(inv):
        p = paths[i]
        if g not in first or p < first[g]:
            first[g] = p
    order = sorted(first, key=lambda g: first[g])
    remap = np.empty(len(order), dtype=np.int64)
    for new, old in enumerate(order):
        remap[old] = new
    return remap[inv].astype(np.int64)


def _filename_groups(paths: list[str], id_pattern: str) -> tuple[list[str], list[int | None]] | None:
    rx = re.compile(id_pattern, re.IGNORECASE)
    srx = re.compile(SLICE_NUMBER_PATTERN)
    ids: list[str] = []
    slices: list[int | None] = []
    for p in paths:
        base = PurePosixPath(p).name
        m = rx.search(base)
        if m is None:
            return None
        ids.append((m.group(1) if m.groups() else m.group(0)).upper())
        s = srx.search(base)
        slices.append(int(s.group(1)) if s else None)
    return ids, slices


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
            for g in range(int(group.max()) + 1 if n else 0):
                members = np.flatnonzero(group == g)
                if all(slices[i] is not None for i in members):
                    order = sorted(members, key=lambda i: (slices[i], paths[i]))
                    position[np.asarray(order)] = np.arange(len(order))
            return GroupResult(
                paths=list(paths),
                labels=labels,
                group=group,
                position=position,
                method="filename",
                threshold=None,
                weakest_link=np.full(int(group.max()) + 1 if n else 0, np.nan),
                unreadable=np.zeros(n, dtype=bool),
                params={"id_pattern": id_pattern},
            )

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
    n_groups = int(group.max()) + 1 if n else 0

    # separation diagnostics
    between = group[ei] != group[ej]
    strongest = float(usim[between].max()) if between.any() else None
    # bottleneck of each group's maximum spanning tree over its links
    weakest = np.full(n_groups, np.nan)
    if link.any():
        w = sp.coo_matrix((2.0 - usim[link].astype(np.float64), (ei[link], ej[link])), shape=(n, n)).tocsr()
        mst = minimum_spanning_tree(w).tocoo()
        sim_mst = 2.0 - mst.data
        gm = group[mst.row]
        np.fmin.at(weakest, gm, sim_mst)

    # positions
    position = np.full(n, -1, dtype=np.int64)
    within = group[ei] == group[ej]
    w_order = np.argsort(group[ei[within]], kind="stable")
    wi, wj, ws = ei[within][w_order], ej[within][w_order], usim[within][w_order]
    wg = group[wi]
    bounds = np.searchsorted(wg, np.arange(n_groups + 1))
    with _single_thread_blas():  # many tiny products: BLAS threads only add overhead
        orders = _chain_orders(group, n_groups, feats, wi, wj, ws, bounds)
        oriented = _orient(orders, feats)
    for o in oriented:
        position[o] = np.arange(len(o))

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
    )


# --------------------------------------------------------------------------------------
# CSV


GROUP_COLUMNS = ("path", "class", "group", "position")


def write_groups_csv(path: str | os.PathLike, index: DatasetIndex, result: GroupResult) -> Path:
    """Write groups as CSV (atomically): ``path``, ``class``, ``group``, ``position``.

    Parameters
    ----------
    path : path-like
        Output file.
    index : DatasetIndex
        The index ``result`` was computed for.
    result : GroupResult

    Returns
    -------
    Path
        The written file. ``path`` column: POSIX relative to the data folder; ``class``:
        canonical class name; ``position``: empty where not inferable.

    Raises
    ------
    AlzmriError
        ``result`` does not belong to ``index``.
    """
    if list(result.paths) != index.paths:
        raise AlzmriError(f"{path}: the groups were computed for a different dataset than {index.root}; recompute them for this data")
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(GROUP_COLUMNS)
    for rec, g, pos in zip(index.records, result.group, result.position):
        w.writerow([rec.path, rec.class_name, int(g), int(pos) if pos >= 0 else ""])
    return atomic_write_text(path, buf.getvalue())


def read_groups_csv(path: str | os.PathLike, index: DatasetIndex) -> GroupResult:
    """Read a groups CSV and align it with ``index``.

    Parameters
    ----------
    path : path-like
        CSV with at least the columns ``path`` and ``group``; ``class`` and ``position``
        are checked and read when present. Group values may be any labels (integers,
        subject IDs); equal values are one group.
    index : DatasetIndex

    Returns
    -------
    GroupResult
        ``method="csv"``, aligned with ``index.records``; group ids are renumbered by each
        group's first path, so a file written by :func:`write_groups_csv` reads back with
        the same ids.

    Raises
    ------
    AlzmriError
        The file is missing or not a CSV; a required column is missing; a path is listed
        twice, is not in the dataset, or a dataset image is not listed; a class disagrees
        with the data folder; a group is empty or a position is not an integer.
    """
    path = Path(path)
    fix = "write it again with the groups command for this data folder"
    if not path.is_file():
        raise AlzmriError(f"{path}: groups file not found; {fix}")
    try:
        text = path.read_text(encoding="utf-8-sig")
        reader = csv.DictReader(io.StringIO(text))
        header = list(reader.fieldnames or [])
        rows = list(reader)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise AlzmriError(f"{path}: not a groups CSV ({exc}); {fix}") from None
    missing = [c for c in ("path", "group") if c not in header]
    if missing:
        raise AlzmriError(f"{path}: missing column(s) {', '.join(missing)} (has {', '.join(header) or 'none'}); {fix}")
    pos_of = {p: i for i, p in enumerate(index.paths)}
    raw: list[str | None] = [None] * len(index)
    position = np.full(len(index), -1, dtype=np.int64)
    unknown: list[str] = []
    for line, row in enumerate(rows, start=2):
        p = (row.get("path") or "").strip()
        i = pos_of.get(p)
        if i is None:
            unknown.append(p)
            continue
        if raw[i] is not None:
            raise AlzmriError(f"{path}:{line}: {p} is listed twice; keep one row per image")
        g = (row.get("group") or "").strip()
        if not g:
            raise AlzmriError(f"{path}:{line}: {p} has an empty group; give every image a group")
        if "class" in header and (row.get("class") or "").strip():
            label = class_index(row["class"])
            if label != index.records[i].label:
                raise AlzmriError(
                    f"{path}:{line}: {p} is class {row['class']!r} in the file but {CLASS_NAMES[index.records[i].label]} in {index.root}; {fix}"
                )
        if "position" in header:
            v = (row.get("position") or "").strip()
            if v:
                try:
                    position[i] = int(v)
                except ValueError:
                    raise AlzmriError(f"{path}:{line}: position {v!r} is not an integer; leave it empty when unknown") from None
        raw[i] = g
    if unknown:
        raise AlzmriError(
            f"{path}: {len(unknown)} path(s) are not in {index.root} (first: {unknown[0]!r}); point --data at the dataset the groups were made for, or {fix}"
        )
    absent = [index.paths[i] for i, g in enumerate(raw) if g is None]
    if absent:
        raise AlzmriError(f"{path}: {len(absent)} image(s) of {index.root} are not listed (first: {absent[0]!r}); {fix}")
    group = _canonical_ids(np.asarray([str(g) for g in raw]), index.paths)
    n_groups = int(group.max()) + 1 if len(group) else 0
    return GroupResult(
        paths=index.paths,
        labels=index.labels,
        group=group,
        position=position,
        method="csv",
        threshold=None,
        weakest_link=np.full(n_groups, np.nan),
        unreadable=np.zeros(len(index), dtype=bool),
        params={"source": str(path)},
    )


# --------------------------------------------------------------------------------------
# on-disk cache

GROUPS_CACHE_VERSION = 1


def groups_cache_key(index: DatasetIndex, **params) -> str:
    """Hex key of the cached groups of ``index`` recovered with ``params`` (see :func:`load_or_recover_groups`)."""
    import hashlib
    import json

    spec = {"version": GROUPS_CACHE_VERSION, "content": index.content_hash(), "params": {k: params[k] for k in sorted(params)}}
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:32]


def load_or_recover_groups(
    index: DatasetIndex,
    images=None,
    *,
    cache_dir: str | os.PathLike | None = None,
    use_cache: bool = True,
    **params,
) -> GroupResult:
    """:func:`recover_groups`, computed once per dataset and settings and cached on disk.

    The result is stored in ``<cache_dir>/groups/<key>.npz``, where ``key`` hashes the
    dataset's content hash (every path, class and file hash) and the recovery parameters
    (``threshold``, ``n_neighbors``, ...; defaults included), so a changed dataset or
    setting recovers again. Writes are atomic.

    Parameters
    ----------
    index : DatasetIndex
    images : CachedImages or ndarray of shape (n_images, S, S), dtype uint8, optional
        Passed to :func:`recover_groups` on a cache miss.
    cache_dir : path-like, optional
        Default :func:`alzmri.data.download.default_cache_dir` (``$ALZMRI_CACHE_DIR``).
    use_cache : bool, default=True
        False recovers without reading or writing the cache.
    **params
        Keyword arguments of :func:`recover_groups` (``threshold``, ``n_neighbors``,
        ``mutual``, ``image_size``, ``log_sigma``, ``max_rotation``, ``rotation_step``,
        ``use_filenames``, ``id_pattern``).

    Returns
    -------
    GroupResult
        ``params["cache"]`` is ``"hit"`` or ``"miss"``.

    Raises
    ------
    AlzmriError
        As :func:`recover_groups`.
    """
    import inspect
    import json
    import tempfile

    from alzmri.data.download import default_cache_dir

    sig = inspect.signature(recover_groups)
    unknown = sorted(set(params) - set(sig.parameters) - {"cache_dir"})
    if unknown:
        raise AlzmriError(f"unknown group recovery setting(s) {', '.join(unknown)}")
    full = {k: p.default for k, p in sig.parameters.items() if p.default is not inspect.Parameter.empty and k not in ("images", "cache_dir")}
    full.update(params)
    key = groups_cache_key(index, **full)
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = folder / "groups" / f"{key}.npz"
    n = len(index)
    if use_cache and path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                group, position = z["group"].astype(np.int64), z["position"].astype(np.int64)
                meta = json.loads(str(z["meta"]))
                weakest, unreadable = z["weakest_link"].astype(np.float64), z["unreadable"].astype(bool)
            if len(group) == n:
                return GroupResult(
                    paths=index.paths,
                    labels=index.labels,
                    group=group,
                    position=position,
                    method=meta["method"],
                    threshold=meta["threshold"],
                    weakest_link=weakest,
                    strongest_between=meta["strongest_between"],
                    unreadable=unreadable,
                    params={**meta["params"], "cache": "hit"},
                )
        except (OSError, KeyError, ValueError):
            pass  # a broken cache file is recomputed below
    res = recover_groups(index, images, cache_dir=cache_dir, **params)
    if use_cache:
        meta = {"method": res.method, "threshold": res.threshold, "strongest_between": res.strongest_between, "params": res.params}
        tmp = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{key}.", suffix=".npz.tmp")
            with os.fdopen(fd, "wb") as f:
                np.savez(
                    f,
                    group=res.group,
                    position=res.position,
                    weakest_link=np.asarray(res.weakest_link, dtype=np.float64),
                    unreadable=np.zeros(n, bool) if res.unreadable is None else np.asarray(res.unreadable, bool),
                    meta=np.array(json.dumps(meta, default=str)),
                )
            os.replace(tmp, path)
        except OSError:
            # a read-only cache costs time, not correctness
            if tmp is not None:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
    res.params = {**res.params, "cache": "miss"}
    return res
