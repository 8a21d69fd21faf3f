"""3D MRI volumes (NIfTI, DICOM series) turned into axial slices like the training JPEGs.

The training sets are skull-stripped axial T1 slices, 8-bit, anterior at the top, the
brain filling most of the frame. :func:`load_volume_slices` brings a 3D volume to the
same form:

1. **Read.** ``.nii`` / ``.nii.gz`` with nibabel; a DICOM series (a folder of files, or
   one file) with pydicom, sorted along the slice normal by ImagePositionPatient (then
   InstanceNumber), rescaled by RescaleSlope/RescaleIntercept and given the affine its
   ImageOrientationPatient/PixelSpacing/positions define.
2. **Reorient** to RAS+ with ``nibabel.as_closest_canonical`` (axis 0 left->right,
   axis 1 posterior->anterior, axis 2 inferior->superior); axial slices are taken
   along the S axis; slice ``k`` of the result is canonical slice ``k`` (0 = most
   inferior).
3. **Normalise intensity** per volume: clip to the 1st..99th percentile of all finite
   voxels and scale linearly to 0..255 (uint8). Background stays black.
4. **Brain extent.** A pixel is foreground when its uint8 value is above
   :data:`FOREGROUND_LEVEL` (25, about 10 % of the range). A slice *contains brain* when
   its foreground area is at least :data:`BRAIN_AREA_FRACTION` (25 %) of the largest
   slice's foreground area. The brain extent runs from the first to the last such slice.
5. **Central slices** are the middle ``n_central`` slices of the brain extent (all of
   it when shorter); the training sets hold 32 consecutive mid-brain slices per scan, so
   the default is :data:`N_CENTRAL` = 32 (at the volume's own slice spacing).
6. **Crop and orient.** Every slice is cropped to the in-plane bounding box of the
   foreground over the brain extent plus a :data:`CROP_MARGIN` (6 %) margin, turned to
   anterior-up in radiological convention (patient's right on the image's left), and
   resized to ``image_size`` x ``image_size`` with the bilinear resampling of
   :func:`alzmri.data.images.decode_image`.

4D images (fMRI, diffusion) are refused with one line: they are not the structural T1
the models were trained on; a 4D file whose 4th axis has length 1 is accepted. A single
axial slice (one DICOM file, or a NIfTI file with one slice) is a one-slice volume; one
sagittal or coronal slice is refused.
"""

from __future__ import annotations

import gzip
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from alzmri.data.images import RESAMPLE
from alzmri.errors import AlzmriError

#: Central slices averaged for the volume-level prediction (middle of the brain extent).
N_CENTRAL = 32
#: uint8 level above which a pixel counts as foreground.
FOREGROUND_LEVEL = 25
#: A slice contains brain when its foreground area is at least this fraction of the largest.
BRAIN_AREA_FRACTION = 0.25
#: Margin around the foreground bounding box, as a fraction of its side.
CROP_MARGIN = 0.06
#: Robust intensity window, in percentiles of all finite voxels.
PERCENTILES = (1.0, 99.0)
NIFTI_SUFFIXES = (".nii", ".nii.gz")
DICOM_SUFFIXES = (".dcm", ".dicom", ".ima")


@dataclass
class VolumeSlices:
    """Axial slices of one volume, ready for a model.

    Attributes
    ----------
    images : ndarray of shape (n_slices, image_size, image_size), dtype uint8
        Every axial slice, inferior to superior.
    brain : ndarray of shape (n_slices,), dtype bool
        Slices inside the brain extent.
    central : ndarray of shape (n_slices,), dtype bool
        The middle ``n_central`` slices of the brain extent.
    spacing : tuple of 3 floats
        Voxel size in mm in RAS order (x, y, slice).
    shape : tuple of 3 ints
        Canonical (RAS) volume shape.
    window : tuple of 2 floats
        Intensities mapped to 0 and 255.
    source : str
        ``"nifti"`` or ``"dicom"``.
    """

    images: np.ndarray
    brain: np.ndarray
    central: np.ndarray
    spacing: tuple[float, float, float]
    shape: tuple[int, int, int]
    window: tuple[float, float]
    source: str

    @property
    def central_range(self) -> tuple[int, int]:
        """(first, last + 1) index of the central slices."""
        idx = np.flatnonzero(self.central)
        return int(idx[0]), int(idx[-1]) + 1


def is_volume_path(path: str | Path) -> bool:
    """True for a NIfTI file, a DICOM file (by suffix) or a folder (a DICOM series)."""
    p = Path(path)
    name = p.name.lower()
    return p.is_dir() or name.endswith(NIFTI_SUFFIXES) or name.endswith(DICOM_SUFFIXES)


