"""The FastAPI application: JSON API, the page, limits and security defaults.

Routes
------
``GET /``            the page (``static/index.html``): pick or drop a slice or volume,
                     see it, its Grad-CAM overlay, one probability bar per class and
                     the research-use disclaimer.
``GET /health``      status, model name and version, backend, classes, limits.
``POST /predict``    multipart form with one file field ``file``; ``?explain=true`` adds
                     the Grad-CAM overlay and the slice as PNG data URLs. For a
                     brain-level run the file is one brain (a volume, or an image as a
                     brain of one slice) and the answer that of ``/predict/brain``.
``POST /predict/brain``  one brain: several slice images, each in a field ``file``, or
                     one NIfTI volume; one answer (``alzmri predict --brain``).
``GET /docs``, ``GET /openapi.json``   FastAPI's OpenAPI UI and schema.

Every error is JSON ``{"detail": "<one line>"}`` with a 4xx status (413 too large, 415
wrong content type, 400 unreadable content, 422 missing field, 503 overloaded); an
unexpected failure is a 500 with a fixed message, never a stack trace.
"""

from __future__ import annotations

import base64
import copy
import io
import logging
import threading
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from fastapi import Depends, FastAPI, File, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from alzmri import __version__
from alzmri.errors import AlzmriError
from alzmri.inference.backends import DEFAULT_BACKEND, load_backend, weights_sha256
from alzmri.serve.batching import MicroBatcher, Overloaded
from alzmri.serve.schemas import BrainPrediction, BrainSlice, Error, Explanation, Health, InputInfo, ModelInfo, Prediction  # noqa: F401 (public here too)
from alzmri.serve.uploads import MAX_PIXELS, MAX_VOXELS, UploadError, check_content_type, decode_brain_uploads, decode_upload

log = logging.getLogger("alzmri.serve")

STATIC_DIR = Path(__file__).parent / "static"
#: Largest request body accepted, in bytes (20 MB).
MAX_REQUEST_BYTES = 20_000_000
#: Whether concurrent requests share a forward pass by default. Off: on the development
#: machine (2 shared CPU cores) one forward pass per request gave the higher throughput
#: and lower latency, micro-batching the lower CPU time per request (docs/serving.md,
#: benchmarks/load_test.py). ``alzmri serve --micro-batch`` turns it on.
DEFAULT_MICRO_BATCH = False
#: Slices per batched forward pass at most.
MAX_BATCH = 32
#: Seconds the batcher waits for more requests after the first of a batch.
BATCH_WAIT_S = 0.002
DISCLAIMER = (
    "Research use only. Not a medical device: not for diagnosis, screening or treatment "
    "decisions. Trained on small public slice sets from one cohort; its scores measured on "
    "those sets do not transfer to other scanners or patients."
)
_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
}
_COMMON_HEADERS = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"}


# --------------------------------------------------------------------------- schema


_ERRORS = {s: {"model": Error} for s in (400, 413, 415, 422, 503)}


# --------------------------------------------------------------------------- settings


@dataclass
class ServeSettings:
    """Limits and behaviour of one app (all sizes in bytes, pixels or voxels)."""

    backend: str = DEFAULT_BACKEND
    micro_batch: bool = DEFAULT_MICRO_BATCH
    max_batch: int = MAX_BATCH
    batch_wait_s: float = BATCH_WAIT_S
    max_request_bytes: int = MAX_REQUEST_BYTES
    max_pixels: int = MAX_PIXELS
    max_voxels: int = MAX_VOXELS
    max_pending: int = 4096


