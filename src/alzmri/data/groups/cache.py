"""Recovered groups cached on disk per dataset content and settings (:func:`load_or_recover_groups`)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from alzmri.data.discovery import DatasetIndex
from alzmri.data.groups.recover import recover_groups
from alzmri.data.groups.result import GroupResult
from alzmri.errors import AlzmriError

#: Bumped when the cached fields change (2: ``copy_of``, the augmented copies).
GROUPS_CACHE_VERSION = 2


def groups_cache_key(index: DatasetIndex, **params) -> str:
    """Hex key of the cached groups of ``index`` recovered with ``params`` (see :func:`load_or_recover_groups`)."""
    import hashlib
    import json

    spec = {"version": GROUPS_CACHE_VERSION, "content": index.content_hash(), "params": {k: params[k] for k in sorted(params)}}
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:32]


def _cache_path(index: DatasetIndex, cache_dir, params: dict) -> tuple[Path, str]:
    """(``<cache>/groups/<key>.npz``, key) of ``index`` recovered with ``params`` (defaults filled in)."""
    import inspect

    from alzmri.data.locations import default_cache_dir

    sig = inspect.signature(recover_groups)
    unknown = sorted(set(params) - set(sig.parameters) - {"cache_dir"})
    if unknown:
        raise AlzmriError(f"unknown group recovery setting(s) {', '.join(unknown)}")
    full = {k: p.default for k, p in sig.parameters.items() if p.default is not inspect.Parameter.empty and k not in ("images", "cache_dir")}
    full.update(params)
    key = groups_cache_key(index, **full)
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return folder / "groups" / f"{key}.npz", key


def _read_cached(path: Path, index: DatasetIndex) -> GroupResult | None:
    """The GroupResult stored at ``path``, or None when absent, broken or of another length."""
    import json

    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            group, position = z["group"].astype(np.int64), z["position"].astype(np.int64)
            meta = json.loads(str(z["meta"]))
            weakest, unreadable = z["weakest_link"].astype(np.float64), z["unreadable"].astype(bool)
            copy_of = z["copy_of"].astype(np.int64)
    except (OSError, KeyError, ValueError):
        return None  # a broken cache file is recomputed
    if len(group) != len(index) or len(copy_of) != len(index):
        return None
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
        copy_of=copy_of,
    )


def cached_groups(index: DatasetIndex, *, cache_dir: str | os.PathLike | None = None, **params) -> GroupResult | None:
    """The groups :func:`load_or_recover_groups` cached for ``index`` and ``params``, or None; never recovers.

    For quick commands (``alzmri data inspect``) that report what is known without
    spending the recovery time.

    Parameters
    ----------
    index : DatasetIndex
    cache_dir : path-like, optional
    **params
        Recovery settings, as for :func:`load_or_recover_groups` (default: the defaults).

    Returns
    -------
    GroupResult or None
        ``params["cache"] == "hit"``; None when nothing is cached for these settings.
    """
    path, _ = _cache_path(index, cache_dir, params)
    return _read_cached(path, index)


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
    setting recovers again. The file holds ``group``, ``position``, ``copy_of`` (int64,
    shape (n_images,)), ``weakest_link``, ``unreadable`` and the settings. Writes are
    atomic.

    Parameters
    ----------
    index : DatasetIndex
    images : CachedImages or ndarray of shape (n_images, S, S), dtype uint8, optional
        Passed to :func:`recover_groups` on a cache miss.
    cache_dir : path-like, optional
        Default :func:`alzmri.data.locations.default_cache_dir` (``$ALZMRI_CACHE_DIR``).
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
    import json

    from alzmri.utils.io import atomic_write_bytes

    path, _ = _cache_path(index, cache_dir, params)
    if use_cache:
        hit = _read_cached(path, index)
        if hit is not None:
            return hit
    res = recover_groups(index, images, cache_dir=cache_dir, **params)
    if use_cache:
        n = len(index)
        meta = {"method": res.method, "threshold": res.threshold, "strongest_between": res.strongest_between, "params": res.params}
        buf = io.BytesIO()
        np.savez(
            buf,
            group=res.group,
            position=res.position,
            copy_of=np.asarray(res.copy_of, dtype=np.int64),
            weakest_link=np.asarray(res.weakest_link, dtype=np.float64),
            unreadable=np.zeros(n, bool) if res.unreadable is None else np.asarray(res.unreadable, bool),
            meta=np.array(json.dumps(meta, default=str)),
        )
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, buf.getvalue())
        except OSError:
            pass  # a read-only cache costs time, not correctness
    res.params = {**res.params, "cache": "miss"}
    return res
