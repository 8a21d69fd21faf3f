"""Where alzmri keeps its downloads and caches, and which dataset folder a command reads."""

from __future__ import annotations

import os
from pathlib import Path

from alzmri.errors import AlzmriError

__all__ = ["default_cache_dir", "default_dataset_dir", "resolve_data_dir"]

_DATASET_DIRNAME = "alzheimer-mri-6400"


def default_cache_dir() -> Path:
    """Root folder for alzmri's downloads and caches.

    Returns ``$ALZMRI_CACHE_DIR`` if set (and non-empty), else ``$XDG_CACHE_HOME/alzmri``,
    else ``~/.cache/alzmri``. The folder is not created.
    """
    env = os.environ.get("ALZMRI_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg).expanduser() / "alzmri"
    return Path.home() / ".cache" / "alzmri"


def default_dataset_dir() -> Path:
    """Where :func:`alzmri.data.download.download_dataset` materialises the dataset by default.

    ``default_cache_dir() / "datasets" / "alzheimer-mri-6400"``; not created.
    """
    return default_cache_dir() / "datasets" / _DATASET_DIRNAME


def resolve_data_dir(data: Path | None) -> Path:
    """The dataset folder to use: ``data``, or the downloaded set when ``data`` is None.

    Raises
    ------
    AlzmriError
        No ``data`` and nothing downloaded yet.
    """
    if data is not None:
        return Path(data)
    default = default_dataset_dir()
    if default.is_dir():
        return default
    raise AlzmriError(
        f"no --data given and no downloaded dataset at {default}; run `alzmri data download` or pass --data PATH"
    )
