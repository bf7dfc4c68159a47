"""The adapter registry: immutable versions on disk, their status in the database.

A version is `<task>@<UTC timestamp>` (`support@20261122T020000Z`) and is never reused: vLLM keeps cached state
per adapter name, so a reloaded name could serve stale weights. Its folder under the adapters directory holds the
peft adapter, `run.json` (resolved settings, data hash, metrics, code version) and the evaluation report; it is
written under `.staging/` and renamed into place whole, so a reader never sees half a version.

Status: candidate → active (promote) → retired (a newer one was promoted) or rejected (the gate or a rollback
refused it). At most one version per task is active; a unique index makes the database enforce it. Promotion
and rollback are one transaction each, and the serving processes pick up the change on their next poll.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from lorag.core.db import transaction
from lorag.core.errors import Conflict, InvalidInput, NotFound, shown
from lorag.core.tables import AdapterStatus, AdapterVersion

STAGING = ".staging"


@dataclass(frozen=True)
class AdapterRecord:
    name: str
    task: str
    status: AdapterStatus
    path: Path
    base_model: str
    data_hash: str
    metrics: dict[str, Any]
    reason: str | None
    created_at: datetime
    promoted_at: datetime | None
    retired_at: datetime | None

    @classmethod
    def of(cls, row: AdapterVersion) -> AdapterRecord:
        return cls(row.name, row.task, AdapterStatus(row.status), Path(row.path), row.base_model, row.data_hash,
                   json.loads(row.metrics or "{}"), row.reason, row.created_at, row.promoted_at, row.retired_at)

    def as_json(self) -> dict[str, Any]:
        data = {key: getattr(self, key) for key in self.__dataclass_fields__}
        return {key: value.isoformat() if isinstance(value, datetime) else
                str(value) if isinstance(value, Path | AdapterStatus) else value for key, value in data.items()}


def version_name(task: str, sessions: sessionmaker[Session], adapters_dir: Path, now: datetime | None = None) -> str:
    """A fresh `<task>@<UTC timestamp>`; a suffix is added when two runs start within the same second."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    with sessions() as session:
        taken = set(session.scalars(select(AdapterVersion.name).where(AdapterVersion.task == task)))
    name, suffix = f"{task}@{stamp}", 1
    while name in taken or (adapters_dir / name).exists():
        suffix += 1
        name = f"{task}@{stamp}-{suffix}"
    return name


def staging_dir(adapters_dir: Path, task: str) -> Path:
    """Where a task's run writes its version before `register` moves it into place. It is kept across runs, so
    a run killed mid-training resumes from its checkpoint (the trainer discards one made from other data)."""
    path = adapters_dir / STAGING / task
    path.mkdir(parents=True, exist_ok=True)
    return path


def register(sessions: sessionmaker[Session], adapters_dir: Path, staged: Path, *, name: str, task: str,
             base_model: str, data_hash: str, metrics: Mapping[str, Any], status: AdapterStatus,
             reason: str) -> AdapterRecord:
    """Move a finished staging folder into place and record it; the folder is complete before anyone sees it."""
    if not (staged / "adapter_config.json").is_file():
        raise InvalidInput(f"{staged} holds no adapter (adapter_config.json missing); nothing registered")
    final = adapters_dir / name
    if final.exists():
        raise Conflict(f"adapter version {name} already exists; versions are never reused")
    staged.rename(final)  # one rename on one filesystem: atomic
    row = AdapterVersion(name=name, task=task, status=status, path=str(final.resolve()), base_model=base_model,
                         data_hash=data_hash, metrics=json.dumps(dict(metrics)), reason=reason)
    with transaction(sessions) as session:
        session.add(row)
        session.flush()
        return AdapterRecord.of(row)


def get(sessions: sessionmaker[Session], name: str) -> AdapterRecord:
    with sessions() as session:
        row = session.get(AdapterVersion, name)
        if row is None:
            raise NotFound(f"no adapter version {shown(name)}; `lorag adapters list` shows them", param="model")
        return AdapterRecord.of(row)


def versions(sessions: sessionmaker[Session], task: str | None = None) -> list[AdapterRecord]:
    """Newest first."""
    query = select(AdapterVersion).order_by(AdapterVersion.created_at.desc(), AdapterVersion.name.desc())
    if task is not None:
        query = query.where(AdapterVersion.task == task)
    with sessions() as session:
        return [AdapterRecord.of(row) for row in session.scalars(query)]


def active(sessions: sessionmaker[Session]) -> dict[str, AdapterRecord]:
    """task → the version in service."""
    query = select(AdapterVersion).where(AdapterVersion.status == AdapterStatus.ACTIVE)
    with sessions() as session:
        return {row.task: AdapterRecord.of(row) for row in session.scalars(query)}


def promote(sessions: sessionmaker[Session], name: str, reason: str) -> AdapterRecord:
    """Put `name` in service for its task; the version it replaces is retired. One transaction."""
    now = datetime.now(UTC)
    with transaction(sessions) as session:
        row = session.get(AdapterVersion, name, with_for_update=True)
        if row is None:
            raise NotFound(f"no adapter version {shown(name)}; `lorag adapters list` shows them", param="model")
        if row.status == AdapterStatus.ACTIVE:
            raise Conflict(f"{name} is already the active version of {row.task}")
        _retire_active(session, row.task, now, f"replaced by {name}", AdapterStatus.RETIRED)
        row.status, row.promoted_at, row.retired_at, row.reason = AdapterStatus.ACTIVE, now, None, reason
        session.flush()
        return AdapterRecord.of(row)


def rollback(sessions: sessionmaker[Session], task: str, reason: str = "rolled back by an operator") -> AdapterRecord:
    """Take the active version of `task` out of service (marked rejected, so a second rollback goes further
    back) and put the version that served before it back. Returns the version now in service."""
    now = datetime.now(UTC)
    with transaction(sessions) as session:
        current = _active_row(session, task)
        if current is None:
            raise Conflict(f"task {task!r} has no active adapter to roll back")
        previous = session.scalars(
            select(AdapterVersion)
            .where(AdapterVersion.task == task, AdapterVersion.status == AdapterStatus.RETIRED,
                   AdapterVersion.promoted_at.is_not(None))
            .order_by(AdapterVersion.promoted_at.desc()).limit(1)).first()
        if previous is None:
            raise Conflict(f"{current.name} is the only version of {task} that was ever in service; "
                           "there is nothing to roll back to")
        _retire_active(session, task, now, f"{reason}; {previous.name} restored", AdapterStatus.REJECTED)
        previous.status, previous.promoted_at, previous.retired_at = AdapterStatus.ACTIVE, now, None
        previous.reason = f"restored by rollback from {current.name}"
        session.flush()
        return AdapterRecord.of(previous)


def _active_row(session: Session, task: str) -> AdapterVersion | None:
    return session.scalars(select(AdapterVersion).where(AdapterVersion.task == task,
                                                        AdapterVersion.status == AdapterStatus.ACTIVE)
                           .with_for_update()).first()


def _retire_active(session: Session, task: str, now: datetime, reason: str, status: AdapterStatus) -> None:
    current = _active_row(session, task)
    if current is not None:
        current.status, current.retired_at, current.reason = status, now, reason
        session.flush()  # before the new active row, or the one-active index sees two for a moment
