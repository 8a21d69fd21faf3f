"""Uploaded bytes -> model-ready slices, with the service's limits.

The file format is taken from the bytes (magic numbers), not from the file name or the
declared content type: JPEG, PNG, BMP, TIFF, GIF or WebP slices, and NIfTI-1/NIfTI-2
volumes (``.nii``, or gzip-compressed ``.nii.gz``). Decoding reuses the library:
:func:`alzmri.data.images.decode_image` for slices and
:func:`alzmri.data.volumes.load_volume_slices` for volumes (the bytes are written to a
private temporary file first, removed afterwards). Size limits are checked from the
headers *before* any pixel data is decoded, so a small file that claims a huge image
(a decompression bomb) is refused without allocating it.
"""

from __future__ import annotations

import gzip
import io
import tempfile
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from alzmri.data.images import UnreadableImageError, decode_image
from alzmri.data.slice_check import SliceCheck, check_slice_file
from alzmri.errors import AlzmriError

#: Default largest 2D image, in pixels (4096 x 4096).
MAX_PIXELS = 4096 * 4096
#: Default largest 3D volume, in voxels (256 x 256 x 256).
MAX_VOXELS = 256 * 256 * 256
#: Declared part content types accepted (browsers send ``application/octet-stream`` or
#: nothing for ``.nii``, a gzip type for ``.nii.gz``); anything else is a 415.
ALLOWED_CONTENT_TYPES = frozenset(
    {
        "image/jpeg",
        "image/pjpeg",
        "image/png",
        "image/bmp",
        "image/x-ms-bmp",
        "image/tiff",
        "image/gif",
        "image/webp",
        "application/gzip",
        "application/x-gzip",
        "application/octet-stream",
        "application/x-nifti",
        "application/nifti",
        "",
    }
)
#: Longest side of the slice and overlay images returned for display, in pixels.
DISPLAY_MAX_SIDE = 512