class _Guard:
    """ASGI middleware: request-body limit and security headers.

    The body limit answers 413 JSON when ``Content-Length`` exceeds ``max_bytes``
    (before anything is read) or when the streamed body does (chunked uploads, lying
    headers; whatever response the app then produced is replaced by the 413). Every
    response gets ``nosniff``, ``DENY`` framing and ``no-referrer``; the page and its
    static files also a strict Content-Security-Policy (same origin only, no inline
    script).
    """

    def __init__(self, app, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def _reject(self, send) -> None:
        body = JSONResponse({"detail": f"request body over the limit of {self.max_bytes:,} bytes"}, status_code=413, headers=_COMMON_HEADERS)
        await send({"type": "http.response.start", "status": 413, "headers": body.raw_headers})
        await send({"type": "http.response.body", "body": body.body})

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for k, v in scope.get("headers", []):
            if k == b"content-length":
                try:
                    too_big = int(v) > self.max_bytes
                except ValueError:
                    too_big = False
                if too_big:
                    return await self._reject(send)
        path = scope.get("path", "")
        extra = {**_COMMON_HEADERS, **(_PAGE_HEADERS if path == "/" or path.startswith("/static/") else {})}
        extra_raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in extra.items()]
        state = {"received": 0, "over": False, "replaced": False}

        async def limited_receive():
            msg = await receive()
            if msg["type"] == "http.request":
                state["received"] += len(msg.get("body", b""))
                if state["received"] > self.max_bytes:
                    state["over"] = True
                    raise _TooLarge()
            return msg

        async def guarded_send(msg):
            if state["over"]:
                if msg["type"] == "http.response.start" and not state["replaced"]:
                    state["replaced"] = True
                    await self._reject(send)
                return
            if msg["type"] == "http.response.start":
                present = {k.lower() for k, _ in msg.get("headers", [])}
                msg = {**msg, "headers": [*msg.get("headers", []), *((k, v) for k, v in extra_raw if k not in present)]}
            await send(msg)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except _TooLarge:
            if not state["replaced"]:
                state["replaced"] = True
                await self._reject(send)


class _TooLarge(Exception):
    pass


# --------------------------------------------------------------------------- the app