def load_volume_slices(path: str | Path, image_size: int, *, n_central: int = N_CENTRAL) -> VolumeSlices:
    """Read a NIfTI file or DICOM series and return its axial slices like the training images.

    The steps and rules (orientation, intensity window, brain extent, central slices,
    crop) are those of the module docstring.

    Parameters
    ----------
    path : path-like
        ``.nii`` / ``.nii.gz`` file, a DICOM file, or a folder holding one DICOM series.
    image_size : int
        Output side in pixels.
    n_central : int, default=32
        Central slices (see :data:`N_CENTRAL`).

    Returns
    -------
    VolumeSlices

    Raises
    ------
    AlzmriError
        Missing path; unreadable or truncated file; a 4D image; a DICOM file without
        pixel data; a folder without DICOM images; a constant (blank) volume.
    """
    path = Path(path)
    if not path.exists():
        raise AlzmriError(f"{path}: volume not found")
    if n_central < 1:
        raise AlzmriError(f"n_central must be a positive number of slices; got {n_central}")
    if path.is_dir() or not path.name.lower().endswith(NIFTI_SUFFIXES):
        img, source = _load_dicom(path), "dicom"
    else:
        img, source = _load_nifti(path), "nifti"
    return volume_to_slices(img, image_size, n_central=n_central, source=source, name=str(path))


