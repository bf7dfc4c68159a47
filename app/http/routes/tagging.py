"""Tagging jobs over HTTP: `POST /v1/tagging/jobs` (202 and a job id), `GET /v1/tagging/jobs/{id}`; and
`POST /v1/tagging/confirmations`, tags a person checked, which the next nightly run trains on.

    POST /v1/tagging/jobs {"task": "menu-tagging", "items": [{"id": "1", "text": "Pad thai with tofu"}]}
    → 202 {"id": "tag-…", "status": "queued", ...}; poll GET /v1/tagging/jobs/tag-… until "succeeded"

The taxonomy is inline (labels or fields, optionally `system`) or a configured task's; a taxonomy with a task's
fields is tagged as that task: its prompt, its labelled data as examples, its adapter in service. A job is tagged
as `lorag tag` tags (`JobBoard._tagger`): constrained scoring of every allowed value on the model this process
holds, confidence calibrated on held-out labelled items, the taxonomy's precision floors and implications, and
`needs_review`; the same items with the same adapter get the same tags either way.

A job holds at most MAX_ITEMS items; the jobs live in this process's memory (`tagging.jobs`).
"""

from __future__ import annotations

import logging
import threading
import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from pydantic import BaseModel, ConfigDict, Field

from lorag.app.http.auth import requires
from lorag.app.http.deps import ResourcesDep, TagCaller
from lorag.app.resources import Resources
from lorag.core.errors import BackendUnavailable, Forbidden, InvalidInput, LoragError
from lorag.core.keys import Principal
from lorag.finetune.tasks import TaskSpec, find_task
from lorag.tagging.jobs import JobBoard, Status, TaggingJob, examples_records
from lorag.tagging.tagger import default_shots, matching_task, taxonomy_task

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/tagging", tags=["tagging"])

MAX_ITEMS = 1000


class ItemIn(BaseModel):
    id: str = Field(min_length=1, max_length=200)
    text: str = Field(max_length=4000)


class ExampleIn(BaseModel):
    text: str = Field(min_length=1, max_length=4000)
    tags: str | dict[str, Any] = Field(description="A label, or an object of field → value(s).")


class JobRequest(BaseModel):
    taxonomy: dict[str, Any] | None = Field(None, description="labels: [...] or fields: {name: {type: single|"
                                            "multi, values: [...]}}; optionally description and system.")
    task: str | None = Field(None, max_length=64,
                             description="A configured classification task, instead of a taxonomy.")
    items: list[ItemIn] = Field(min_length=1, max_length=MAX_ITEMS)
    model: str | None = Field(None, max_length=128, description="Adapter version, task or base model; default: the "
                              "task's adapter in service, else the base model.")
    examples: list[ExampleIn] = Field(default_factory=list, max_length=500,
                                      description="Labelled items for the prompts; default: the task's data.")
    shots: int | None = Field(None, ge=0, le=8, description="Labelled neighbours shown per item; default: 0 with an "
                              "adapter (trained on bare prompts), 3 with the base model.")


class ConfirmedItem(BaseModel):
    id: str | None = Field(None, max_length=200, description="The item's id, to name it in errors.")
    text: str = Field(min_length=1, max_length=4000)
    tags: str | dict[str, Any] = Field(description="The tags a person checked: a label, or field → value(s).")


class ConfirmationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task: str = Field(min_length=1, max_length=64, description="The configured classification task they teach.")
    items: list[ConfirmedItem] = Field(min_length=1, max_length=MAX_ITEMS)


class ConfirmationOut(BaseModel):
    task: str
    stored: int


class JobOut(BaseModel):
    id: str
    status: Status
    task: str
    model: str | None
    total: int
    done: int
    valid: int
    failed: int
    error: str | None
    created_at: datetime
    finished_at: datetime | None
    results: list[dict[str, Any]]


def job_out(job: TaggingJob) -> JobOut:
    order = {item.id: number for number, item in enumerate(job.request.items)}
    results = sorted(job.results, key=lambda result: order[result.id])  # batches go shortest first
    valid = sum(result.valid for result in results)
    return JobOut(id=job.id, status=job.status, task=job.spec.name, model=job.model,
                  total=len(job.request.items), done=len(results), valid=valid,
                  failed=len(results) - valid, error=job.error, created_at=job.created_at,
                  finished_at=job.finished_at, results=[result.as_row() for result in results])


