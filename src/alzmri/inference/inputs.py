"""Reading what a user predicts: image files, one brain's slices (a folder, files or a volume), and a check that a file looks like an MRI slice."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from alzmri.data.images import UnreadableImageError, decode_image
from alzmri.errors import AlzmriError


def load_image_files(paths: list[str | Path], image_size: int) -> np.ndarray:
    """Decode image files the way training did: grayscale uint8, resized.

    Returns
    -------
    ndarray of shape (n, image_size, image_size), dtype uint8

    Raises
    ------
    AlzmriError
        A file is missing or unreadable (named in the message).
    """
    arrays = []
    for p in paths:
        p = Path(p)
        if not p.is_file():
            raise AlzmriError(f"{p}: image file not found")
        try:
            arrays.append(decode_image(p, image_size))
        except UnreadableImageError as exc:
            raise AlzmriError(f"{p}: {exc}; replace it with a readable JPEG or PNG slice, or pass a NIfTI or DICOM volume") from None
    return np.stack(arrays) if arrays else np.zeros((0, image_size, image_size), np.uint8)


def natural_key(name: str) -> tuple:
    """Sort key of a file name with digit runs compared as numbers (``s2`` < ``s10``)."""
    return tuple((0, int(t), "") if t.isdigit() else (1, 0, t.lower()) for t in re.split(r"(\d+)", name) if t)


@dataclass
class BrainInput:
    """The slices of one brain, read from files.

    Attributes
    ----------
    images : ndarray of shape (n_slices, image_size, image_size), dtype uint8
        The readable slices in slice order.
    names : list of str
        Per slice: its file name, or ``slice K`` (K: the volume's axial index).
    source : str
        ``"folder"``, ``"files"``, ``"file"`` (one image) or ``"volume"``.
    inputs : list of str
        The paths given.
    skipped : list of str
        Unreadable image files left out, ``"name: why"``.
    volume : dict or None
        Volumes: ``n_slices`` (all axial slices), ``central_slices`` ([first, last + 1]).
    """

    images: np.ndarray
    names: list[str]
    source: str
    inputs: list[str]
    skipped: list[str] = field(default_factory=list)
    volume: dict | None = None


def _image_files(folder: Path) -> tuple[list[Path], list[Path]]:
    from alzmri.data.discovery import IMAGE_EXTENSIONS

    files = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]
    images = sorted((p for p in files if p.suffix.lower() in IMAGE_EXTENSIONS), key=lambda p: natural_key(p.name))
    return images, [p for p in files if p.suffix.lower() not in IMAGE_EXTENSIONS]


def _looks_dicom(p: Path) -> bool:
    from alzmri.data.volumes import DICOM_SUFFIXES

    if p.name.lower().endswith(DICOM_SUFFIXES):
        return True
    try:
        with open(p, "rb") as f:
            return f.read(132)[128:132] == b"DICM"
    except OSError:
        return False


def read_brain_input(paths: list[str | Path], image_size: int, *, n_central: int | None = None) -> BrainInput:
    """Read one brain's slices from a folder, several image files or one volume (rules: :mod:`alzmri.inference.brain`).

    Parameters
    ----------
    paths : list of path-like
        One folder, one NIfTI/DICOM volume, or one or more slice image files.
    image_size : int
        Side in pixels the slices are resized to (the run's).
    n_central : int, optional
        Central slices of a volume (default :data:`alzmri.data.volumes.N_CENTRAL`).

    Returns
    -------
    BrainInput

    Raises
    ------
    AlzmriError
        A missing path; a folder or volume among several paths; a folder without slice
        images or DICOM files; no readable slice; an unreadable volume.
    """
    from alzmri.data.images import UnreadableImageError, decode_image
    from alzmri.data.volumes import N_CENTRAL, is_volume_path, load_volume_slices

    paths = [Path(p) for p in paths]
    if not paths:
        raise AlzmriError("no input: pass one folder of a brain's slices, one NIfTI/DICOM volume, or the slice image files of one brain")
    for p in paths:
        if not p.exists():
            raise AlzmriError(f"{p}: not found; pass an existing folder of slices, volume or slice image file")
    inputs = [str(p) for p in paths]
    if len(paths) > 1 and (bad := next((p for p in paths if is_volume_path(p)), None)) is not None:
        raise AlzmriError(f"{bad}: a folder or volume among {len(paths)} inputs of one brain; pass one folder, one volume, or only slice image files")
    files, source, volume = paths, ("files" if len(paths) > 1 else "file"), paths[0] if is_volume_path(paths[0]) else None
    if paths[0].is_dir():
        files, others = _image_files(paths[0])
        source, volume = "folder", None
        if not files:
            if not any(_looks_dicom(p) for p in others):
                what = f"{len(others)} other files" if others else "nothing"
                raise AlzmriError(f"{paths[0]}: no slice images (.jpg, .png, ...) and no DICOM files in this folder (it holds {what}); "
                                  "pass a folder of one brain's slice images, a DICOM series folder or a NIfTI file")
            volume = paths[0]
    if volume is not None:
        vol = load_volume_slices(volume, image_size, n_central=N_CENTRAL if n_central is None else n_central)
        first, stop = vol.central_range
        return BrainInput(vol.images[first:stop], [f"slice {k}" for k in range(first, stop)], "volume", inputs,
                          volume={"n_slices": len(vol.images), "central_slices": [first, stop]})
    images, names, skipped = [], [], []
    for p in files:
        try:
            images.append(decode_image(p, image_size))
            names.append(p.name)
        except UnreadableImageError as exc:
            skipped.append(f"{p.name}: {exc}")
    if not images:
        where = paths[0] if source == "folder" else (paths[0] if len(paths) == 1 else f"{paths[0]} and the {len(paths) - 1} other files")
        raise AlzmriError(f"{where}: no readable slice among {len(files)} image file(s) (first: {skipped[0]}); "
                          "pass readable JPEG or PNG slices of one brain, or a NIfTI/DICOM volume")
    return BrainInput(np.stack(images), names, source, inputs, skipped)


def input_check(path: str | Path, result: dict) -> dict:
    """Fields that say whether a 2D input looks like a brain MRI slice (:mod:`alzmri.data.slice_check`).

    Parameters
    ----------
    path : path-like
        The image file (already decoded once, so readable).
    result : dict
        Its prediction (``predicted_class``, ``confidence``), quoted in the warning.

    Returns
    -------
    dict
        ``looks_like_mri`` (bool), ``input_check`` (the rule's measures and reasons) and,
        when the check fails, ``warning``: one line naming the file and why.
    """
    from alzmri.data.slice_check import check_slice_file

    chk = check_slice_file(path)
    out = {"looks_like_mri": chk.looks_like_mri, "input_check": chk.as_dict()}
    if not chk.looks_like_mri:
        out["warning"] = (
            f"{path} does not look like a brain MRI slice ({'; '.join(chk.reasons)}); its prediction "
            f"({result['predicted_class']}, probability {result['confidence']:.2f}) is not meaningful"
        )
    return out
