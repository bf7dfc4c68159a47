"""Who a request acts as, what it may do, how often, and from which web origins.

Every route that reads or changes data depends on `requires(scope)`. The principal comes from
`Authorization: Bearer lorag_...`; without a key, the embedded default (keys not required, loopback) acts as an
anonymous caller with public chat, ingestion and tagging. `LORAG_SERVER__REQUIRE_KEYS=true` refuses keyless calls.

CORS: a browser's preflight carries no key, so it is answered for the union of the live keys' origins; the
request that follows is then checked against its own key's origins. A key without origins is for servers, not
browsers: a request from another web origin with it is refused.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, FastAPI, Request, Response

from app import keys
from app.keys import Principal
from core.errors import Forbidden, RateLimited, Unauthorized

ANONYMOUS = Principal(None, "anonymous", frozenset({"chat:public", "ingest", "tag"}))
CHAT = ("chat:public", "chat:internal")
ORIGINS_TTL_S = 10.0  # how long the allowed-origins list is cached; a new key's origin works after at most this


class RateLimiter:
    """A token bucket per caller, in this process: `rate` requests a minute, bursts up to `rate`."""

    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}  # caller → (tokens, last refill time)
        self._lock = threading.Lock()

    def take(self, caller: str, rate: int) -> None:
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(caller, (float(rate), now))
            tokens = min(float(rate), tokens + (now - last) * rate / 60.0)
            if tokens < 1.0:
                self._buckets[caller] = (tokens, now)
                wait = math.ceil((1.0 - tokens) * 60.0 / rate)
                raise RateLimited(f"rate limit of {rate} requests a minute exceeded; retry in {wait}s",
                                  retry_after=wait)
            self._buckets[caller] = (tokens - 1.0, now)


def current_principal(request: Request) -> Principal:
    cached = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    resources = request.app.state.resources
    settings = resources.settings.server
    header = request.headers.get("authorization")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("send the API key as 'Authorization: Bearer lorag_<id>_<secret>'")
        principal = keys.authenticate(resources.sessions, token)
    elif settings.require_keys:
        raise Unauthorized("an API key is required: send 'Authorization: Bearer lorag_<id>_<secret>' "
                           "(`lorag keys create` makes one)")
    else:
        principal = ANONYMOUS
    check_origin(request, principal)
    caller = principal.key_id or f"ip:{request.client.host if request.client else 'unknown'}"
    request.app.state.rate_limiter.take(caller, principal.rate_per_minute or settings.rate_per_minute)
    request.state.principal = principal
    return principal


def check_origin(request: Request, principal: Principal) -> None:
    origin = request.headers.get("origin")
    if origin is None or principal.key_id is None or origin == own_origin(request):
        return
    if origin not in principal.origins:
        raise Forbidden(f"this API key may not be used from the web origin {origin}; add it to the key's origins")


def own_origin(request: Request) -> str:
    return f"{request.url.scheme}://{request.headers.get('host', request.url.netloc)}"


def requires(*scopes: str) -> Callable[..., Principal]:
    """A dependency: the principal, if it holds one of `scopes` (admin holds them all)."""

    def dependency(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if not any(principal.has(scope) for scope in scopes):
            raise Forbidden(f"this API key lacks the scope {' or '.join(scopes)}")
        return principal

    return dependency


def install_cors(app: FastAPI) -> None:
    cache: dict[str, tuple[float, set[str]]] = {}

    def allowed(request: Request) -> set[str]:
        stamp, origins = cache.get("origins", (0.0, set()))
        if time.monotonic() - stamp > ORIGINS_TTL_S:
            origins = keys.allowed_origins(request.app.state.resources.sessions)
            cache["origins"] = (time.monotonic(), origins)
        return origins

    @app.middleware("http")
    async def cors(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        origin = request.headers.get("origin")
        if origin is None or origin not in allowed(request):
            return await call_next(request)
        if request.method == "OPTIONS" and "access-control-request-method" in request.headers:
            return Response(status_code=204, headers={
                "Access-Control-Allow-Origin": origin, "Vary": "Origin", "Access-Control-Max-Age": "600",
                "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
                "Access-Control-Allow-Headers": "authorization, content-type"})
        response = await call_next(request)
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Vary"] = "Origin"
        return response
