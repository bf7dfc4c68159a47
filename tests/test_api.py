from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from lorag.app.http.main import create_app
from lorag.core import keys
from lorag.core.settings import Settings


@pytest.fixture
def bare_client(make_settings: Callable[..., Settings]) -> Iterator[TestClient]:
    """The API without models: fast, for the skeleton's contracts."""
    settings = make_settings(server={"load_models": False})
    with TestClient(create_app(settings)) as client:
        yield client


def test_healthz_answers(bare_client: TestClient) -> None:
    response = bare_client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def admin(client: TestClient) -> dict[str, str]:
    key, _ = keys.create(client.app.state.resources.sessions, name="ops", scopes=["admin"])
    return {"Authorization": f"Bearer {key}"}


def test_readyz_says_what_is_missing(bare_client: TestClient) -> None:
    response = bare_client.get("/readyz", headers=admin(bare_client))
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    checks = response.json()["checks"]
    assert checks["database"]["ok"] is True
    assert checks["generator"] == {"ok": False, "detail": "no generator loaded (LORAG_SERVER__LOAD_MODELS=false)"}


def test_readyz_tells_strangers_only_up_or_down(bare_client: TestClient) -> None:
    """The database URL (a file path here, a host and user in production) is for admin keys only."""
    chat, _ = keys.create(bare_client.app.state.resources.sessions, name="site", scopes=["chat:internal", "ingest"])
    forged = "Bearer lorag_000000000000_" + "x" * 30
    for headers in ({}, {"Authorization": f"Bearer {chat}"}, {"Authorization": forged}):
        response = bare_client.get("/readyz", headers=headers)
        assert response.status_code == 503
        checks = response.json()["checks"]
        assert set(checks) == {"database", "vector_store", "generator", "embedder"}
        assert all(set(check) == {"ok"} for check in checks.values()), checks
        assert checks["database"] == {"ok": True} and checks["generator"] == {"ok": False}
        assert "lorag.db" not in response.text and "sqlite" not in response.text


def test_request_ids_are_echoed_or_made(bare_client: TestClient) -> None:
    assert bare_client.get("/healthz", headers={"X-Request-ID": "abc123"}).headers["x-request-id"] == "abc123"
    made = bare_client.get("/healthz").headers["x-request-id"]
    assert len(made) == 32


def test_errors_use_the_openai_envelope(bare_client: TestClient) -> None:
    response = bare_client.get("/v1/nothing-here")
    assert response.status_code == 404
    assert response.json() == {"error": {"message": "Not Found", "type": "not_found_error", "code": None,
                                         "param": None}}
    response = bare_client.post("/healthz")
    assert response.status_code == 405
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_unexpected_errors_become_a_500_envelope_with_the_request_id(
    make_settings: Callable[..., Settings],
) -> None:
    app = create_app(make_settings(server={"load_models": False}))

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret internals")

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/boom", headers={"X-Request-ID": "rid-7"})
    assert response.status_code == 500
    assert response.json()["error"]["type"] == "internal_error"
    assert "rid-7" in response.json()["error"]["message"]
    assert "secret internals" not in response.text


def test_metrics_count_requests(bare_client: TestClient) -> None:
    bare_client.get("/healthz")
    body = bare_client.get("/metrics").text
    assert 'lorag_http_requests_total{method="GET",route="/healthz",status="200"} 1.0' in body


@pytest.mark.slow
def test_readyz_is_ready_with_the_packaged_models(make_settings: Callable[..., Settings], models_dir: object) -> None:
    with TestClient(create_app(make_settings())) as client:
        response = client.get("/readyz", headers=admin(client))
    assert response.status_code == 200, response.text
    checks = response.json()["checks"]
    assert checks["embedder"]["detail"] == "dimension 384"
    assert checks["generator"]["detail"].startswith("smollm2-135m-instruct")


def test_docs_work_offline(bare_client: TestClient) -> None:
    """Swagger UI from the package: the page names no other host, and its script defines SwaggerUIBundle."""
    page = bare_client.get("/docs")
    assert page.status_code == 200
    assert "cdn." not in page.text and "https://" not in page.text.split("<body>")[0]
    script = bare_client.get("/docs-assets/swagger-ui-bundle.js")
    assert script.status_code == 200 and "SwaggerUIBundle" in script.text
    assert bare_client.get("/docs-assets/swagger-ui.css").status_code == 200
