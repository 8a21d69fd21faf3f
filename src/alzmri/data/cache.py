"""Decode every image once into a cached uint8 array, keyed by content and preprocessing.

The cache file is ``<cache_dir>/arrays/<key>.npz`` where ``key`` is a SHA-256 of the
dataset's content hash (every path, class and file hash) and the preprocessing (image
size, grayscale, resampling, cache format version). A changed, added or removed image
changes the key, so a stale array is never used. Writes go to a temporary file that is
renamed into place, so an interrupted run never leaves a broken cache.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from alzmri.data.discovery import DatasetIndex
from alzmri.data.images import RESAMPLE, UnreadableImageError, decode_image
from alzmri.data.locations import default_cache_dir
from alzmri.errors import AlzmriError
from alzmri.utils.io import atomic_write_chunks

CACHE_VERSION = 1


@dataclass
class CachedImages:
    """Decoded images of a dataset.

    Attributes
    ----------
    images : ndarray of shape (n_images, image_size, image_size), dtype uint8
        Aligned with ``index.records``; rows of unreadable files are zeros.
    readable : ndarray of shape (n_images,), dtype bool
    unreadable : list of (path, reason)
        Files that could not be decoded (relative paths).
    key : str
        Cache key (hex).
    path : Path
        Cache file.
    hit : bool
        True when the array was loaded from the cache rather than decoded.
    """

    images: np.ndarray
    readable: np.ndarray
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    key: str = ""
    path: Path | None = None
    hit: bool = False


def write_skipped_report(path: str | os.PathLike, skipped: list[tuple[str, str]], root: str | os.PathLike, total: int) -> Path:
    """List images left out as unreadable in a CSV and say so in one console line.

    Parameters
    ----------
    path : path-like
        CSV to write (atomically), columns ``path`` (relative to ``root``) and ``reason``.
    skipped : list of (relative path, reason)
        :attr:`CachedImages.unreadable`; must not be empty.
    root : path-like
        Dataset folder, for the message.
    total : int
        Images found in the dataset, for the message.

    Returns
    -------
    Path
        The written CSV. One line ``warning: skipped N unreadable image(s) of TOTAL in
        ROOT (first: PATH: REASON); all listed in CSV`` goes to stderr.
    """
    import csv
    import io

    from alzmri.utils.console import print_warning
    from alzmri.utils.io import atomic_write_text

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["path", "reason"])
    w.writerows(skipped)
    out = atomic_write_text(path, buf.getvalue())
    first, why = skipped[0]
    print_warning(f"skipped {len(skipped)} unreadable image(s) of {total} in {root} (first: {first}: {why}); all listed in {out}")
    return out


def cache_key(index: DatasetIndex, image_size: int) -> str:
    """Hex key of the cached array for ``index`` decoded at ``image_size`` pixels."""
    spec = {
        "version": CACHE_VERSION,
        "content": index.content_hash(),
        "image_size": int(image_size),
        "mode": "L",
        "resample": RESAMPLE.name,
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:32]


def decode_all(index: DatasetIndex, image_size: int, *, workers: int | None = None) -> tuple[np.ndarray, list[tuple[str, str]]]:
    """Decode every record of ``index`` (threads; PIL releases the GIL while decoding).

    Returns
    -------
    images : ndarray of shape (n, image_size, image_size), dtype uint8
    unreadable : list of (relative path, reason)
    """
    n = len(index.records)
    out = np.zeros((n, image_size, image_size), dtype=np.uint8)
    unreadable: list[tuple[str, str]] = []

    def _one(i: int) -> tuple[int, str | None]:
        try:
            out[i] = decode_image(index.root / index.records[i].path, image_size)
            return i, None
        except UnreadableImageError as exc:
            return i, str(exc)

    with ThreadPoolExecutor(max_workers=workers or min(4, (os.cpu_count() or 1) + 1)) as pool:
        for i, err in pool.map(_one, range(n)):
            if err is not None:
                unreadable.append((index.records[i].path, err))
    return out, unreadable


def load_images(
    index: DatasetIndex,
    image_size: int,
    *,
    cache_dir: str | os.PathLike | None = None,
    use_cache: bool = True,
) -> CachedImages:
    """Decoded images of ``index`` at ``image_size``, from the cache when it holds them.

    Parameters
    ----------
    index : DatasetIndex
    image_size : int
        Side in pixels.
    cache_dir : path-like, optional
        Default :func:`alzmri.data.locations.default_cache_dir`.
    use_cache : bool, default=True
        False decodes without reading or writing the cache.

    Returns
    -------
    CachedImages
        Unreadable files are listed, not raised; the caller decides.
    """
    key = cache_key(index, image_size)
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = folder / "arrays" / f"{key}.npz"
    if use_cache and path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                images = z["images"]
                readable = z["readable"]
                bad_paths = [str(p) for p in z["unreadable_paths"]]
                bad_reasons = [str(r) for r in z["unreadable_reasons"]]
            if images.shape == (len(index), image_size, image_size):
                return CachedImages(images, readable, list(zip(bad_paths, bad_reasons)), key, path, hit=True)
        except (OSError, KeyError, ValueError):
            pass  # a broken cache file is rebuilt below
    images, unreadable = decode_all(index, image_size)
    readable = np.ones(len(index), dtype=bool)
    bad = {p for p, _ in unreadable}
    for i, rec in enumerate(index.records):
        if rec.path in bad:
            readable[i] = False
    if use_cache:
        buf = io.BytesIO()
        np.savez(
            buf,
            images=images,
            readable=readable,
            unreadable_paths=np.array([p for p, _ in unreadable], dtype=str),
            unreadable_reasons=np.array([r for _, r in unreadable], dtype=str),
        )
        try:
            atomic_write_chunks(path, (buf.getbuffer(),))  # mode 0666 minus the umask, like any result file
        except OSError as exc:
            # a read-only cache folder costs speed, not correctness
            if not isinstance(exc, PermissionError):
                raise AlzmriError(f"{path}: cannot write the image cache ({exc}); set ALZMRI_CACHE_DIR to a writable folder") from None
    return CachedImages(images, readable, unreadable, key, path if use_cache else None, hit=False)


def load_checked_images(index: DatasetIndex, image_size: int, *, skip_unreadable: bool = False) -> CachedImages:
    """Decoded images (decode-once cache); unreadable files stop the run unless ``skip_unreadable``.

    Raises
    ------
    AlzmriError
        An unreadable image and ``skip_unreadable`` is off (names the file and the fix).
    """
    cached = load_images(index, image_size)
    skipped = cached.unreadable
    if skipped and not skip_unreadable:
        p, why = skipped[0]
        more = f" and {len(skipped) - 1} more" if len(skipped) > 1 else ""
        raise AlzmriError(f"{index.root / p}: {why}{more}; remove or replace the file, or pass --skip-unreadable to leave it out")
    return cached