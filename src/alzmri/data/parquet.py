"""Write the images of the Hub's parquet files to one folder per class.

The Hub dataset ``Falah/Alzheimer_MRI`` is stored as parquet files (a ``train`` and a
``test`` split under ``data/``) with two columns:

* ``image`` -- a struct ``{bytes: binary, path: string}`` (how the ``datasets`` library
  stores an ``Image`` feature); a plain ``binary`` column is accepted too. The bytes are
  an encoded JPEG (or PNG) file.
* ``label`` -- an integer 0..3 in the Hub's *alphabetical* order (0 Mild_Demented,
  1 Moderate_Demented, 2 Non_Demented, 3 Very_Mild_Demented), which is **not** our
  canonical ordinal order; :data:`HF_LABEL_TO_CLASS` maps it explicitly.

:func:`parquet_to_folders` writes every image's bytes, unchanged, to
``<dest>/<CanonicalClass>/<split>_<row:05d>.jpg``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from alzmri.data.classes import CLASS_NAMES
from alzmri.errors import AlzmriError

__all__ = ["HF_LABEL_TO_CLASS", "parquet_to_folders"]

#: The Hub's integer label (alphabetical folder order) -> our canonical class name.
HF_LABEL_TO_CLASS: dict[int, str] = {
    0: "MildDemented",
    1: "ModerateDemented",
    2: "NonDemented",
    3: "VeryMildDemented",
}
assert sorted(HF_LABEL_TO_CLASS.values()) == sorted(CLASS_NAMES)

_BATCH_ROWS = 256
_JPEG_MAGIC = b"\xff\xd8\xff"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def one_line(e: BaseException, limit: int = 200) -> str:
    """``str(e)`` squeezed onto one line and cut to ``limit`` characters.

    Parameters
    ----------
    e : BaseException
    limit : int, default=200
        Longest result, in characters; a longer text ends in ``"..."``.

    Returns
    -------
    str
        Whitespace runs (newlines included) as single spaces; empty for an exception without a message.
    """
    text = " ".join(str(e).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


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
        reason = one_line(e) or type(e).__name__
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
        raise AlzmriError(f"{where}: corrupt parquet data ({one_line(e)}); re-download it (force=True)") from e


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
    missing = next((p for p in paths if not p.is_file()), None)
    if missing is not None:
        raise AlzmriError(f"{missing}: parquet file not found; check the path or re-download the dataset")
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
            f"{dest}: cannot write the images ({one_line(e)}); check free disk space and permissions"
        ) from e
    return counts