def _png_data_url(rgb_or_gray: np.ndarray) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb_or_gray).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def create_app(
    run_dir: str | Path,
    *,
    backend: str | None = None,
    micro_batch: bool | None = None,
    max_batch: int = MAX_BATCH,
    batch_wait_s: float = BATCH_WAIT_S,
    max_request_bytes: int = MAX_REQUEST_BYTES,
    max_pixels: int = MAX_PIXELS,
    max_voxels: int = MAX_VOXELS,
    max_pending: int = 4096,
) -> FastAPI:
    """Build the service for one trained run (the model is loaded here, once).

    Parameters
    ----------
    run_dir : path-like
        A finished run folder (``alzmri train``); ``calibration.json`` in it is applied.
    backend : {"torch", "onnx"}, optional
        Default :data:`alzmri.inference.backends.DEFAULT_BACKEND`. ``onnx`` runs the run's
        ``.onnx`` file, or an export cached under the alzmri cache folder. Grad-CAM
        always uses the PyTorch model.
    micro_batch : bool, optional
        Share forward passes between concurrent requests (:class:`MicroBatcher`);
        default :data:`DEFAULT_MICRO_BATCH`. False runs each request's forward pass on
        its own (in the thread pool).
    max_batch : int, default=32
        Slices per batched forward pass.
    batch_wait_s : float, default=0.002
        Seconds a batch waits for more requests (micro-batching only).
    max_request_bytes : int, default=20_000_000
        Largest request body (413 above).
    max_pixels : int, default=16_777_216
        Largest image, width x height (413 above; checked from the header).
    max_voxels : int, default=16_777_216
        Largest volume (413 above; checked from the header).
    max_pending : int, default=4096
        Slices allowed to wait for the model (503 above).

    Returns
    -------
    fastapi.FastAPI

    Raises
    ------
    AlzmriError
        Not a run folder, unreadable weights, unknown backend, failed ONNX export.
    """
    from alzmri.evaluation.calibration import CALIBRATION_FILE, load_temperature
    from alzmri.inference.brain import load_brain_run, with_input
    from alzmri.runs import RunInfo, load_model

    run_dir = Path(run_dir)
    brain_level = RunInfo.load(run_dir).level == "brain"
    if brain_level:  # one model for a bag of slices: no slice backend, batcher or Grad-CAM
        brain = load_brain_run(run_dir, backend=backend)
        model, info, sha, be = None, brain.info, brain.weights_sha256(), None
    else:
        model, info = load_model(run_dir)
        sha = weights_sha256(run_dir)
        be = load_backend(run_dir, backend, model=model, info=info, sha256=sha)
        brain = load_brain_run(run_dir, backend=be.name, proba=be.proba)

    settings = ServeSettings(
        backend=brain.backend,
        micro_batch=(DEFAULT_MICRO_BATCH if micro_batch is None else bool(micro_batch)) and not brain_level,
        max_batch=max_batch,
        batch_wait_s=batch_wait_s,
        max_request_bytes=max_request_bytes,
        max_pixels=max_pixels,
        max_voxels=max_voxels,
        max_pending=max_pending,
    )
    model_info = ModelInfo(
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
    cam_model = copy.deepcopy(model) if model is not None else None
    cam_lock = threading.Lock()
    batcher = MicroBatcher(be.proba, max_batch=max_batch, max_wait_s=batch_wait_s, max_pending=max_pending) if settings.micro_batch else None
    limits = {"max_request_bytes": max_request_bytes, "max_pixels": max_pixels, "max_voxels": max_voxels, "max_batch": max_batch, "max_pending": max_pending}

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        if batcher is not None:
            await batcher.aclose()

    app = FastAPI(
        title="alzmri",
        version=__version__,
        summary=f"Alzheimer's severity from brain-MRI slices: {info.model}, run {model_info.run}. {DISCLAIMER}",
        description="Upload one slice (JPEG, PNG, ...) or one NIfTI volume to `POST /predict` as the multipart field `file`; "
        "one brain's slices (each in a field `file`) or its NIfTI volume to `POST /predict/brain`.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.model_info = model_info
    app.state.batcher = batcher
    app.add_middleware(_Guard, max_bytes=max_request_bytes)

    # ---------------------------------------------------------------- errors: JSON, one line

    @app.exception_handler(UploadError)
    async def _upload_error(_req: Request, exc: UploadError):
        return JSONResponse({"detail": exc.message}, status_code=exc.status, headers=_COMMON_HEADERS)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_req: Request, exc: StarletteHTTPException):
        detail = exc.detail if isinstance(exc.detail, str) else "request refused"
        return JSONResponse({"detail": detail}, status_code=exc.status_code, headers={**_COMMON_HEADERS, **(exc.headers or {})})

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_req: Request, exc: RequestValidationError):
        parts = []
        for e in exc.errors()[:5]:
            where = ".".join(str(x) for x in e.get("loc", ()) if x not in ("body", "query"))
            parts.append(f"{where or 'request'}: {e.get('msg', 'invalid')}")
        return JSONResponse({"detail": "; ".join(parts) or "invalid request"}, status_code=422, headers=_COMMON_HEADERS)

    @app.exception_handler(Exception)
    async def _internal_error(_req: Request, exc: Exception):
        log.exception("internal error")  # the trace goes to the server log only
        return JSONResponse({"detail": "internal error; see the server log"}, status_code=500, headers=_COMMON_HEADERS)

    # ---------------------------------------------------------------- routes

    def require_multipart(request: Request) -> None:
        ct = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ct != "multipart/form-data":
            raise UploadError(415, f"request content type must be multipart/form-data with the file in field 'file'; got {ct[:80] or 'none'!r}")

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/health", response_model=Health, summary="Service status and model version")
    async def health() -> Health:
        return Health(
            status="ok",
            model=model_info,
            micro_batching=settings.micro_batch,
            limits=limits,
            batching_stats=dict(batcher.stats) if batcher is not None else None,
            disclaimer=DISCLAIMER,
        )

    async def probabilities(images: np.ndarray) -> np.ndarray:
        if batcher is None:
            return await run_in_threadpool(be.proba, images)
        try:
            return await batcher.submit(images)
        except Overloaded as exc:
            raise UploadError(503, f"service overloaded ({exc}); retry later") from None

    def explain(decoded, class_index: int) -> Explanation:
        from alzmri.explain.gradcam import gradcam_maps, overlay_heatmap

        try:
            with cam_lock:
                maps, _ = gradcam_maps(cam_model, info, decoded.images[decoded.display_index : decoded.display_index + 1], target_classes=[class_index])
        except AlzmriError as exc:  # a model without a Grad-CAM layer
            raise UploadError(400, f"Grad-CAM is not available for this model ({exc}); ask without explain=true") from None
        return Explanation(
            explained_class=info.class_names[class_index],
            overlay_png=_png_data_url(overlay_heatmap(decoded.display, maps[0])),
            slice_png=_png_data_url(decoded.display),
            slice_index=decoded.display_index,
        )

    async def predict_brain(files: list[UploadFile]) -> BrainPrediction:
        parts = []
        for f in files:
            check_content_type(f.content_type)
            parts.append(((f.filename or "upload")[-200:], await f.read()))
            await f.close()
        b = await run_in_threadpool(decode_brain_uploads, parts, info.image_size, max_pixels=max_pixels, max_voxels=max_voxels)
        del parts
        if brain_level:
            answer = await run_in_threadpool(brain.predict, b.images, names=b.names)
        else:
            answer = brain.aggregate(await probabilities(b.images), names=b.names)
        return BrainPrediction(**with_input(answer, b), model=model_info, disclaimer=DISCLAIMER)

    @app.post("/predict/brain", response_model=BrainPrediction, responses=_ERRORS, dependencies=[Depends(require_multipart)], summary="Classify one brain")
    async def predict_brain_route(
        file: list[UploadFile] = File(..., description="one brain: its slice images (JPEG, PNG, ...; one per field 'file', in slice order) or one NIfTI volume"),
    ) -> BrainPrediction:
        """One answer for one brain, as `alzmri predict --brain` (alzmri.inference.brain).

        A brain-level run scores the bag of slices; a slice-level run averages its slices'
        probabilities. A volume's brain is its central slices.
        """
        return await predict_brain(file)

    if brain_level:
        @app.post("/predict", response_model=BrainPrediction, responses=_ERRORS, dependencies=[Depends(require_multipart)], summary="Classify one brain (volume)")
        async def predict_one_brain(
            file: UploadFile = File(..., description="one NIfTI volume (a brain), or one slice image (a brain of one slice)"),
            explain_: bool = Query(False, alias="explain", description="not available for brain-level runs"),
        ) -> BrainPrediction:
            """This run is brain-level: the upload is one brain, answered as by `POST /predict/brain`."""
            if explain_:
                raise UploadError(400, "Grad-CAM is not available for a brain-level run; ask without explain=true (the answer holds the slice weights)")
            return await predict_brain([file])

        return app

    @app.post("/predict", response_model=Prediction, responses=_ERRORS, dependencies=[Depends(require_multipart)], summary="Classify one slice or NIfTI volume")
    async def predict(
        file: UploadFile = File(..., description="one image (JPEG, PNG, BMP, TIFF, GIF, WebP) or NIfTI volume (.nii, .nii.gz)"),
        explain_: bool = Query(False, alias="explain", description="add the Grad-CAM overlay and the slice as PNG data URLs"),
    ) -> Prediction:
        """Class probabilities, predicted class and its (calibrated) confidence.

        A volume's probabilities are the mean of its central slices' (as `alzmri predict`).
        """
        check_content_type(file.content_type)
        filename = (file.filename or "upload")[-200:]
        data = await file.read()
        await file.close()
        decoded = await run_in_threadpool(decode_upload, data, info.image_size, filename=filename, max_pixels=max_pixels, max_voxels=max_voxels)
        del data
        probs = await probabilities(decoded.images)
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
            model=model_info,
            input=inp,
            disclaimer=DISCLAIMER,
        )
        if decoded.slice_check is not None:
            result.looks_like_mri = decoded.slice_check.looks_like_mri
            result.warning = decoded.slice_check.warning(filename)
        if explain_:
            result.explanation = await run_in_threadpool(explain, decoded, k)
        return result

    return app


