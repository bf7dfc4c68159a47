"""Serving the registry's adapters: which version answers a request, and promotions without a restart.

`AdapterRouter.sync` (every `poll_s` seconds, in a thread) reads the active versions from the registry. A newly
promoted version is made servable under its own, never reused name; new requests resolve to it at once, and the
version it replaced stays loaded for `drain_s` seconds so requests already routed to it finish on it. Rollback is
the same path: the registry names another version active, and the next poll routes to it.

Where the model server cannot load adapters at run time (`LORAG_VLLM__RUNTIME_LORA=false`), `lorag serve-model`
restarts it with the new active set, and the router only routes to versions the server lists.

Routing: a request's `model` may be a version (`support@20261122T020000Z`), a task (`support`: its active
version), the base model, or empty: then the active grounded-qa adapter of the request's knowledge base, if any.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from lorag.core.errors import BackendUnavailable
from lorag.finetune import registry
from lorag.finetune.tasks import TaskSpec

logger = logging.getLogger(__name__)


class AdapterHost(Protocol):
    """A generator that can load and drop adapters at run time (the in-process one; vLLM's runtime LoRA API)."""

    def models(self) -> list[str]: ...

    def add_adapter(self, name: str, path: Path) -> None: ...

    def remove_adapter(self, name: str) -> None: ...


class AdapterRouter:
    def __init__(self, host: AdapterHost, sessions: sessionmaker[Session], tasks: Sequence[TaskSpec], *,
                 poll_s: float, drain_s: float, loads_adapters: bool = True) -> None:
        self.host = host
        self.loads_adapters = loads_adapters
        self.sessions = sessions
        self.poll_s = poll_s
        self.drain_s = drain_s
        self._task_of_kb = {task.kb: task.name for task in tasks if task.kind == "grounded-qa" and task.kb}
        self._active: dict[str, str] = {}  # task → version; replaced whole, so readers need no lock
        self._draining: dict[str, float] = {}  # version → monotonic time after which it is unloaded
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def resolve(self, model: str | None, kb: str | None) -> str | None:
        """The name to generate with; None means the base model."""
        if model:
            return self._active.get(model, model)
        task = self._task_of_kb.get(kb) if kb else None
        return self._active.get(task) if task else None

    def active(self) -> dict[str, str]:
        return dict(self._active)

    def sync(self) -> None:
        if not self.loads_adapters:
            self._follow_server()
            return
        current = {task: record for task, record in registry.active(self.sessions).items()}
        served = set(self.host.models())
        for task, record in current.items():
            if record.name not in served:
                self.host.add_adapter(record.name, record.path)
                logger.info("adapter %s is now served for %s", record.name, task)
            self._draining.pop(record.name, None)
        names = {record.name for record in current.values()}
        now = time.monotonic()
        for old in set(self._active.values()) - names:
            self._draining.setdefault(old, now + self.drain_s)
        self._active = {task: record.name for task, record in current.items()}
        for name, deadline in list(self._draining.items()):
            if deadline <= now:
                self._draining.pop(name)
                if name in self.host.models():
                    self.host.remove_adapter(name)  # waits for a generation running on it
                    logger.info("adapter %s unloaded after draining", name)

    def _follow_server(self) -> None:
        """The model server loads adapters itself (restarting for a promotion): route each task to its active
        version once the server lists it, and until then to the version it still serves."""
        current = registry.active(self.sessions)
        try:
            served = set(self.host.models())
        except BackendUnavailable:
            # Down, likely restarting: it comes back with the registry's active set, so route there already.
            self._active = {task: record.name for task, record in current.items()}
            raise
        routes = {}
        for task, record in current.items():
            previous = self._active.get(task)
            if record.name not in served and previous in served:
                routes[task] = previous  # the server has not restarted with the new version yet
            else:
                routes[task] = record.name
        if routes != self._active:
            logger.info("routing to the adapters the model server lists: %s", routes)
        self._active = routes

    def start(self) -> None:
        try:
            self.sync()
        except BackendUnavailable as error:  # the model server is not up yet: the poll retries
            logger.warning("could not load the active adapters yet: %s", error.message)
        self._thread = threading.Thread(target=self._loop, name="lorag-adapters", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.sync()
            except SQLAlchemyError as error:  # the database is away: keep serving what is loaded, retry later
                logger.warning("adapter registry unreachable, keeping the current adapters: %s", error)
            except BackendUnavailable as error:  # the model server is away: retry on the next poll
                logger.warning("model server unreachable, adapters not synced: %s", error.message)
            except Exception:  # an edge: the thread must survive one bad poll
                logger.exception("adapter sync failed")
