from __future__ import annotations

import uuid

import pytest
from sqlalchemy import inspect, select

from lorag.core import db
from lorag.core.errors import BackendUnavailable
from lorag.core.tables import Document, DocumentStatus


def test_migrations_create_the_schema_and_are_idempotent(database_url: str) -> None:
    engine = db.build_engine(database_url)
    db.migrate(engine)
    db.migrate(engine)  # a second start must be a no-op
    assert {"documents", "jobs", "blobs", "alembic_version"} <= set(inspect(engine).get_table_names())
    assert db.current_revision(engine) == head_revision()
    engine.dispose()


def test_a_document_round_trips(database_url: str) -> None:
    engine = db.build_engine(database_url)
    db.migrate(engine)
    sessions = db.build_sessions(engine)
    doc_id = str(uuid.uuid4())
    with db.transaction(sessions) as session:
        session.add(Document(id=doc_id, kb="support", audience="public", source="refunds.md",
                             status=DocumentStatus.QUEUED))
    with sessions() as session:
        stored = session.scalars(select(Document).where(Document.id == doc_id)).one()
        assert (stored.status, stored.version, stored.chunk_count) == (DocumentStatus.QUEUED, 0, 0)
        assert stored.created_at is not None
    engine.dispose()


def test_a_failed_transaction_leaves_nothing(database_url: str) -> None:
    engine = db.build_engine(database_url)
    db.migrate(engine)
    sessions = db.build_sessions(engine)
    with pytest.raises(RuntimeError), db.transaction(sessions) as session:
        session.add(Document(id="a", kb="kb", audience="public", source="x", status=DocumentStatus.QUEUED))
        session.flush()
        raise RuntimeError("boom")
    with sessions() as session:
        assert session.get(Document, "a") is None
    engine.dispose()


def test_downgrade_to_base_removes_the_schema(database_url: str) -> None:
    engine = db.build_engine(database_url)
    db.migrate(engine)
    from alembic import command

    command.downgrade(db.alembic_config(engine), "base")
    assert "documents" not in inspect(engine).get_table_names()
    engine.dispose()


def test_an_unreachable_database_is_a_clear_retryable_error() -> None:
    engine = db.build_engine("postgresql+psycopg://nobody@127.0.0.1:9/none")
    with pytest.raises(BackendUnavailable, match="the database is unreachable"):
        db.ping(engine)


def test_processes_starting_together_migrate_once(database_url: str) -> None:
    import subprocess
    import sys

    script = ("import sys; from lorag.core import db; e = db.build_engine(sys.argv[1]); db.migrate(e); "
              "print(db.current_revision(e))")
    procs = [subprocess.Popen([sys.executable, "-c", script, database_url], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    results = [proc.communicate(timeout=120) for proc in procs]
    assert [proc.returncode for proc in procs] == [0] * 4, [err for _out, err in results]
    assert {out.strip() for out, _err in results} == {head_revision()}


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    from lorag.core.db import alembic_config

    return ScriptDirectory.from_config(alembic_config(db.build_engine("sqlite://"))).get_current_head()
