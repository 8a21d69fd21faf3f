"""Serve a trained run: a FastAPI JSON API and one page (``alzmri serve RUN``).

:func:`create_app` builds the app for a run folder, :func:`serve` runs it with uvicorn
(bound to 127.0.0.1 by default). The page is ``static/index.html`` (with ``app.js`` and
``style.css``), shipped as package data. See docs/serving.md.
"""

from alzmri.serve.app import DEFAULT_MICRO_BATCH, MAX_REQUEST_BYTES, create_app, serve
from alzmri.serve.predictor import DISCLAIMER
from alzmri.inference.backends import BACKENDS, DEFAULT_BACKEND

__all__ = ["BACKENDS", "DEFAULT_BACKEND", "DEFAULT_MICRO_BATCH", "DISCLAIMER", "MAX_REQUEST_BYTES", "create_app", "serve"]
