"""Questions in, cited answers out: lorag's own `/v1/ask` and the OpenAI-compatible chat API."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from itertools import chain
from typing import Any, Literal

from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from lorag.app.http import answer_tokens
from lorag.app.http.answer_tokens import audience_of
from lorag.app.http.deps import ChatCaller, ModelsCaller, ResourcesDep
from lorag.app.resources import Resources
from lorag.core.errors import BackendUnavailable, Forbidden, InvalidInput
from lorag.core.faults import as_lorag_error
from lorag.core.keys import Principal
from lorag.finetune import status as run_status
from lorag.retrieval.answer import Answerer, AnswerResult

router = APIRouter(prefix="/v1", tags=["answers"])

MAX_NAME = 128  # the longest model, adapter version or task name a request may carry
MODEL_FIELD = ("The base model, an adapter version, or a task (its version in service). "
               "Empty: the version in service for the knowledge base, else the base model.")


class Turn(BaseModel):
    role: Literal["user", "assistant"]
    content: str = Field(max_length=8000)


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt or smuggled field (an audience) is an error

    question: str = Field(min_length=1, max_length=2000, description="The question, in the user's words.")
    kb: str | None = Field(None, max_length=64, description="Knowledge base to search; all when empty.")
    history: list[Turn] = Field(default_factory=list, max_length=20, description="Earlier turns, oldest first.")
    model: str | None = Field(None, max_length=MAX_NAME, description=MODEL_FIELD)


class CitationOut(BaseModel):
    marker: int
    chunk_id: str
    doc_id: str
    title: str
    source: str
    section: list[str]
    page: int | None
    start: int
    end: int
    snippet: str
    support: float
    url: str | None = Field(None, description="The link the document was uploaded with (http or https), if any; "
                            "`source` is a name, never a link.")


class RelatedOut(BaseModel):
    """A help article offered with an abstention: retrieved for the question, not checked as an answer to it."""

    doc_id: str
    title: str
    source: str
    section: list[str]
    page: int | None
    snippet: str = Field(description="The start of the best-matching passage of the document.")
    url: str | None = Field(None, description="The link the document was uploaded with (http or https), if any.")


class AskResponse(BaseModel):
    answer: str
    citations: list[CitationOut]
    related: list[RelatedOut] = Field(
        default_factory=list, description="Only when the answer abstained: the best-matching passages, one per "
        "document, to offer as related help articles (they were not verified as an answer).")
    abstained: bool
    handoff: bool
    model: str
    timings: dict[str, float | None]
    usage: dict[str, int]
    finish_reason: Literal["stop", "length"] = Field(
        "stop", description="'length': the model reached the token limit; a sentence it left unfinished is dropped.")
    answer_token: str | None = Field(description="Send it back with feedback on this answer (POST /v1/feedback).")


def answerer_of(resources: Resources) -> Answerer:
    if resources.answerer is None:
        raise BackendUnavailable("the answering models are not loaded (LORAG_SERVER__LOAD_MODELS=false)")
    return resources.answerer


@router.post("/ask", response_model=AskResponse, summary="Answer a question with checked citations")
def ask(request: AskRequest, principal: ChatCaller,
        resources: ResourcesDep) -> AskResponse:
    model = permitted_model(principal, resources, request.model, request.kb)
    result = answerer_of(resources).ask(request.question, kb=request.kb, audiences=principal.audiences,
                          history=[turn.model_dump() for turn in request.history], model=model)
    return to_response(result, token_of(resources, principal, request.question, request.kb, result))


def permitted_model(principal: Principal, resources: Resources, model: str | None, kb: str | None) -> str | None:
    """The model a request is answered with, once the key may use both it and the knowledge base."""
    principal.check_kb(kb)
    resolved = resources.resolve_model(model, kb)
    base = resources.answerer.base_model if resources.answerer else None
    if model is None:  # the knowledge base's adapter by default, or the base model if the key may not use it
        return resolved if _may_use(principal, resolved, base) else None
    principal.check_model(model, base)
    principal.check_model(resolved, base)
    return resolved


def to_response(result: AnswerResult, token: str | None) -> AskResponse:
    return AskResponse(answer=result.text, citations=citations_of(result), related=related_of(result),
                       abstained=result.abstained,
                       handoff=result.handoff, model=result.model, timings=vars(result.timings),
                       usage={"prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens},
                       finish_reason=result.finish_reason, answer_token=token)


def token_of(resources: Resources, principal: Principal, question: str, kb: str | None,
             result: AnswerResult) -> str:
    expires = int(time.time()) + resources.settings.server.answer_token_ttl_s
    return answer_tokens.sign(answer_tokens.secret_of(resources.settings), question=question, answer=result.text,
                              model=result.model, kb=kb, audience=audience_of(principal),
                              caller=answer_tokens.caller_of(principal), expires=expires)


def preview(text: str, limit: int = 240) -> str:
    """The start of a passage, cut at a word.

    >>> preview("Refunds reach your card in 5-10 business days.", limit=20)
    'Refunds reach your…'
    """
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0].rstrip(",;:") + "…"


def related_of(result: AnswerResult) -> list[RelatedOut]:
    return [RelatedOut(doc_id=chunk.doc_id, title=chunk.title, source=chunk.source, section=list(chunk.section),
                       page=chunk.page, snippet=preview(chunk.text), url=chunk.url)
            for chunk in result.related]


def citations_of(result: AnswerResult) -> list[CitationOut]:
    """The citations, each with the link its document was uploaded with, if any (never one made from a name)."""
    urls = {chunk.doc_id: chunk.url for chunk in result.sources}
    return [CitationOut(**{**vars(c), "section": list(c.section), "url": urls.get(c.doc_id)})
            for c in result.citations]


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str = Field(max_length=8000)


class StreamOptions(BaseModel):
    include_usage: bool = Field(False, description="Send the token usage in one more chunk, with no choices, "
                                "before [DONE]; the other chunks carry `usage: null`.")


class ChatRequest(BaseModel):
    model: str | None = Field(None, max_length=MAX_NAME, description=MODEL_FIELD)
    messages: list[ChatMessage] = Field(min_length=1, max_length=40)
    stream: bool = False
    stream_options: StreamOptions | None = Field(None, description="Only with `stream`, as in OpenAI's API.")
    kb: str | None = Field(None, max_length=64, description="lorag extension: the knowledge base to search.")
    max_tokens: int | None = Field(None, ge=1, description="Accepted for compatibility; the server's limit applies.")
    temperature: float | None = Field(None, ge=0, le=2, description="Accepted for compatibility; answers are greedy.")


@router.post("/chat/completions", summary="OpenAI-compatible chat; citations in the response and stream")
def chat_completions(request: ChatRequest, principal: ChatCaller,
                     resources: ResourcesDep) -> Any:
    question, history = split_conversation(request.messages)
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    model = permitted_model(principal, resources, request.model, request.kb)
    answerer = answerer_of(resources)
    audiences = principal.audiences
    def token(result: AnswerResult) -> str:
        return token_of(resources, principal, question, request.kb, result)

    if not request.stream:
        result = answerer.ask(question, kb=request.kb, audiences=audiences, history=history, model=model)
        return completion_body(completion_id, result, token(result))
    events = answerer.ask_stream(question, kb=request.kb, audiences=audiences, history=history, model=model)
    # The first event is taken before the response starts, so a bad model name or a model server that is
    # down still gets its proper status code instead of a broken stream.
    first = next(events)
    include_usage = request.stream_options is not None and request.stream_options.include_usage
    return StreamingResponse(sse(completion_id, model or answerer.base_model, chain([first], events), token,
                                 include_usage), media_type="text/event-stream")


def split_conversation(messages: list[ChatMessage]) -> tuple[str, list[dict[str, str]]]:
    """The last user message is the question; earlier user/assistant turns are history (system ignored:
    lorag's own rules apply)."""
    if messages[-1].role != "user":
        raise InvalidInput("the last message must come from the user", param="messages")
    turns = [m.model_dump() for m in messages[:-1] if m.role != "system"]
    return messages[-1].content, turns


def completion_body(completion_id: str, result: AnswerResult, token: str) -> dict[str, Any]:
    return {
        "id": completion_id, "object": "chat.completion", "created": int(time.time()), "model": result.model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": result.text},
                     "finish_reason": result.finish_reason}],
        "usage": usage_of(result),
        "citations": [c.model_dump() for c in citations_of(result)],
        "related": [r.model_dump() for r in related_of(result)],
        "abstained": result.abstained, "handoff": result.handoff, "answer_token": token,
    }


