"""Request ids and Prometheus metrics for every request."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

from lorag.app.http.errors import fault_response
from lorag.core.logs import request_id

logger = logging.getLogger(__name__)


class Metrics:
    """One registry per app, so several apps (tests) never collide in the global one."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("lorag_http_requests_total", "HTTP requests by route and status.",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("lorag_http_request_seconds", "HTTP request latency by route.",
                                 ["method", "route"], registry=self.registry)

    def render(self) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


def install_observability(app: FastAPI, metrics: Metrics) -> None:
    @app.middleware("http")
    async def _observe(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        rid = request.headers.get("x-request-id") or uuid.uuid4().hex
        token = request_id.set(rid[:64])
        started = time.perf_counter()
        try:
            response = await call_next(request)
        except Exception as exc:  # the edge: a known fault gets its 503/507, anything else a 500 with the id
            response = fault_response(exc)
            if response is not None:
                logger.warning("%s %s: %s", request.method, request.url.path, exc)
            else:
                logger.exception("unhandled error on %s %s", request.method, request.url.path)
                response = _internal_error(rid)
        finally:
            request_id.reset(token)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        metrics.requests.labels(request.method, path, str(response.status_code)).inc()
        metrics.latency.labels(request.method, path).observe(time.perf_counter() - started)
        response.headers["X-Request-ID"] = rid[:64]
        return response


def _internal_error(rid: str) -> JSONResponse:
    message = f"internal error (request id {rid[:64]}); the server log has the details"
    return JSONResponse({"error": {"message": message, "type": "internal_error", "code": None, "param": None}},
                        status_code=500)