_IMAGE_MAGIC = (
    (b"\xff\xd8\xff", "jpeg"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
    (b"BM", "bmp"),
)


class UploadError(Exception):
    """A request the service refuses: ``status`` (4xx) and a one-line ``message``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class DecodedUpload:
    """One uploaded file, decoded.

    Attributes
    ----------
    kind : str
        ``"image"`` or ``"volume"``.
    format : str
        ``jpeg``, ``png``, ``bmp``, ``tiff``, ``gif``, ``webp``, ``nifti`` or ``nifti-gz``.
    images : ndarray of shape (n, image_size, image_size), dtype uint8
        Model input: one slice for an image, every axial slice for a volume.
    display : ndarray of shape (h, w), dtype uint8
        The slice to show and draw Grad-CAM on: the image at its own resolution (longest
        side at most :data:`DISPLAY_MAX_SIDE`), or the volume's middle central slice.
    display_index : int
        Row of ``images`` that ``display`` shows.
    width, height : int
        Of the uploaded image; for a volume, of its canonical (RAS) axial plane.
    volume : dict
        Volumes only: ``n_slices``, ``central_slices`` ([first, last + 1]), ``shape``,
        ``spacing_mm``; and the boolean mask ``central`` (not JSON) under ``_central``.
    slice_check : SliceCheck or None
        Images only: whether the file looks like a brain MRI slice
        (:func:`alzmri.data.slice_check.check_slice_file`).
    """

    kind: str
    format: str
    images: np.ndarray
    display: np.ndarray
    display_index: int
    width: int
    height: int
    volume: dict = field(default_factory=dict)
    slice_check: SliceCheck | None = None


def sniff_format(data: bytes) -> str | None:
    """The file format from its first bytes, or None when it is none the service reads.

    Returns
    -------
    str or None
        ``jpeg``, ``png``, ``gif``, ``tiff``, ``bmp``, ``webp``, ``nifti`` (uncompressed
        NIfTI-1 or NIfTI-2) or ``nifti-gz`` (gzip whose content starts like NIfTI).
    """
    head = data[:16]
    if head[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    for magic, fmt in _IMAGE_MAGIC:
        if head.startswith(magic):
            if fmt == "bmp" and len(data) < 26:
                return None
            return fmt
    if _is_nifti_header(data[:544]):
        return "nifti"
    if head[:2] == b"\x1f\x8b":
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(data)) as gz:
                inner = gz.read(544)
        except (OSError, EOFError, zlib.error):
            return None
        return "nifti-gz" if _is_nifti_header(inner) else None
    return None


def _is_nifti_header(h: bytes) -> bool:
    if len(h) >= 348 and h[344:348] in (b"n+1\x00", b"ni1\x00"):
        return int.from_bytes(h[:4], "little") == 348 or int.from_bytes(h[:4], "big") == 348
    if len(h) >= 540 and h[4:8] in (b"n+2\x00", b"ni2\x00"):
        return int.from_bytes(h[:4], "little") == 540 or int.from_bytes(h[:4], "big") == 540
    return False


def check_content_type(content_type: str | None) -> None:
    """Refuse a declared part content type outside :data:`ALLOWED_CONTENT_TYPES` (415).

    Raises
    ------
    UploadError
        Status 415.
    """
    ct = (content_type or "").split(";")[0].strip().lower()
    if ct not in ALLOWED_CONTENT_TYPES:
        raise UploadError(415, f"unsupported content type {ct[:80]!r}; upload a JPEG/PNG slice (image/jpeg, image/png) or a NIfTI volume (.nii, .nii.gz)")


def decode_upload(data: bytes, image_size: int, *, filename: str = "upload", n_central: int | None = None, max_pixels: int = MAX_PIXELS, max_voxels: int = MAX_VOXELS) -> DecodedUpload:
    """Decode one uploaded file the way ``alzmri predict`` decodes files.

    Parameters
    ----------
    data : bytes
        The file's content.
    image_size : int
        The model's input side in pixels.
    filename : str
        Shown in error messages instead of the temporary file's path.
    n_central : int, optional
        Central slices of a volume (default :data:`alzmri.data.volumes.N_CENTRAL`).
    max_pixels, max_voxels : int
        Largest accepted image (width x height) and volume (product of its dimensions).

    Returns
    -------
    DecodedUpload

    Raises
    ------
    UploadError
        400: empty, unrecognised, corrupt or unsupported content (a 4D volume, ...);
        413: over ``max_pixels`` / ``max_voxels`` (checked from the header).
    """
    from alzmri.data.volumes import N_CENTRAL

    if not data:
        raise UploadError(400, "empty file (0 bytes)")
    fmt = sniff_format(data)
    if fmt is None:
        raise UploadError(400, "not a JPEG, PNG, BMP, TIFF, GIF or WebP image nor a NIfTI volume (.nii, .nii.gz); the file's bytes match none of them")
    with tempfile.TemporaryDirectory(prefix="alzmri-serve-") as tmp:
        suffix = {"nifti": ".nii", "nifti-gz": ".nii.gz"}.get(fmt, "." + fmt)
        path = Path(tmp) / f"upload{suffix}"
        path.write_bytes(data)
        try:
            if fmt.startswith("nifti"):
                return _decode_volume(path, fmt, image_size, N_CENTRAL if n_central is None else n_central, max_voxels)
            return _decode_image(path, data, fmt, image_size, max_pixels)
        except AlzmriError as exc:
            raise UploadError(400, str(exc).replace(str(path), filename)) from None
        except UnreadableImageError as exc:
            raise UploadError(400, f"{filename}: {exc}") from None


def _decode_image(path: Path, data: bytes, fmt: str, image_size: int, max_pixels: int) -> DecodedUpload:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:  # reads the header only
                w, h = img.size
    except Image.DecompressionBombError as exc:
        raise UploadError(413, f"image too large ({str(exc).split('.')[0]}); decompression bomb refused") from None
    except Exception:
        raise UploadError(400, f"corrupt {fmt.upper()} file: its header cannot be read") from None
    if w * h > max_pixels:
        raise UploadError(413, f"image of {w} x {h} = {w * h:,} pixels is over the limit of {max_pixels:,} pixels (decompression bomb?)")
    small = decode_image(path, image_size)
    full = decode_image(path, None)
    if max(full.shape) > DISPLAY_MAX_SIDE:
        scale = DISPLAY_MAX_SIDE / max(full.shape)
        size = (max(1, round(full.shape[1] * scale)), max(1, round(full.shape[0] * scale)))
        full = np.asarray(Image.fromarray(full).resize(size, Image.Resampling.BILINEAR), dtype=np.uint8)
    return DecodedUpload("image", fmt, np.array(small[None]), full, 0, int(w), int(h), slice_check=check_slice_file(path))


def _decode_volume(path: Path, fmt: str, image_size: int, n_central: int, max_voxels: int) -> DecodedUpload:
    import nibabel as nib

    from alzmri.data.volumes import load_volume_slices

    try:
        shape = tuple(int(v) for v in nib.load(str(path)).shape)  # header only
    except Exception as exc:
        msg = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise AlzmriError(f"{path}: unreadable NIfTI header ({msg[:160]})") from None
    n_vox = int(np.prod(shape, dtype=np.int64)) if shape else 0
    if n_vox > max_voxels:
        raise UploadError(413, f"volume of shape {shape} = {n_vox:,} voxels is over the limit of {max_voxels:,} voxels")
    vol = load_volume_slices(path, image_size, n_central=n_central)
    first, stop = vol.central_range
    mid = (first + stop - 1) // 2
    meta = {
        "n_slices": int(len(vol.images)),
        "central_slices": [first, stop],
        "shape": list(vol.shape),
        "spacing_mm": [round(float(s), 4) for s in vol.spacing],
        "_central": vol.central,
    }
    return DecodedUpload("volume", fmt, vol.images, vol.images[mid], mid, int(vol.shape[0]), int(vol.shape[1]), meta)


def decode_brain_uploads(files: list[tuple[str, bytes]], image_size: int, *, n_central: int | None = None, max_pixels: int = MAX_PIXELS,
                         max_voxels: int = MAX_VOXELS):
    """Decode the uploads of one brain: several slice images (in upload order) or one NIfTI volume.

    Parameters
    ----------
    files : list of (str, bytes)
        File name and content of each uploaded part.
    image_size : int
        The model's input side in pixels.
    n_central : int, optional
        Central slices of a volume (default :data:`alzmri.data.volumes.N_CENTRAL`); they
        are the brain, as in :func:`alzmri.inference.inputs.read_brain_input`.
    max_pixels, max_voxels : int
        As :func:`decode_upload`, per file.

    Returns
    -------
    alzmri.inference.inputs.BrainInput
        ``images`` (n, image_size, image_size) uint8, ``names`` (the file names),
        ``source`` ``files``/``file``/``volume``; unreadable images are left out and
        listed in ``skipped``.

    Raises
    ------
    UploadError
        400: a volume among several files, no readable slice, an unreadable volume; 413:
        a file over the limits.
    """
    from alzmri.inference.inputs import BrainInput

    names = [n for n, _ in files]
    if len(files) > 1 and (vol := next((n for n, d in files if (sniff_format(d) or "").startswith("nifti")), None)) is not None:
        raise UploadError(400, f"{vol}: a NIfTI volume among {len(files)} files of one brain; upload one volume alone, or only slice images")
    images, kept, skipped = [], [], []
    for name, data in files:
        try:
            d = decode_upload(data, image_size, filename=name, n_central=n_central, max_pixels=max_pixels, max_voxels=max_voxels)
        except UploadError as exc:
            if exc.status != 400 or len(files) == 1:
                raise
            skipped.append(exc.message if exc.message.startswith(name) else f"{name}: {exc.message}")
            continue
        if d.kind == "volume":
            first, stop = d.volume["central_slices"]
            return BrainInput(d.images[first:stop], [f"slice {k}" for k in range(first, stop)], "volume", names,
                              volume={"n_slices": d.volume["n_slices"], "central_slices": [first, stop]})
        images.append(d.images[0])
        kept.append(name)
    if not images:
        raise UploadError(400, f"no readable slice among {len(files)} uploaded files (first: {skipped[0]}); upload readable JPEG or PNG slices of one brain or one NIfTI volume")
    return BrainInput(np.stack(images), kept, "files" if len(files) > 1 else "file", names, skipped)
