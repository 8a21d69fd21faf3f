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

from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from fastapi import Depends, FastAPI, File, Query, Request, UploadFile
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from alzmri import __version__
from alzmri.errors import AlzmriError
from alzmri.inference.backends import DEFAULT_BACKEND
from alzmri.serve.errors import ERROR_RESPONSES, add_error_handlers
from alzmri.serve.predictor import DISCLAIMER, Predictor
from alzmri.serve.schemas import BrainPrediction, Health, Prediction
from alzmri.serve.security import RequestGuard
from alzmri.serve.uploads import MAX_PIXELS, MAX_VOXELS, UploadError

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
    run_dir = Path(run_dir)
    worker = Predictor(
        run_dir,
        backend=backend,
        micro_batch=DEFAULT_MICRO_BATCH if micro_batch is None else bool(micro_batch),
        max_batch=max_batch,
        batch_wait_s=batch_wait_s,
        max_pixels=max_pixels,
        max_voxels=max_voxels,
        max_pending=max_pending,
    )
    info, model_info, batcher = worker.info, worker.model_info, worker.batcher
    settings = ServeSettings(
        backend=worker.brain.backend,
        micro_batch=batcher is not None,
        max_batch=max_batch,
        batch_wait_s=batch_wait_s,
        max_request_bytes=max_request_bytes,
        max_pixels=max_pixels,
        max_voxels=max_voxels,
        max_pending=max_pending,
    )
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
    app.add_middleware(RequestGuard, max_bytes=max_request_bytes)
    add_error_handlers(app)

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

    @app.post("/predict/brain", response_model=BrainPrediction, responses=ERROR_RESPONSES, dependencies=[Depends(require_multipart)], summary="Classify one brain")
    async def predict_brain_route(
        file: list[UploadFile] = File(..., description="one brain: its slice images (JPEG, PNG, ...; one per field 'file', in slice order) or one NIfTI volume"),
    ) -> BrainPrediction:
        """One answer for one brain, as `alzmri predict --brain` (alzmri.inference.brain).

        A brain-level run scores the bag of slices; a slice-level run averages its slices'
        probabilities. A volume's brain is its central slices.
        """
        return await worker.predict_brain(file)

    if worker.brain_level:
        @app.post("/predict", response_model=BrainPrediction, responses=ERROR_RESPONSES, dependencies=[Depends(require_multipart)], summary="Classify one brain (volume)")
        async def predict_one_brain(
            file: UploadFile = File(..., description="one NIfTI volume (a brain), or one slice image (a brain of one slice)"),
            explain_: bool = Query(False, alias="explain", description="not available for brain-level runs"),
        ) -> BrainPrediction:
            """This run is brain-level: the upload is one brain, answered as by `POST /predict/brain`."""
            if explain_:
                raise UploadError(400, "Grad-CAM is not available for a brain-level run; ask without explain=true (the answer holds the slice weights)")
            return await worker.predict_brain([file])

        return app

    @app.post("/predict", response_model=Prediction, responses=ERROR_RESPONSES, dependencies=[Depends(require_multipart)], summary="Classify one slice or NIfTI volume")
    async def predict(
        file: UploadFile = File(..., description="one image (JPEG, PNG, BMP, TIFF, GIF, WebP) or NIfTI volume (.nii, .nii.gz)"),
        explain_: bool = Query(False, alias="explain", description="add the Grad-CAM overlay and the slice as PNG data URLs"),
    ) -> Prediction:
        """Class probabilities, predicted class and its (calibrated) confidence.

        A volume's probabilities are the mean of its central slices' (as `alzmri predict`).
        """
        return await worker.predict(file, explain=explain_)

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
