"""Fetch the public 6,400-image Alzheimer MRI set from the Hugging Face Hub as class folders.

:func:`download_dataset` downloads the parquet files of ``Falah/Alzheimer_MRI`` with
:func:`huggingface_hub.snapshot_download` and :func:`alzmri.data.parquet.parquet_to_folders`
writes every image's bytes, unchanged, to ``<dest>/<CanonicalClass>/<split>_<row:05d>.jpg``
(the Hub's layout and label order are described in :mod:`alzmri.data.parquet`). The
result is written into a temporary sibling folder and moved into place
(:func:`alzmri.utils.io.replace_dir`), with a marker file (:data:`MARKER_NAME`)
recording the per-class counts, so ``dest`` is either absent or a complete dataset.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

from huggingface_hub import snapshot_download

from alzmri.data.classes import CLASS_NAMES
from alzmri.data.locations import default_cache_dir, default_dataset_dir
from alzmri.data.parquet import one_line, parquet_to_folders
from alzmri.errors import AlzmriError
from alzmri.utils.io import replace_dir

__all__ = [
    "HF_REPO_ID",
    "MARKER_NAME",
    "download_dataset",
    "is_complete_dataset",
]

#: Hub dataset repository holding the 6,400-image set.
HF_REPO_ID = "Falah/Alzheimer_MRI"

#: Marker written last into a materialised dataset folder; holds the per-class counts.
MARKER_NAME = ".alzmri-complete.json"

_MARKER_FORMAT = 1
# Exception types raised by the HTTP stacks huggingface_hub may use; matched by the
# top-level module name so that none of them has to be importable here.
_NETWORK_MODULES = frozenset(
    {"huggingface_hub", "httpx", "httpx2", "httpcore", "httpcore2", "requests", "urllib3", "hf_xet"}
)


def _read_marker(path: Path) -> dict | None:
    try:
        marker = json.loads((path / MARKER_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(marker, dict) or not isinstance(marker.get("counts"), dict):
        return None
    return marker


def is_complete_dataset(path: str | os.PathLike[str]) -> bool:
    """True if ``path`` holds a dataset materialised by :func:`download_dataset`.

    Checks that the marker :data:`MARKER_NAME` exists and that each class folder holds
    exactly the number of image files the marker records (a deleted or added file makes
    it incomplete). Never raises; never touches the network.
    """
    path = Path(path)
    marker = _read_marker(path)
    if marker is None:
        return False
    counts = marker["counts"]
    if set(counts) != set(CLASS_NAMES) or sum(counts.values()) <= 0:
        return False
    try:
        for name in CLASS_NAMES:
            folder = path / name
            n = sum(1 for f in folder.iterdir() if f.suffix in (".jpg", ".png") and f.is_file())
            if n != counts[name]:
                return False
    except OSError:
        return False
    return True


def _offline_error(repo_id: str, e: BaseException) -> AlzmriError:
    reason = one_line(e, 160)
    reason = f"{type(e).__name__}: {reason}" if reason else type(e).__name__
    return AlzmriError(
        f"cannot download {repo_id} from the Hugging Face Hub (offline?): {reason}; "
        "download it on a connected machine with `alzmri data download` or pass --data PATH to a local copy"
    )


def _is_network_error(e: BaseException) -> bool:
    if isinstance(e, (OSError, TimeoutError)):  # ConnectionError, LocalEntryNotFoundError, HfHubHTTPError...
        return True
    return any(cls.__module__.split(".")[0] in _NETWORK_MODULES for cls in type(e).__mro__)


def _fetch_parquet(repo_id: str, revision: str | None) -> list[Path]:
    """Download (or reuse from the Hub cache) the repo's parquet files; return them sorted."""
    try:
        snapshot = snapshot_download(
            repo_id,
            repo_type="dataset",
            revision=revision,
            allow_patterns=["*.parquet"],
            cache_dir=str(default_cache_dir() / "hf-hub"),
        )
    except AlzmriError:
        raise
    except Exception as e:  # noqa: BLE001 - classified below; programming errors re-raised
        if _is_network_error(e):
            raise _offline_error(repo_id, e) from e
        raise
    root = Path(snapshot)
    files = sorted(root.rglob("*.parquet"), key=lambda p: p.relative_to(root).as_posix())
    if not files:
        raise AlzmriError(
            f"{root}: the snapshot of {repo_id} holds no parquet files; check repo_id/revision "
            "or pass --data PATH to a local copy"
        )
    return files


