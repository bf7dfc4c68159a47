"""Tagging jobs over HTTP: `POST /v1/tagging/jobs` (202 and a job id), `GET /v1/tagging/jobs/{id}`; and
`POST /v1/tagging/confirmations`, tags a person checked, which the next nightly run trains on.

    POST /v1/tagging/jobs {"task": "menu-tagging", "items": [{"id": "1", "text": "Pad thai with tofu"}]}
    → 202 {"id": "tag-…", "status": "queued", ...}; poll GET /v1/tagging/jobs/tag-… until "succeeded"

The taxonomy is inline (labels or fields, optionally `system`) or a configured task's; a taxonomy with a task's
fields is tagged as that task: its prompt, its labelled data as examples, its adapter in service. A job is tagged
as `lorag tag` tags (`JobBoard._tagger`): constrained scoring of every allowed value on the model this process
holds, confidence calibrated on held-out labelled items, the taxonomy's precision floors and implications, and
`needs_review`; the same items with the same adapter get the same tags either way.

Jobs are kept in this process's memory, not in a file under LORAG_HOME/runs: a job holds at most MAX_ITEMS items
and is tagged by the model this process holds, so it cannot outlive the process anyway, and a file would need a
reader in every replica behind a load balancer. The last KEEP_JOBS jobs are kept; a restart forgets them and
the client resubmits. Large files go through `lorag tag`, which checkpoints and resumes.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Request
from pydantic import BaseModel, ConfigDict, Field

from lorag.app.http.auth import requires
from lorag.app.http.deps import ResourcesDep, TagCaller
from lorag.app.resources import Resources
from lorag.app.tagging import (
    Item,
    ShotIndex,
    Tagger,
    TagResult,
    calibration_of,
    matching_task,
    shot_pool,
    taxonomy_task,
)
from lorag.app.tagging_confidence import SharedScorer
from lorag.core.errors import BackendUnavailable, Forbidden, InvalidInput, LoragError, NotFound, shown
from lorag.core.keys import Principal
from lorag.finetune.prompts import parse_output
from lorag.finetune.tasks import TaskSpec, find_task
from lorag.finetune.types import Record
from lorag.retrieval.batching import BatchingGenerator
from lorag.retrieval.generate import Generator, TransformersGenerator

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/tagging", tags=["tagging"])

MAX_ITEMS = 1000
KEEP_JOBS = 200
# A batch holds the in-process model until it is done, and questions to /v1/ask wait behind it: smaller batches
# than `lorag tag`'s keep that wait to a few seconds on a CPU.
BATCH_SIZE = 8
Status = Literal["queued", "running", "succeeded", "failed"]
Pool = tuple[ShotIndex | None, list[Record]]  # labelled examples for the prompts and the vote; held-out items


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
    shots: int = Field(3, ge=0, le=8, description="Labelled neighbours shown per item.")


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


@dataclass
class TaggingJob:
    id: str
    spec: TaskSpec
    request: JobRequest
    model: str | None
    status: Status = "queued"
    results: list[TagResult] = field(default_factory=list)
    error: str | None = None
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime | None = None

    def out(self) -> JobOut:
        order = {item.id: number for number, item in enumerate(self.request.items)}
        results = sorted(self.results, key=lambda result: order[result.id])  # batches go shortest first
        valid = sum(result.valid for result in results)
        return JobOut(id=self.id, status=self.status, task=self.spec.name, model=self.model,
                      total=len(self.request.items), done=len(results), valid=valid,
                      failed=len(results) - valid, error=self.error, created_at=self.created_at,
                      finished_at=self.finished_at, results=[result.as_row() for result in results])


class JobBoard:
    """The jobs of this process, tagged one after another by one thread (the model runs one batch at a time)."""

    def __init__(self, resources: Resources) -> None:
        self.resources = resources
        self._jobs: dict[str, TaggingJob] = {}
        self._lock = threading.Lock()
        self._queue: queue.Queue[TaggingJob] = queue.Queue()
        self._pools: dict[str, Pool] = {}  # task → its labelled examples (embedded once) and held-out items
        threading.Thread(target=self._work, name="lorag-tagging", daemon=True).start()

    def submit(self, job: TaggingJob) -> None:
        with self._lock:
            self._jobs[job.id] = job
            finished = [key for key, old in self._jobs.items() if old.status in ("succeeded", "failed")]
            for key in finished[: max(0, len(self._jobs) - KEEP_JOBS)]:
                del self._jobs[key]
        self._queue.put(job)

    def get(self, job_id: str) -> TaggingJob:
        job = self._jobs.get(job_id)
        if job is None:
            raise NotFound(f"no tagging job {shown(job_id)} (jobs are kept in memory until a restart)", param="id")
        return job

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            job.status = "running"
            try:
                for batch in self._tagger(job).batches([Item(i.id, i.text) for i in job.request.items]):
                    job.results = [*job.results, *batch]  # replaced whole: a reader sees a consistent list
                status: Status = "succeeded"
            except LoragError as error:
                status, job.error = "failed", error.message
            except Exception:  # an edge: the thread must outlive one bad job
                logger.exception("tagging job %s failed", job.id)
                status, job.error = "failed", "internal error; the server log has the details"
            job.finished_at = datetime.now(UTC)
            job.status = status  # last: a client that sees it finished sees its end time and error too

    def _tagger(self, job: TaggingJob) -> Tagger:
        """The tagger `lorag tag` builds (`tagging_cli.build_tagger`) on the model this process serves: the
        in-process network scores the taxonomy's values, a model server generates under the JSON schema; the same
        labelled pool votes, and the same calibration (fitted once, shared on disk) sets the precision floors."""
        generator = self.resources.answer_generator
        if generator is None:
            raise BackendUnavailable("the models are not loaded (LORAG_SERVER__LOAD_MODELS=false)")
        index, held_out = self._pool(job)
        scorer = _scorer(generator, job.model)
        tagger = Tagger(None if scorer is not None else generator, job.spec, model=job.model, shots=index,
                        k_shots=job.request.shots, batch_size=BATCH_SIZE,
                        max_new_tokens=job.spec.evaluation.max_new_tokens, scorer=scorer)
        tagger.calibration = calibration_of(tagger, held_out, self.resources.settings.runs_dir / "calibration")
        return tagger

    def _pool(self, job: TaggingJob) -> Pool:
        """The request's examples, else the task's training split (embedded once per task), with the items to
        calibrate on: `shot_pool`, as `lorag tag --examples` or `lorag tag --task` chooses them."""
        embedder = self.resources.embedder
        if job.request.examples:
            examples, held_out = shot_pool(job.spec, _records(job.spec, job.request.examples))
            return (ShotIndex(embedder, examples) if embedder is not None else None), held_out
        if job.spec.name not in self._pools:
            examples, held_out = shot_pool(job.spec, None)
            self._pools[job.spec.name] = (ShotIndex(embedder, examples) if examples and embedder is not None
                                          else None), held_out
        return self._pools[job.spec.name]


def _scorer(generator: Generator, model: str | None) -> SharedScorer | None:
    """Constrained scoring on the in-process model (as `lorag tag` scores); None for a model server (vLLM)."""
    inner = generator.inner if isinstance(generator, BatchingGenerator) else generator
    if not isinstance(inner, TransformersGenerator):
        return None
    return SharedScorer(inner, model, name=model or inner.base_name)


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
    _records(spec, body.examples)  # bad examples are the caller's error, reported now rather than in the job
    model = _permitted_model(principal, resources, body.model, spec.name)
    job = TaggingJob(id=f"tag-{uuid.uuid4().hex}", spec=spec, request=body, model=model)
    board.submit(job)
    return job.out()


@router.post("/confirmations", status_code=201, response_model=ConfirmationOut, summary="Store tags a person "
             "checked as the task's confirmed tags; the next nightly run trains on them")
def confirm(body: ConfirmationRequest, resources: ResourcesDep,
            principal: TagCaller) -> ConfirmationOut:
    """As `lorag confirm-tags`: every item is checked against the taxonomy and its implications first (errors name
    items by position, from 1), then all are stored in one transaction; an item confirmed again gets the new tags."""
    from lorag.app.tagging_confirm import confirmations, store
    from lorag.app.wiring import configured_tasks

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
    return board.get(job_id).out()


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


def _records(spec: TaskSpec, examples: list[ExampleIn]) -> list[Record]:
    assert spec.taxonomy is not None
    records = []
    for index, example in enumerate(examples):
        tags = example.tags if isinstance(example.tags, str) else json.dumps(example.tags)
        parsed = parse_output(spec.taxonomy, tags)
        if not parsed.valid:
            raise InvalidInput(f"examples[{index}].tags do not fit the taxonomy: {parsed.problem}",
                               param=f"examples.{index}.tags")
        records.append(Record(prompt=example.text, output=parsed.value))
    return records

