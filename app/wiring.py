"""Wiring shared by the interfaces: opening the database, the vector store and the embedder, and finding the
configured tasks. The HTTP app, the CLI, the Slack bot and the benches all open their resources here, so no
interface imports another.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from lorag.core import db
from lorag.core.settings import Settings
from lorag.finetune.tasks import TaskSpec, load_tasks
from lorag.ingest.embed import Embedder
from lorag.ingest.factory import build_store, load_embedder
from lorag.ingest.store import VectorStore

if TYPE_CHECKING:
    from lorag.finetune.nightly import Stack


@dataclass
class IngestContext:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    store: VectorStore
    embedder: Embedder


@contextmanager
def open_ingest(settings: Settings) -> Iterator[IngestContext]:
    """Database, vector store and embedder for a command; the store first, so a held store fails fast."""
    settings.home.mkdir(parents=True, exist_ok=True)
    engine = db.build_engine(settings.database_url)
    db.migrate(engine)
    store = build_store(settings)
    try:
        embedder = load_embedder(settings)
        store.ensure_collection(embedder.dim)
        yield IngestContext(settings, engine, db.build_sessions(engine), store, embedder)
    finally:
        store.close()
        engine.dispose()


@contextmanager
def open_registry(settings: Settings) -> Iterator[sessionmaker[Session]]:
    """Only the database: enough to hand documents over to `lorag worker`s through the queue."""
    engine = db.build_engine(settings.database_url)
    db.migrate(engine)
    try:
        yield db.build_sessions(engine)
    finally:
        engine.dispose()


SAMPLE_TASKS = Path(__file__).resolve().parents[1] / "samples" / "tasks"


def tasks_location(settings: Settings) -> Path:
    """The task files in force: LORAG_FINETUNE__TASKS, else the sample tasks."""
    return (settings.finetune.tasks or SAMPLE_TASKS).resolve()


def configured_tasks(settings: Settings) -> list[TaskSpec]:
    return load_tasks(tasks_location(settings))


@contextmanager
def open_stack(settings: Settings, tasks: list[TaskSpec]) -> Iterator[Stack]:
    """The database, and the vector store and embedder if a grounded-qa task retrieves from them. Other tasks
    leave the store alone, so they can run beside a server that holds the embedded store."""
    from lorag.finetune.nightly import Stack

    if not any(task.kind == "grounded-qa" for task in tasks):
        with open_registry(settings) as sessions:
            yield Stack(settings, sessions)
        return
    with open_ingest(settings) as ctx:
        yield Stack(settings, ctx.sessions, ctx.store, ctx.embedder)
