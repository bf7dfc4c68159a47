"""`/v1/chat/completions` as the `openai` SDK reads it: every body and chunk validates against the SDK's own
pydantic types, streamed deltas join to the verified answer, `finish_reason` says when the token cap cut the
answer, and `stream_options.include_usage` adds OpenAI's usage chunk. The app, store, embedder and verifier
are real; the model is scripted (tests/retrieval/test_verified_stream.py), so the answers are known.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient
from openai import OpenAI
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from lorag.app.http.main import create_app
from lorag.core.settings import Settings
from tests.fakes import FakeGenerator
from tests.retrieval.test_verified_stream import COURIER, FEE, QUESTION, ScriptedModel, answerer, store  # noqa: F401

MESSAGES = [{"role": "user", "content": QUESTION}]
SCRIPT = f"The moon is made of cheese [{{delivery}}]. {FEE} [{{fees}}]. {COURIER} [{{delivery}}]."


@pytest.fixture
def app_with(make_settings: Callable[..., Settings], store: tuple) -> Iterator[Callable[..., TestClient]]:  # noqa: F811
    """A client of the app whose answerer writes with `model` (and `max_new_tokens`)."""
    with TestClient(create_app(make_settings(server={"load_models": False}))) as client:
        def build(model: FakeGenerator, max_new_tokens: int = 200) -> TestClient:
            client.app.state.resources.answerer = answerer(store, model, max_new_tokens)
            return client

        yield build


def chunks_of(client: TestClient, body: dict) -> list[ChatCompletionChunk]:
    with client.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as response:
        assert response.status_code == 200
        lines = [line[len("data: "):] for line in response.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    return [ChatCompletionChunk.model_validate(json.loads(line)) for line in lines[:-1]]


def test_a_completion_is_a_valid_openai_chat_completion(app_with: Callable[..., TestClient]) -> None:
    client = app_with(ScriptedModel(SCRIPT))
    response = client.post("/v1/chat/completions", json={"messages": MESSAGES, "kb": "support"})
    completion = ChatCompletion.model_validate(response.json())
    assert completion.choices[0].message.content == f"{FEE} [1]. {COURIER} [2]."
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.total_tokens > completion.usage.completion_tokens > 0


def test_streamed_deltas_join_to_the_verified_answer(app_with: Callable[..., TestClient]) -> None:
    chunks = chunks_of(app_with(ScriptedModel(SCRIPT)), {"messages": MESSAGES, "kb": "support"})
    *deltas, final = chunks
    joined = "".join(chunk.choices[0].delta.content or "" for chunk in deltas)
    assert joined == final.model_extra["answer"] == f"{FEE} [1]. {COURIER} [2]."
    assert deltas[0].choices[0].delta.role == "assistant"
    assert final.choices[0].finish_reason == "stop" and final.usage is None
    assert [c["marker"] for c in final.model_extra["citations"]] == [1, 2]


def test_an_answer_cut_by_the_token_cap_finishes_with_length(app_with: Callable[..., TestClient]) -> None:
    script = f"{COURIER} [{{delivery}}]. {FEE}"
    client = app_with(ScriptedModel(script, finish_reason="length"), max_new_tokens=len(script.split()))
    body = {"messages": MESSAGES, "kb": "support"}
    completion = ChatCompletion.model_validate(client.post("/v1/chat/completions", json=body).json())
    assert (completion.choices[0].message.content, completion.choices[0].finish_reason) == (f"{COURIER} [1].",
                                                                                            "length")
    *deltas, final = chunks_of(client, body)
    assert "".join(chunk.choices[0].delta.content or "" for chunk in deltas) == f"{COURIER} [1]."
    assert final.choices[0].finish_reason == "length"
    assert client.post("/v1/ask", json={"question": QUESTION, "kb": "support"}).json()["finish_reason"] == "length"


def test_include_usage_adds_the_usage_chunk(app_with: Callable[..., TestClient]) -> None:
    body = {"messages": MESSAGES, "kb": "support", "stream_options": {"include_usage": True}}
    chunks = chunks_of(app_with(ScriptedModel(SCRIPT)), body)
    *answer, last = chunks
    assert last.choices == [] and last.usage is not None
    assert last.usage.completion_tokens == len(SCRIPT.split()) and last.usage.prompt_tokens > 0
    assert all(chunk.usage is None for chunk in answer)


def test_the_openai_sdk_reads_the_stream(app_with: Callable[..., TestClient]) -> None:
    client = app_with(ScriptedModel(SCRIPT))
    sdk = OpenAI(base_url=f"{client.base_url}/v1", api_key="unused", http_client=client)
    stream = sdk.chat.completions.create(model="scripted", messages=MESSAGES, stream=True,  # type: ignore[arg-type]
                                         stream_options={"include_usage": True}, extra_body={"kb": "support"})
    chunks = list(stream)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text == f"{FEE} [1]. {COURIER} [2]."
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
