"""Who a request acts as, what it may do, how often, and from which web origins.

Every route that reads or changes data depends on `requires(scope)`. The principal comes from
`Authorization: Bearer lorag_...`; without a key, the embedded default (keys not required, loopback) acts as an
anonymous caller with public chat, ingestion and tagging (a bearer value that is not a lorag key, which the OpenAI
SDK always sends, counts as none). `LORAG_SERVER__REQUIRE_KEYS=true` refuses keyless calls.

Rates: every caller (its key, or its address without one) gets `rate_per_minute`; every address also gets
`auth_failures_per_minute` failed authentications. The address is the peer's, or from `X-Forwarded-For` only when
the peer is one of `trusted_proxies`. Counts live in Redis when configured, so they hold across API processes.

CORS: a browser's preflight carries no key, so it is answered for the union of the live keys' origins; the
request that follows is then checked against its own key's origins. A key without origins is for servers, not
browsers: a request from another web origin with it is refused.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated

from fastapi import Depends, FastAPI, Request, Response
from limits import RateLimitItemPerSecond
from limits.storage import storage_from_string
from limits.strategies import SlidingWindowCounterRateLimiter
from sqlalchemy.orm import Session, sessionmaker

from lorag.core import keys
from lorag.core.errors import BackendUnavailable, Forbidden, RateLimited, Unauthorized
from lorag.core.keys import Principal
from lorag.core.settings import ServerSettings, Settings

ANONYMOUS = Principal(None, "anonymous", frozenset({"chat:public", "ingest", "tag"}))
CHAT = ("chat:public", "chat:internal")
ORIGINS_TTL_S = 10.0  # how long the allowed-origins list is cached; a new key's origin works after at most this


class RateLimiter:
    """Requests a minute per caller, counted by the `limits` library: in this process, or in Redis so that every
    API process behind a load balancer shares the count. A sliding-window counter: its keys expire two
    windows after their last hit, so the table stays bounded however many callers come and go.
    """

    def __init__(self, storage_uri: str = "memory://", period_s: int = 60) -> None:
        self._storage = storage_from_string(storage_uri)
        self._limiter = SlidingWindowCounterRateLimiter(self._storage)
        self._period_s = period_s

    def take(self, namespace: str, caller: str, rate: int) -> None:
        """Count one request of `caller`; RateLimited once it is over `rate` a period."""
        if not self.count(namespace, caller, rate):
            wait = self._wait(RateLimitItemPerSecond(rate, self._period_s), namespace, caller)
            raise RateLimited(f"rate limit of {rate} requests a minute exceeded; retry in {wait}s", retry_after=wait)

    def count(self, namespace: str, caller: str, rate: int) -> bool:
        """Count one event of `caller`; False when it went past `rate` a period."""
        item = RateLimitItemPerSecond(rate, self._period_s)
        try:
            return self._limiter.hit(item, namespace, caller)
        except Exception as exc:  # Redis away: refuse with a retryable error rather than serve unlimited
            raise BackendUnavailable(f"the rate limiter's store does not answer: {type(exc).__name__}") from exc

    def over(self, namespace: str, caller: str, rate: int) -> int | None:
        """Seconds to wait if `caller` has used up `rate` already, without counting a request; else None."""
        item = RateLimitItemPerSecond(rate, self._period_s)
        try:
            stats = self._limiter.get_window_stats(item, namespace, caller)
        except Exception as exc:
            raise BackendUnavailable(f"the rate limiter's store does not answer: {type(exc).__name__}") from exc
        return None if stats.remaining > 0 else self._wait(item, namespace, caller)

    def _wait(self, item: RateLimitItemPerSecond, namespace: str, caller: str) -> int:
        reset = self._limiter.get_window_stats(item, namespace, caller).reset_time
        return max(1, math.ceil(reset - time.time()))

    def size(self) -> int:
        """Keys held in memory (memory storage only): what the bounded-table test watches."""
        return len(getattr(self._storage, "storage", {}))


def build_rate_limiter(settings: Settings) -> RateLimiter:
    """Redis when one is configured (the production shape), else this process's memory."""
    url = settings.server.rate_limit_url
    if url is None and settings.queue.backend == "redis":
        url = settings.queue.redis_url
    return RateLimiter(url or "memory://")


def client_address(request: Request, trusted: Sequence[str]) -> str:
    """The caller's address: `X-Forwarded-For` counts only when the peer is a trusted proxy, and then the
    nearest address in it that is not itself a trusted proxy (the ones further left are the client's claims)."""
    peer = request.client.host if request.client else "unknown"
    if not trusted or not _in_networks(peer, trusted):
        return peer
    hops = [hop.strip() for header in request.headers.getlist("x-forwarded-for") for hop in header.split(",")]
    for hop in reversed([hop for hop in hops if hop]):
        if not _in_networks(hop, trusted):
            return hop
    return peer


def _in_networks(address: str, networks: Sequence[str]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(network, strict=False) for network in networks)


def current_principal(request: Request) -> Principal:
    cached = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    resources = request.app.state.resources
    settings = resources.settings.server
    limiter: RateLimiter = request.app.state.rate_limiter
    address = client_address(request, settings.trusted_proxies)
    principal = _authenticate(request, resources.sessions, settings, limiter, address)
    check_origin(request, principal)
    caller = principal.key_id or f"ip:{address}"
    limiter.take("requests", caller, principal.rate_per_minute or settings.rate_per_minute)
    request.state.principal = principal
    return principal


def _authenticate(request: Request, sessions: sessionmaker[Session], settings: ServerSettings,
                  limiter: RateLimiter, address: str) -> Principal:
    """The principal of the request's key. Failed attempts are counted per client address, and an address over
    `auth_failures_per_minute` is refused before its key is even looked at, so keys cannot be guessed at speed."""
    header = request.headers.get("authorization")
    if not header and not settings.require_keys:
        return ANONYMOUS
    wait = limiter.over("auth-failures", address, settings.auth_failures_per_minute)
    if wait is not None:
        raise RateLimited(f"too many failed authentications from this address; retry in {wait}s", retry_after=wait)
    try:
        return _principal_of(header, sessions, settings)
    except Unauthorized:
        limiter.count("auth-failures", address, settings.auth_failures_per_minute)
        raise


def _principal_of(header: str | None, sessions: sessionmaker[Session], settings: ServerSettings) -> Principal:
    if not header:
        raise Unauthorized("an API key is required: send 'Authorization: Bearer lorag_<id>_<secret>' "
                           "(`lorag keys create` makes one)")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("send the API key as 'Authorization: Bearer lorag_<id>_<secret>'")
    if not settings.require_keys and not token.startswith("lorag_"):
        # Keys are optional here: a client that always sends some bearer value (the OpenAI SDK) is anonymous.
        return ANONYMOUS
    return keys.authenticate(sessions, token)


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