def board_of(request: Request, resources: ResourcesDep) -> JobBoard:
    app: FastAPI = request.app
    with _BOARD_LOCK:  # one board per app, made on first use so an app that never tags starts no thread
        if getattr(app.state, "tagging", None) is None:
            app.state.tagging = JobBoard(resources)
        return app.state.tagging


_BOARD_LOCK = threading.Lock()


@router.post("/jobs", status_code=202, response_model=JobOut, summary="Tag items against a taxonomy, in the "
             "background")
def create_job(body: JobRequest, resources: ResourcesDep,
               principal: TagCaller,
               board: Annotated[JobBoard, Depends(board_of)]) -> JobOut:
    if body.model is not None:  # refused before anything else, whatever the state of the models
        principal.check_model(body.model, resources.answerer.base_model if resources.answerer else None)
    if resources.answer_generator is None:
        raise BackendUnavailable("the models are not loaded (LORAG_SERVER__LOAD_MODELS=false)")
    spec = _spec(body, resources)
    ids = [item.id for item in body.items]
    if len(set(ids)) != len(ids):
        raise InvalidInput("item ids must be unique within a job", param="items")
    examples_records(spec, body.examples)  # bad examples are the caller's error, reported now rather than in the job
    model = _permitted_model(principal, resources, body.model, spec.name)
    base = resources.answerer.base_model if resources.answerer else None
    job = TaggingJob(id=f"tag-{uuid.uuid4().hex}", spec=spec, request=body, model=model,
                     shots=default_shots(model not in (None, base), body.shots))
    board.submit(job)
    return job_out(job)


@router.post("/confirmations", status_code=201, response_model=ConfirmationOut, summary="Store tags a person "
             "checked as the task's confirmed tags; the next nightly run trains on them")
def confirm(body: ConfirmationRequest, resources: ResourcesDep,
            principal: TagCaller) -> ConfirmationOut:
    """As `lorag confirm-tags`: every item is checked against the taxonomy and its implications first (errors name
    items by position, from 1), then all are stored in one transaction; an item confirmed again gets the new tags."""
    from lorag.app.wiring import configured_tasks
    from lorag.tagging.confirm import confirmations, store

    principal.check_model(body.task)  # a key bound to some adapters teaches only their tasks
    try:
        spec = find_task(configured_tasks(resources.settings), body.task)
    except LoragError as error:
        raise InvalidInput(error.message, param="task") from None
    if spec.taxonomy is None:
        raise InvalidInput(f"task {body.task} is a {spec.kind} task, not a classification task", param="task")
    rows = [{**item.model_dump(), "confirmed": True} for item in body.items]
    try:
        confirmed, _unmarked = confirmations(rows, spec, "items")
    except InvalidInput as error:
        raise InvalidInput(error.message, param="items") from None
    store(resources.sessions, spec, confirmed)
    return ConfirmationOut(task=spec.name, stored=len(confirmed))


@router.get("/jobs/{job_id}", response_model=JobOut, summary="A tagging job's status, counts and results",
            dependencies=[Depends(requires("tag"))])
def get_job(job_id: str, board: Annotated[JobBoard, Depends(board_of)]) -> JobOut:
    return job_out(board.get(job_id))


def _permitted_model(principal: Principal, resources: Resources, model: str | None, task: str) -> str | None:
    """The model a job is tagged with, once the key may use it: a key's `adapters` bind tagging as they bind chat.
    By default the task's adapter in service, or the base model when the key may not use that adapter."""
    base = resources.answerer.base_model if resources.answerer else None
    if model is None:
        active = resources.router.active().get(task) if resources.router else None
        try:
            principal.check_model(active, base)
        except Forbidden:
            return None
        return active
    principal.check_model(model, base)
    resolved = resources.resolve_model(model, None)
    principal.check_model(resolved, base)
    return resolved


def _spec(body: JobRequest, resources: Resources) -> TaskSpec:
    from lorag.app.wiring import configured_tasks

    if (body.taxonomy is None) == (body.task is None):
        raise InvalidInput("send either taxonomy (an object with labels or fields) or task (a task's name)",
                           param="taxonomy")
    configured = configured_tasks(resources.settings)
    if body.task is not None:
        try:
            spec = find_task(configured, body.task)
        except LoragError as error:
            raise InvalidInput(error.message, param="task") from None
        if spec.taxonomy is None:
            raise InvalidInput(f"task {body.task} is a {spec.kind} task, not a classification task", param="task")
        return spec
    spec = taxonomy_task(body.taxonomy or {}, "taxonomy")
    return matching_task(spec, configured) or spec
