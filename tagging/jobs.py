"""Tagging jobs in the background: one thread per process tags the jobs one after another with the tagger
`lorag tag` builds, on the model this process holds (`POST /v1/tagging/jobs` submits them).

Jobs are kept in this process's memory, not in a file under LORAG_HOME/runs: a job is tagged by the model this
process holds, so it cannot outlive the process anyway, and a file would need a reader in every replica behind a
load balancer. The last KEEP_JOBS jobs are kept; a restart forgets them and the client resubmits. Large files go
through `lorag tag`, which checkpoints and resumes.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from lorag.core.errors import BackendUnavailable, InvalidInput, LoragError, NotFound, shown
from lorag.core.settings import Settings
from lorag.finetune.prompts import parse_output
from lorag.finetune.tasks import TaskSpec
from lorag.finetune.types import Record
from lorag.serving.protocol import Generator
from lorag.tagging.confidence import SharedScorer
from lorag.tagging.probe import LinearProbe
from lorag.tagging.tagger import (
    Embeds,
    Item,
    ShotIndex,
    Tagger,
    TagResult,
    calibration_of,
    shot_pool,
)

logger = logging.getLogger(__name__)

KEEP_JOBS = 200
# A batch holds the in-process model until it is done, and questions to /v1/ask wait behind it: smaller batches
# than `lorag tag`'s keep that wait to a few seconds on a CPU.
BATCH_SIZE = 8
Status = Literal["queued", "running", "succeeded", "failed"]
# labelled examples for the prompts and the vote, the probe fitted on them, and the held-out items
Pool = tuple[ShotIndex | None, LinearProbe | None, list[Record]]


class Example(Protocol):
    text: str
    tags: str | dict[str, Any]


class JobInput(Protocol):
    """What a job asks for: its items, labelled examples (none: the task's data) and shots per item."""

    @property
    def items(self) -> Sequence[Any]: ...  # each with `id` and `text`

    @property
    def examples(self) -> Sequence[Example]: ...

    @property
    def shots(self) -> int | None: ...  # None: as many as the model was trained with (`default_shots`)


class Holds(Protocol):
    """What the board uses of the serving process: its generator, its embedder and its settings."""

    answer_generator: Generator | None
    embedder: Embeds | None
    settings: Settings


@dataclass
class TaggingJob:
    id: str
    spec: TaskSpec
    request: JobInput
    model: str | None
    shots: int  # neighbours shown per item (`default_shots` of the request's)
    status: Status = "queued"
    results: list[TagResult] = field(default_factory=list)
    error: str | None = None
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime | None = None


class JobBoard:
    """The jobs of this process, tagged one after another by one thread (the model runs one batch at a time)."""

    def __init__(self, resources: Holds) -> None:
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
        """The tagger `lorag tag` builds (`app.cli.tagging.build_tagger`) on the model this process serves: the
        in-process network scores the taxonomy's values, a model server generates under the JSON schema; the same
        labelled pool votes, and the same calibration (fitted once, shared on disk) sets the precision floors."""
        generator = self.resources.answer_generator
        if generator is None:
            raise BackendUnavailable("the models are not loaded (LORAG_SERVER__LOAD_MODELS=false)")
        index, probe, held_out = self._pool(job)
        scorer = _scorer(generator, job.model)
        tagger = Tagger(None if scorer is not None else generator, job.spec, model=job.model, shots=index,
                        k_shots=job.shots, batch_size=BATCH_SIZE,
                        max_new_tokens=job.spec.evaluation.max_new_tokens, scorer=scorer, probe=probe)
        tagger.calibration = calibration_of(tagger, held_out, self.resources.settings.runs_dir / "calibration")
        return tagger

    def _pool(self, job: TaggingJob) -> Pool:
        """The request's examples, else the task's training split (embedded once per task), with the items to
        calibrate on: `shot_pool`, as `lorag tag --examples` or `lorag tag --task` chooses them."""
        if job.request.examples:
            return self._fitted(job.spec, examples_records(job.spec, job.request.examples))
        if job.spec.name not in self._pools:
            self._pools[job.spec.name] = self._fitted(job.spec, None)
        return self._pools[job.spec.name]

    def _fitted(self, spec: TaskSpec, examples: list[Record] | None) -> Pool:
        embedder = self.resources.embedder
        pool, held_out = shot_pool(spec, examples)
        if not pool or embedder is None:
            return None, None, held_out
        assert spec.taxonomy is not None
        return ShotIndex(embedder, pool), LinearProbe.fit(embedder, spec.taxonomy, pool), held_out


def _scorer(generator: Generator, model: str | None) -> SharedScorer | None:
    """Constrained scoring on the in-process model (as `lorag tag` scores); None for a model server (vLLM)."""
    if not generator.capabilities.network:
        return None
    return SharedScorer(generator, model, name=model or generator.base_name)  # type: ignore[arg-type, attr-defined]




def examples_records(spec: TaskSpec, examples: Sequence[Example]) -> list[Record]:
    """Labelled examples as records; the first that does not fit the taxonomy is bad input, named by position."""
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

