from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from lorag.core import db
from lorag.core.errors import NotFound
from lorag.core.tables import Blob, DocumentStatus
from lorag.ingest import registry


@pytest.fixture
def sessions(database_url: str) -> sessionmaker[Session]:
    engine = db.build_engine(database_url)
    db.migrate(engine)
    yield db.build_sessions(engine)
    engine.dispose()


def _submit(sessions: sessionmaker[Session], data: bytes, source: str = "refunds.md") -> registry.Submitted:
    return registry.submit(sessions, kb="support", audience="public", source=source, data=data, job_id=None)


def test_document_ids_are_stable_per_knowledge_base_and_source() -> None:
    assert registry.document_id("support", "a.md") == registry.document_id("support", "a.md")
    assert registry.document_id("support", "a.md") != registry.document_id("experts", "a.md")


def test_one_worker_at_a_time_holds_a_document(sessions: sessionmaker[Session]) -> None:
    doc_id = _submit(sessions, b"v1").doc_id
    first = registry.claim(sessions, doc_id, "worker-a", lease_s=60)
    assert first is not None and first.version == 1
    assert registry.claim(sessions, doc_id, "worker-b", lease_s=60) is None
    assert registry.finish(sessions, first, chunk_count=3, title="Refunds", media_type="text/markdown")
    row = registry.get(sessions, doc_id)
    assert (row.status, row.chunk_count, row.attempts) == (DocumentStatus.INDEXED, 3, 1)


def test_unchanged_content_is_not_queued_again(sessions: sessionmaker[Session]) -> None:
    doc_id = _submit(sessions, b"v1").doc_id
    held = registry.claim(sessions, doc_id, "w", lease_s=60)
    assert held and registry.finish(sessions, held, chunk_count=1, title="t", media_type="text/plain")
    assert _submit(sessions, b"v1").queued is False
    changed = _submit(sessions, b"v2")
    assert changed.queued is True
    assert registry.get(sessions, doc_id).version == 2


def test_an_expired_lease_is_taken_over_and_the_dead_worker_cannot_record(sessions: sessionmaker[Session]) -> None:
    doc_id = _submit(sessions, b"v1").doc_id
    dead = registry.claim(sessions, doc_id, "dead", lease_s=0.05)
    assert dead is not None
    time.sleep(0.1)
    assert registry.stale(sessions, lease_s=60) == [doc_id]
    alive = registry.claim(sessions, doc_id, "alive", lease_s=60)
    assert alive is not None
    assert registry.finish(sessions, dead, chunk_count=9, title="t", media_type="text/plain") is False
    assert registry.finish(sessions, alive, chunk_count=2, title="t", media_type="text/plain") is True
    assert registry.get(sessions, doc_id).chunk_count == 2


def test_a_version_submitted_during_indexing_supersedes_the_running_one(sessions: sessionmaker[Session]) -> None:
    doc_id = _submit(sessions, b"v1").doc_id
    running = registry.claim(sessions, doc_id, "w", lease_s=60)
    assert running is not None
    _submit(sessions, b"v2")
    assert registry.finish(sessions, running, chunk_count=1, title="t", media_type="text/plain") is False
    row = registry.get(sessions, doc_id)
    assert (row.status, row.version) == (DocumentStatus.QUEUED, 2)


def test_only_current_blobs_are_kept(sessions: sessionmaker[Session]) -> None:
    doc_id = _submit(sessions, b"v1").doc_id
    _submit(sessions, b"v2")
    held = registry.claim(sessions, doc_id, "w", lease_s=60)
    assert held and registry.finish(sessions, held, chunk_count=1, title="t", media_type="text/plain")
    with sessions() as session:
        assert [b.content_hash for b in session.query(Blob)] == [registry.content_hash(b"v2")]
    registry.mark_deleted(sessions, doc_id)
    with sessions() as session:
        assert session.query(Blob).count() == 0


def test_a_failure_keeps_the_reason(sessions: sessionmaker[Session]) -> None:
    doc_id = _submit(sessions, b"v1").doc_id
    held = registry.claim(sessions, doc_id, "w", lease_s=60)
    assert held and registry.fail(sessions, held, "bad.pdf: the PDF is encrypted")
    row = registry.get(sessions, doc_id)
    assert (row.status, row.error) == (DocumentStatus.FAILED, "bad.pdf: the PDF is encrypted")


def test_unknown_documents_are_not_found(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="no document with id 'nope'"):
        registry.get(sessions, "nope")
