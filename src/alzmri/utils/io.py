"""Atomic file writes: a failure never leaves a half-written or corrupted result."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux /proc)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def match_umask(fd: int) -> None:
    """Give a file made by :func:`tempfile.mkstemp` (mode 0600) the mode a plain ``open``
    would have (0666 minus the umask), so results stay readable to the user's group."""
    os.fchmod(fd, 0o666 & ~current_umask())


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to a temporary file beside ``path``, fsync it, then rename it over ``path``."""
    return atomic_write_chunks(path, (data,))


def atomic_write_chunks(path: str | os.PathLike, chunks: Iterable[bytes]) -> Path:
    """Write ``chunks`` one after another to ``.<name>.<random>.tmp`` beside ``path``, fsync, rename over ``path``.

    Until the rename, ``path`` keeps its old content (or does not exist); an exception
    (also ``KeyboardInterrupt``) removes the temporary file, while a killed process
    leaves it under its temporary name, never under ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        match_umask(fd)
        with os.fdopen(fd, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Atomic UTF-8 text write (see :func:`atomic_write_bytes`)."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Atomic JSON write, indented, keys in insertion order."""
    return atomic_write_text(path, json.dumps(obj, indent=2, default=_json_default) + "\n")


def replace_dir(src: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Move the complete folder ``src`` to ``dest``, replacing the folder already there.

    A folder cannot be renamed over another atomically everywhere, so the old ``dest`` is
    first renamed aside to ``.<name>.old-<random>`` beside it, then ``src`` is renamed to
    ``dest`` and the old folder removed. Readers see the old folder or the new one, never
    a partly written one; between the two renames ``dest`` is briefly absent. If the
    second rename fails, the old folder is put back before the error is raised.

    Parameters
    ----------
    src : path-like
        A folder on the same file system as ``dest`` (a sibling, in practice).
    dest : path-like
        Absent, or a folder (its contents are deleted after the swap).

    Returns
    -------
    Path
        ``dest``.

    Raises
    ------
    OSError
        A rename failed; ``dest`` then holds what it held before.
    """
    src, dest = Path(src), Path(dest)
    old = dest.parent / f".{dest.name}.old-{uuid.uuid4().hex[:8]}"
    if dest.exists():
        dest.rename(old)
    try:
        src.rename(dest)
    except BaseException:
        if old.exists() and not dest.exists():
            old.rename(dest)  # put the previous copy back
        raise
    shutil.rmtree(old, ignore_errors=True)
    return dest


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