def usage_of(result: AnswerResult) -> dict[str, int]:
    return {"prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens,
            "total_tokens": result.prompt_tokens + result.completion_tokens}


def sse(completion_id: str, model: str | None, events: Iterator[str | AnswerResult],
        token: Callable[[AnswerResult], str], include_usage: bool = False) -> Iterator[str]:
    """OpenAI chunks of verified text (joined, the final answer), then a chunk with the finish reason, the
    citations and the answer; with `include_usage`, one more with the usage and no choices."""
    created = int(time.time())
    try:
        yield from _chunks(completion_id, model, created, events, token, include_usage)
    except Exception as exc:  # mid-stream: the status line is gone, so a known error travels as an event
        error = as_lorag_error(exc)
        if error is None:
            raise
        yield f"data: {json.dumps(error.envelope())}\n\n"
    yield "data: [DONE]\n\n"


def _chunks(completion_id: str, model: str | None, created: int, events: Iterator[str | AnswerResult],
            token: Callable[[AnswerResult], str], include_usage: bool) -> Iterator[str]:
    def chunk(model: str, choices: list[dict[str, Any]], extra: dict[str, Any]) -> str:
        usage = {"usage": None} if include_usage else {}  # OpenAI: null on every chunk but the usage one
        body = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": choices, **usage, **extra}
        return f"data: {json.dumps(body)}\n\n"

    role: dict[str, str] = {"role": "assistant"}  # the first delta says who speaks, as OpenAI's do
    for event in events:
        if isinstance(event, str):
            yield chunk(model or "", [{"index": 0, "delta": {**role, "content": event}, "finish_reason": None}], {})
            role = {}
            continue
        yield chunk(event.model, [{"index": 0, "delta": {}, "finish_reason": event.finish_reason}],
                    {"citations": [c.model_dump() for c in citations_of(event)], "answer": event.text,
                     "related": [r.model_dump() for r in related_of(event)],
                     "abstained": event.abstained, "handoff": event.handoff, "answer_token": token(event),
                     "timings": vars(event.timings)})
        if include_usage:
            yield chunk(event.model, [], {"usage": usage_of(event)})


@router.get("/models", summary="The base model and the adapter versions that can answer")
def list_models(resources: ResourcesDep,
                principal: ModelsCaller) -> dict[str, Any]:
    served = resources.answer_generator.models() if resources.answer_generator else []
    names = [name for name in served if _may_use(principal, name, served[0])]
    return {"object": "list", "data": [{"id": name, "object": "model", "created": 0, "owned_by": "lorag"}
                                       for name in names],
            "tasks": tasks_of(resources, principal, served[0] if served else None)}


def tasks_of(resources: Resources, principal: Principal, base: str | None) -> list[dict[str, Any]]:
    """lorag extension: each task's version in service (None: the base model answers) and its run in progress."""
    active = resources.router.active() if resources.router else {}
    live = run_status.live(run_status.folder_of(resources.settings.runs_dir))
    running = {status["task"]: status for status in live}
    return [{"task": task, "in_service": active.get(task),
             "training": {key: running[task].get(key) for key in ("phase", "step", "total_steps")}
             if task in running else None}
            for task in sorted({*resources.tasks, *active, *running}) if _may_use(principal, task, base)]


def _may_use(principal: Principal, model: str | None, base: str | None) -> bool:
    try:
        principal.check_model(model, base)
    except Forbidden:
        return False
    return True
