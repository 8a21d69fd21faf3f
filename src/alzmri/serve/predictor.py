"""The prediction worker of the service: one run's model, its micro-batcher and Grad-CAM, and the answers they build."""

from __future__ import annotations

import base64
import copy
import io
import threading
from pathlib import Path

import numpy as np
from fastapi import UploadFile
from starlette.concurrency import run_in_threadpool

from alzmri import __version__
from alzmri.errors import AlzmriError
from alzmri.inference.backends import load_backend, weights_sha256
from alzmri.serve.batching import MicroBatcher, Overloaded
from alzmri.serve.schemas import BrainPrediction, Explanation, InputInfo, ModelInfo, Prediction
from alzmri.serve.uploads import MAX_PIXELS, MAX_VOXELS, UploadError, check_content_type, decode_brain_uploads, decode_upload

DISCLAIMER = (
    "Research use only. Not a medical device: not for diagnosis, screening or treatment "
    "decisions. Trained on small public slice sets from one cohort; its scores measured on "
    "those sets do not transfer to other scanners or patients."
)


def _png_data_url(rgb_or_gray: np.ndarray) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb_or_gray).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


class Predictor:
    """Loads one trained run and answers the prediction requests of the service.

    A slice-level run gets a backend (:func:`alzmri.inference.backends.load_backend`), an
    optional :class:`~alzmri.serve.batching.MicroBatcher` shared by concurrent requests,
    and a copy of the PyTorch model for Grad-CAM (with its own lock, so that batched
    forward passes never see its hooks); a brain-level run one model for a bag of slices,
    no batcher and no Grad-CAM.

    Parameters
    ----------
    run_dir : path-like
        A finished run folder; ``calibration.json`` in it is applied.
    backend : {"torch", "onnx"}, optional
        Default :data:`alzmri.inference.backends.DEFAULT_BACKEND`.
    micro_batch : bool, default=False
        Share forward passes between concurrent requests (ignored for a brain-level run).
    max_batch : int, default=32
        Slices per batched forward pass.
    batch_wait_s : float, default=0.002
        Seconds a batch waits for more requests.
    max_pixels, max_voxels : int, default=16_777_216
        Largest image (width x height) and volume accepted (413 above).
    max_pending : int, default=4096
        Slices allowed to wait for the model (503 above).

    Attributes
    ----------
    model_info : ModelInfo
        Model name, run, version (alzmri version + weights digest), backend, classes.
    batcher : MicroBatcher or None
        None without micro-batching.
    brain_level : bool
    brain : alzmri.inference.brain.BrainPredictor
        Answers for one brain; ``brain.backend`` names the backend in use.

    Raises
    ------
    AlzmriError
        Not a run folder, unreadable weights, unknown backend, failed ONNX export.
    """

    def __init__(
        self,
        run_dir: str | Path,
        *,
        backend: str | None = None,
        micro_batch: bool = False,
        max_batch: int = 32,
        batch_wait_s: float = 0.002,
        max_pixels: int = MAX_PIXELS,
        max_voxels: int = MAX_VOXELS,
        max_pending: int = 4096,
    ) -> None:
        from alzmri.evaluation.calibration import CALIBRATION_FILE, load_temperature
        from alzmri.inference.brain import load_brain_run
        from alzmri.runs import RunInfo, load_model

        run_dir = Path(run_dir)
        self.brain_level = RunInfo.load(run_dir).level == "brain"
        if self.brain_level:  # one model for a bag of slices: no slice backend, batcher or Grad-CAM
            brain = load_brain_run(run_dir, backend=backend)
            model, info, sha, be = None, brain.info, brain.weights_sha256(), None
        else:
            model, info = load_model(run_dir)
            sha = weights_sha256(run_dir)
            be = load_backend(run_dir, backend, model=model, info=info, sha256=sha)
            brain = load_brain_run(run_dir, backend=be.name, proba=be.proba)
        self.info, self.brain, self.slice_backend = info, brain, be
        self.max_pixels, self.max_voxels = max_pixels, max_voxels
        self.model_info = ModelInfo(
            name=info.model,
            run=run_dir.resolve().name,
            version=f"{__version__}+{sha[:12]}",
            alzmri_version=__version__,
            weights_sha256=sha,
            backend=brain.backend,
            image_size=info.image_size,
            classes=list(info.class_names),
            task=info.task,
            calibrated=(run_dir / CALIBRATION_FILE).is_file(),
            temperature=load_temperature(run_dir),
        )
        # Grad-CAM hooks the network and back-propagates: it gets its own copy and lock so
        # that batched forward passes in the other thread never see its hooks
        self.cam_model = copy.deepcopy(model) if model is not None else None
        self.cam_lock = threading.Lock()
        use_batcher = micro_batch and not self.brain_level
        self.batcher = MicroBatcher(be.proba, max_batch=max_batch, max_wait_s=batch_wait_s, max_pending=max_pending) if use_batcher else None

    async def probabilities(self, images: np.ndarray) -> np.ndarray:
        """Class probabilities of ``images`` (n, S, S) uint8, through the batcher when there is one.

        Raises
        ------
        UploadError
            503 when the batcher's queue is full.
        """
        if self.batcher is None:
            return await run_in_threadpool(self.slice_backend.proba, images)
        try:
            return await self.batcher.submit(images)
        except Overloaded as exc:
            raise UploadError(503, f"service overloaded ({exc}); retry later") from None

    def explain(self, decoded, class_index: int) -> Explanation:
        """The Grad-CAM overlay of the decoded upload's displayed slice for ``class_index``.

        Raises
        ------
        UploadError
            400 when the model has no Grad-CAM layer.
        """
        from alzmri.explain.gradcam import gradcam_maps, overlay_heatmap

        info = self.info
        try:
            with self.cam_lock:
                maps, _ = gradcam_maps(self.cam_model, info, decoded.images[decoded.display_index : decoded.display_index + 1], target_classes=[class_index])
        except AlzmriError as exc:  # a model without a Grad-CAM layer
            raise UploadError(400, f"Grad-CAM is not available for this model ({exc}); ask without explain=true") from None
        return Explanation(
            explained_class=info.class_names[class_index],
            overlay_png=_png_data_url(overlay_heatmap(decoded.display, maps[0])),
            slice_png=_png_data_url(decoded.display),
            slice_index=decoded.display_index,
        )

    async def predict_brain(self, files: list[UploadFile]) -> BrainPrediction:
        """One answer for one brain: its slice images (one upload each) or one volume.

        Raises
        ------
        UploadError
            Wrong content type, unreadable or too large content, overload.
        """
        from alzmri.inference.brain import with_input

        parts = []
        for f in files:
            check_content_type(f.content_type)
            parts.append(((f.filename or "upload")[-200:], await f.read()))
            await f.close()
        b = await run_in_threadpool(decode_brain_uploads, parts, self.info.image_size, max_pixels=self.max_pixels, max_voxels=self.max_voxels)
        del parts
        if self.brain_level:
            answer = await run_in_threadpool(self.brain.predict, b.images, names=b.names)
        else:
            answer = self.brain.aggregate(await self.probabilities(b.images), names=b.names)
        return BrainPrediction(**with_input(answer, b), model=self.model_info, disclaimer=DISCLAIMER)

    async def predict(self, file: UploadFile, *, explain: bool = False) -> Prediction:
        """The answer for one slice or volume (a volume: the mean of its central slices).

        Raises
        ------
        UploadError
            Wrong content type, unreadable or too large content, overload, Grad-CAM asked
            of a model without it.
        """
        info = self.info
        check_content_type(file.content_type)
        filename = (file.filename or "upload")[-200:]
        data = await file.read()
        await file.close()
        decoded = await run_in_threadpool(decode_upload, data, info.image_size, filename=filename, max_pixels=self.max_pixels, max_voxels=self.max_voxels)
        del data
        probs = await self.probabilities(decoded.images)
        inp = InputInfo(filename=filename, kind=decoded.kind, format=decoded.format, width=decoded.width, height=decoded.height)
        if decoded.kind == "volume":
            central = decoded.volume["_central"]
            row = probs[central].mean(axis=0)
            first, stop = decoded.volume["central_slices"]
            inp.n_slices, inp.central_slices = decoded.volume["n_slices"], [first, stop]
            inp.aggregation = f"mean of the probabilities of the {stop - first} central slices (middle of the brain extent)"
        else:
            row = probs[0]
        k = int(np.argmax(row))
        result = Prediction(
            task=info.task,
            predicted_class=info.class_names[k],
            confidence=float(row[k]),
            probabilities={c: float(v) for c, v in zip(info.class_names, row)},
            model=self.model_info,
            input=inp,
            disclaimer=DISCLAIMER,
        )
        if decoded.slice_check is not None:
            result.looks_like_mri = decoded.slice_check.looks_like_mri
            result.warning = decoded.slice_check.warning(filename)
        if explain:
            result.explanation = await run_in_threadpool(self.explain, decoded, k)
        return result
