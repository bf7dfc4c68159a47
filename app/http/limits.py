"""Request body limits, enforced before a route reads the body: 413 in the OpenAI error envelope.

A declared Content-Length over the limit is refused before any byte is read; a body sent without one (chunked)
is counted as it arrives and refused once it passes the limit. Document uploads get the ingestion limit plus
room for the multipart form around the file; everything else gets `server.max_body_bytes`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi.responses import JSONResponse

from lorag.app.http.errors import envelope

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

FORM_OVERHEAD_BYTES = 64 * 1024
UPLOAD_PATH = "/v1/documents"


class BodyLimit:
    """ASGI middleware; `limits(path)` gives the byte limit of a request to `path`."""

    def __init__(self, app: ASGIApp, limits: Callable[[str], int]) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        limit = self.limits(scope["path"])
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _too_large(limit)(scope, receive, send)
            return
        seen = 0
        refused = False

        async def counted() -> Message:
            nonlocal seen, refused
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    refused = True
                    return {"type": "http.disconnect"}  # the route stops reading; the 413 goes out below
            return message

        started = False

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused and not started:
                return  # whatever the route made of a cut-off body is replaced by the 413
            started = True
            await send(message)

        try:
            await self.app(scope, counted, guarded_send)
        except Exception:
            if not refused or started:
                raise  # a real failure: the app's own handlers deal with it
        if refused and not started:
            await _too_large(limit)(scope, receive, send)


def _too_large(limit: int) -> JSONResponse:
    return JSONResponse(envelope(f"the request body is larger than the limit of {limit} bytes", "invalid_request_error",
                                 "payload_too_large"), status_code=413)


def install_body_limit(app: Any, max_body_bytes: int, max_upload_bytes: int) -> None:
    upload = max_upload_bytes + FORM_OVERHEAD_BYTES
    app.add_middleware(BodyLimit, limits=lambda path: upload if path == UPLOAD_PATH else max_body_bytes)
