"""Liveness, readiness and metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from lorag.app.http.auth import current_principal
from lorag.app.http.deps import ResourcesDep
from lorag.app.resources import Resources
from lorag.core import db
from lorag.core.errors import BackendUnavailable, LoragError

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is alive")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Every backend the app needs answers: up or down each; details for admin keys")
def readyz(request: Request, resources: ResourcesDep) -> JSONResponse:
    checks = {"database": _check_database(resources), "vector_store": _check_store(resources),
              "generator": _check_generator(resources),
              "embedder": _check_embedder(resources)}
    ready = all(check["ok"] for check in checks.values())
    if not _is_admin(request):  # public: no URLs, paths or model names for a stranger to map the deployment with
        checks = {name: {"ok": check["ok"]} for name, check in checks.items()}
    body = {"status": "ready" if ready else "not ready", "checks": checks}
    return JSONResponse(body, status_code=200 if ready else 503, headers=None if ready else {"Retry-After": "5"})


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    return request.app.state.metrics.render()


def _is_admin(request: Request) -> bool:
    """Readiness stays public (load balancers call it keyless); only an admin key sees the details."""
    if "authorization" not in request.headers:
        return False
    try:
        return current_principal(request).has("admin")
    except LoragError:
        return False


def _check_database(resources: Resources) -> dict[str, object]:
    try:
        db.ping(resources.engine)
    except BackendUnavailable as exc:
        return {"ok": False, "detail": exc.message}
    return {"ok": True, "detail": resources.engine.url.render_as_string(hide_password=True)}


def _check_store(resources: Resources) -> dict[str, object]:
    if not resources.store.healthy():
        return {"ok": False, "detail": f"the {resources.settings.store.backend} vector store does not answer"}
    return {"ok": True, "detail": resources.settings.store.backend}


def _check_generator(resources: Resources) -> dict[str, object]:
    generator = resources.answer_generator
    if generator is None:
        return {"ok": False, "detail": "no generator loaded (LORAG_SERVER__LOAD_MODELS=false)"}
    if not generator.healthy():
        return {"ok": False, "detail": f"the {resources.settings.generator.backend} generator does not answer"}
    return {"ok": True, "detail": ", ".join(generator.models())}


def _check_embedder(resources: Resources) -> dict[str, object]:
    if resources.embedder is None:
        return {"ok": False, "detail": "no embedder loaded (LORAG_SERVER__LOAD_MODELS=false)"}
    return {"ok": True, "detail": f"dimension {resources.embedder.dim}"}
