"""Cited answers over a real uvicorn server on loopback, driven by the official `openai` client."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from openai import OpenAI
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from tests.conftest import REPO, free_port
from tests.test_cli import _wait_ready, lorag_env

pytestmark = pytest.mark.slow

SUPPORT = REPO / "samples" / "kb" / "support"
EXPERTS = REPO / "samples" / "kb" / "experts"
PUBLIC_DOCS = ["late_deliveries.md", "placing_an_order.md", "refund_policy.pdf", "tipping.md"]
KEYS: dict[str, str] = {}  # name → API key, made by the server fixture
HOMES: dict[str, Path] = {}  # "home" → the server's LORAG_HOME, for commands run beside it


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[str]:
    home = tmp_path_factory.mktemp("answers")
    docs, internal = home / "support", home / "experts"
    docs.mkdir()
    internal.mkdir()
    for name in PUBLIC_DOCS:
        shutil.copy(SUPPORT / name, docs / name)
    shutil.copy(EXPERTS / "refund_approval_limits.docx", internal / "refund_approval_limits.docx")
    env = lorag_env(home, LORAG_GENERATOR__MAX_NEW_TOKENS="48")
    for folder, kb, audience in ((docs, "support", "public"), (internal, "experts", "internal")):
        result = subprocess.run([sys.executable, "-m", "lorag.app", "ingest", str(folder), "--kb", kb, "--audience",
                                 audience], env=env, cwd=home, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
    made = {}
    for name, scope in (("public", "chat:public"), ("internal", "chat:internal")):
        created = subprocess.run([sys.executable, "-m", "lorag.app", "keys", "create", "--name", name, "--scope",
                                  scope], env=env, cwd=home, capture_output=True, text=True, timeout=120)
        assert created.returncode == 0, created.stderr
        made[name] = created.stdout.strip()
    (home / "keys.json").write_text(json.dumps(made))
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "lorag.app", "serve", "--port", str(port)], env=env, cwd=home,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert _wait_ready(f"http://127.0.0.1:{port}/readyz", process) == 200
        KEYS.update(made)
        HOMES["home"] = home
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.communicate(timeout=30)


def _check_citations(citations: list[dict], allowed_sources: set[str]) -> None:
    for citation in citations:
        assert citation["source"] in allowed_sources
        assert citation["snippet"] and citation["end"] > citation["start"]


def test_models_lists_the_base_model(server: str) -> None:
    client = OpenAI(base_url=f"{server}/v1", api_key=KEYS["public"])
    assert "smollm2-135m-instruct" in [model.id for model in client.models.list().data]


def test_chat_completion_carries_checked_citations(server: str) -> None:
    client = OpenAI(base_url=f"{server}/v1", api_key=KEYS["public"])
    completion = client.chat.completions.create(
        model="smollm2-135m-instruct", extra_body={"kb": "support"},
        messages=[{"role": "user", "content": "What is the minimum order value for delivery?"}])
    extra = completion.model_extra or {}
    assert "citations" in extra and "abstained" in extra
    if extra["abstained"]:
        assert completion.choices[0].message.content == "I can't find this in the documentation."
    else:
        assert extra["citations"]
        _check_citations(extra["citations"], set(PUBLIC_DOCS))


def test_citations_survive_streaming(server: str) -> None:
    client = OpenAI(base_url=f"{server}/v1", api_key=KEYS["public"])
    stream = client.chat.completions.create(
        model="smollm2-135m-instruct", stream=True, extra_body={"kb": "support"},
        messages=[{"role": "user", "content": "How long do refunds take to reach my card?"}])
    chunks = list(stream)
    final = chunks[-1].model_extra or {}
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")
    assert {"citations", "answer", "abstained"} <= set(final)
    assert "".join(c.choices[0].delta.content or "" for c in chunks[:-1]) == final["answer"]  # verified text only
    _check_citations(final["citations"], set(PUBLIC_DOCS))


def test_bodies_and_chunks_are_valid_openai_types(server: str) -> None:
    """The SDK builds its objects without validating them; here every field is checked against its types."""
    body = {"model": "smollm2-135m-instruct", "kb": "support",
            "messages": [{"role": "user", "content": "How is the service fee calculated?"}]}
    completion = ChatCompletion.model_validate(httpx.post(f"{server}/v1/chat/completions", json=body,
                                                          timeout=300).json())
    choice, usage = completion.choices[0], completion.usage
    assert usage is not None and choice.finish_reason in ("stop", "length")
    if choice.finish_reason == "length":  # a draft stopped at a repeated sentence finishes with "stop"
        assert usage.completion_tokens >= 48  # the server's cap in this module
    stream = {**body, "stream": True, "stream_options": {"include_usage": True}}
    with httpx.stream("POST", f"{server}/v1/chat/completions", json=stream, timeout=300) as response:
        lines = [line[len("data: "):] for line in response.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    *answer, final, last = [ChatCompletionChunk.model_validate(json.loads(line)) for line in lines[:-1]]
    assert "".join(c.choices[0].delta.content or "" for c in answer) == final.model_extra["answer"]
    assert final.choices[0].finish_reason in ("stop", "length") and last.choices == [] and last.usage is not None


def test_ask_abstains_on_what_the_documents_do_not_say(server: str) -> None:
    response = httpx.post(f"{server}/v1/ask", json={"question": "Who is the CEO of Dashbite?", "kb": "support"},
                          timeout=120)
    body = response.json()
    assert response.status_code == 200
    assert body["abstained"] is True and body["handoff"] is True and body["citations"] == []
    # Feedback on this very answer is taken with its token; the same rating on an answer it never gave is not.
    rating = {"question": "Who is the CEO of Dashbite?", "answer": body["answer"], "model": body["model"],
              "kb": "support", "rating": -1, "answer_token": body["answer_token"]}
    assert httpx.post(f"{server}/v1/feedback", json=rating, timeout=30).status_code == 201
    made_up = {**rating, "answer": "The CEO is Jane Doe.", "rating": 1}
    refused = httpx.post(f"{server}/v1/feedback", json=made_up, timeout=30)
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "answer_token"


def test_a_public_caller_never_gets_internal_content(server: str) -> None:
    """Anonymous and public-key callers, on every answering endpoint, streaming or not; the audience comes from the
    key, and a body that asks for more is refused by the schema."""
    question = "How much goodwill credit may an agent approve without a supervisor?"
    for headers in ({}, {"Authorization": f"Bearer {KEYS['public']}"}):
        for kb in (None, "experts"):
            body = httpx.post(f"{server}/v1/ask", json={"question": question, "kb": kb}, headers=headers,
                              timeout=120).json()
            assert all(c["source"] != "refund_approval_limits.docx" for c in body["citations"])
            assert all(r["source"] != "refund_approval_limits.docx" for r in body["related"])  # offered articles too
            assert "€25" not in body["answer"]
    client = OpenAI(base_url=f"{server}/v1", api_key=KEYS["public"])
    messages = [{"role": "user", "content": question}]
    completion = client.chat.completions.create(model="smollm2-135m-instruct", messages=messages,
                                                extra_body={"kb": "experts"})
    assert all(c["source"] != "refund_approval_limits.docx" for c in completion.model_extra["citations"])
    chunks = list(client.chat.completions.create(model="smollm2-135m-instruct", messages=messages, stream=True,
                                                 extra_body={"kb": "experts"}))
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "€25" not in streamed
    assert all(c["source"] != "refund_approval_limits.docx" for c in chunks[-1].model_extra["citations"])
    assert all(r["source"] != "refund_approval_limits.docx" for r in chunks[-1].model_extra["related"])
    smuggled = httpx.post(f"{server}/v1/ask", json={"question": question, "audiences": ["internal"]}, timeout=30)
    assert smuggled.status_code == 400  # there is no audience field to set


def test_an_internal_key_reads_internal_documents(server: str) -> None:
    headers = {"Authorization": f"Bearer {KEYS['internal']}"}
    question = "Up to what amount can a Tier 1 agent approve a goodwill credit without a supervisor?"
    body = httpx.post(f"{server}/v1/ask", json={"question": question, "kb": "experts"}, headers=headers,
                      timeout=120).json()
    # The 135M base model may abstain; when it answers, its sources are the internal document.
    assert body["abstained"] or {c["source"] for c in body["citations"]} == {"refund_approval_limits.docx"}


def test_bad_requests_get_openai_errors(server: str) -> None:
    response = httpx.post(f"{server}/v1/chat/completions", json={"messages": []}, timeout=30)
    assert response.status_code == 400 and response.json()["error"]["type"] == "invalid_request_error"
    response = httpx.post(f"{server}/v1/chat/completions", timeout=30,
                          json={"model": "nope@1", "messages": [{"role": "user", "content": "minimum order value?"}],
                                "kb": "support"})
    assert response.status_code == 404, response.text
    assert "unknown model" in json.dumps(response.json())


def test_a_command_that_needs_the_held_store_names_the_api_instead(server: str) -> None:
    """While `lorag serve` holds the embedded store, `lorag ask` says what to use: one line, no traceback."""
    home = HOMES["home"]
    result = subprocess.run([sys.executable, "-m", "lorag.app", "ask", "How long do refunds take?", "--kb", "support"],
                            env=lorag_env(home), cwd=home, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "POST /v1/ask" in result.stderr and "already open" in result.stderr


def test_the_openai_client_works_keyless_with_any_api_key(server: str) -> None:
    """The SDK always sends a bearer value; a server without required keys takes it as the anonymous caller."""
    client = OpenAI(base_url=f"{server}/v1", api_key="x")
    completion = client.chat.completions.create(model="smollm2-135m-instruct", extra_body={"kb": "support"},
                                                messages=[{"role": "user", "content": "How long do refunds take?"}])
    assert isinstance(completion, ChatCompletion) and completion.choices[0].message.content
    assert isinstance(completion.model_extra["citations"], list)  # the README's snippet prints them
