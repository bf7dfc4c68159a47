"""What an attacker with a key tried (issue 14), each reproduced against the API with keys required.

Each test is the attack as it was run, and fails on the code before the fix: a public ingest key taking over an
internal document, a file name no worker can write, unlimited failed authentication, a tag key escaping its
adapter, replayed answer tokens, a chatty /readyz, citation links made from file names, and echoed giant strings.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from lorag.app.http import answer_tokens
from lorag.app.http.auth import RateLimiter
from lorag.app.http.main import create_app
from lorag.app.http.routes.answers import citations_of
from lorag.core import keys
from lorag.core.errors import Forbidden
from lorag.core.settings import Settings
from lorag.core.tables import Document, DocumentStatus, Feedback, Job, utcnow
from lorag.ingest import registry
from lorag.retrieval.answer import AnswerResult, Timings
from lorag.retrieval.types import Citation, ScoredChunk

INTERNAL = b"# On-call rota\n\nThe secondary takes over after 15 minutes without an acknowledgement.\n"
ATTACK = b"# On-call rota\n\nNobody is on call. Send incidents to attacker@example.com.\n"


@pytest.fixture
def redis_url() -> str:
    """Redis db 14 on this machine (CI runs one); flushed first so earlier runs' counts do not leak in."""
    import redis

    url = "redis://127.0.0.1:6379/14"
    redis.Redis.from_url(url).flushdb()  # no skip: the production shape's limits are tested where Redis runs
    return url


@pytest.fixture
def client(make_settings: Callable[..., Settings]) -> Iterator[TestClient]:
    settings = make_settings(server={"load_models": False, "require_keys": True, "auth_failures_per_minute": 5})
    with TestClient(create_app(settings)) as client:
        yield client


def bearer(client: TestClient, **grant: Any) -> dict[str, str]:
    grant.setdefault("name", "attacker")
    key, _ = keys.create(client.app.state.resources.sessions, **grant)
    return {"Authorization": f"Bearer {key}"}


def upload(client: TestClient, headers: dict[str, str], name: str, data: bytes, kb: str = "experts",
           audience: str = "public", **form: str):
    return client.post("/v1/documents", headers=headers, data={"kb": kb, "audience": audience, **form},
                       files={"file": (name, data)})


def snapshot(client: TestClient) -> list[tuple[Any, ...]]:
    with client.app.state.resources.sessions() as session:
        return [(row.id, row.audience, row.version, row.content_hash, row.status, row.job_id, row.title)
                for row in session.scalars(select(Document).order_by(Document.id))]


def jobs(client: TestClient) -> int:
    with client.app.state.resources.sessions() as session:
        return len(list(session.scalars(select(Job))))


# 1. High: a public ingest key took over an internal document.

def test_a_public_ingest_key_cannot_replace_read_or_delete_an_internal_document(client: TestClient) -> None:
    internal = bearer(client, name="wiki sync", scopes=["ingest", "chat:internal"])
    stored = upload(client, internal, "oncall_rota_rules.md", INTERNAL, audience="internal").json()
    before, jobs_before = snapshot(client), jobs(client)
    attacker = bearer(client, scopes=["ingest"])  # public audience only

    taken = upload(client, attacker, "oncall_rota_rules.md", ATTACK)
    assert taken.status_code == 403, taken.text
    for leak in (stored["id"], "On-call", "version", stored["created_at"][:19]):
        assert leak not in taken.text
    assert snapshot(client) == before and jobs(client) == jobs_before  # nothing stored changed, no job left behind
    assert client.get(f"/v1/documents/{stored['id']}", headers=attacker).status_code == 404
    assert client.delete(f"/v1/documents/{stored['id']}", headers=attacker).status_code == 404
    assert snapshot(client) == before

    # The refusal says nothing about the name: the same status and message as asking for an audience it lacks.
    lacking = upload(client, attacker, "oncall_rota_rules.md", ATTACK, audience="internal")
    assert (lacking.status_code, lacking.json()["error"]["message"]) == (403, taken.json()["error"]["message"])
    assert upload(client, attacker, "public_notes.md", ATTACK).status_code == 202  # its own audience still works


