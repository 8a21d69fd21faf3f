"""Security of the HTTP layer: the request-body limit and the response headers (ASGI middleware)."""

from __future__ import annotations

from fastapi.responses import JSONResponse

#: Headers of the page and its static files: same origin only, no inline script.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
}
#: Headers of every response.
COMMON_HEADERS = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"}


class RequestGuard:
    """ASGI middleware: request-body limit and security headers.

    The body limit answers 413 JSON when ``Content-Length`` exceeds ``max_bytes``
    (before anything is read) or when the streamed body does (chunked uploads, lying
    headers; whatever response the app then produced is replaced by the 413). Every
    response gets ``nosniff``, ``DENY`` framing and ``no-referrer``; the page and its
    static files also a strict Content-Security-Policy (same origin only, no inline
    script).

    Parameters
    ----------
    app : ASGI application
        The application it wraps.
    max_bytes : int
        Largest request body accepted, in bytes.
    """

    def __init__(self, app, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def _reject(self, send) -> None:
        body = JSONResponse({"detail": f"request body over the limit of {self.max_bytes:,} bytes"}, status_code=413, headers=COMMON_HEADERS)
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
        extra = {**COMMON_HEADERS, **(PAGE_HEADERS if path == "/" or path.startswith("/static/") else {})}
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
