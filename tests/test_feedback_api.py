"""`POST /v1/feedback`: what the widget's thumbs and comments store, and what it refuses."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from lorag.app.http import answer_tokens
from lorag.app.http.main import create_app
from lorag.core import keys
from lorag.core.settings import Settings
from lorag.core.tables import Feedback

CITATION = {"marker": 1, "chunk_id": "c1", "doc_id": "d1", "title": "Placing an order",
            "source": "placing_an_order.md", "section": ["Placing an order", "Minimum order value"], "page": None,
            "start": 10, "end": 90, "snippet": "The minimum food subtotal for a delivery order is €8.00.",
            "support": 0.91}
VALID = {"question": "What is the minimum order value for delivery?",
         "answer": "The minimum food subtotal is €8.00 [1].", "rating": 1, "comment": "  Clear, thanks!  ",
         "model": "smollm2-135m-instruct", "citations": [CITATION], "kb": "support"}


@pytest.fixture
def client(make_settings: Callable[..., Settings]) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(server={"load_models": False}))) as client:
        yield client


ANSWERS = itertools.count()


def signed(client: TestClient, body: dict[str, Any], audience: str = "public",
           key: str | None = None) -> dict[str, Any]:
    """The body with the token the server gave with that answer to that key (as /v1/ask would have); each call
    is another answer (its own expiry), since feedback on one answer is one row."""
    secret = answer_tokens.secret_of(client.app.state.resources.settings)
    caller = key.split("_")[1] if key else answer_tokens.ANONYMOUS_CALLER
    token = answer_tokens.sign(secret, question=body["question"], answer=body["answer"], model=body.get("model"),
                               kb=body.get("kb"), audience=audience, caller=caller,
                               expires=int(time.time()) + 3600 + next(ANSWERS))
    return {**body, "answer_token": token}


def stored(client: TestClient) -> list[Feedback]:
    with client.app.state.resources.sessions() as session:
        return list(session.scalars(select(Feedback)))


def test_a_rating_with_a_comment_is_stored(client: TestClient) -> None:
    response = client.post("/v1/feedback", json=signed(client, VALID))
    assert response.status_code == 201, response.text
    [row] = stored(client)
    assert response.json() == {"id": row.id}
    assert (row.kind, row.kb, row.audience, row.channel) == ("rating", "support", "public", "widget")
    assert (row.question, row.answer, row.rating, row.model) == (VALID["question"], VALID["answer"], 1,
                                                                 "smollm2-135m-instruct")
    assert row.comment == "Clear, thanks!"
    [citation] = json.loads(row.citations or "[]")
    assert citation["chunk_id"] == "c1" and citation["snippet"] == CITATION["snippet"]
    assert "support" not in citation  # only what is worth keeping with the rating


def test_a_comment_alone_or_a_thumbs_down_alone_is_enough(client: TestClient) -> None:
    base = {"question": "Who is the CEO?", "answer": "I can't find this in the documentation."}
    assert client.post("/v1/feedback", json={**signed(client, base), "comment": "You should know this"}).status_code \
        == 201
    assert client.post("/v1/feedback", json={**signed(client, base), "rating": -1, "channel": "api"}).status_code \
        == 201
    rows = sorted(stored(client), key=lambda row: row.rating or 0)
    assert [(row.rating, row.comment, row.channel, row.citations) for row in rows] == [
        (-1, None, "api", None), (None, "You should know this", "widget", None)]


@pytest.mark.parametrize("change", [
    {"rating": 2}, {"rating": 0}, {"rating": True}, {"rating": 1.5}, {"rating": "1"},
    {"rating": None, "comment": None}, {"rating": None, "comment": "   "},
    {"question": ""}, {"question": "x" * 2001}, {"answer": ""}, {"answer": "x" * 8001},
    {"comment": "x" * 2001}, {"citations": [{"title": "no marker"}]}, {"citations": [CITATION] * 21},
    {"channel": "email"}, {"audience": "internal"}, {"answer_token": "0" * 64}, {"answer_token": None},
    {"answer": "The minimum food subtotal is €1.00 [1]."}, {"model": "support@1"}, {"kb": "experts"},
], ids=lambda change: ",".join(f"{key}={str(value)[:12]}" for key, value in change.items()))
def test_bad_feedback_is_refused_and_nothing_is_stored(client: TestClient, change: dict[str, Any]) -> None:
    response = client.post("/v1/feedback", json={**signed(client, VALID), **change})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["message"]
    assert set(error) == {"message", "type", "code", "param"}
    with client.app.state.resources.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Feedback)) == 0


def test_the_key_decides_the_audience_and_the_knowledge_bases(make_settings: Callable[..., Settings]) -> None:
    """An internal caller's answer may quote internal documents: its feedback must not train public models."""
    settings = make_settings(server={"load_models": False, "require_keys": True})
    with TestClient(create_app(settings)) as client:
        sessions = client.app.state.resources.sessions
        internal, _ = keys.create(sessions, name="agents", scopes=["chat:internal"])
        support_only, _ = keys.create(sessions, name="site", scopes=["chat:public"], kbs=["support"])
        assert client.post("/v1/feedback", json=signed(client, VALID)).status_code == 401
        refused = client.post("/v1/feedback", json=signed(client, {**VALID, "kb": "experts"}),
                              headers={"Authorization": f"Bearer {support_only}"})
        assert refused.status_code == 403 and refused.json()["error"]["param"] == "kb"
        # A token is bound to the audience it was given for: a public answer's token is no good to an internal key.
        crossed = client.post("/v1/feedback", json=signed(client, VALID, "public", internal),
                              headers={"Authorization": f"Bearer {internal}"})
        assert crossed.status_code == 400 and crossed.json()["error"]["param"] == "answer_token"
        for key, audience in ((internal, "internal"), (support_only, "public")):
            assert client.post("/v1/feedback", json=signed(client, VALID, audience, key),
                               headers={"Authorization": f"Bearer {key}"}).status_code == 201
        assert sorted(row.audience for row in stored(client)) == ["internal", "public"]
