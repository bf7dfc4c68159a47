"""Request body limits: refused with 413 in the error envelope before a route reads the body, nothing stored."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from lorag.app.http.main import create_app
from lorag.core.settings import Settings


@pytest.fixture
def client(make_settings: Callable[..., Settings]) -> Iterator[TestClient]:
    settings = make_settings(server={"load_models": False, "max_body_bytes": 2000}, ingest={"max_bytes": 5000})
    with TestClient(create_app(settings)) as client:
        yield client


def refused(response) -> bool:  # noqa: ANN001 - an httpx response
    body = response.json()
    return response.status_code == 413 and body["error"]["code"] == "payload_too_large" and "2000" in \
        body["error"]["message"]


def test_a_declared_body_over_the_limit_is_refused(client: TestClient) -> None:
    assert refused(client.post("/v1/ask", json={"question": "x" * 3000}))
    assert client.post("/v1/ask", json={"question": "x" * 100}).status_code == 503  # within: on to the model


def test_a_chunked_body_is_counted_as_it_arrives(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"question": "'
        for _ in range(10):
            yield b"y" * 500
        yield b'"}'

    response = client.post("/v1/ask", content=chunks(), headers={"content-type": "application/json"})
    assert refused(response)


def test_uploads_get_the_ingestion_limit_and_nothing_is_stored(client: TestClient) -> None:
    fits = client.post("/v1/documents", data={"kb": "support"}, files={"file": ("a.md", b"# A\n\n" + b"a " * 1500)})
    assert fits.status_code == 202, fits.text  # over the 2000-byte API limit, within the ingestion limit
    big = client.post("/v1/documents", data={"kb": "support"}, files={"file": ("b.md", b"b " * 60_000)})
    assert big.status_code == 413 and big.json()["error"]["type"] == "invalid_request_error"
    with client.app.state.resources.engine.connect() as connection:
        sources = [row[0] for row in connection.exec_driver_sql("SELECT source FROM documents")]
    assert sources == ["a.md"], json.dumps(sources)
