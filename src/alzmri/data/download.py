"""Fetch the public 6,400-image Alzheimer MRI set from the Hugging Face Hub as class folders.

The Hub dataset ``Falah/Alzheimer_MRI`` is stored as parquet files (a ``train`` and a
``test`` split under ``data/``) with two columns:

* ``image`` -- a struct ``{bytes: binary, path: string}`` (how the ``datasets`` library
  stores an ``Image`` feature); a plain ``binary`` column is accepted too. The bytes are
  an encoded JPEG (or PNG) file.
* ``label`` -- an integer 0..3 in the Hub's *alphabetical* order (0 Mild_Demented,
  1 Moderate_Demented, 2 Non_Demented, 3 Very_Mild_Demented), which is **not** our
  canonical ordinal order; :data:`HF_LABEL_TO_CLASS` maps it explicitly.

:func:`download_dataset` downloads the parquet files with
:func:`huggingface_hub.snapshot_download` and :func:`parquet_to_folders` writes every
image's bytes, unchanged, to ``<dest>/<CanonicalClass>/<split>_<row:05d>.jpg``. The
result is written into a temporary sibling folder and renamed into place, with a marker
file (:data:`MARKER_NAME`) recording the per-class counts, so ``dest`` is either absent
or a complete dataset.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from huggingface_hub import snapshot_download

from alzmri.data.classes import CLASS_NAMES
from alzmri.errors import AlzmriError

__all__ = [
    "HF_REPO_ID",
    "HF_LABEL_TO_CLASS",
    "MARKER_NAME",
    "default_cache_dir",
    "default_dataset_dir",
    "resolve_data_dir",
    "download_dataset",
    "is_complete_dataset",
    "parquet_to_folders",
]

#: Hub dataset repository holding the 6,400-image set.
HF_REPO_ID = "Falah/Alzheimer_MRI"

#: The Hub's integer label (alphabetical folder order) -> our canonical class name.
HF_LABEL_TO_CLASS: dict[int, str] = {
    0: "MildDemented",
    1: "ModerateDemented",
    2: "NonDemented",
    3: "VeryMildDemented",
}
assert sorted(HF_LABEL_TO_CLASS.values()) == sorted(CLASS_NAMES)

#: Marker written last into a materialised dataset folder; holds the per-class counts.
MARKER_NAME = ".alzmri-complete.json"

_DATASET_DIRNAME = "alzheimer-mri-6400"
_MARKER_FORMAT = 1
_BATCH_ROWS = 256
_JPEG_MAGIC = b"\xff\xd8\xff"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# Exception types raised by the HTTP stacks huggingface_hub may use; matched by the
# top-level module name so that none of them has to be importable here.
_NETWORK_MODULES = frozenset(
    {"huggingface_hub", "httpx", "httpx2", "httpcore", "httpcore2", "requests", "urllib3", "hf_xet"}
)


# --------------------------------------------------------------------------- locations


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
    """Where :func:`download_dataset` materialises the dataset by default.

    ``default_cache_dir() / "datasets" / "alzheimer-mri-6400"``; not created.
    """
    return default_cache_dir() / "datasets" / _DATASET_DIRNAME


# --------------------------------------------------------------------------- parquet -> folders


def _split_name(path: Path) -> str:
    """Split name from a parquet file name: ``train-00000-of-00001-ab12.parquet`` -> ``train``."""
    stem = path.name[: -len(".parquet")] if path.name.endswith(".parquet") else path.stem
    head = re.split(r"[-.]", stem, maxsplit=1)[0]
    head = re.sub(r"[^A-Za-z0-9_]", "", head)
    return head or "data"


def _image_extension(data: bytes) -> str | None:
    """``".jpg"`` / ``".png"`` from the magic bytes of an encoded image, else ``None``."""
    if data.startswith(_JPEG_MAGIC):
        return ".jpg"
    if data.startswith(_PNG_MAGIC):
        return ".png"
    return None


def _image_bytes_column(col: pa.Array | pa.ChunkedArray, where: str) -> pa.Array:
    """The encoded-bytes array of an ``image`` column (struct ``{bytes, path}`` or binary)."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    t = col.type
    if pa.types.is_struct(t):
        if t.get_field_index("bytes") < 0:
            raise AlzmriError(
                f"{where}: column 'image' is a struct without a 'bytes' field (fields: "
                f"{', '.join(f.name for f in t)}); expected the Hugging Face Image layout {{bytes, path}}"
            )
        col = col.field("bytes")
        t = col.type
    if not (pa.types.is_binary(t) or pa.types.is_large_binary(t)):
        raise AlzmriError(
            f"{where}: column 'image' has type {t}; expected binary image bytes or a struct {{bytes, path}}"
        )
    return col


