"""What the app opens once at start-up and closes at shut-down, and how routes reach it."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from fastapi import Request
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from lorag.core import db, models
from lorag.core.settings import Settings
from lorag.finetune.schedule import Scheduler
from lorag.ingest.embed import Embedder
from lorag.ingest.factory import build_embedder, build_indexer, build_queue, build_store
from lorag.ingest.store import VectorStore
from lorag.ingest.worker import IngestQueue, Worker
from lorag.retrieval.answer import Answerer
from lorag.retrieval.factory import build_answerer
from lorag.serving.factory import build_answer_generator
from lorag.serving.protocol import Generator
from lorag.serving.router import AdapterRouter

logger = logging.getLogger(__name__)


@dataclass
class Resources:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    store: VectorStore
    answer_generator: Generator | None = None
    answerer: Answerer | None = None
    embedder: Embedder | None = None
    queue: IngestQueue | None = None
    workers: list[Worker] = field(default_factory=list)
    router: AdapterRouter | None = None
    scheduler: Scheduler | None = None
    tasks: list[str] = field(default_factory=list)  # the configured tasks' names, for /v1/models

    def resolve_model(self, model: str | None, kb: str | None) -> str | None:
        """The adapter version (or base model, None) a request is answered with; see serving.router."""
        return self.router.resolve(model, kb) if self.router else model

    def close(self) -> None:
        if self.scheduler is not None:
            self.scheduler.stop()
        if self.router is not None:
            self.router.stop()
        for worker in self.workers:
            worker.stop()
        self.store.close()
        self.engine.dispose()


def open_resources(settings: Settings) -> Resources:
    settings.home.mkdir(parents=True, exist_ok=True)
    engine = db.build_engine(settings.database_url, echo=settings.database.echo)
    db.migrate(engine)
    resources = Resources(settings=settings, engine=engine, sessions=db.build_sessions(engine),
                          store=build_store(settings))
    if settings.server.load_models:
        _load_models(resources)
        _start_ingestion(resources)
        _serve_adapters(resources)
    else:  # uploads are still registered and queued, for a `lorag worker` elsewhere
        resources.queue = build_queue(settings, None)
    return resources


def _load_models(resources: Resources) -> None:
    section = resources.settings.models
    if section.threads:
        import torch

        torch.set_num_threads(section.threads)
    settings = resources.settings
    embedder = models.resolve(section.embedder, settings.models_dir)
    resources.embedder = build_embedder(settings, models.load_embedder(embedder, section.device))
    resources.store.ensure_collection(resources.embedder.dim)
    resources.answer_generator = build_answer_generator(settings)
    resources.answerer = build_answerer(settings, resources.store, resources.embedder, resources.answer_generator)
    logger.info("models loaded: base=%s (%s backend) embedder=%s", section.base, settings.generator.backend,
                embedder.location)


def _start_ingestion(resources: Resources) -> None:
    assert resources.embedder is not None
    settings = resources.settings
    indexer = build_indexer(settings, resources.sessions, resources.store, resources.embedder)
    resources.queue = build_queue(settings, indexer)
    for _ in range(settings.queue.inline_workers):
        worker = Worker(resources.queue, resources.sessions, settings.queue.lease_s)
        worker.start()
        resources.workers.append(worker)


def _serve_adapters(resources: Resources) -> None:
    """Follow the registry's promotions, and run the nightly schedule here when configured to."""
    from lorag.app.wiring import configured_tasks

    settings = resources.settings
    tasks = configured_tasks(settings)
    resources.tasks = [task.name for task in tasks]
    generator = resources.answer_generator
    if generator is not None:  # in-process: peft; vLLM: its runtime LoRA API
        # Without vLLM's runtime LoRA API, `lorag serve-model` restarts vLLM itself; the router only follows.
        loads = settings.generator.backend == "transformers" or settings.vllm.runtime_lora
        resources.router = AdapterRouter(generator, resources.sessions, tasks, poll_s=settings.finetune.poll_s,
                                         drain_s=settings.finetune.drain_s, loads_adapters=loads)
        resources.router.start()
    if settings.finetune.in_process:
        resources.scheduler = Scheduler(settings.finetune.schedule, settings.finetune.timezone,
                                        lambda: _nightly_in_process(resources, tasks))
        resources.scheduler.start()
        if settings.finetune.first_adapters:
            threading.Thread(target=_first_adapters, args=(resources, tasks), name="lorag-first-adapters",
                             daemon=True).start()


def _first_adapters(resources: Resources, tasks: list) -> None:
    """Serve first, train after: tasks without an adapter get a short first one in the background, and the router
    puts each into service as soon as its gate passes. The base model answers meanwhile."""
    from lorag.finetune import demo
    from lorag.finetune.nightly import Stack

    stack = Stack(resources.settings, resources.sessions, resources.store, resources.embedder)
    try:
        todo = demo.missing(stack, tasks)
        if todo:
            logger.info("training first adapters in the background: %s", ", ".join(task.name for task in todo))
        for outcome in demo.train_first(stack, todo, progress=False):
            logger.info("first adapter %s: %s %s (%s)", outcome.task, outcome.status, outcome.version, outcome.reason)
    except Exception:  # an edge: a failed demo must not take the server down; the nightly job tries again
        logger.exception("first adapters failed")


def _nightly_in_process(resources: Resources, tasks: list) -> None:
    from lorag.finetune.nightly import Stack, run_all

    stack = Stack(resources.settings, resources.sessions, resources.store, resources.embedder)
    for outcome in run_all(stack, tasks, progress=False):
        logger.info("nightly %s: %s %s (%s)", outcome.task, outcome.status, outcome.version, outcome.reason)


def get_resources(request: Request) -> Resources:
    return request.app.state.resources


def get_settings(request: Request) -> Settings:
    return request.app.state.resources.settings
