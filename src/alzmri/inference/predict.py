"""Class probabilities from a trained run for arrays or image files; one brain's slices read from files."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from alzmri.data.images import UnreadableImageError, decode_image
from alzmri.errors import AlzmriError
from alzmri.runs import RunInfo, load_model
from alzmri.data.preprocess import prepare_batch


@torch.inference_mode()
def predict_proba(model: nn.Module, info: RunInfo, images: np.ndarray, *, batch_size: int = 256, device: str | torch.device = "cpu", temperature: float = 1.0) -> np.ndarray:
    """Softmax probabilities for preprocessed slices.

    Parameters
    ----------
    model : nn.Module
        In eval mode.
    info : RunInfo
        Gives normalisation and channels.
    images : ndarray of shape (n, image_size, image_size), dtype uint8
    temperature : float, default=1.0
        Logits are divided by it before the softmax (temperature scaling, see
        :mod:`alzmri.evaluation.calibration`); 1.0 leaves them unchanged.

    Returns
    -------
    ndarray of shape (n, n_classes), dtype float64; rows sum to 1.
    """
    out = []
    for start in range(0, len(images), batch_size):
        x = torch.from_numpy(np.ascontiguousarray(images[start : start + batch_size])).to(device)
        x = prepare_batch(x, mean=info.mean, std=info.std, in_chans=info.in_chans)
        out.append(torch.softmax(model(x).float() / temperature, dim=1).cpu().numpy())
    if not out:
        return np.zeros((0, len(info.class_names)))
    return np.concatenate(out).astype(np.float64)


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


def predict_files(run_dir: str | Path, paths: list[str | Path], *, n_central: int | None = None, cam_dir: str | Path | None = None,
                  backend: str | None = None) -> list[dict]:
    """Predict image files and 3D volumes with a run's model or an exported ``.onnx`` file.

    Probabilities are temperature-scaled when the run folder holds ``calibration.json``
    (or the ONNX file a temperature other than 1), see
    :mod:`alzmri.evaluation.calibration`.

    Parameters
    ----------
    run_dir : path-like
        A run folder, or a ``.onnx`` file written by ``alzmri export`` (run with
        onnxruntime).
    paths : list of path-like
        2D slices (JPEG, PNG, ...), NIfTI files (``.nii``, ``.nii.gz``), DICOM files or
        folders holding a DICOM series.
    n_central : int, optional
        Central slices averaged for a volume (default
        :data:`alzmri.data.volumes.N_CENTRAL`).
    cam_dir : path-like, optional
        Write a Grad-CAM overlay PNG per 2D image (for a volume: of its middle central
        slice) into this folder; not available for ``.onnx`` files. Grad-CAM needs the
        PyTorch model, so with ``cam_dir`` the probabilities come from it too.
    backend : {"torch", "onnx"}, optional
        How a run folder's model runs; default
        :data:`alzmri.inference.backends.DEFAULT_BACKEND` (``onnx``: the run's own
        ``.onnx`` file or a cached export, see
        :func:`alzmri.inference.backends.onnx_file_for`), ``torch`` when ``cam_dir`` is
        given. Both give the same probabilities up to floating-point rounding.

    Returns
    -------
    list of dict
        Per input: ``path``, ``task`` (the run's task framing, :mod:`alzmri.data.tasks`),
        ``predicted_class``, ``confidence`` (max probability) and ``probabilities`` (class
        name -> float). A 2D image adds ``looks_like_mri``,
        ``input_check`` and, when it does not look like an MRI slice, ``warning`` (see
        :func:`input_check`; the rule is in :mod:`alzmri.data.slice_check`). A volume adds ``kind`` ("volume"),
        ``n_slices``, ``central_slices`` ([first, last + 1] in inferior-to-superior
        canonical order), ``aggregation`` and ``slices`` (per slice: ``index``,
        ``brain``, ``central``, ``predicted_class``, ``probabilities``); its
        ``probabilities`` are the mean of the central slices' probabilities. With
        ``cam_dir``, ``cam`` and ``explained_class`` are added.

        For a brain-level run (``run.json`` ``level: brain``) each path is one brain (a
        folder of slice images, a volume, or one image as a brain of one slice) and each
        answer is :func:`alzmri.inference.brain.predict_brain`'s.

    Raises
    ------
    AlzmriError
        Unreadable run, ONNX file, image or volume (named in the message).
    """
    from alzmri.data.volumes import N_CENTRAL, is_volume_path, load_volume_slices

    if not str(run_dir).lower().endswith(".onnx") and RunInfo.load(run_dir).level == "brain":
        if cam_dir is not None:
            raise AlzmriError(f"{run_dir}: Grad-CAM explains slice-level runs; a brain-level run gives slice weights instead (--json): drop --cam")
        from alzmri.inference.brain import predict_brains

        return predict_brains(run_dir, [[p] for p in paths], n_central=n_central, backend=backend)
    n_central = N_CENTRAL if n_central is None else n_central
    if cam_dir is not None:  # checked before any prediction runs
        cam_dir = Path(cam_dir)
        if cam_dir.exists() and not cam_dir.is_dir():
            raise AlzmriError(f"{cam_dir}: exists and is not a folder; pass a folder for --cam")
        try:
            cam_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise AlzmriError(f"{cam_dir}: cannot create the --cam folder ({exc.strerror or exc}); pass a writable folder") from None
    model = None
    if str(run_dir).lower().endswith(".onnx"):
        from alzmri.inference.onnx_export import OnnxPredictor

        if cam_dir is not None:
            raise AlzmriError("Grad-CAM needs the PyTorch model: pass the run folder instead of the .onnx file")
        from alzmri.data.tasks import TASKS

        predictor = OnnxPredictor(run_dir)
        image_size, class_names, proba = predictor.image_size, predictor.class_names, predictor.predict_proba
        # the ONNX metadata names the classes; the task is the one with these classes
        task = getattr(predictor, "task", None) or next((t.name for t in TASKS.values() if list(t.class_names) == list(class_names)), None)
    else:
        from alzmri.inference.backends import DEFAULT_BACKEND, load_backend

        if backend is None:
            backend = "torch" if cam_dir is not None else DEFAULT_BACKEND
        if cam_dir is not None and backend != "torch":
            raise AlzmriError(f"Grad-CAM needs the PyTorch model: drop --backend {backend} or --cam")
        model, info = load_model(run_dir)
        image_size, class_names, task = info.image_size, info.class_names, info.task
        proba = load_backend(run_dir, backend, model=model, info=info).proba

    def summary(path, row) -> dict:
        k = int(np.argmax(row))
        return {"path": str(path), "task": task, "predicted_class": class_names[k], "confidence": float(row[k]), "probabilities": {c: float(v) for c, v in zip(class_names, row)}}

    results: list[dict | None] = [None] * len(paths)
    cam_images, cam_names, cam_slots, cam_originals = [], [], [], []
    flat = [i for i, p in enumerate(paths) if not is_volume_path(p)]
    if flat:
        images = load_image_files([paths[i] for i in flat], image_size)
        for i, row, img in zip(flat, proba(images), images):
            results[i] = summary(paths[i], row)
            results[i].update(input_check(paths[i], results[i]))
            cam_images.append(img), cam_names.append(Path(paths[i]).name), cam_slots.append(i)
            cam_originals.append(decode_image(paths[i], None) if cam_dir is not None else img)
    for i, p in enumerate(paths):
        if results[i] is not None:
            continue
        vol = load_volume_slices(p, image_size, n_central=n_central)
        probs = proba(vol.images)
        first, stop = vol.central_range
        res = summary(p, probs[vol.central].mean(axis=0))
        res.update(
            kind="volume",
            n_slices=int(len(vol.images)),
            central_slices=[first, stop],
            aggregation=f"mean of the probabilities of the {stop - first} central slices (middle of the brain extent)",
            slices=[
                {"index": k, "brain": bool(vol.brain[k]), "central": bool(vol.central[k]), "predicted_class": class_names[int(np.argmax(r))], "probabilities": {c: float(v) for c, v in zip(class_names, r)}}
                for k, r in enumerate(probs)
            ],
        )
        results[i] = res
        mid = (first + stop - 1) // 2
        cam_images.append(vol.images[mid]), cam_names.append(f"{Path(p).name}_slice{mid}"), cam_slots.append(i)
        cam_originals.append(vol.images[mid])
    if cam_dir is not None and cam_images:
        from alzmri.explain.gradcam import write_cam_overlays

        for i, extra in zip(cam_slots, write_cam_overlays(model, info, np.stack(cam_images), cam_names, cam_dir, originals=cam_originals)):
            results[i].update(extra)
    return results  # type: ignore[return-value]
