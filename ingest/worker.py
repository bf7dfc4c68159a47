"""Ingestion jobs on huey: SQLite in LORAG_HOME by default, Redis when configured.

The queue only carries document ids; the registry decides who works on what. A worker that dies loses its
task message, so every worker also reaps: it re-enqueues documents whose lease expired or whose task is
overdue. Duplicate messages are harmless, because `registry.claim` lets one worker at a time take a document.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Literal

from huey import Huey, RedisHuey, SqliteHuey
from sqlalchemy.orm import Session, sessionmaker

from lorag.core.errors import BackendUnavailable
from lorag.core.faults import as_lorag_error
from lorag.ingest import registry

logger = logging.getLogger(__name__)

TASK_NAME = "lorag.index_document"
MAX_BACKOFF_S = 30.0  # longest pause between tries while the database is away or the disk is full


def build_huey(backend: Literal["embedded", "redis"], sqlite_path: Path, redis_url: str | None) -> Huey:
    if backend == "redis":
        if not redis_url:
            raise BackendUnavailable("the Redis queue needs LORAG_QUEUE__REDIS_URL")
        return RedisHuey("lorag", url=redis_url, results=False)
    sqlite_path.parent.mkdir(parents=True, exist_ok=True)
    return SqliteHuey("lorag", filename=str(sqlite_path), results=False)


def _not_in_this_process(doc_id: str) -> None:
    raise RuntimeError(f"this process only enqueues; document {doc_id} is indexed by `lorag worker`")


class IngestQueue:
    """Enqueue document ids; in a worker process, also take and run them."""

    def __init__(self, huey: Huey, run: Callable[[str], object] | None = None) -> None:
        self.huey = huey
        self._task = huey.task(name=TASK_NAME)(run or _not_in_this_process)

    def enqueue(self, doc_ids: Iterable[str]) -> None:
        for doc_id in doc_ids:
            self._task(doc_id)

    def work_once(self) -> bool:
        """Run one waiting task; False when the queue is empty."""
        task = self.huey.dequeue()
        if task is None:
            return False
        self.huey.execute(task)
        return True

    def pending(self) -> int:
        return self.huey.pending_count()


class Worker:
    """The consumer loop, in its own thread: inside the API (embedded default) or in `lorag worker`."""

    def __init__(self, queue: IngestQueue, sessions: sessionmaker[Session], lease_s: float,
                 poll_s: float = 0.25) -> None:
        self.queue = queue
        self.sessions = sessions
        self.lease_s = lease_s
        self.poll_s = poll_s
        self.stop_flag = threading.Event()
        self._thread: threading.Thread | None = None

    def run(self) -> None:
        next_reap, pause = 0.0, self.poll_s
        while not self.stop_flag.is_set():
            if time.monotonic() >= next_reap:
                next_reap = time.monotonic() + max(1.0, self.lease_s / 3)
                self._reap()
            try:
                busy, pause = self.queue.work_once(), self.poll_s
            except Exception as exc:  # the loop is an edge: a fault or one broken task must not stop the worker
                pause = self._after_failure(exc, pause)
                busy = False
            if not busy:
                self.stop_flag.wait(pause)

    def _after_failure(self, exc: Exception, pause: float) -> float:
        """Log a failed task; a known fault (database away, disk full) backs off instead of spinning."""
        fault = as_lorag_error(exc)
        if fault is None:
            logger.exception("ingestion task crashed; the registry will hand the document out again")
            return self.poll_s
        pause = min(MAX_BACKOFF_S, max(pause * 2, 1.0))
        logger.warning("ingestion paused %.0fs: %s", pause, fault.message)
        return pause

    def _reap(self) -> None:
        try:
            overdue = registry.stale(self.sessions, self.lease_s)
            if overdue:
                logger.info("re-enqueueing %d documents whose lease expired or task was lost", len(overdue))
                self.queue.enqueue(overdue)
        except Exception as exc:  # database or queue briefly away, disk full: try again at the next reap
            fault = as_lorag_error(exc)
            if fault is None:
                logger.exception("could not re-enqueue stale documents")
            else:
                logger.warning("could not re-enqueue stale documents: %s", fault.message)

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="lorag-ingest-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 30) -> None:
        self.stop_flag.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
