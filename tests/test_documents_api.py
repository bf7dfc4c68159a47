"""The documents API on the embedded default: upload, follow the job, fetch, delete; bad uploads refused."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from lorag.app.http.main import create_app
from lorag.core.settings import Settings
from lorag.ingest.store import Filter

FIXTURES = Path(__file__).parent / "ingest" / "fixtures"

pytestmark = pytest.mark.slow


@pytest.fixture
def client(make_settings: Callable[..., Settings], models_dir: Path) -> Iterator[TestClient]:
    settings = make_settings(ingest={"max_bytes": 50_000})
    with TestClient(create_app(settings)) as client:
        yield client


def _wait_done(client: TestClient, job_id: str) -> dict:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] == "done":
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} not done: {job}")


def _upload(client: TestClient, name: str, data: bytes, kb: str = "support", audience: str = "public"):
    return client.post("/v1/documents", data={"kb": kb, "audience": audience}, files={"file": (name, data)})


def test_an_upload_is_indexed_found_and_deleted(client: TestClient) -> None:
    response = _upload(client, "refunds.md", b"# Refunds\n\nRefunds reach your card within 5 working days.\n")
    assert response.status_code == 202, response.text
    doc = response.json()
    assert doc["status"] == "queued" and doc["version"] == 1
    job = _wait_done(client, doc["job_id"])
    assert job["counts"] == {"indexed": 1}

    indexed = client.get(f"/v1/documents/{doc['id']}").json()
    assert indexed["status"] == "indexed" and indexed["chunk_count"] == 1 and indexed["title"] == "Refunds"
    store = client.app.state.resources.store
    assert store.count(Filter(audiences=("public",), doc_id=doc["id"])) == 1

    again = _upload(client, "refunds.md", b"# Refunds\n\nRefunds reach your card within 5 working days.\n")
    assert again.json()["status"] == "indexed"  # unchanged: nothing queued

    deleted = client.delete(f"/v1/documents/{doc['id']}")
    assert deleted.status_code == 200 and deleted.json()["status"] == "deleted"
    assert store.count(Filter(audiences=("public",), doc_id=doc["id"])) == 0


def test_a_document_that_cannot_be_parsed_fails_with_its_reason(client: TestClient) -> None:
    doc = _upload(client, "locked.pdf", (FIXTURES / "encrypted.pdf").read_bytes()).json()
    _wait_done(client, doc["job_id"])
    failed = client.get(f"/v1/documents/{doc['id']}").json()
    assert failed["status"] == "failed" and "encrypted" in failed["error"].lower()


@pytest.mark.parametrize(("name", "data", "status", "words"), [
    ("deck.pptx", b"PK\x03\x04", 400, "unsupported file type"),
    ("empty.md", b"", 400, "empty"),
    ("big.md", b"x" * 50_001, 413, "over the limit"),
])
def test_bad_uploads_are_refused_and_nothing_is_stored(client: TestClient, name: str, data: bytes, status: int,
                                                      words: str) -> None:
    response = _upload(client, name, data)
    assert response.status_code == status
    assert words in response.json()["error"]["message"]
    with client.app.state.resources.sessions() as session:
        from lorag.core.tables import Document, Job

        assert session.query(Document).count() == 0
        assert session.query(Job).count() == 0


def test_bad_form_fields_and_unknown_ids_get_clear_errors(client: TestClient) -> None:
    response = _upload(client, "a.md", b"# A", audience="everyone")
    assert response.status_code == 400 and response.json()["error"]["param"] == "audience"
    response = _upload(client, "a.md", b"# A", kb="no spaces allowed")
    assert response.status_code == 400 and "knowledge base name" in response.json()["error"]["message"]
    assert client.get("/v1/documents/nope").status_code == 404
    assert client.get("/v1/jobs/nope").json()["error"]["type"] == "not_found_error"
