"""The Slack app: signed Events API requests to a real `lorag serve`, replies through `slack_sdk` to a local fake of
Slack's Web API that records every call; feedback read back from the database."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import itertools
import json
import queue
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlparse

import httpx
import pytest
from fastapi.testclient import TestClient
from slack_bolt import BoltRequest
from websockets.exceptions import ConnectionClosed
from websockets.sync.server import serve

from lorag.app.http.main import create_app
from lorag.app.slack import (
    ANSWER_EVENT,
    answer_metadata,
    build_slack_app,
    format_answer,
    history_of,
    is_retry,
    parse_correction,
    plain_text,
    rating_of,
    source_line,
)
from lorag.core import db
from lorag.retrieval.answer import AnswerResult, Timings
from lorag.retrieval.types import ABSTENTION, Citation, ScoredChunk
from tests.conftest import REPO, free_port
from tests.test_cli import _wait_ready, lorag_env, run_lorag

BOT_TOKEN, SECRET, BOT_USER, BOT_ID = "xoxb-test-token", "8f742231b10e8888abcd99yyyzzz85a5", "UBOT", "BBOT"
APP_TOKEN = "xapp-test-token"
ASKER, EXPERT, CHANNEL = "UASKER", "UEXPERT", "C0SUPPORT"
SOURCE_URL = "https://docs.example/{source}"
INTERNAL_DOC = "refund_approval_limits.docx"


# --- a fake Slack Web API on loopback ---------------------------------------------------------------------------

@dataclass
class FakeSlack:
    """auth.test, chat.postMessage and conversations.replies, enough for lorag; every call is recorded."""

    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    clock: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    url: str = ""
    socket_url: str = ""

    def start(self) -> None:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                self._answer(dict(parse_qsl(urlparse(self.path).query)))

            def do_POST(self) -> None:  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                json_body = self.headers.get("Content-Type", "").startswith("application/json")
                self._answer(json.loads(raw) if json_body and raw else dict(parse_qsl(raw)))

            def _answer(self, params: dict[str, Any]) -> None:
                method = urlparse(self.path).path.rsplit("/", 1)[-1]
                token = APP_TOKEN if method == "apps.connections.open" else BOT_TOKEN
                authorised = self.headers.get("Authorization") == f"Bearer {token}"
                body = fake.handle(method, params) if authorised else {"ok": False, "error": "invalid_auth"}
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def handle(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self.calls.append((method, params))
            if method == "auth.test":
                return {"ok": True, "team_id": "T1", "team": "Dashbite", "user": "lorag", "user_id": BOT_USER,
                        "bot_id": BOT_ID, "url": "https://dashbite.slack.com/"}
            if method == "chat.postMessage":
                message = self._add({"type": "message", "user": BOT_USER, "bot_id": BOT_ID, "text": params["text"],
                                     "thread_ts": params.get("thread_ts"), "metadata": params.get("metadata")},
                                    params["channel"])
                return {"ok": True, "channel": params["channel"], "ts": message["ts"], "message": message}
            if method == "apps.connections.open":
                return {"ok": True, "url": self.socket_url}
            if method == "conversations.replies":
                return {"ok": True, "messages": self._thread(params), "has_more": False}
            return {"ok": False, "error": "unknown_method"}

    def _add(self, message: dict[str, Any], channel: str) -> dict[str, Any]:
        tick = next(self.clock)
        message = {k: v for k, v in message.items() if v is not None} | {"ts": f"{1_700_000_000 + tick}.{tick:06d}"}
        self.messages.append(message | {"channel": channel})
        return message

    def _thread(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        """Like Slack: the thread of any of its messages, parent first; metadata only when asked for."""
        in_channel = [m for m in self.messages if m["channel"] == params["channel"]]
        target = next(m for m in in_channel if m["ts"] == params["ts"])
        root = target.get("thread_ts", target["ts"])
        thread = sorted((m for m in in_channel if root in (m["ts"], m.get("thread_ts"))), key=lambda m: m["ts"])
        low, high = params.get("oldest", "0"), params.get("latest", "9999999999")
        replies = [m for m in thread[1:] if low <= m["ts"] <= high]
        with_metadata = str(params.get("include_all_metadata")).lower() in ("1", "true")
        return [{k: v for k, v in m.items() if k != "channel" and (with_metadata or k != "metadata")}
                for m in thread[:1] + replies]

    def say(self, text: str, *, user: str = ASKER, channel: str = CHANNEL, thread_ts: str | None = None) -> dict:
        """A person's message, as Slack stores it; returns it for the event that announces it."""
        with self.lock:
            message = self._add({"type": "message", "user": user, "text": text, "thread_ts": thread_ts}, channel)
        return message | {"channel": channel}

    def posted(self, thread_ts: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            found = [params for method, params in self.calls if method == "chat.postMessage"]
        return [p for p in found if thread_ts is None or p.get("thread_ts") == thread_ts]

    def answers(self, thread_ts: str) -> list[dict[str, Any]]:
        return [p for p in self.posted(thread_ts) if (p.get("metadata") or {}).get("event_type") == ANSWER_EVENT]


def wait_for(check: Callable[[], Any], timeout_s: float = 180, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


# --- Events API requests, signed as Slack signs them ------------------------------------------------------------

def callback(event: dict[str, Any], event_id: str | None = None) -> dict[str, Any]:
    return {"token": "legacy", "team_id": "T1", "api_app_id": "A1", "type": "event_callback",
            "event_id": event_id or f"Ev{uuid.uuid4().hex[:10]}", "event_time": int(time.time()), "event": event}


def mention(message: dict[str, Any]) -> dict[str, Any]:
    return callback(message | {"type": "app_mention", "event_ts": message["ts"]})


def signed_headers(raw: str, secret: str = SECRET, retry: int | None = None) -> dict[str, str]:
    timestamp = str(int(time.time()))
    digest = hmac.new(secret.encode(), f"v0:{timestamp}:{raw}".encode(), hashlib.sha256).hexdigest()
    headers = {"Content-Type": "application/json", "X-Slack-Request-Timestamp": timestamp,
               "X-Slack-Signature": f"v0={digest}"}
    return headers | ({"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"} if retry else {})


def send(base_url: str, body: dict[str, Any], *, secret: str = SECRET, retry: int | None = None) -> httpx.Response:
    raw = json.dumps(body)
    return httpx.post(f"{base_url}/slack/events", content=raw, headers=signed_headers(raw, secret, retry), timeout=10)


def feedback_rows(home: Path, kind: str) -> list[dict[str, Any]]:
    with sqlite3.connect(home / "lorag.db") as connection:
        connection.row_factory = sqlite3.Row
        return [dict(row) for row in connection.execute("SELECT * FROM feedback WHERE kind = ?", (kind,))]


# --- unit: the pure parts ---------------------------------------------------------------------------------------

def citation(marker: int = 1, source: str = "refund approval limits.docx", title: str = "Refund approval limits",
             section: tuple[str, ...] = ("Refund approval limits", "Limits by role"), page: int | None = None
             ) -> Citation:
    return Citation(marker=marker, chunk_id=f"chunk{marker}", doc_id="doc1", title=title, source=source,
                    section=section, page=page, start=0, end=10, snippet="Tier 1: up to €25", support=0.9)


def result(text: str, citations: tuple[Citation, ...], kb: str = "experts") -> AnswerResult:
    sources = tuple(ScoredChunk(id=c.chunk_id, score=0.8, doc_id=c.doc_id, kb=kb, audience="internal", title=c.title,
                                source=c.source, section=c.section, page=c.page, start=0, end=10, text="t")
                    for c in citations)
    return AnswerResult(text=text, citations=citations, abstained=not citations, handoff=not citations,
                        model="smollm2-135m-instruct", sources=sources, timings=Timings(0, 0, 0, 0, 0))


def test_sources_become_numbered_slack_links_or_plain_names() -> None:
    assert source_line(citation(), SOURCE_URL) == (
        "1. <https://docs.example/refund%20approval%20limits.docx|Refund approval limits — Limits by role>")
    assert source_line(citation(2, page=3), None) == (
        "2. Refund approval limits — Limits by role, p. 3 (refund approval limits.docx)")
    assert source_line(citation(title="Q&A <draft>", section=()), SOURCE_URL).endswith("|Q&amp;A &lt;draft&gt;>")


def test_an_answer_lists_its_sources_and_an_abstention_offers_a_person() -> None:
    answered = format_answer(result("Up to €25 per contact [1]. Above that <ask> [2].", (citation(), citation(2))),
                             SOURCE_URL, "Ask a person.")
    text, sources = answered.split("\n\n*Sources*\n")
    assert text == "Up to €25 per contact [1]. Above that &lt;ask&gt; [2]."
    assert [line[:3] for line in sources.splitlines()] == ["1. ", "2. "]
    abstained = format_answer(result(ABSTENTION, ()), SOURCE_URL, "Ask a person.")
    assert abstained == f"{ABSTENTION}\nAsk a person." and "*Sources*" not in abstained


def test_corrections_are_recognised_by_their_prefix_only() -> None:
    assert parse_correction(plain_text("<@UBOT>  Correction: it is *€25* per contact."), "correction:") == (
        "it is *€25* per contact.")
    assert parse_correction("correction:", "correction:") == ""
    assert parse_correction("My correction: none", "correction:") is None
    assert parse_correction("fix> €30", "fix>") == "€30"


def test_retries_and_ratings_are_recognised() -> None:
    assert is_retry(BoltRequest(body="{}", headers={"X-Slack-Retry-Num": "1"}).headers)
    assert not is_retry(BoltRequest(body="{}", headers={"Content-Type": "application/json"}).headers)
    assert not is_retry({"x-slack-retry-num": ["0"]})  # Socket Mode's first delivery
    assert [rating_of(r) for r in ("+1", "+1::skin-tone-3", "thumbsdown", "-1", "tada")] == [1, 1, -1, -1, None]


def test_thread_history_has_answers_without_sources_and_skips_notices_and_corrections() -> None:
    answer = result("Up to €25 [1].", (citation(),))
    thread = [
        {"ts": "1700000001.000001", "user": ASKER, "text": "<@UBOT> goodwill limit for Tier 1?"},
        {"ts": "1700000002.000002", "user": BOT_USER, "bot_id": BOT_ID, "text": format_answer(answer, None, ""),
         "metadata": answer_metadata("goodwill limit for Tier 1?", answer, "experts")},
        {"ts": "1700000003.000003", "user": EXPERT, "text": "correction: €25 per contact"},
        {"ts": "1700000004.000004", "user": BOT_USER, "bot_id": BOT_ID, "text": "Thanks",
         "metadata": {"event_type": "lorag_notice", "event_payload": {"kind": "notice"}}},
        {"ts": "1700000005.000005", "user": ASKER, "text": "<@UBOT> and Tier 2?"},
    ]
    assert history_of(thread, "1700000005.000005", "correction:") == [
        {"role": "user", "content": "goodwill limit for Tier 1?"}, {"role": "assistant", "content": "Up to €25 [1]."}]


# --- component: the bolt app over a fake Slack, a canned answerer and a real SQLite ---------------------------------

@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    fake = FakeSlack()
    fake.start()
    yield fake
    fake.stop()


@dataclass
class CannedAnswerer:
    answer: AnswerResult
    asked: list[dict[str, Any]] = field(default_factory=list)

    def ask(self, question: str, **options: Any) -> AnswerResult:
        self.asked.append({"question": question, **options})
        return self.answer


@dataclass
class Host:
    answerer: CannedAnswerer
    sessions: Any

    def resolve_model(self, model: str | None, kb: str | None) -> str | None:
        return model


def dispatch(app: Any, body: dict[str, Any], retry: int | None = None) -> Any:
    raw = json.dumps(body)
    return app.dispatch(BoltRequest(body=raw, headers=signed_headers(raw, retry=retry)))


def test_bolt_app_answers_in_the_thread_and_records_feedback(fake_slack: FakeSlack, make_settings: Any,
                                                              tmp_path: Path) -> None:
    settings = make_settings(slack={"bot_token": BOT_TOKEN, "signing_secret": SECRET, "api_url": fake_slack.url,
                                    "source_url": SOURCE_URL, "experts": [EXPERT]})
    engine = db.build_engine(f"sqlite:///{tmp_path / 'lorag.db'}")
    db.migrate(engine)
    answerer = CannedAnswerer(result("A Tier 1 agent may approve up to €25 [1].", (citation(),)))
    app = build_slack_app(Host(answerer, db.build_sessions(engine)), settings)

    question = fake_slack.say("<@UBOT> How much goodwill may a Tier 1 agent approve?")
    body = mention(question)
    started = time.monotonic()
    assert dispatch(app, body).status == 200 and time.monotonic() - started < 3
    assert dispatch(app, body, retry=1).status == 200  # Slack's retry: acknowledged, not answered
    posted = wait_for(lambda: fake_slack.answers(question["ts"]), 10, "the answer")[0]
    assert "<https://docs.example/refund%20approval%20limits.docx|Refund approval limits — Limits by role>" in (
        posted["text"])
    assert answerer.asked[0]["audiences"] == ("public", "internal") and answerer.asked[0]["history"] == []

    answer_ts = fake_slack.messages[-1]["ts"]
    reaction = {"type": "reaction_added", "user": ASKER, "reaction": "+1", "item_user": BOT_USER,
                "item": {"type": "message", "channel": CHANNEL, "ts": answer_ts}, "event_ts": answer_ts}
    assert dispatch(app, callback(reaction)).status == 200
    rating = wait_for(lambda: feedback_rows(tmp_path, "rating"), 10, "the rating")[0]
    assert (rating["rating"], rating["question"], rating["kb"]) == (1, "How much goodwill may a Tier 1 agent approve?",
                                                                    "experts")
    outsider = fake_slack.say("correction: €50", user=ASKER, thread_ts=question["ts"])
    dispatch(app, callback(outsider | {"channel_type": "channel", "event_ts": outsider["ts"]}))
    wait_for(lambda: any("experts" in p["text"] for p in fake_slack.posted(question["ts"])), 10, "the refusal")
    assert feedback_rows(tmp_path, "correction") == [] and len(answerer.asked) == 1
    engine.dispose()


def test_the_events_route_is_404_until_slack_is_configured(make_settings: Any) -> None:
    with TestClient(create_app(make_settings(server={"load_models": False}))) as client:
        response = client.post("/slack/events", content="{}", headers={"Content-Type": "application/json"})
    assert response.status_code == 404
    assert "LORAG_SLACK__SIGNING_SECRET" in response.json()["error"]["message"]


# --- integration: a real `lorag serve` with the samples ingested -------------------------------------------------

SUPPORT, EXPERTS = REPO / "samples" / "kb" / "support", REPO / "samples" / "kb" / "experts"
PUBLIC_DOCS = ["late_deliveries.md", "placing_an_order.md", "refund_policy.pdf", "tipping.md"]
GOODWILL = "How much goodwill credit may a Tier 1 agent approve without a supervisor?"


@dataclass
class Served:
    url: str
    home: Path
    log: Path
    slack: FakeSlack

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("slack")
    public, internal = root / "support", root / "experts"
    public.mkdir()
    internal.mkdir()
    for name in PUBLIC_DOCS:
        shutil.copy(SUPPORT / name, public / name)
    shutil.copy(EXPERTS / INTERNAL_DOC, internal / INTERNAL_DOC)
    fake = FakeSlack()
    fake.start()
    env = lorag_env(root, LORAG_GENERATOR__MAX_NEW_TOKENS="48", LORAG_SLACK__BOT_TOKEN=BOT_TOKEN,
                    LORAG_SLACK__SIGNING_SECRET=SECRET, LORAG_SLACK__API_URL=fake.url,
                    LORAG_SLACK__SOURCE_URL=SOURCE_URL)
    for folder, kb, audience in ((public, "support", "public"), (internal, "experts", "internal")):
        done = subprocess.run([sys.executable, "-m", "lorag.app", "ingest", str(folder), "--kb", kb, "--audience",
                               audience], env=env, cwd=root, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
    port, log = free_port(), root / "server.log"
    with log.open("w") as output:  # a file, not a pipe nobody reads: a full pipe would block the server
        process = subprocess.Popen([sys.executable, "-m", "lorag.app", "serve", "--port", str(port)], env=env, cwd=root,
                                   stdout=output, stderr=subprocess.STDOUT, text=True)
    try:
        assert _wait_ready(f"http://127.0.0.1:{port}/readyz", process) == 200
        yield Served(f"http://127.0.0.1:{port}", root / "home", log, fake)
    finally:
        process.terminate()
        process.wait(timeout=30)
        fake.stop()


@pytest.fixture(scope="module")
def answered(served: Served) -> dict[str, Any]:
    """A mention in a channel and lorag's answer in its thread; the mention's retries are sent straight after it."""
    question = served.slack.say(f"<@{BOT_USER}> {GOODWILL}")
    body = mention(question)
    started = time.monotonic()
    assert send(served.url, body).status_code == 200
    assert time.monotonic() - started < 3  # Slack's deadline; the answer comes later
    assert send(served.url, body, retry=1).status_code == 200
    assert send(served.url, body | {"event_id": "EvRETRYONLY"}, retry=2).status_code == 200
    answer = wait_for(lambda: served.slack.answers(question["ts"]), what="the answer")[0]
    return {"question": question, "answer": answer}


@pytest.mark.slow
def test_url_verification_echoes_the_challenge(served: Served) -> None:
    response = send(served.url, {"token": "legacy", "challenge": "3eZbrw1aB", "type": "url_verification"})
    assert response.status_code == 200 and response.json() == {"challenge": "3eZbrw1aB"}


@pytest.mark.slow
def test_a_bad_signature_is_refused_and_nothing_is_posted(served: Served) -> None:
    question = served.slack.say(f"<@{BOT_USER}> {GOODWILL}")
    before = len(served.slack.posted())
    assert send(served.url, mention(question), secret="not-the-signing-secret").status_code == 401
    raw = json.dumps(mention(question))
    stale = signed_headers(raw) | {"X-Slack-Request-Timestamp": str(int(time.time()) - 3600)}
    assert httpx.post(f"{served.url}/slack/events", content=raw, headers=stale).status_code == 401
    time.sleep(2)
    assert len(served.slack.posted()) == before and served.slack.posted(question["ts"]) == []


@pytest.mark.slow
def test_a_mention_is_answered_in_its_thread_from_internal_documents(served: Served, answered: dict) -> None:
    answer, question = answered["answer"], answered["question"]
    assert answer["channel"] == CHANNEL and answer["thread_ts"] == question["ts"]
    payload = answer["metadata"]["event_payload"]
    assert payload["question"] == GOODWILL
    if payload["abstained"]:  # the small base model may not manage; the structure is what is checked
        assert answer["text"].startswith("I can't find this in the documentation.") and "correction:" in answer["text"]
    else:
        text, sources = answer["text"].split("\n\n*Sources*\n")
        assert payload["answer"] == text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
        for number, line in enumerate(sources.splitlines(), start=1):
            assert line.startswith(f"{number}. <https://docs.example/") and line.endswith(">") and "|" in line
    # Retrieval searched the internal documents (a public audience could never see this one).
    assert f"thread {question['ts']}" in served.log_text() and INTERNAL_DOC in served.log_text()


@pytest.mark.slow
def test_retries_never_produce_a_second_answer(served: Served, answered: dict) -> None:
    thread = answered["question"]["ts"]
    log = served.log_text()
    assert log.count("redelivery of event") >= 2 and "EvRETRYONLY acknowledged and dropped" in log
    time.sleep(3)
    assert len(served.slack.answers(thread)) == 1


@pytest.mark.slow
def test_a_follow_up_in_the_thread_is_answered_with_its_history(served: Served, answered: dict) -> None:
    thread = answered["question"]["ts"]
    follow_up = served.slack.say(f"<@{BOT_USER}> And how much may a Tier 2 agent approve?", thread_ts=thread)
    assert send(served.url, mention(follow_up)).status_code == 200
    answers = wait_for(lambda: len(served.slack.answers(thread)) >= 2 and served.slack.answers(thread),
                       what="the follow-up's answer")
    assert answers[1]["thread_ts"] == thread
    with served.slack.lock:
        read = [p for method, p in served.slack.calls if method == "conversations.replies" and p["ts"] == thread]
    assert read and str(read[0].get("include_all_metadata")).lower() in ("1", "true")
    assert f"thread {thread}: model=smollm2-135m-instruct" in served.log_text()
    assert "history=2" in served.log_text()  # the first question and lorag's answer to it


@pytest.mark.slow
def test_a_thumbs_up_on_an_answer_is_recorded_as_a_rating(served: Served, answered: dict) -> None:
    answer_ts = next(m["ts"] for m in served.slack.messages if m.get("metadata") == answered["answer"]["metadata"])
    reaction = {"type": "reaction_added", "user": ASKER, "reaction": "+1", "item_user": BOT_USER,
                "item": {"type": "message", "channel": CHANNEL, "ts": answer_ts}, "event_ts": answer_ts}
    assert send(served.url, callback(reaction)).status_code == 200
    row = wait_for(lambda: feedback_rows(served.home, "rating"), 30, "the rating row")[0]
    payload = answered["answer"]["metadata"]["event_payload"]
    assert (row["rating"], row["question"], row["answer"]) == (1, GOODWILL, payload["answer"])
    assert (row["channel"], row["audience"], row["model"]) == ("slack", "internal", payload["model"])


@pytest.mark.slow
def test_an_experts_correction_in_the_thread_is_recorded(served: Served, answered: dict) -> None:
    thread = answered["question"]["ts"]
    reply = served.slack.say("Correction: A Tier 1 agent may approve up to €25 per contact.", user=EXPERT,
                             thread_ts=thread)
    event = reply | {"channel_type": "channel", "event_ts": reply["ts"]}
    assert send(served.url, callback(event)).status_code == 200
    corrected = served.slack.answers(thread)[-1]["metadata"]["event_payload"]  # the latest answer before it
    row = wait_for(lambda: feedback_rows(served.home, "correction"), 30, "the correction row")[0]
    assert row["correction"] == "A Tier 1 agent may approve up to €25 per contact."
    assert (row["question"], row["answer"]) == (corrected["question"], corrected["answer"])
    assert (row["channel"], row["audience"], row["rating"]) == ("slack", "internal", None)
    wait_for(lambda: any(p["text"].startswith(f"Thanks <@{EXPERT}>") for p in served.slack.posted(thread)), 30,
             "the thanks")


@pytest.mark.slow
def test_a_direct_message_is_answered_in_its_thread(served: Served) -> None:
    message = served.slack.say("What is the minimum order value for delivery?", channel="D0DIRECT")
    assert send(served.url, callback(message | {"channel_type": "im", "event_ts": message["ts"]})).status_code == 200
    answer = wait_for(lambda: served.slack.answers(message["ts"]), what="the answer to the direct message")[0]
    assert answer["channel"] == "D0DIRECT" and answer["thread_ts"] == message["ts"]


# --- Socket Mode: `lorag slack` against a fake Socket Mode endpoint ------------------------------------------------

@dataclass
class FakeSocketMode:
    """Slack's side of Socket Mode: says hello, sends envelopes, records the acknowledgements."""

    outbox: queue.Queue[dict[str, Any]] = field(default_factory=queue.Queue)
    acks: list[dict[str, Any]] = field(default_factory=list)

    def start(self) -> str:
        self.server = serve(self._session, "127.0.0.1", 0, compression=None)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"ws://127.0.0.1:{self.server.socket.getsockname()[1]}/link"

    def stop(self) -> None:
        self.server.shutdown()

    def _session(self, connection: Any) -> None:
        connection.send(json.dumps({"type": "hello", "num_connections": 1}))
        with contextlib.suppress(ConnectionClosed):
            self._exchange(connection)

    def _exchange(self, connection: Any) -> None:
        while True:
            with contextlib.suppress(queue.Empty):
                connection.send(json.dumps(self.outbox.get(timeout=0.1)))
            with contextlib.suppress(TimeoutError):
                self.acks.append(json.loads(connection.recv(timeout=0.1)))

    def deliver(self, body: dict[str, Any], retry_attempt: int = 0) -> str:
        envelope_id = uuid.uuid4().hex
        self.outbox.put({"envelope_id": envelope_id, "type": "events_api", "accepts_response_payload": False,
                         "retry_attempt": retry_attempt, "retry_reason": "timeout" if retry_attempt else "",
                         "payload": body})
        return envelope_id

    def acked(self, envelope_id: str) -> bool:
        return any(ack.get("envelope_id") == envelope_id for ack in self.acks)


def test_lorag_slack_without_tokens_says_which_are_missing(tmp_path: Path) -> None:
    result = run_lorag(["slack"], lorag_env(tmp_path, LORAG_SLACK__BOT_TOKEN=BOT_TOKEN), tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "LORAG_SLACK__APP_TOKEN" in result.stderr and "LORAG_SLACK__BOT_TOKEN" not in result.stderr


@pytest.mark.slow
def test_lorag_slack_handles_events_over_socket_mode(tmp_path: Path, models_dir: Path) -> None:
    slack, socket = FakeSlack(), FakeSocketMode()
    slack.socket_url = socket.start()
    slack.start()
    answer = result("Up to €25 per contact [1].", (citation(),))
    question = slack.say(f"<@{BOT_USER}> {GOODWILL}")
    posted = slack._add({"type": "message", "user": BOT_USER, "bot_id": BOT_ID, "text": "Up to €25 per contact [1].",
                         "thread_ts": question["ts"], "metadata": answer_metadata(GOODWILL, answer, "experts")},
                        CHANNEL)
    env = lorag_env(tmp_path, LORAG_SLACK__BOT_TOKEN=BOT_TOKEN, LORAG_SLACK__APP_TOKEN=APP_TOKEN,
                    LORAG_SLACK__API_URL=slack.url)
    with (tmp_path / "slack.log").open("w") as output:
        process = subprocess.Popen([sys.executable, "-m", "lorag.app", "slack"], env=env, cwd=tmp_path, stdout=output,
                                   stderr=subprocess.STDOUT, text=True)
    try:
        retry = mention(question)
        retried = socket.deliver(retry, retry_attempt=1)
        reaction = {"type": "reaction_added", "user": ASKER, "reaction": "+1", "item_user": BOT_USER,
                    "item": {"type": "message", "channel": CHANNEL, "ts": posted["ts"]}, "event_ts": posted["ts"]}
        rated = socket.deliver(callback(reaction))
        wait_for(lambda: socket.acked(retried) and socket.acked(rated), 240, "the acknowledgements")
        row = wait_for(lambda: feedback_rows(tmp_path / "home", "rating"), 30, "the rating row")[0]
        assert (row["rating"], row["question"], row["kb"], row["channel"]) == (1, GOODWILL, "experts", "slack")
        assert f"redelivery of event {retry['event_id']} acknowledged and dropped" in (
            (tmp_path / "slack.log").read_text())
        assert slack.posted() == []  # the retried mention was not answered
    finally:
        process.terminate()
        process.wait(timeout=30)
        socket.stop()
        slack.stop()
