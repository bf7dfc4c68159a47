"""Integration: real `lorag worker` processes, killed and replaced; the Redis queue between processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from lorag.core import db
from lorag.core.tables import DocumentStatus
from lorag.ingest import registry
from lorag.ingest.store import EdgeVectorStore, Filter
from lorag.ingest.worker import IngestQueue, build_huey
from tests.conftest import unavailable

REPO = Path(__file__).resolve().parents[2]
REDIS_URL = "redis://127.0.0.1:6379/15"

pytestmark = pytest.mark.slow


def lorag_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LORAG_")}
    env.update(LORAG_HOME=str(home), PYTHONPATH=str(REPO), LORAG_LOG__LEVEL="INFO", **extra)
    return env


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []

    def start(args: list[str], env: dict[str, str], name: str) -> subprocess.Popen[str]:
        log = (tmp_path / f"{name}.log").open("w")
        process = subprocess.Popen([sys.executable, "-m", "lorag.app", *args], env=env, cwd=tmp_path, stdout=log,
                                   stderr=subprocess.STDOUT, text=True)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def wait_for(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def big_document() -> bytes:
    sections = [f"## Procedure {i}\n\n" + " ".join(f"Step {j} of procedure {i} checks valve {i * j} twice."
                                                    for j in range(60)) for i in range(70)]
    return ("# Operations manual\n\n" + "\n\n".join(sections)).encode()


def open_registry(home: Path) -> sessionmaker[Session]:
    engine = db.build_engine(f"sqlite:///{home / 'lorag.db'}")
    db.migrate(engine)
    return db.build_sessions(engine)


def test_a_worker_killed_mid_document_is_replaced_and_the_document_is_indexed_once(
    tmp_path: Path, spawn: Callable[..., subprocess.Popen[str]]
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    sessions = open_registry(home)
    doc_id = registry.submit(sessions, kb="ops", audience="internal", source="manual.md", data=big_document(),
                             job_id=None).doc_id
    IngestQueue(build_huey("embedded", home / "queue.db", None)).enqueue([doc_id])
    env = lorag_env(home, LORAG_QUEUE__LEASE_S="3")

    first = spawn(["worker"], env, "worker-1")
    wait_for(lambda: registry.get(sessions, doc_id).status == DocumentStatus.PROCESSING, 120, "worker 1 to start")
    time.sleep(1.0)
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    assert registry.get(sessions, doc_id).status == DocumentStatus.PROCESSING  # killed mid-document

    second = spawn(["worker"], env, "worker-2")
    wait_for(lambda: registry.get(sessions, doc_id).status == DocumentStatus.INDEXED, 240, "worker 2 to finish")
    second.send_signal(signal.SIGTERM)
    assert second.wait(60) == 0

    row = registry.get(sessions, doc_id)
    assert row.attempts == 2 and row.chunk_count > 256
    store = EdgeVectorStore(home / "store", "lorag")
    try:
        hits = store.search_dense([1.0] + [0.0] * 383, Filter(audiences=("internal",), doc_id=doc_id), 100_000)
        assert store.count(Filter(audiences=("public", "internal"))) == row.chunk_count
    finally:
        store.close()
    assert len(hits) == row.chunk_count
    assert sorted(h.payload["chunk_index"] for h in hits) == list(range(row.chunk_count))


def test_the_cli_hands_documents_to_a_worker_through_redis(
    tmp_path: Path, spawn: Callable[..., subprocess.Popen[str]]
) -> None:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL).flushdb()
    except redis.ConnectionError:
        unavailable("Redis is not reachable on 127.0.0.1:6379")
    home = tmp_path / "home"
    env = lorag_env(home, LORAG_QUEUE__BACKEND="redis", LORAG_QUEUE__REDIS_URL=REDIS_URL)
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(3):
        (docs / f"policy-{i}.md").write_text(f"# Policy {i}\n\nRule {i}: always double-check refunds over {i}0 euros.")
    worker = spawn(["worker"], env, "worker")
    result = subprocess.run([sys.executable, "-m", "lorag.app", "ingest", str(docs), "--kb", "policies",
                             "--audience", "internal"], env=env, cwd=tmp_path, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "indexed 3 (3 chunks)" in result.stdout
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(60) == 0