def serve(run_dir: str | Path, *, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info", limit_concurrency: int = 64, **kwargs) -> None:
    """Load the run and serve it with uvicorn until interrupted.

    Parameters
    ----------
    run_dir : path-like
    host : str, default="127.0.0.1"
        Interface to bind; the service has no authentication, so anything other than a
        loopback address is warned about.
    port : int, default=8000
    log_level : str, default="info"
    limit_concurrency : int, default=64
        Connections served at once; uvicorn answers 503 beyond it.
    **kwargs
        Passed to :func:`create_app` (``backend``, ``micro_batch``, limits).

    Raises
    ------
    AlzmriError
        Bad run folder or backend; the port is out of range or already in use.
    """
    import socket

    import uvicorn

    from alzmri.utils.console import print_warning

    if not 0 < port < 65536:
        raise AlzmriError(f"--port must be 1..65535; got {port}")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise AlzmriError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); pass another --port or --host") from None
    app = create_app(run_dir, **kwargs)
    if host not in ("127.0.0.1", "localhost", "::1"):
        print_warning(f"binding to {host}: the service has no authentication and anyone who can reach this address can use it")
    mi = app.state.model_info
    print(f"serving {mi.name} (run {mi.run}, version {mi.version}, backend {mi.backend}, micro-batching {'on' if app.state.settings.micro_batch else 'off'})", flush=True)
    print(f"page: http://{host}:{port}/   API docs: http://{host}:{port}/docs", flush=True)
    uvicorn.run(app, host=host, port=port, log_level=log_level, limit_concurrency=limit_concurrency, server_header=False, timeout_keep_alive=5)
