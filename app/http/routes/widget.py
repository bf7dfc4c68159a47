"""The embeddable chat widget (`/widget.js`) and the demo page at `/` that embeds it.

A site adds `<script src="https://HOST/widget.js" data-api-key="..." data-kb="support"></script>`; the script
talks only to the origin it was loaded from.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

from fastapi import APIRouter, Request, Response

router = APIRouter(include_in_schema=False)  # assets, not API: they would only clutter the OpenAPI schema

STATIC = Path(__file__).resolve().parents[1] / "static"
# Not versioned in its URL, so caches must come back soon for a new release; the ETag makes that a 304.
WIDGET_CACHE = "public, max-age=300, stale-while-revalidate=86400"
# The demo holds to what the widget promises a host page: no inline script, requests to its own origin only.
DEMO_CSP = ("default-src 'self'; script-src 'self'; connect-src 'self'; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


@cache
def asset(name: str) -> tuple[bytes, str]:
    """A static file's bytes and a strong ETag, read once per process (they only change with a release)."""
    data = (STATIC / name).read_bytes()
    return data, f'"{hashlib.sha256(data).hexdigest()[:32]}"'


def cached_response(request: Request, name: str, media_type: str, headers: dict[str, str]) -> Response:
    data, etag = asset(name)
    headers = {**headers, "ETag": etag, "X-Content-Type-Options": "nosniff"}
    if etag in _etags(request.headers.get("if-none-match")):
        return Response(status_code=304, headers=headers)
    return Response(data, media_type=media_type, headers=headers)


def _etags(header: str | None) -> set[str]:
    return {tag.strip().removeprefix("W/") for tag in (header or "").split(",") if tag.strip()}


@router.get("/widget.js")
def widget_js(request: Request) -> Response:
    # CORP: pages that isolate themselves (Cross-Origin-Embedder-Policy) can still load the script.
    headers = {"Cache-Control": WIDGET_CACHE, "Cross-Origin-Resource-Policy": "cross-origin"}
    return cached_response(request, "widget.js", "text/javascript; charset=utf-8", headers)


@router.get("/")
def demo_page(request: Request) -> Response:
    headers = {"Cache-Control": "no-cache", "Content-Security-Policy": DEMO_CSP}
    return cached_response(request, "demo.html", "text/html; charset=utf-8", headers)


@router.get("/demo.js")
def demo_js(request: Request) -> Response:
    """The demo page's status line: which adapter answers, and the training in progress."""
    return cached_response(request, "demo.js", "text/javascript; charset=utf-8", {"Cache-Control": "no-cache"})
