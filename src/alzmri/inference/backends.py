"""Inference backends of ``alzmri predict`` and ``alzmri serve``: the run's PyTorch model or its ONNX export.

A backend maps uint8 slices (n, image_size, image_size) to calibrated class
probabilities (n, n_classes). Both reuse the library's own preprocessing:
:func:`alzmri.runs.predict_proba` (PyTorch) and
:class:`alzmri.inference.onnx_export.OnnxPredictor` (onnxruntime); both apply the run's
temperature from ``calibration.json`` (:func:`alzmri.evaluation.calibration.load_temperature`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from alzmri.errors import AlzmriError

#: The backend ``alzmri predict`` and ``alzmri serve`` use when none is given, the one place
#: to change it: ONNX Runtime, 1.7-4.4x faster per image than eager PyTorch at batch 1 and
#: 32 for AltzCNN and MobileNetV2 on the development CPU (benchmarks/inference_latency.py,
#: docs/performance.md section 5).
DEFAULT_BACKEND = "onnx"
#: Backends ``predict_files(..., backend=...)``, ``create_app(..., backend=...)`` and ``--backend`` accept.
BACKENDS = ("torch", "onnx")
#: The only batch sizes a forward pass of the service sees. PyTorch's oneDNN kernels
#: cache compiled primitives per input shape, so a service fed ever new batch sizes
#: (micro-batches, volumes of any depth) grows its memory with each new size
#: (benchmarks/shape_cache_memory.py, docs/serving.md); padding each batch up to the next
#: bucket and cutting larger ones into chunks of the largest bounds the shapes.
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32)


def weights_sha256(run_dir: str | Path) -> str:
    """Hex SHA-256 of the run's ``model.safetensors`` (the identity of its weights).

    Raises
    ------
    AlzmriError
        The weights file is missing.
    """
    from alzmri.runs import WEIGHTS_FILE

    path = Path(run_dir) / WEIGHTS_FILE
    if not path.is_file():
        raise AlzmriError(f"{path}: weights file missing; the run did not finish - retrain it")
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def bucketed(fn: Callable[[np.ndarray], np.ndarray], buckets: tuple[int, ...] = BATCH_BUCKETS) -> Callable[[np.ndarray], np.ndarray]:
    """Wrap a batch function so that it only ever sees batch sizes from ``buckets``.

    A batch is cut into chunks of ``max(buckets)`` slices; a chunk is padded with black
    slices up to the smallest bucket that holds it, and the padding's rows are dropped
    from the output. Rows do not depend on each other in eval mode, so the result is
    that of ``fn(images)`` (up to floating-point rounding).

    Parameters
    ----------
    fn : callable
        ndarray (n, H, W) -> ndarray (n, k).
    buckets : tuple of int
        Increasing batch sizes.

    Returns
    -------
    callable
        ndarray (n, H, W) -> ndarray (n, k), calling ``fn`` with sizes in ``buckets`` only.
    """
    top = buckets[-1]

    def run(images: np.ndarray) -> np.ndarray:
        if len(images) == 0:
            return fn(images)
        out = []
        for start in range(0, len(images), top):
            chunk = images[start : start + top]
            n = len(chunk)
            size = next(b for b in buckets if b >= n)
            if size > n:
                chunk = np.concatenate([chunk, np.zeros((size - n, *chunk.shape[1:]), dtype=chunk.dtype)])
            out.append(fn(chunk)[:n])
        return np.concatenate(out)

    return run


@dataclass
class Backend:
    """A loaded model behind one function.

    Built by :func:`load_backend`; predictions go through ``proba`` alone.

    Attributes
    ----------
    name : str
        ``"torch"`` or ``"onnx"``.
    proba : callable
        uint8 ndarray (n, image_size, image_size) -> float64 ndarray (n, n_classes),
        rows summing to 1, temperature-scaled; forward passes run on the batch sizes of
        :data:`BATCH_BUCKETS` only (:func:`bucketed`). Not thread-safe to call concurrently with
        Grad-CAM on the same module (the service keeps a separate copy for Grad-CAM).
    source : str
        What was loaded: the weights file, or the ``.onnx`` file.
    """

    name: str
    proba: Callable[[np.ndarray], np.ndarray]
    source: str


def onnx_file_for(run_dir: str | Path, sha256: str) -> Path:
    """The ``.onnx`` file the ONNX backend runs: an export of exactly these weights.

    Exports the run (:func:`alzmri.inference.onnx_export.export_onnx`) once to
    ``<cache>/onnx/<run name>-<first 12 hex of the weights' sha256>.onnx`` (cache:
    :func:`alzmri.data.locations.default_cache_dir`) and reuses that file later; new
    weights get a new file. ``.onnx`` files inside the run folder are never used: nothing
    ties them to the run's current weights (run one explicitly with ``alzmri predict
    FILE.onnx``).

    Raises
    ------
    AlzmriError
        The cache folder cannot be written; the export fails.
    """
    from alzmri.data.locations import default_cache_dir
    from alzmri.inference.onnx_export import export_onnx

    run_dir = Path(run_dir)
    cached = default_cache_dir() / "onnx" / f"{run_dir.resolve().name}-{sha256[:12]}.onnx"
    if not cached.is_file():
        try:
            export_onnx(run_dir, cached)
        except OSError as exc:
            raise AlzmriError(f"{cached.parent}: cannot write the ONNX export there ({exc.strerror or exc}); set ALZMRI_CACHE_DIR "
                              "to a writable folder, or pass --backend torch") from None
    return cached


def load_backend(run_dir: str | Path, name: str | None = None, *, model=None, info=None, sha256: str | None = None) -> Backend:
    """Load the run's model for serving.

    Parameters
    ----------
    run_dir : path-like
        A finished run folder.
    name : {"torch", "onnx"}, optional
        Default :data:`DEFAULT_BACKEND`.
    model, info : optional
        An already loaded ``(model, RunInfo)`` of this run (:func:`alzmri.runs.load_model`)
        for the torch backend, to avoid loading it twice.
    sha256 : str, optional
        :func:`weights_sha256` of the run, if already computed (names the ONNX cache file).

    Returns
    -------
    Backend

    Raises
    ------
    AlzmriError
        Unknown backend name; unreadable run, weights or ONNX file.
    """
    from alzmri.evaluation.calibration import load_temperature

    name = DEFAULT_BACKEND if name is None else name
    if name not in BACKENDS:
        raise AlzmriError(f"unknown backend {name!r}; pass one of {', '.join(BACKENDS)}")
    temperature = load_temperature(run_dir)
    if name == "torch":
        from alzmri.runs import predict_proba
        from alzmri.runs import WEIGHTS_FILE, load_model

        if model is None or info is None:
            model, info = load_model(run_dir)

        def proba(images: np.ndarray) -> np.ndarray:
            return predict_proba(model, info, images, temperature=temperature)

        return Backend("torch", bucketed(proba), str(Path(run_dir) / WEIGHTS_FILE))
    from alzmri.inference.onnx_export import OnnxPredictor

    sha256 = sha256 or weights_sha256(run_dir)
    path = onnx_file_for(run_dir, sha256)
    try:
        predictor = OnnxPredictor(path)
    except AlzmriError:  # a damaged cached export (killed write, disk trouble): export it again, once
        path.unlink(missing_ok=True)
        predictor = OnnxPredictor(onnx_file_for(run_dir, sha256))
    # the run's calibration is the truth: it may have been fitted after the export
    predictor.temperature = temperature
    return Backend("onnx", bucketed(predictor.predict_proba), str(path))
