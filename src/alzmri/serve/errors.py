"""Every error of the API as JSON ``{"detail": "<one line>"}``, never a stack trace."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from alzmri.serve.schemas import Error
from alzmri.serve.security import COMMON_HEADERS
from alzmri.serve.uploads import UploadError

log = logging.getLogger("alzmri.serve")

#: The error answers a prediction route documents in the OpenAPI schema.
ERROR_RESPONSES = {s: {"model": Error} for s in (400, 413, 415, 422, 503)}


def add_error_handlers(app: FastAPI) -> None:
    """Answer every error of ``app`` as JSON ``{"detail": "<one line>"}``.

    An :class:`~alzmri.serve.uploads.UploadError` keeps its status and message, an HTTP
    error its status, a request that fails validation is a 422 naming the fields (five at
    most), and any other exception a 500 with a fixed message; its trace goes to the
    ``alzmri.serve`` log only.

    Parameters
    ----------
    app : fastapi.FastAPI
    """

    @app.exception_handler(UploadError)
    async def _upload_error(_req: Request, exc: UploadError):
        return JSONResponse({"detail": exc.message}, status_code=exc.status, headers=COMMON_HEADERS)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_req: Request, exc: StarletteHTTPException):
        detail = exc.detail if isinstance(exc.detail, str) else "request refused"
        return JSONResponse({"detail": detail}, status_code=exc.status_code, headers={**COMMON_HEADERS, **(exc.headers or {})})

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_req: Request, exc: RequestValidationError):
        parts = []
        for e in exc.errors()[:5]:
            where = ".".join(str(x) for x in e.get("loc", ()) if x not in ("body", "query"))
            parts.append(f"{where or 'request'}: {e.get('msg', 'invalid')}")
        return JSONResponse({"detail": "; ".join(parts) or "invalid request"}, status_code=422, headers=COMMON_HEADERS)

    @app.exception_handler(Exception)
    async def _internal_error(_req: Request, exc: Exception):
        log.exception("internal error")  # the trace goes to the server log only
        return JSONResponse({"detail": "internal error; see the server log"}, status_code=500, headers=COMMON_HEADERS)