def _load_nifti(path: Path):
    import nibabel as nib

    try:
        img = nib.load(str(path))
        data = np.asanyarray(img.dataobj)  # reads (and decompresses) everything: truncation shows here
    except (EOFError, zlib.error, gzip.BadGzipFile, OSError, ValueError, nib.filebasedimages.ImageFileError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise AlzmriError(f"{path}: unreadable or truncated NIfTI file ({msg[:160]}); pass a complete .nii/.nii.gz file (copy or download it again)") from None
    return nib.Nifti1Image(np.asarray(data, dtype=np.float32), img.affine)


def _dicom_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
    if not files:
        raise AlzmriError(f"{path}: empty folder; pass a folder of DICOM files of one series")
    return files


def _load_dicom(path: Path):
    import nibabel as nib
    import pydicom
    from pydicom.errors import InvalidDicomError

    single = path.is_file()
    series: dict[str, list] = {}
    no_pixels = 0
    for f in _dicom_files(path):
        try:
            ds = pydicom.dcmread(str(f), force=single)
        except (InvalidDicomError, OSError, EOFError, ValueError) as exc:
            if single:
                raise AlzmriError(f"{f}: not a readable DICOM file ({str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__}); pass a DICOM image file, a .nii/.nii.gz volume or a JPEG/PNG slice") from None
            continue
        if "PixelData" not in ds:
            if single:
                raise AlzmriError(f"{f}: DICOM file without pixel data (a report or directory record, not an image); pass a DICOM image file or a folder of one DICOM series")
            no_pixels += 1
            continue
        series.setdefault(str(ds.get("SeriesInstanceUID", "")), []).append(ds)
    if not series:
        extra = f" ({no_pixels} without pixel data)" if no_pixels else ""
        raise AlzmriError(f"{path}: no DICOM image files found{extra}; pass a folder holding one DICOM series or a .nii/.nii.gz file")
    if len(series) > 1:
        sizes = sorted(((len(v), k) for k, v in series.items()), reverse=True)
        warnings.warn(f"{path}: {len(series)} DICOM series in one folder; using the largest ({sizes[0][0]} files)", stacklevel=3)
    dsets = max(series.values(), key=len)

    def pixels(ds) -> np.ndarray:
        try:
            arr = ds.pixel_array.astype(np.float32)
        except Exception as exc:  # missing decoder, corrupt pixel data
            raise AlzmriError(f"{path}: cannot decode DICOM pixel data ({str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__})") from None
        if arr.ndim == 3 and int(ds.get("SamplesPerPixel", 1)) == 3:
            arr = arr.mean(axis=-1)
        slope = float(ds.get("RescaleSlope", 1) or 1)
        intercept = float(ds.get("RescaleIntercept", 0) or 0)
        return arr * slope + intercept

    first = dsets[0]
    iop = np.asarray(first.get("ImageOrientationPatient", [1, 0, 0, 0, 1, 0]), dtype=np.float64)
    row_dir, col_dir = iop[:3], iop[3:]
    normal = np.cross(row_dir, col_dir)
    spacing = [float(v) for v in first.get("PixelSpacing", [1, 1])]
    thickness = float(first.get("SpacingBetweenSlices", 0) or first.get("SliceThickness", 0) or 1.0)

    if len(dsets) == 1:
        arr = pixels(first)
        stack = arr if arr.ndim == 3 else arr[None]  # multi-frame: frames along the normal
        origin = np.asarray(first.get("ImagePositionPatient", [0, 0, 0]), dtype=np.float64)
        step = normal * thickness
    else:
        def key(ds):
            pos = ds.get("ImagePositionPatient")
            return (float(np.dot(np.asarray(pos, dtype=np.float64), normal)) if pos is not None else 0.0, int(ds.get("InstanceNumber", 0) or 0))

        dsets = sorted(dsets, key=key)
        arrays = [pixels(ds) for ds in dsets]
        shapes = {a.shape for a in arrays}
        if len(shapes) != 1 or arrays[0].ndim != 2:
            raise AlzmriError(f"{path}: DICOM slices of different sizes {sorted(shapes)[:3]}; pass one series")
        stack = np.stack(arrays)
        positions = [ds.get("ImagePositionPatient") for ds in dsets]
        origin = np.asarray(positions[0] if positions[0] is not None else [0, 0, 0], dtype=np.float64)
        if all(p is not None for p in positions):
            step = (np.asarray(positions[-1], dtype=np.float64) - origin) / (len(dsets) - 1)
            if np.linalg.norm(step) < 1e-6:
                step = normal * thickness
        else:
            step = normal * thickness
    # voxel (column c, row r, slice s) -> LPS mm; then LPS -> RAS
    lps = np.eye(4)
    lps[:3, 0] = row_dir * spacing[1]
    lps[:3, 1] = col_dir * spacing[0]
    lps[:3, 2] = step
    lps[:3, 3] = origin
    affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps
    data = np.ascontiguousarray(stack.transpose(2, 1, 0), dtype=np.float32)  # (columns, rows, slices)
    return nib.Nifti1Image(data, affine)


def volume_to_slices(img, image_size: int, *, n_central: int = N_CENTRAL, source: str = "nifti", name: str = "volume") -> VolumeSlices:
    """Slice a nibabel image (3D) as :func:`load_volume_slices` does.

    Parameters
    ----------
    img : nibabel spatial image
        3D, or 4D with a 4th axis of length 1.
    image_size : int
    n_central : int, default=32
    source, name : str
        Recorded / used in error messages.

    Returns
    -------
    VolumeSlices
    """
    import nibabel as nib

    shape = img.shape
    if len(shape) == 4 and shape[3] == 1:
        img = nib.Nifti1Image(np.asarray(img.dataobj, dtype=np.float32)[..., 0], img.affine)
    elif len(shape) != 3:
        what = f"a {len(shape)}D image of shape {tuple(shape)}"
        hint = " (a time series or diffusion set: extract one 3D volume first, e.g. `fslroi in out 0 1`)" if len(shape) == 4 else ""
        raise AlzmriError(f"{name}: {what}{hint}; pass a 3D structural T1 volume")
    can = nib.as_closest_canonical(img)
    if min(can.shape[:2]) < 2:  # one sagittal or coronal slice: no axial slice to take
        raise AlzmriError(f"{name}: a single non-axial slice (RAS shape {tuple(can.shape)}); pass an axial slice or a 3D volume")
    data = np.asarray(can.dataobj, dtype=np.float32)
    finite = np.isfinite(data)
    if not finite.any():
        raise AlzmriError(f"{name}: no finite voxel values")
    lo, hi = (float(v) for v in np.percentile(data[finite], PERCENTILES))
    if hi <= lo:
        lo, hi = float(data[finite].min()), float(data[finite].max())
    if hi <= lo:
        raise AlzmriError(f"{name}: constant volume (every voxel {lo:g}); nothing to classify")
    vol = np.where(finite, data, lo)
    vol = np.round(np.clip((vol - lo) / (hi - lo), 0.0, 1.0) * 255.0).astype(np.uint8)

    fg = vol > FOREGROUND_LEVEL
    area = fg.sum(axis=(0, 1))
    brain = area >= max(1, BRAIN_AREA_FRACTION * area.max())
    idx = np.flatnonzero(brain)
    first, last = int(idx[0]), int(idx[-1])
    brain[first : last + 1] = True
    extent = last - first + 1
    n = min(n_central, extent)
    start = first + (extent - n) // 2
    central = np.zeros(len(brain), bool)
    central[start : start + n] = True

    # in-plane bounding box of the foreground over the brain extent, plus a margin
    plane = fg[:, :, first : last + 1].any(axis=2)
    xs, ys = np.flatnonzero(plane.any(axis=1)), np.flatnonzero(plane.any(axis=0))
    x0, x1, y0, y1 = xs[0], xs[-1] + 1, ys[0], ys[-1] + 1
    mx, my = int(round(CROP_MARGIN * (x1 - x0))), int(round(CROP_MARGIN * (y1 - y0)))
    x0, x1 = max(0, x0 - mx), min(vol.shape[0], x1 + mx)
    y0, y1 = max(0, y0 - my), min(vol.shape[1], y1 + my)

    out = np.empty((vol.shape[2], image_size, image_size), np.uint8)
    for k in range(vol.shape[2]):
        s = vol[x0:x1, y0:y1, k]
        # (x: L->R, y: P->A) -> rows anterior..posterior, columns patient right..left
        s = np.ascontiguousarray(s.T[::-1, ::-1])
        out[k] = np.asarray(Image.fromarray(s).resize((image_size, image_size), RESAMPLE), dtype=np.uint8)
    zooms = tuple(float(z) for z in can.header.get_zooms()[:3])
    return VolumeSlices(images=out, brain=brain, central=central, spacing=zooms, shape=tuple(int(v) for v in vol.shape), window=(lo, hi), source=source)
