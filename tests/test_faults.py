"""Faults on real processes: a nightly run killed mid-training leaves serving untouched and resumes when run again;
an unreachable vector store is a clear error with nothing half-registered."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import httpx
import pytest

from lorag.app import wiring
from lorag.core import db
from lorag.core.audience import ALL as ALL_AUDIENCES
from lorag.core.settings import load_settings
from lorag.core.tables import DocumentStatus
from lorag.ingest.pipeline import ChunkingPolicy, Indexer
from lorag.ingest.registry import document_id
from lorag.ingest.registry import get as document_row
from lorag.ingest.registry import submit as submit_document
from lorag.ingest.store import EdgeVectorStore, Filter
from tests.conftest import free_port, unavailable
from tests.finetune.test_nightly import SAVOURY, SWEET, TASK
from tests.test_cli import _wait_ready, lorag_env

pytestmark = pytest.mark.slow


def test_a_nightly_run_killed_mid_training_resumes_and_serving_is_untouched(tmp_path: Path, models_dir: Path) -> None:
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    rows = [{"item": i, "label": "sweet"} for i in SWEET] + [{"item": i, "label": "savoury"} for i in SAVOURY]
    (tasks / "items.jsonl").write_text("\n".join(json.dumps(row) for row in rows))
    # Long enough to be killed after its first checkpoint (every 20 steps), short enough for CI.
    (tasks / "taste.yaml").write_text(TASK.replace("max_steps: 4", "max_steps: 24, epochs: 100").replace(
        "gate: {json_validity: 0.0}", "gate: {}"))
    env = lorag_env(tmp_path, LORAG_FINETUNE__TASKS=str(tasks), LORAG_FINETUNE__PARITY_PROMPTS="1")
    command = [sys.executable, "-m", "lorag.app", "nightly"]
    checkpoint = tmp_path / "home" / "adapters" / ".staging" / "taste" / "checkpoint" / "state.json"

    killed = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)
    deadline = time.monotonic() + 300
    while not checkpoint.exists():
        assert killed.poll() is None, killed.communicate()[0][-3000:]
        assert time.monotonic() < deadline, "no checkpoint within 300 s"
        time.sleep(0.2)
    killed.send_signal(signal.SIGKILL)
    killed.wait(30)
    listed = subprocess.run([*command[:-1], "adapters", "list"], env=env, cwd=tmp_path, capture_output=True,
                            text=True, timeout=120)
    assert "taste@" not in listed.stdout + listed.stderr  # nothing half-made was registered or promoted
    step = json.loads(checkpoint.read_text())["state"]["step"]

    again = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"resuming from step {step} of 24" in again.stderr, again.stderr[-3000:]
    assert "taste: active taste@" in again.stdout
    version = again.stdout.split("taste: active ")[1].split()[0]
    run = json.loads((tmp_path / "home" / "adapters" / version / "run.json").read_text())
    assert run["training"]["steps"] == 24 and not checkpoint.parent.exists()


def test_an_unreachable_vector_store_is_a_clear_error_and_nothing_is_registered(tmp_path: Path,
                                                                                models_dir: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# Refunds\n\nRefunds take five days.\n")
    env = lorag_env(tmp_path, LORAG_STORE__BACKEND="qdrant", LORAG_STORE__URL=f"http://127.0.0.1:{free_port()}",
                    LORAG_STORE__TIMEOUT_S="2")
    result = subprocess.run([sys.executable, "-m", "lorag.app", "ingest", str(docs), "--kb", "support"], env=env,
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1 and "Cannot reach the Qdrant server" in result.stderr, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    engine = db.build_engine(f"sqlite:///{tmp_path / 'home' / 'lorag.db'}")
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("SELECT count(*) FROM documents").scalar() == 0
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- the database restarted


class PrivatePostgres:
    """A throwaway Postgres cluster of our own, so the test can stop and start it (the machine's is shared)."""

    def __init__(self, root: Path) -> None:
        self.root, self.port = root, free_port()
        self.data = root / "data"
        # Postgres refuses to run as root: the cluster then belongs to the `postgres` user.
        self.prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.prefix:
            shutil.chown(root, "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.root / "log"), "-w", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def _run(self, *command: str) -> None:
        subprocess.run([*self.prefix, *command], check=True, capture_output=True, timeout=120)


@pytest.fixture
def postgres() -> Iterator[PrivatePostgres]:
    if shutil.which("initdb") is None or shutil.which("pg_ctl") is None:
        unavailable("needs PostgreSQL's initdb and pg_ctl on PATH to run a private cluster")
    root = Path(tempfile.mkdtemp(prefix="lorag-pg-"))  # outside pytest's tmp: the postgres user must reach it
    cluster = PrivatePostgres(root)
    cluster.start()
    yield cluster
    subprocess.run([*cluster.prefix, "pg_ctl", "-D", str(cluster.data), "-m", "immediate", "stop"],
                   capture_output=True, timeout=60)
    shutil.rmtree(root, ignore_errors=True)


def upload(api: str, name: str, text: str, kb: str = "support") -> dict:
    response = httpx.post(f"{api}/v1/documents", files={"file": (name, text.encode())}, data={"kb": kb},
                          timeout=60)
    assert response.status_code == 202, response.text
    return response.json()


def wait_indexed(api: str, doc_id: str, timeout_s: float = 180) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        response = httpx.get(f"{api}/v1/documents/{doc_id}", timeout=30)
        if response.status_code == 200 and response.json()["status"] in ("indexed", "failed"):
            return response.json()
        time.sleep(0.5)
    raise AssertionError(f"{doc_id} not indexed in {timeout_s}s: {response.status_code} {response.text}")


def live_chunks(env: dict[str, str], doc_id: str) -> int:
    """Searchable chunks of one document, read from the vector store the server used (after it stopped)."""
    with mock.patch.dict(os.environ, env, clear=True):
        settings = load_settings()
    with wiring.open_ingest(settings) as ctx:
        return ctx.store.count(Filter(audiences=ALL_AUDIENCES, doc_id=doc_id))


def start_api(env: dict[str, str], cwd: Path) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "lorag.app", "serve", "--port", str(port)], env=env, cwd=cwd,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    api = f"http://127.0.0.1:{port}"
    assert _wait_ready(f"{api}/readyz", server, timeout_s=180) == 200
    return server, api


def stop_api(server: subprocess.Popen[str]) -> str:
    server.terminate()
    return server.communicate(timeout=60)[0]


def test_a_database_restart_is_a_clear_503_then_recovers_with_nothing_lost(tmp_path: Path, models_dir: Path,
                                                                           postgres: PrivatePostgres) -> None:
    env = lorag_env(tmp_path, LORAG_DATABASE__URL=postgres.url, LORAG_QUEUE__LEASE_S="4",
                    LORAG_SERVER__RATE_PER_MINUTE="100000")
    server, api = start_api(env, tmp_path)
    try:
        refunds = upload(api, "refunds.md", "# Refunds\n\nRefunds are paid back within five working days.\n")
        assert wait_indexed(api, refunds["id"])["status"] == "indexed"

        # A document is in the worker's hands when the database goes away.
        shipping = upload(api, "shipping.md", "# Shipping\n\nParcels ship from Rotterdam every Tuesday.\n")
        postgres.stop()
        for response in (httpx.get(f"{api}/v1/documents/{refunds['id']}", timeout=30),
                         httpx.post(f"{api}/v1/documents", files={"file": ("late.md", b"# Late\n\nToo late.\n")},
                                    data={"kb": "support"}, timeout=30)):
            assert response.status_code == 503, response.text
            assert int(response.headers["retry-after"]) > 0
            error = response.json()["error"]
            assert error["code"] == "database_unavailable" and "database" in error["message"], error
        ready = httpx.get(f"{api}/readyz", timeout=30)
        assert ready.status_code == 503 and not ready.json()["checks"]["database"]["ok"], ready.text

        postgres.start()  # the same app process recovers: no restart, no manual repair
        assert _wait_ready(f"{api}/readyz", server, timeout_s=60) == 200
        refunds, shipping = wait_indexed(api, refunds["id"]), wait_indexed(api, shipping["id"])
        assert refunds["status"] == shipping["status"] == "indexed"  # in flight at the stop, or retried after
        answer = httpx.post(f"{api}/v1/ask", json={"question": "When do parcels ship?", "kb": "support"},
                            timeout=300)
        assert answer.status_code == 200, answer.text
    finally:
        output = stop_api(server)
    assert "unhandled error" not in output, output[-3000:]  # every failure had its clear status, none a 500
    # Exactly one searchable version of each document: nothing lost, nothing doubled by the retry.
    for document in (refunds, shipping):
        assert live_chunks(env, document["id"]) == document["chunk_count"] >= 1


# --------------------------------------------------------------------------- the disk filled up


def mount_small_disk(folder: Path, size: str = "96m") -> None:
    """A tmpfs of its own, so a test can fill it without touching the machine's disk."""
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        unavailable(f"needs root to mount a small tmpfs: {mounted.stderr.strip()}")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """LORAG_HOME on a small disk of its own."""
    home = tmp_path / "home"
    mount_small_disk(home)
    yield home
    subprocess.run(["umount", "-l", str(home)], capture_output=True)


def fill(disk: Path) -> Path:
    """Write a file until the filesystem has no byte left."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as out:
        for size in (1 << 20, 4096, 1):
            try:
                while True:
                    out.write(b"\0" * size)
            except OSError as error:
                assert error.errno == errno.ENOSPC
    return filler


def test_a_full_disk_during_ingestion_is_a_clear_507_and_recovers_once_space_is_freed(
        tmp_path: Path, models_dir: Path, small_disk: Path) -> None:
    env = lorag_env(tmp_path, LORAG_QUEUE__LEASE_S="4", LORAG_SERVER__RATE_PER_MINUTE="100000",
                    LORAG_STORE__MIN_FREE_MB="8")
    shipping = ("shipping.md", "# Shipping\n\n" + "Parcels ship from Rotterdam every Tuesday. " * 400)
    server, api = start_api(env, tmp_path)
    try:
        refunds = wait_indexed(api, upload(api, "refunds.md", "# Refunds\n\nRefunds take five days.\n")["id"])
        filler = fill(small_disk)
        # An upload that cannot be stored: a clear 507, and no trace of it in the registry.
        full = httpx.post(f"{api}/v1/documents", files={"file": (shipping[0], shipping[1].encode())},
                          data={"kb": "support"}, timeout=60)
        assert full.status_code == 507 and int(full.headers["retry-after"]) > 0, full.text
        assert full.json()["error"]["code"] == "disk_full" and "disk is full" in full.json()["error"]["message"]
        assert httpx.get(f"{api}/v1/documents/{document_id('support', shipping[0])}", timeout=30).status_code == 404
        # Reading still works on a full disk.
        assert httpx.get(f"{api}/v1/documents/{refunds['id']}", timeout=30).json() == refunds
        asked = httpx.post(f"{api}/v1/ask", json={"question": "How long do refunds take?", "kb": "support"},
                           timeout=300)
        assert asked.status_code == 200, asked.text
        filler.unlink()
        retried = wait_indexed(api, upload(api, *shipping)["id"])
        assert retried["status"] == "indexed", retried
    finally:
        output = stop_api(server)
    assert "unhandled error" not in output, output[-3000:]

    # The worker's side: the disk fills right after two uploads, before or while the worker takes them.
    server, api = start_api(env, tmp_path)
    try:
        long = upload(api, "handbook.md", "".join(f"# Part {n}\n\n" + f"Rule {n} of the handbook applies. " * 40
                                                  + "\n\n" for n in range(400)))
        returns = upload(api, "returns.md", "# Returns\n\n" + "Returns are collected by courier. " * 300)
        filler = fill(small_disk)
        time.sleep(20)  # the worker meets the full disk, backs off and keeps both documents for a retry
        waiting = [httpx.get(f"{api}/v1/documents/{d['id']}", timeout=30).json()["status"] for d in (long, returns)]
        assert "indexed" not in waiting or waiting.count("indexed") < 2, waiting
        filler.unlink()
        long, returns = wait_indexed(api, long["id"], 600), wait_indexed(api, returns["id"])
        assert long["status"] == returns["status"] == "indexed", (long, returns)  # no manual repair
    finally:
        output = stop_api(server)
    assert "unhandled error" not in output, output[-3000:]
    for document in (refunds, retried, long, returns):
        assert live_chunks(env, document["id"]) == document["chunk_count"] >= 1

    # Starting on a full disk fails, and says why before uvicorn's trace.
    filler = fill(small_disk)
    refused = subprocess.run([sys.executable, "-m", "lorag.app", "serve", "--port", str(free_port())], env=env,
                             cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert refused.returncode != 0
    assert "cannot start: A disk write failed while starting" in refused.stdout + refused.stderr, refused.stderr
    filler.unlink()


def test_the_embedded_store_refuses_writes_on_a_full_disk_and_the_old_version_stays(tmp_path: Path) -> None:
    """Qdrant Edge writes through memory maps: on a full disk that is SIGBUS (seen here), so lorag refuses the
    write first. The indexer hands the document back; the previous version stays searchable; freeing space
    is the whole repair."""
    from tests.ingest.test_pipeline import EVERYONE, embedder_for_tests

    disk = tmp_path / "store"
    mount_small_disk(disk)
    try:
        embedder = embedder_for_tests()
        engine = db.build_engine(f"sqlite:///{tmp_path / 'lorag.db'}")
        db.migrate(engine)
        sessions = db.build_sessions(engine)
        store = EdgeVectorStore(disk, "lorag", min_free_bytes=8 << 20)
        store.ensure_collection(embedder.dim)
        indexer = Indexer(sessions=sessions, store=store, embedder=embedder, lease_s=60, owner="test",
                          policy=ChunkingPolicy(chunk_tokens=200, overlap_tokens=32, max_bytes=2_000_000))

        def submit(text: str) -> str:
            return submit_document(sessions, kb="support", audience="public", source="refunds.md",
                                   data=text.encode(), job_id=None).doc_id

        doc_id = submit("# Refunds\n\nRefunds take five days.\n")
        assert indexer.run(doc_id).status == "indexed"
        filler = fill(disk)
        submit("# Refunds\n\nRefunds take three days now.\n")
        outcome = indexer.run(doc_id)
        assert outcome.status == "retry" and "free on the disk" in (outcome.reason or ""), outcome
        row = document_row(sessions, doc_id)
        assert row.status == DocumentStatus.QUEUED and "MIN_FREE_MB" in (row.error or "")
        visible = [hit.payload["text"] for hit in store.search_dense([0.0] * 383 + [1.0], EVERYONE, limit=10)]
        assert visible == ["Refunds\n\nRefunds take five days."], visible  # the old version, whole

        filler.unlink()
        assert indexer.run(doc_id).status == "indexed"
        visible = [hit.payload["text"] for hit in store.search_dense([0.0] * 383 + [1.0], EVERYONE, limit=10)]
        assert visible == ["Refunds\n\nRefunds take three days now."], visible
        store.close()
        engine.dispose()
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)