def _iter_rows(path: Path) -> Iterator[tuple[int, int, bytes]]:
    """Yield ``(row, hub_label, image_bytes)`` for every row of one parquet file.

    Reads record batches of :data:`_BATCH_ROWS` rows, so memory stays bounded.
    Raises :class:`AlzmriError` naming ``path`` for unreadable files, missing columns,
    null values and labels outside 0..3.
    """
    where = str(path)
    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as e:
        reason = _one_line(e) or type(e).__name__
        raise AlzmriError(f"{where}: not a readable parquet file ({reason}); re-download it (force=True)") from e
    names = pf.schema_arrow.names
    missing = [c for c in ("image", "label") if c not in names]
    if missing:
        raise AlzmriError(
            f"{where}: missing column(s) {', '.join(repr(c) for c in missing)} (columns: {', '.join(names)}); "
            "expected the Falah/Alzheimer_MRI layout with 'image' and 'label'"
        )
    label_type = pf.schema_arrow.field("label").type
    if not pa.types.is_integer(label_type):
        raise AlzmriError(f"{where}: column 'label' has type {label_type}; expected integer labels 0..3")

    row = 0
    try:
        batches = pf.iter_batches(batch_size=_BATCH_ROWS, columns=["image", "label"])
        for batch in batches:
            images = _image_bytes_column(batch.column("image"), where)
            labels = batch.column("label").to_pylist()
            blobs = images.to_pylist()
            for i, label in enumerate(labels):
                r = row + i
                if label is None or label not in HF_LABEL_TO_CLASS:
                    raise AlzmriError(
                        f"{where}: row {r} has label {label!r}, outside 0..3 "
                        "(0 Mild, 1 Moderate, 2 Non, 3 Very_Mild Demented); the file is not Falah/Alzheimer_MRI"
                    )
                data = blobs[i]
                if not data:
                    raise AlzmriError(
                        f"{where}: row {r} has no image bytes; the parquet must embed the images (not only paths)"
                    )
                yield r, label, data
            row += len(labels)
    except pa.ArrowException as e:
        raise AlzmriError(f"{where}: corrupt parquet data ({_one_line(e)}); re-download it (force=True)") from e


def parquet_to_folders(parquet_paths: Iterable[str | os.PathLike[str]], dest: str | os.PathLike[str]) -> dict[str, int]:
    """Write the images of Hub parquet files to one folder per canonical class.

    Each image's encoded bytes are written unchanged to
    ``dest/<CanonicalClass>/<split>_<row:05d><ext>``, where ``split`` comes from the
    parquet file name (``train-00000-of-00001-....parquet`` -> ``train``), ``row`` counts
    rows within that split (continuing across shards of the same split, in the order
    given) and ``ext`` is ``.jpg`` or ``.png`` from the image's magic bytes. Hub labels are
    mapped with :data:`HF_LABEL_TO_CLASS`. All four class folders are created, even if
    empty; existing files of the same name are overwritten.

    Args:
        parquet_paths: parquet files in the Hub's schema (``image`` struct ``{bytes, path}``
            or binary, integer ``label`` 0..3).
        dest: output folder (created if needed).

    Returns:
        Number of images written per canonical class, keyed in :data:`CLASS_NAMES` order
        (every class present, possibly 0).

    Raises:
        AlzmriError: a path is missing or not parquet, a column ``image``/``label`` is
            missing or of the wrong type, a label is outside 0..3, an image is empty or
            neither JPEG nor PNG, or ``dest`` cannot be written. The message names the file.
    """
    paths = [Path(p) for p in parquet_paths]
    if not paths:
        raise AlzmriError("no parquet files given; pass the Falah/Alzheimer_MRI parquet files (data/*.parquet)")
    for p in paths:
        if not p.is_file():
            raise AlzmriError(f"{p}: parquet file not found; check the path or re-download the dataset")
    dest = Path(dest)
    counts = {name: 0 for name in CLASS_NAMES}
    split_rows: dict[str, int] = {}
    try:
        for name in CLASS_NAMES:
            (dest / name).mkdir(parents=True, exist_ok=True)
        for path in paths:
            split = _split_name(path)
            offset = split_rows.get(split, 0)
            n = 0
            for row, label, data in _iter_rows(path):
                ext = _image_extension(data)
                if ext is None:
                    raise AlzmriError(
                        f"{path}: row {row} image bytes are neither JPEG nor PNG (starts {data[:8].hex()}); "
                        "the file is corrupt or not Falah/Alzheimer_MRI"
                    )
                cls = HF_LABEL_TO_CLASS[label]
                (dest / cls / f"{split}_{offset + row:05d}{ext}").write_bytes(data)
                counts[cls] += 1
                n = row + 1
            split_rows[split] = offset + n
    except OSError as e:
        raise AlzmriError(
            f"{dest}: cannot write the images ({_one_line(e)}); check free disk space and permissions"
        ) from e
    return counts


# --------------------------------------------------------------------------- download


def _one_line(e: BaseException, limit: int = 200) -> str:
    """``str(e)`` squeezed onto one line and cut to ``limit`` characters."""
    text = " ".join(str(e).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


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
    reason = _one_line(e, 160)
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
    already cached), converted with :func:`parquet_to_folders` into a temporary sibling
    of ``dest`` together with the marker :data:`MARKER_NAME`, and renamed to ``dest``.
    A failure therefore never leaves a partial dataset at ``dest``.

    Args:
        dest: output folder; default :func:`default_dataset_dir`. Must be absent, empty,
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

    tag = uuid.uuid4().hex[:8]
    tmp = dest.parent / f".{dest.name}.tmp-{tag}"
    old = dest.parent / f".{dest.name}.old-{tag}"
    try:
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp.mkdir()
        except OSError as e:
            raise AlzmriError(f"{dest.parent}: cannot create the dataset folder ({_one_line(e)}); "
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
            if dest.exists():
                dest.rename(old)
            tmp.rename(dest)
        except OSError as e:
            if old.exists() and not dest.exists():
                old.rename(dest)  # put the previous copy back
            raise AlzmriError(f"{dest}: cannot move the downloaded dataset into place ({_one_line(e)}); "
                              "check permissions and free disk space") from e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return dest


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
