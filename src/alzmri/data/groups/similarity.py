"""Slice similarity: Laplacian-of-Gaussian features, candidate search and the rotation-searched refinement.

Shared by group recovery and :mod:`alzmri.data.audit`; see :mod:`alzmri.data.groups` for the method.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy import ndimage

from alzmri.errors import AlzmriError

#: Working image side in pixels.
DEFAULT_IMAGE_SIZE = 64
_COARSE_SIZE = 32
_BLOCK = 512

@dataclass(eq=False)
class SimilarityFeatures:
    """Per-image features for :func:`similar_pairs` (built by :func:`similarity_features`).

    Attributes
    ----------
    coarse : ndarray of shape (n, 1024), dtype float32
        Raw 32 x 32 pixels, z-normalised (rows of unit norm); :meth:`coarse_flipped`
        gives the mirrored images' rows.
    fine_raw : ndarray of shape (n, S*S), dtype float32
        Laplacian-of-Gaussian image (before normalisation), rotated during refinement.
    fine : ndarray of shape (n, S*S), dtype float32
        ``fine_raw`` z-normalised; :meth:`fine_flipped` gives the mirrored images' rows
        (mirrors are not stored: 44,000 images would need 0.9 GB more).
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
    fine_raw: np.ndarray
    fine: np.ndarray
    foreground: np.ndarray
    valid: np.ndarray
    size: int
    aspect: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.valid)

    def coarse_flipped(self, idx) -> np.ndarray:
        """Rows of :attr:`coarse` of the left-right mirrored images ``idx``, shape (m, 1024)."""
        return self.coarse[idx][:, _mirror_index(_COARSE_SIZE)]

    def fine_flipped(self, idx) -> np.ndarray:
        """Rows of :attr:`fine` of the left-right mirrored images ``idx``, shape (m, S*S)."""
        return self.fine[idx][:, _mirror_index(self.size)]

    def subset(self, idx) -> "SimilarityFeatures":
        """Features of the images ``idx`` (integer indices or boolean mask), in that order."""
        idx = np.asarray(idx)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        return SimilarityFeatures(
            self.coarse[idx],
            self.fine_raw[idx],
            self.fine[idx],
            self.foreground[idx],
            self.valid[idx],
            self.size,
            None if self.aspect is None else self.aspect[idx],
        )


def _mirror_index(size: int) -> np.ndarray:
    """Column permutation of a flattened (size, size) image that mirrors it left-right."""
    return np.arange(size * size).reshape(size, size)[:, ::-1].ravel()


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
    d = image_size * image_size
    sigma = float(log_sigma) * image_size / 64.0
    ok = np.ones(n, dtype=bool) if valid is None else np.asarray(valid, dtype=bool).copy()
    coarse = np.empty((n, _COARSE_SIZE * _COARSE_SIZE), dtype=np.float32)
    fine_raw = np.empty((n, d), dtype=np.float32)
    fg = np.empty(n, dtype=np.float32)
    # in blocks: the float temporaries of 44,000 images would need several GB at once
    for start in range(0, n, 2048):
        sl = slice(start, min(n, start + 2048))
        fine_img = _resize_stack(images[sl], image_size)
        coarse_img = _resize_stack(fine_img, _COARSE_SIZE) if image_size % _COARSE_SIZE == 0 else _resize_stack(images[sl], _COARSE_SIZE)
        # Laplacian of Gaussian within each image (never across the stack axis)
        lap = ndimage.gaussian_filter(fine_img, sigma=(0, sigma, sigma), order=(0, 2, 0))
        lap += ndimage.gaussian_filter(fine_img, sigma=(0, sigma, sigma), order=(0, 0, 2))
        fine_raw[sl] = -lap.reshape(len(lap), -1)
        ok[sl] &= fine_img.reshape(len(fine_img), -1).std(axis=1) > 1e-3
        coarse[sl] = _zrows(coarse_img)
        fg[sl] = (fine_img > 20).reshape(len(fine_img), -1).mean(axis=1)
    fine_raw[~ok] = 0.0
    fine = np.empty_like(fine_raw)
    for start in range(0, n, 2048):
        fine[start : start + 2048] = _zrows(fine_raw[start : start + 2048])
    for a in (coarse, fine):
        a[~ok] = 0.0
    asp = np.ones(n, dtype=np.float32) if aspect is None else np.asarray(aspect, dtype=np.float32).reshape(n)
    return SimilarityFeatures(coarse, fine_raw, fine, fg, ok, image_size, asp)


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


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the ``k`` largest scores of every row, largest first.

    torch's ``topk`` (about 8x faster than ``numpy.argpartition`` plus a sort on 2 cores).

    Parameters
    ----------
    scores : ndarray of shape (m, n), dtype float32
    k : int
        At most ``n``.

    Returns
    -------
    ndarray of shape (m, k), dtype int64
    """
    import torch

    _, idx = torch.topk(torch.from_numpy(np.ascontiguousarray(scores, dtype=np.float32)), int(k), dim=1, largest=True, sorted=True)
    return idx.numpy().astype(np.int64)


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
        # corr(q, mirror r) = corr(mirror q, r): mirror the query block
        np.maximum(s, q.coarse_flipped(slice(start, stop)) @ r.coarse.T, out=s)
        s[:, invalid_r] = -np.inf
        if exclude_self:
            rows = np.arange(stop - start)
            s[rows, start + rows] = -np.inf
        out[start:stop] = top_k(s, k)
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
            var[1] = q.fine_flipped(idx)
            raw_t = np.ascontiguousarray(q.fine_raw[idx].T)  # (d, B), contiguous once for all angles
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


def pair_similarity(feats: SimilarityFeatures, qi: np.ndarray, rj: np.ndarray, *, angles: np.ndarray | None = None) -> np.ndarray:
    """Fine similarity of given image pairs, with a (finer) rotation search.

    Parameters
    ----------
    feats : SimilarityFeatures
    qi, rj : ndarray of shape (m,), dtype int64
        Image pairs (rows of ``feats``).
    angles : ndarray of float, optional
        Rotations searched, in degrees (0 and the mirror are always included); default
        the odd degrees from -9 to 9, the midpoints of :func:`similar_pairs`' default
        2-degree grid, so that together they search every degree.

    Returns
    -------
    ndarray of shape (m,), dtype float32
        As the similarity of :func:`similar_pairs`.
    """
    qi, rj = np.asarray(qi, dtype=np.int64), np.asarray(rj, dtype=np.int64)
    if len(qi) == 0:
        return np.zeros(0, dtype=np.float32)
    with _single_thread_blas():
        sims = _refine(feats.subset(qi), feats, rj[:, None], np.arange(-9.0, 10.0, 2.0) if angles is None else np.asarray(angles, dtype=float))
    return sims[:, 0]


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



def _single_thread_blas():
    """Context limiting BLAS to one thread (no-op without threadpoolctl)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - scikit-learn depends on threadpoolctl
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")
