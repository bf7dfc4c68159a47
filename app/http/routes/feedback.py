"""Thumbs up/down and comments on answers, from the widget or any client; the nightly job learns from them."""

from __future__ import annotations

import json
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator

from lorag.app.http import answer_tokens
from lorag.app.http.answer_tokens import audience_of
from lorag.app.http.deps import ChatCaller, ResourcesDep
from lorag.core.db import transaction
from lorag.core.errors import InvalidInput
from lorag.core.tables import Feedback, FeedbackKind, utcnow

router = APIRouter(prefix="/v1", tags=["feedback"])


class FeedbackCitation(BaseModel):
    """The parts of a citation worth keeping with a rating; anything else a client echoes back is dropped."""

    model_config = ConfigDict(extra="ignore")  # clients send back the whole citation object they were given

    marker: int = Field(ge=1, le=100)
    title: str = Field("", max_length=512)
    source: str = Field("", max_length=1024)
    section: list[str] = Field(default_factory=list, max_length=20)
    page: int | None = None
    chunk_id: str | None = Field(None, max_length=128)
    doc_id: str | None = Field(None, max_length=64)
    snippet: str = Field("", max_length=4000)


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field (or an audience) is an error, not ignored

    question: str = Field(min_length=1, max_length=2000, description="The question that was answered.")
    answer: str = Field(min_length=1, max_length=8000, description="The answer shown, verified text.")
    rating: StrictInt | None = Field(None, description="1: helpful, -1: not helpful.")
    comment: str | None = Field(None, max_length=2000, description="What the person said, optional.")
    model: str | None = Field(None, max_length=128, description="The model that answered (the response's `model`).")
    citations: list[FeedbackCitation] = Field(default_factory=list, max_length=20)
    kb: str | None = Field(None, max_length=64, description="The knowledge base the answer came from.")
    channel: Literal["widget", "api", "slack"] = "widget"
    answer_token: str = Field(min_length=1, max_length=128, description="The `answer_token` that came with the "
                              "answer: feedback is taken only on answers this server gave.")

    @field_validator("rating")
    @classmethod
    def _thumbs(cls, rating: int | None) -> int | None:
        # Strict: JSON `true` or `1.5` is a client bug, not a thumbs up.
        if rating is not None and rating not in (1, -1):
            raise ValueError("rating must be 1 (helpful) or -1 (not helpful)")
        return rating


class FeedbackCreated(BaseModel):
    id: str


@router.post("/feedback", status_code=201, response_model=FeedbackCreated,
             summary="Rate an answer (thumbs up/down) and/or comment on it")
def create_feedback(request: FeedbackRequest, principal: ChatCaller,
                    resources: ResourcesDep) -> FeedbackCreated:
    principal.check_kb(request.kb)
    comment = (request.comment or "").strip() or None
    if request.rating is None and comment is None:
        raise InvalidInput("send a rating (1 or -1), a comment, or both", param="rating")
    answer_id = answer_tokens.check(answer_tokens.secret_of(resources.settings), request.answer_token,
                                    question=request.question, answer=request.answer, model=request.model,
                                    kb=request.kb, audience=audience_of(principal),
                                    caller=answer_tokens.caller_of(principal))
    fields = {"kind": FeedbackKind.RATING, "kb": request.kb, "audience": audience_of(principal),
              "question": request.question, "answer": request.answer, "rating": request.rating, "comment": comment,
              "model": request.model, "channel": request.channel,
              "citations": json.dumps([c.model_dump() for c in request.citations]) if request.citations else None}
    with transaction(resources.sessions) as session:
        # One row per answer: feedback sent again on the same answer updates it (the last rating wins).
        row = session.get(Feedback, answer_id, with_for_update=True)
        if row is None:
            session.add(Feedback(id=answer_id, **fields))
        else:  # a rating or comment left out keeps the one sent before (thumbs down, then a comment)
            for name, value in fields.items():
                if value is not None or name not in ("rating", "comment"):
                    setattr(row, name, value)
            row.created_at = utcnow()
    return FeedbackCreated(id=answer_id)

