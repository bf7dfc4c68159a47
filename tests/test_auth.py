"""API keys on the HTTP API: the audience comes from the key; scopes, knowledge bases, adapters, origins, rates."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from lorag.app.http.main import create_app
from lorag.core import keys
from lorag.core.settings import Settings
from lorag.ingest.registry import document_id


@pytest.fixture
def client(make_settings: Callable[..., Settings]) -> Iterator[TestClient]:
    """Keys required, no models: every check here happens before a model would be asked."""
    settings = make_settings(server={"load_models": False, "require_keys": True})
    with TestClient(create_app(settings)) as client:
        yield client


def make_key(client: TestClient, **grant: object) -> dict[str, str]:
    grant.setdefault("name", "test")
    key, _info = keys.create(client.app.state.resources.sessions, **grant)  # type: ignore[arg-type]
    return {"Authorization": f"Bearer {key}"}


def upload(client: TestClient, headers: dict[str, str], name: str, kb: str, audience: str):
    return client.post("/v1/documents", headers=headers, data={"kb": kb, "audience": audience},
                       files={"file": (name, b"# Limits\n\nTier 1 agents may approve up to 25 euros.\n")})


def error(response) -> tuple[int, str]:  # noqa: ANN001 - an httpx response
    return response.status_code, response.json()["error"]["type"]


def test_keys_are_required_and_checked(client: TestClient) -> None:
    ask = {"question": "How long do refunds take?"}
    assert error(client.post("/v1/ask", json=ask)) == (401, "authentication_error")
    assert error(client.post("/v1/ask", json=ask, headers={"Authorization": "Bearer nonsense"})) == (
        401, "authentication_error")
    forged = "Bearer lorag_000000000000_" + "x" * 43
    assert error(client.post("/v1/ask", json=ask, headers={"Authorization": forged})) == (401, "authentication_error")
    headers = make_key(client, scopes=["chat:public"])
    assert client.post("/v1/ask", json=ask, headers=headers).status_code == 503  # past auth: no model loaded
    key_id = headers["Authorization"].split("_")[1]
    keys.revoke(client.app.state.resources.sessions, key_id)
    response = client.post("/v1/ask", json=ask, headers=headers)
    assert response.status_code == 401 and "revoked" in response.json()["error"]["message"]


def test_only_the_key_hash_is_stored(client: TestClient) -> None:
    headers = make_key(client, scopes=["chat:public"])
    secret = headers["Authorization"].removeprefix("Bearer ").split("_", 2)[2]  # the secret may hold "_"
    with client.app.state.resources.engine.connect() as connection:
        dump = "\n".join(str(row) for row in connection.exec_driver_sql("SELECT * FROM api_keys"))
    assert secret not in dump and keys.hash_secret(secret) in dump


def test_scopes_decide_what_a_key_may_do(client: TestClient) -> None:
    chat = make_key(client, scopes=["chat:public"])
    ingest = make_key(client, scopes=["ingest"])
    assert error(upload(client, chat, "a.md", "support", "public")) == (403, "permission_error")
    assert upload(client, ingest, "a.md", "support", "public").status_code == 202
    assert error(client.post("/v1/ask", json={"question": "Hi?"}, headers=ingest)) == (403, "permission_error")


def test_a_public_key_cannot_see_internal_documents_or_jobs(client: TestClient) -> None:
    public = make_key(client, scopes=["ingest", "chat:public"])
    internal = make_key(client, scopes=["ingest", "chat:internal"])
    assert error(upload(client, public, "limits.md", "experts", "internal")) == (403, "permission_error")
    made = upload(client, internal, "limits.md", "experts", "internal").json()
    doc_id = document_id("experts", "limits.md")
    assert made["id"] == doc_id
    assert client.get(f"/v1/documents/{doc_id}", headers=internal).status_code == 200
    hidden = client.get(f"/v1/documents/{doc_id}", headers=public)
    assert hidden.status_code == 404 and hidden.json()["error"]["message"] == f"no document with id {doc_id!r}"
    assert client.get(f"/v1/jobs/{made['job_id']}", headers=public).status_code == 404
    assert client.delete(f"/v1/documents/{doc_id}", headers=public).status_code == 404
    assert client.get(f"/v1/jobs/{made['job_id']}", headers=internal).json()["total"] == 1


def test_knowledge_bases_and_adapters_can_be_restricted(client: TestClient) -> None:
    headers = make_key(client, scopes=["chat:public", "ingest"], kbs=["support"], adapters=["support"])
    assert error(upload(client, headers, "a.md", "experts", "public")) == (403, "permission_error")
    assert error(client.post("/v1/ask", json={"question": "Hi?", "kb": "experts"}, headers=headers)) == (
        403, "permission_error")
    assert error(client.post("/v1/ask", json={"question": "Hi?"}, headers=headers)) == (403, "permission_error")
    response = client.post("/v1/ask", json={"question": "Hi?", "kb": "support", "model": "menu-tagging@1"},
                           headers=headers)
    assert error(response) == (403, "permission_error") and response.json()["error"]["param"] == "model"


def test_a_key_has_a_rate_limit(client: TestClient) -> None:
    headers = make_key(client, scopes=["ingest"], rate_per_minute=2)
    assert [client.get("/v1/jobs/nope", headers=headers).status_code for _ in range(2)] == [404, 404]
    limited = client.get("/v1/jobs/nope", headers=headers)
    assert error(limited) == (429, "rate_limit_error") and int(limited.headers["retry-after"]) >= 1
    other = make_key(client, scopes=["ingest"], rate_per_minute=2)
    assert client.get("/v1/jobs/nope", headers=other).status_code == 404  # one key's limit is its own


def test_browsers_may_call_only_from_a_keys_origins(client: TestClient) -> None:
    widget = make_key(client, scopes=["ingest"], origins=["https://shop.example"])
    server_key = make_key(client, scopes=["ingest"])
    preflight = client.options("/v1/jobs/x", headers={"Origin": "https://shop.example",
                                                      "Access-Control-Request-Method": "GET"})
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "https://shop.example"
    assert "authorization" in preflight.headers["access-control-allow-headers"]
    unknown = client.options("/v1/jobs/x", headers={"Origin": "https://evil.example",
                                                    "Access-Control-Request-Method": "GET"})
    assert "access-control-allow-origin" not in unknown.headers
    allowed = client.get("/v1/jobs/x", headers={**widget, "Origin": "https://shop.example"})
    assert allowed.status_code == 404 and allowed.headers["access-control-allow-origin"] == "https://shop.example"
    assert error(client.get("/v1/jobs/x", headers={**widget, "Origin": "https://evil.example"})) == (
        403, "permission_error")
    assert error(client.get("/v1/jobs/x", headers={**server_key, "Origin": "https://shop.example"})) == (
        403, "permission_error")


def test_bad_grants_are_refused_with_every_problem(client: TestClient) -> None:
    from lorag.core.errors import InvalidInput

    with pytest.raises(InvalidInput) as caught:
        keys.create(client.app.state.resources.sessions, name=" ", scopes=["chat:everything"],
                    origins=["shop.example/path"], rate_per_minute=0)
    message = caught.value.message
    assert "name" in message and "chat:everything" in message and "origins" in message and "rate" in message