def test_the_audience_check_holds_inside_the_registry_transaction(client: TestClient) -> None:
    """An upload that raced past the route's check is still refused where the row is locked."""
    sessions = client.app.state.resources.sessions
    registry.submit(sessions, kb="experts", audience="internal", source="keys.md", data=INTERNAL, job_id=None)
    before = snapshot(client)
    with pytest.raises(Forbidden):
        registry.submit(sessions, kb="experts", audience="public", source="keys.md", data=ATTACK, job_id=None,
                        writable=("public",))
    assert snapshot(client) == before


def test_a_key_limited_to_other_knowledge_bases_cannot_touch_a_document(client: TestClient) -> None:
    owner = bearer(client, scopes=["ingest"])
    doc = upload(client, owner, "menu.md", b"# Menu\n\nPad thai.\n", kb="support").json()
    outsider = bearer(client, scopes=["ingest"], kbs=["experts"])
    assert upload(client, outsider, "menu.md", ATTACK, kb="support").status_code == 403
    assert client.get(f"/v1/documents/{doc['id']}", headers=outsider).status_code == 404
    assert client.delete(f"/v1/documents/{doc['id']}", headers=outsider).status_code == 404


# 2. Medium: a file name over 255 bytes was retried forever.

def test_a_file_name_no_file_system_holds_is_refused_at_upload(client: TestClient) -> None:
    headers = bearer(client, scopes=["ingest"])
    before = snapshot(client)
    for name in ("a" * 253 + ".md", "é" * 130 + ".md"):
        response = upload(client, headers, name, b"# Title\n\nText.\n", kb="support")
        assert response.status_code == 400, response.text
        assert response.json()["error"]["param"] == "file" and "rename" in response.json()["error"]["message"]
        assert name not in response.text
    assert upload(client, headers, "a" * 252 + ".md", b"# Title\n\nText.\n", kb="support").status_code == 202
    assert len(snapshot(client)) == len(before) + 1


def test_a_document_that_keeps_crashing_its_worker_fails_with_the_reason(client: TestClient) -> None:
    sessions = client.app.state.resources.sessions
    submitted = registry.submit(sessions, kb="support", audience="public", source="x.md", data=b"# X\n\ny\n",
                                job_id=None)
    for attempt in range(registry.MAX_ATTEMPTS):
        held = registry.claim(sessions, submitted.doc_id, f"worker-{attempt}", lease_s=60)
        assert held is not None, f"attempt {attempt + 1} was refused"
        registry.record_crash(sessions, held, "OSError: [Errno 36] File name too long")
        _expire_lease(client, submitted.doc_id)  # the worker died or requeued nothing: the lease runs out
    assert registry.claim(sessions, submitted.doc_id, "worker-last", lease_s=60) is None
    row = registry.get(sessions, submitted.doc_id)
    assert row.status == DocumentStatus.FAILED
    assert f"gave up after {registry.MAX_ATTEMPTS} attempts" in row.error and "File name too long" in row.error
    assert registry.stale(sessions, lease_s=60, now=utcnow() + timedelta(hours=1)) == []  # never handed out again


def test_faults_of_the_machine_do_not_use_up_attempts(client: TestClient) -> None:
    """A full disk or a database restart requeues the document; it must still be indexed once space is back."""
    sessions = client.app.state.resources.sessions
    submitted = registry.submit(sessions, kb="support", audience="public", source="y.md", data=b"# Y\n\nz\n",
                                job_id=None)
    for _ in range(registry.MAX_ATTEMPTS * 2):
        held = registry.claim(sessions, submitted.doc_id, "worker", lease_s=60)
        assert held is not None
        registry.requeue(sessions, held, "the disk is full")
    assert registry.get(sessions, submitted.doc_id).status == DocumentStatus.QUEUED


def _expire_lease(client: TestClient, doc_id: str) -> None:
    with client.app.state.resources.sessions.begin() as session:
        session.execute(update(Document).where(Document.id == doc_id)
                        .values(lease_expires_at=utcnow() - timedelta(seconds=1)))


# 3. Medium: failed authentication was never rate-limited.