def download_dataset(
    dest: str | os.PathLike[str] | None = None,
    *,
    repo_id: str = HF_REPO_ID,
    revision: str | None = None,
    force: bool = False,
) -> Path:
    """Download the 6,400-image Alzheimer MRI set and materialise it as class folders.

    If ``dest`` already holds a complete materialised dataset (see
    :func:`is_complete_dataset`) it is returned at once, without network access, unless
    ``force``. Otherwise the parquet files are fetched with
    ``huggingface_hub.snapshot_download(repo_id, repo_type="dataset",
    allow_patterns=["*.parquet"])`` into ``default_cache_dir() / "hf-hub"`` (reused if
    already cached), converted with :func:`~alzmri.data.parquet.parquet_to_folders` into a temporary
    sibling of ``dest`` together with the marker :data:`MARKER_NAME`, and moved to ``dest``
    (:func:`alzmri.utils.io.replace_dir`).
    A failure therefore never leaves a partial dataset at ``dest``.

    Args:
        dest: output folder; default :func:`~alzmri.data.locations.default_dataset_dir`. Must be absent, empty,
            or a previous alzmri download (which is replaced only when incomplete or ``force``).
        repo_id: Hub dataset repository (``owner/name``).
        revision: branch, tag or commit of the repository; ``None`` = default branch.
        force: re-download and re-materialise even if ``dest`` is complete.

    Returns:
        The dataset folder ``dest`` with one sub-folder per canonical class.

    Raises:
        AlzmriError: the Hub cannot be reached or refuses (offline, ``HF_HUB_OFFLINE=1``,
            unknown repo...), the files are not in the expected schema, ``dest`` is a
            non-empty folder that alzmri did not create, or ``dest`` cannot be written.
    """
    dest = Path(dest) if dest is not None else default_dataset_dir()
    dest = dest.expanduser()
    if not force and is_complete_dataset(dest):
        return dest
    if dest.exists():
        if not dest.is_dir():
            raise AlzmriError(f"{dest}: exists and is not a folder; remove it or choose another destination")
        if _read_marker(dest) is None and any(dest.iterdir()):
            raise AlzmriError(
                f"{dest}: folder is not empty and was not created by alzmri; "
                "remove it or choose another destination for the download"
            )

    parquet_files = _fetch_parquet(repo_id, revision)

    tmp = dest.parent / f".{dest.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp.mkdir()
        except OSError as e:
            raise AlzmriError(f"{dest.parent}: cannot create the dataset folder ({one_line(e)}); "
                              "check permissions or choose another destination") from e
        counts = parquet_to_folders(parquet_files, tmp)
        if sum(counts.values()) == 0:
            raise AlzmriError(f"{repo_id}: the parquet files hold no images; check repo_id/revision")
        marker = {
            "format": _MARKER_FORMAT,
            "repo_id": repo_id,
            "revision": revision,
            "files": [p.name for p in parquet_files],
            "counts": counts,
            "total": sum(counts.values()),
        }
        try:
            (tmp / MARKER_NAME).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
            replace_dir(tmp, dest)  # the previous copy is put back if the move fails
        except OSError as e:
            raise AlzmriError(f"{dest}: cannot move the downloaded dataset into place ({one_line(e)}); "
                              "check permissions and free disk space") from e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest
