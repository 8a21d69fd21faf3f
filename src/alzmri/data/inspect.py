"""``inspect_dataset(DATA)``: what a dataset folder holds, before any training."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image

from alzmri.data.classes import CLASS_NAMES
from alzmri.data.discovery import discover
from alzmri.data.images import UnreadableImageError, decode_image


def _probe(path: Path) -> tuple[tuple[int, int] | None, str | None, str | None]:
    """(size, mode, error) of one file; decodes it fully to find truncation."""
    try:
        decode_image(path, None)  # first: its reasons are the clearest (broken link, bomb, truncation)
        with Image.open(path) as img:
            size, mode = img.size, img.mode
        return size, mode, None
    except UnreadableImageError as exc:
        return None, None, str(exc)
    except Exception as exc:  # PIL raises many types for broken headers
        return None, None, f"not readable ({type(exc).__name__})"


def inspect_dataset(root: str | Path, *, copies: bool = False) -> dict:
    """Describe a dataset folder.

    Parameters
    ----------
    root : path-like
    copies : bool, default=False
        Recover the subject groups (:func:`alzmri.data.groups.load_or_recover_groups`,
        cached on disk) to count augmented copies. False: report copies only when the
        groups of this data are already cached (by ``alzmri data groups`` or a run), so
        inspecting stays as fast as reading the files.

    Returns
    -------
    dict
        ``root``, ``layout``, ``class_folders`` (folder -> canonical class),
        ``counts`` (class -> images, all four classes in ordinal order),
        ``counts_by_source_split`` (for split-folder layouts), ``total``,
        ``sizes`` ("WxH" -> images), ``modes`` (PIL mode -> images) and ``unreadable``
        (list of {"path", "reason"}: files that fail to decode and non-image files in
        class folders, which training would refuse), ``copies`` (``n_copies``: images
        that look like augmented copies of another image, ``n_originals_copied``,
        ``source``: "groups cache" or "recovered"; None when not looked for).

    Raises
    ------
    AlzmriError
        As :func:`alzmri.data.discovery.discover`.
    """
    index = discover(root, allow_non_images=True)
    with ThreadPoolExecutor(max_workers=4) as pool:
        probes = list(pool.map(_probe, [index.root / r.path for r in index.records]))
    sizes: Counter[str] = Counter()
    modes: Counter[str] = Counter()
    unreadable = []
    for rec, (size, mode, err) in zip(index.records, probes):
        if err is not None:
            unreadable.append({"path": rec.path, "reason": err})
            continue
        sizes[f"{size[0]}x{size[1]}"] += 1
        modes[mode] += 1
    unreadable.extend({"path": p, "reason": "not an image file (by its extension)"} for p in index.non_images)
    by_split: dict[str, dict[str, int]] = {}
    if index.layout == "split_folders":
        for rec in index.records:
            d = by_split.setdefault(rec.source_split or "train", {c: 0 for c in CLASS_NAMES})
            d[rec.class_name] += 1
    return {
        "root": str(index.root),
        "layout": index.layout,
        "class_folders": index.class_folders,
        "counts": index.class_counts(),
        "counts_by_source_split": by_split,
        "total": len(index),
        "sizes": dict(sizes.most_common()),
        "modes": dict(modes.most_common()),
        "unreadable": unreadable,
        "copies": _copies(index, recover=copies),
    }


def _copies(index, *, recover: bool) -> dict | None:
    """Augmented-copy counts of ``index`` from its cached (or, with ``recover``, recovered) groups."""
    from alzmri.data.groups import cached_groups, load_or_recover_groups
    from alzmri.errors import AlzmriError

    if recover:
        res = load_or_recover_groups(index)
        source = "the groups cache" if res.params.get("cache") == "hit" else "recovered groups (now cached)"
    else:
        try:
            res, source = cached_groups(index), "the groups cache"
        except (AlzmriError, OSError):  # unhashable files: nothing cached for them either
            res = None
        if res is None:
            return None
    is_copy = res.is_copy
    return {"n_copies": int(is_copy.sum()), "n_originals_copied": int(len(set(res.copy_of[is_copy].tolist()))), "source": source}
