"""Pose-invariant slice similarity: a slice seen through rotation, shift, zoom and flips.

Augmented copies in the public "augmented" releases are rotated (up to 15 degrees),
shifted (up to 15 % of the side), zoomed (0.8-1.25), perspective-distorted, flipped,
blurred, sharpened and intensity-changed copies of a slice. The fine similarity of
:mod:`alzmri.data.groups.similarity` compares slices in the image frame and only searches
small rotations, so a shifted or zoomed copy does not match its source. This module
compares slices in a frame that travels with the brain:

1. **Pose.** The brain lies on a dark background. With the background level (median of
   the image border) subtracted and the intensity scaled by the 95th percentile, the
   intensity-weighted centroid and radius of gyration of each slice give its translation
   and zoom. Blur adds only its variance to the second moment, and linear brightness or
   contrast changes cancel, so the pose survives the intensity augmentations.
2. **Polar features.** The Laplacian of Gaussian of the slice (sigma 1.5 px at 64 px,
   coarser than the blur of the augmentations) is sampled on a polar grid about the
   centroid, with radii in units of the radius of gyration (``n_rings`` x ``n_angles``),
   rows weighted by sqrt(radius) so that the correlation weighs area evenly, and
   z-normalised. A rotation of the slice is a circular shift along the angle axis and any
   mirror (left-right or up-down flip) a reversal of it, so the Pearson correlation
   maximised over shifts and reversal (computed with one FFT per pair) is invariant to
   rotation, flips, translation and zoom (Reddy and Chatterji 1996 use the same polar
   idea for rotation and scale registration).
3. **Candidates.** The magnitudes of the angular Fourier coefficients of each ring are
   invariant to rotation and mirror too: their cosine similarity ranks candidate pairs
   before the exact polar correlation verifies them.
4. **Biased poses.** A copy zoomed in and shifted loses part of the brain at the frame
   edge, which biases its pose; :mod:`alzmri.data.groups.copies` retries such images at
   poses moved towards the cut edge and scaled up.

References
----------
Reddy, B. S., and Chatterji, B. N. (1996). An FFT-based technique for translation,
rotation, and scale-invariant image registration. *IEEE Trans. Image Process.* 5(8),
1266-1271.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from alzmri.data.groups.similarity import top_k

#: Laplacian-of-Gaussian sigma in pixels of a 64-pixel image (coarser than augmentation blur).
POSE_LOG_SIGMA = 1.5
N_RINGS = 24
N_ANGLES = 96
#: Outermost ring, in radii of gyration (the brain edge lies near 1.3).
EXTENT = 1.0
N_HARMONICS = 16
_BLOCK = 1024


@dataclass(eq=False)
class PoseFeatures:
    """Per-image pose and polar features (built by :func:`pose_features`).

    Row ``i`` of every array belongs to image ``i``; :func:`pose_candidates` and
    :func:`pose_similarity` compare images by these rows.

    Attributes
    ----------
    pose : ndarray of shape (n, 3), dtype float32
        Centroid row, centroid column and radius of gyration, in pixels of the working grid.
    spectrum : ndarray of shape (n, N_RINGS, N_ANGLES // 2 + 1), dtype complex64
        Angular FFT of the z-normalised polar features.
    descriptor : ndarray of shape (n, N_RINGS * N_HARMONICS), dtype float32
        Rotation- and mirror-invariant ring spectra magnitudes, rows of unit norm.
    valid : ndarray of shape (n,), dtype bool
        False for unreadable, blank or constant images.
    """

    pose: np.ndarray
    spectrum: np.ndarray
    descriptor: np.ndarray
    valid: np.ndarray

    def __len__(self) -> int:
        return len(self.valid)


def _log_images(images: np.ndarray) -> np.ndarray:
    x = images.astype(np.float32)
    s = POSE_LOG_SIGMA * images.shape[1] / 64.0
    lap = ndimage.gaussian_filter(x, sigma=(0, s, s), order=(0, 2, 0))
    lap += ndimage.gaussian_filter(x, sigma=(0, s, s), order=(0, 0, 2))
    return -lap


def background_and_peak(x: np.ndarray, q: float = 95) -> tuple[np.ndarray, np.ndarray]:
    """Background level (median of the frame border) and the ``q``-th intensity percentile.

    Parameters
    ----------
    x : ndarray of shape (n, H, W), dtype float32
    q : float, default=95

    Returns
    -------
    bg, peak : ndarray of shape (n,), dtype float32
    """
    border = np.concatenate([x[:, 0], x[:, -1], x[:, :, 0], x[:, :, -1]], axis=1)
    return np.median(border, axis=1), np.percentile(x.reshape(len(x), -1), q, axis=1)


def estimate_pose(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centroid and radius of gyration of the brain in each slice.

    Parameters
    ----------
    images : ndarray of shape (n, S, S)
        Grayscale slices (any dtype), dark background.

    Returns
    -------
    pose : ndarray of shape (n, 3), dtype float32
        Row and column of the intensity-weighted centroid and the radius of gyration
        sqrt(E[r^2]), in pixels; weights are intensities above the border median, scaled
        by the 95th percentile.
    valid : ndarray of shape (n,), dtype bool
        False where the image has no contrast above its border.
    """
    images = np.asarray(images)
    if len(images) > _BLOCK:  # in blocks: float temporaries of the whole stack would be GBs
        parts = [estimate_pose(images[i : i + _BLOCK]) for i in range(0, len(images), _BLOCK)]
        return np.concatenate([p for p, _ in parts]), np.concatenate([v for _, v in parts])
    x = images.astype(np.float32)
    n, h, w = x.shape
    bg, hi = background_and_peak(x)
    span = hi - bg
    valid = span > 1e-3
    wgt = np.clip((x - bg[:, None, None]) / np.where(valid, span, 1.0)[:, None, None], 0.0, None)
    tot = wgt.sum(axis=(1, 2))
    valid &= tot > 1e-6
    tot = np.where(valid, tot, 1.0)
    yy = np.arange(h, dtype=np.float32)
    xx = np.arange(w, dtype=np.float32)
    wy, wx = wgt.sum(axis=2), wgt.sum(axis=1)  # (n, h), (n, w)
    cy, cx = wy @ yy / tot, wx @ xx / tot
    var = (wy * (yy[None] - cy[:, None]) ** 2).sum(1) / tot + (wx * (xx[None] - cx[:, None]) ** 2).sum(1) / tot
    r = np.sqrt(np.maximum(var, 1e-6))
    pose = np.stack([cy, cx, r], axis=1).astype(np.float32)
    pose[~valid] = [h / 2, w / 2, min(h, w) / 4]
    return pose, valid


def _polar_grid() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r = (np.arange(N_RINGS) + 0.5) / N_RINGS * EXTENT
    th = 2 * np.pi * np.arange(N_ANGLES) / N_ANGLES
    weight = np.sqrt((np.arange(N_RINGS) + 0.5) / N_RINGS)[:, None].astype(np.float32)
    return r[:, None] * np.sin(th)[None], r[:, None] * np.cos(th)[None], weight


def _polar_spectra(log_images: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """(n, N_RINGS, N_ANGLES//2+1) complex64 spectra of the weighted, z-normalised polar samples."""
    dy, dx, weight = _polar_grid()
    n = len(log_images)
    out = np.empty((n, N_RINGS, N_ANGLES // 2 + 1), dtype=np.complex64)
    for start in range(0, n, _BLOCK):
        stop = min(n, start + _BLOCK)
        idx = np.arange(start, stop)
        cy, cx, rad = (pose[idx, k][:, None, None] for k in range(3))
        coords = np.stack([np.broadcast_to(idx[:, None, None], (len(idx), N_RINGS, N_ANGLES)).astype(np.float32) - start,
                           cy + rad * dy, cx + rad * dx])
        p = ndimage.map_coordinates(log_images[start:stop], coords, order=1, mode="constant", cval=0.0).astype(np.float32)
        p -= p.mean(axis=(1, 2), keepdims=True)
        p *= weight
        p /= np.maximum(np.sqrt((p * p).sum(axis=(1, 2), keepdims=True)), 1e-6)
        out[start:stop] = np.fft.rfft(p, axis=2)
    return out


def _descriptor(spectrum: np.ndarray) -> np.ndarray:
    d = np.abs(spectrum[:, :, :N_HARMONICS]).reshape(len(spectrum), -1).astype(np.float32)
    d -= d.mean(axis=1, keepdims=True)
    d /= np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-6)
    return d


def pose_features(images: np.ndarray, *, valid: np.ndarray | None = None) -> PoseFeatures:
    """Pose and rotation/flip/shift/zoom-invariant polar features of every slice.

    Parameters
    ----------
    images : ndarray of shape (n, S, S), dtype uint8
        Grayscale slices (the 64 x 64 decode-once cache).
    valid : ndarray of shape (n,), dtype bool, optional
        False for unreadable images.

    Returns
    -------
    PoseFeatures
    """
    images = np.asarray(images)
    pose, ok = estimate_pose(images)
    if valid is not None:
        ok &= np.asarray(valid, dtype=bool)
    spec = np.empty((len(images), N_RINGS, N_ANGLES // 2 + 1), dtype=np.complex64)
    for start in range(0, len(images), _BLOCK):  # in blocks: float temporaries stay small
        sl = slice(start, start + _BLOCK)
        spec[sl] = _polar_spectra(_log_images(images[sl]), pose[sl])
    spec[~ok] = 0
    desc = _descriptor(spec)
    desc[~ok] = 0
    return PoseFeatures(pose, spec, desc, ok)


def pose_candidates(feats: PoseFeatures, k: int, *, query: np.ndarray | None = None, reference: np.ndarray | None = None) -> np.ndarray:
    """Each query's ``k`` nearest references by invariant descriptor (cosine), excluding itself.

    Parameters
    ----------
    feats : PoseFeatures
    k : int
    query, reference : ndarray of int, optional
        Image indices (default all).

    Returns
    -------
    ndarray of shape (len(query), k'), dtype int64
        Image indices (into ``feats``), best first; k' = min(k, len(reference) - 1).
    """
    q = np.arange(len(feats)) if query is None else np.asarray(query, dtype=np.int64)
    r = np.arange(len(feats)) if reference is None else np.asarray(reference, dtype=np.int64)
    k = min(int(k), len(r) - 1)
    if k <= 0 or len(q) == 0:
        return np.zeros((len(q), 0), dtype=np.int64)
    rd = feats.descriptor[r]
    invalid = ~feats.valid[r]
    out = np.empty((len(q), k), dtype=np.int64)
    for start in range(0, len(q), _BLOCK):
        qi = q[start : start + _BLOCK]
        s = feats.descriptor[qi] @ rd.T
        s[:, invalid] = -np.inf
        s[qi[:, None] == r[None, :]] = -np.inf
        out[start : start + len(qi)] = r[top_k(s, k)]
    return out


def _max_correlation(fa: np.ndarray, fb: np.ndarray) -> np.ndarray:
    """Max over circular shifts and reversal of the correlation of polar samples: (m,) from (m, R, F) spectra."""
    direct = np.fft.irfft((np.conj(fa) * fb).sum(axis=1), n=N_ANGLES, axis=-1)
    mirrored = np.fft.irfft((np.conj(fa) * np.conj(fb)).sum(axis=1), n=N_ANGLES, axis=-1)
    return np.maximum(direct.max(axis=-1), mirrored.max(axis=-1)).astype(np.float32)


def upright_match(feats: PoseFeatures, qi: np.ndarray, rj: np.ndarray, *, max_degrees: float = 7.5, max_scale: float = 0.05) -> np.ndarray:
    """Whether each pair matches without a geometric change: no rotation, flip up-down or zoom.

    The best alignment of the polar features is read off the correlation: a direct match
    at angle ~0, or (a brain slice is nearly left-right symmetric) a mirrored match whose
    mirror axis is the vertical one, within ``max_degrees``; and radii of gyration within
    ``max_scale`` (relative). Two slices of a registered release match upright; a copy
    that was rotated, flipped up-down or zoomed does not.

    Parameters
    ----------
    feats : PoseFeatures
    qi, rj : ndarray of shape (m,), dtype int64
    max_degrees : float, default=7.5
        Two steps of the polar grid (3.75 degrees each).
    max_scale : float, default=0.05

    Returns
    -------
    ndarray of shape (m,), dtype bool
    """
    qi, rj = np.asarray(qi, dtype=np.int64), np.asarray(rj, dtype=np.int64)
    if len(qi) == 0:
        return np.zeros(0, dtype=bool)
    if len(qi) > 8192:  # in chunks: two spectra of 9 kB per pair
        return np.concatenate([upright_match(feats, qi[i : i + 8192], rj[i : i + 8192], max_degrees=max_degrees, max_scale=max_scale)
                               for i in range(0, len(qi), 8192)])
    fa, fb = feats.spectrum[qi], feats.spectrum[rj]
    direct = np.fft.irfft((np.conj(fa) * fb).sum(axis=1), n=N_ANGLES, axis=-1)
    mirrored = np.fft.irfft((np.conj(fa) * np.conj(fb)).sum(axis=1), n=N_ANGLES, axis=-1)
    step = 360.0 / N_ANGLES
    use_mirror = mirrored.max(axis=-1) > direct.max(axis=-1)
    # a direct match at shift 0 is upright; a mirrored one is upright when its axis is vertical
    # (a left-right flip: theta -> 180 - theta, peak at shift N/2)
    shift = np.where(use_mirror, mirrored.argmax(axis=-1) - N_ANGLES // 2, direct.argmax(axis=-1))
    degrees = np.abs((shift * step + 180.0) % 360.0 - 180.0)
    scale = np.abs(np.log(feats.pose[qi, 2] / np.maximum(feats.pose[rj, 2], 1e-6)))
    return (degrees <= max_degrees) & (scale <= np.log1p(max_scale))


def pose_similarity(feats: PoseFeatures, qi: np.ndarray, rj: np.ndarray) -> np.ndarray:
    """Pose-invariant similarity of image pairs.

    Parameters
    ----------
    feats : PoseFeatures
    qi, rj : ndarray of shape (m,), dtype int64
        Query and reference image indices.

    Returns
    -------
    ndarray of shape (m,), dtype float32
        Pearson correlation of the polar LoG features in [-1, 1], maximised over rotation
        and mirror; 0 where either image is invalid. (A copy whose brain is cut by the
        frame has a biased pose: :func:`alzmri.data.groups.copies.attach_copies` retries
        such images at moved and scaled poses.)
    """
    qi, rj = np.asarray(qi, dtype=np.int64), np.asarray(rj, dtype=np.int64)
    out = np.zeros(len(qi), dtype=np.float32)
    step = 20000
    for start in range(0, len(qi), step):
        a, b = qi[start : start + step], rj[start : start + step]
        out[start : start + step] = _max_correlation(feats.spectrum[a], feats.spectrum[b])
    ok = feats.valid[qi] & feats.valid[rj]
    return np.where(ok, out, np.float32(0.0))