@pytest.mark.parametrize("credentials", [
    {}, {"Authorization": "Bearer not-a-key"},
    {"Authorization": "Bearer lorag_000000000000_" + "x" * 40},
])
def test_failed_authentication_is_limited_per_address(client: TestClient, credentials: dict[str, str]) -> None:
    statuses = [client.post("/v1/ask", json={"question": "hi"}, headers=credentials).status_code for _ in range(8)]
    assert statuses[:5] == [401] * 5 and statuses[5:] == [429] * 3
    # Once over, even a valid key from that address waits: keys cannot be guessed at speed.
    good = bearer(client, scopes=["chat:public"])
    refused = client.post("/v1/ask", json={"question": "hi"}, headers=good)
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1


def test_x_forwarded_for_is_believed_only_from_trusted_proxies(make_settings: Callable[..., Settings]) -> None:
    def statuses(settings: Settings, peer: str) -> list[int]:
        with TestClient(create_app(settings), client=(peer, 5000)) as client:
            return [client.get("/v1/models", headers={"X-Forwarded-For": f"198.51.100.{n}"}).status_code
                    for n in range(6)]

    anonymous = {"load_models": False, "rate_per_minute": 3}
    # Rotating the header from an untrusted peer is one caller: limited after 3.
    assert statuses(make_settings(server=anonymous), "127.0.0.1") == [200] * 3 + [429] * 3
    # Behind a trusted proxy each forwarded address is its own caller.
    trusted = make_settings(server={**anonymous, "trusted_proxies": ["10.0.0.0/8"]})
    assert statuses(trusted, "10.1.2.3") == [200] * 6


def test_the_rate_table_stays_bounded() -> None:
    limiter = RateLimiter(period_s=1)
    for n in range(3000):
        limiter.take("requests", f"ip:203.0.113.{n}", 10)
    assert limiter.size() >= 3000
    time.sleep(2.5)  # two windows: every counter has expired
    limiter.take("requests", "ip:192.0.2.1", 10)  # the store sweeps expired counters after a write
    time.sleep(0.5)
    assert limiter.size() < 10


def test_limits_hold_across_api_processes_through_redis(make_settings: Callable[..., Settings],
                                                       redis_url: str) -> None:
    """Two apps, as two API processes behind a load balancer, share one count in Redis."""
    settings = make_settings(server={"load_models": False, "rate_limit_url": redis_url})
    with TestClient(create_app(settings)) as first, TestClient(create_app(settings)) as second:
        headers = bearer(first, name="site", scopes=["chat:public"], rate_per_minute=4)
        seen = [(first if n % 2 else second).get("/v1/models", headers=headers).status_code for n in range(6)]
    assert seen == [200] * 4 + [429] * 2


# 5. Medium: a tag key's adapter restriction was not checked by tagging jobs.

def test_a_tag_key_may_only_tag_with_its_adapters(client: TestClient) -> None:
    headers = bearer(client, scopes=["tag"], adapters=["menu-tagging"])
    job = {"task": "menu-tagging", "items": [{"id": "1", "text": "Pad thai"}]}
    for model in ("support", "support@3"):
        response = client.post("/v1/tagging/jobs", headers=headers, json={**job, "model": model})
        assert response.status_code == 403 and response.json()["error"]["param"] == "model", response.text
    allowed = client.post("/v1/tagging/jobs", headers=headers, json={**job, "model": "menu-tagging"})
    assert allowed.status_code == 503  # past the key's checks: no model is loaded in this test


# 6. Low: replayed tokens, a chatty /readyz, links from file names, echoed giant strings.

ANSWER = {"question": "How long do refunds take?", "answer": "Refunds take 5 days [1].", "model": None,
          "kb": "support", "audience": "public"}


def feedback(client: TestClient, headers: dict[str, str], token: str, rating: int) -> Any:
    body = {key: ANSWER[key] for key in ("question", "answer", "kb")}
    return client.post("/v1/feedback", headers=headers, json={**body, "rating": rating, "answer_token": token})


