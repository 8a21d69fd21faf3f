"""``alzmri serve``: a run behind a JSON API and a web page."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def serve_cmd(
    run: Path = typer.Argument(..., help="run folder"),
    host: str = typer.Option("127.0.0.1", help="interface to bind (default: this machine only; the service has no authentication)"),
    port: int = typer.Option(8000, help="TCP port"),
    backend: Optional[str] = typer.Option(None, help="torch or onnx (default: onnx, alzmri.inference.backends.DEFAULT_BACKEND)"),
    micro_batch: Optional[bool] = typer.Option(None, "--micro-batch/--no-micro-batch", help="share forward passes between concurrent requests (default: alzmri.serve.DEFAULT_MICRO_BATCH, off)"),
    max_request_mb: float = typer.Option(20.0, "--max-request-mb", min=0.001, help="largest request body in MB (10^6 bytes)"),
) -> None:
    """Serve a run: JSON API (POST /predict, GET /health, /docs) and a page at / (Grad-CAM, probabilities)."""
    from alzmri.serve import serve

    serve(run, host=host, port=port, backend=backend, micro_batch=micro_batch, max_request_bytes=int(max_request_mb * 1_000_000))
