"""``predict_files(run, paths)``: class probabilities of image files and volumes from a trained run or an ONNX file."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from alzmri.data.images import decode_image
from alzmri.errors import AlzmriError
from alzmri.inference.inputs import input_check, load_image_files
from alzmri.runs import RunInfo, load_model


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