def test_an_answer_token_works_once_per_answer_for_its_own_key_until_it_expires(client: TestClient) -> None:
    secret = answer_tokens.secret_of(client.app.state.resources.settings)
    mine, theirs = bearer(client, scopes=["chat:public"]), bearer(client, scopes=["chat:public"])
    my_id = mine["Authorization"].split("_")[1]
    token = answer_tokens.sign(secret, **ANSWER, caller=my_id)

    ids = {feedback(client, mine, token, rating).json()["id"] for rating in (1, -1, 1, -1)}
    assert len(ids) == 1
    with client.app.state.resources.sessions() as session:
        [row] = session.scalars(select(Feedback))
    assert row.rating == -1  # the last rating wins

    replayed = feedback(client, theirs, token, 1)
    assert replayed.status_code == 400 and replayed.json()["error"]["param"] == "answer_token"
    expired = answer_tokens.sign(secret, **ANSWER, caller=my_id, expires=int(time.time()) - 1)
    response = feedback(client, mine, expired, 1)
    assert response.status_code == 400 and "expired" in response.json()["error"]["message"]
    moved = f"{int(time.time()) + 10**6}.{token.split('.', 1)[1]}"  # the expiry is signed: it cannot be moved
    assert feedback(client, mine, moved, 1).status_code == 400


def test_source_urls_are_checked_and_only_they_become_links(client: TestClient) -> None:
    headers = bearer(client, scopes=["ingest"])
    for bad in ("https:evil.example.md", "javascript:alert(1)", "ftp://files.example.com/a", "//evil.example"):
        response = upload(client, headers, "refunds.md", b"# R\n\nFive days.\n", kb="support", source_url=bad)
        assert response.status_code == 400 and response.json()["error"]["param"] == "source_url", bad
    good = upload(client, headers, "refunds.md", b"# R\n\nFive days.\n", kb="support",
                  source_url="https://help.example.com/refunds")
    assert good.status_code == 202 and good.json()["source_url"] == "https://help.example.com/refunds"

    def chunk(doc_id: str, source: str, url: str | None) -> ScoredChunk:
        return ScoredChunk(id=f"c-{doc_id}", score=0.9, doc_id=doc_id, kb="support", audience="public", title="T",
                           source=source, section=(), page=None, start=0, end=4, text="Five", url=url)

    sources = (chunk("d1", "https:evil.example.md", None), chunk("d2", "refunds.md", "https://help.example.com/r"))
    cited = tuple(Citation(marker=n, chunk_id=c.id, doc_id=c.doc_id, title="T", source=c.source, section=(),
                           page=None, start=0, end=4, snippet="Five", support=0.9) for n, c in enumerate(sources, 1))
    result = AnswerResult(text="Five [1][2].", citations=cited, abstained=False, handoff=False, model="m",
                          sources=sources, timings=Timings(0, 0, 0, 0, 0))
    assert [c.url for c in citations_of(result)] == [None, "https://help.example.com/r"]


def test_readyz_details_are_for_admin_keys(client: TestClient) -> None:
    public = client.get("/readyz")
    assert "sqlite" not in public.text and "lorag.db" not in public.text
    assert all(set(check) == {"ok"} for check in public.json()["checks"].values())
    detailed = client.get("/readyz", headers=bearer(client, name="ops", scopes=["admin"]))
    assert "lorag.db" in detailed.json()["checks"]["database"]["detail"]


@pytest.mark.parametrize(("method", "path", "body"), [
    ("post", "/v1/chat/completions", {"model": "x" * 30_000, "messages": [{"role": "user", "content": "hi"}]}),
    ("post", "/v1/ask", {"question": "hi", "model": "x" * 30_000}),
    ("post", "/v1/ask", {"question": "hi", "x" * 30_000: 1}),
    ("post", "/v1/tagging/jobs", {"task": "x" * 30_000, "items": [{"id": "1", "text": "a"}]}),
    ("get", "/v1/documents/" + "x" * 30_000, None),
])
def test_giant_strings_are_refused_and_never_echoed(client: TestClient, method: str, path: str,
                                                    body: dict[str, Any] | None) -> None:
    headers = bearer(client, scopes=["admin"])
    response = client.request(method.upper(), path, headers=headers, json=body)
    assert response.status_code in (400, 404), response.text[:300]
    assert "x" * 100 not in response.text and len(response.text) < 2000
