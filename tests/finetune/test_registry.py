"""The adapter registry on SQLite and Postgres: immutable versions, one active per task, promote, rollback."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError

from lorag.core import db
from lorag.core.errors import Conflict, InvalidInput, NotFound
from lorag.core.tables import AdapterStatus, AdapterVersion
from lorag.finetune import registry


@pytest.fixture
def sessions(database_url: str):
    engine = db.build_engine(database_url)
    db.migrate(engine)
    yield db.build_sessions(engine)
    engine.dispose()


def staged_version(adapters_dir: Path, task: str) -> Path:
    staged = registry.staging_dir(adapters_dir, task)
    (staged / "adapter_config.json").write_text("{}")
    return staged


def add(sessions, adapters_dir: Path, task: str, when: datetime, status=AdapterStatus.CANDIDATE) -> str:
    name = registry.version_name(task, sessions, adapters_dir, when)
    registry.register(sessions, adapters_dir, staged_version(adapters_dir, task), name=name, task=task,
                      base_model="base", data_hash="d" * 64, metrics={"macro_f1": 0.5}, status=status,
                      reason="test")
    return name


def test_register_moves_the_whole_folder_into_place(sessions, tmp_path: Path) -> None:
    name = add(sessions, tmp_path, "menu", datetime(2026, 11, 22, 2, 0, tzinfo=UTC))
    assert name == "menu@20261122T020000Z"
    record = registry.get(sessions, name)
    assert record.path == (tmp_path / name).resolve() and (record.path / "adapter_config.json").is_file()
    assert not (tmp_path / registry.STAGING / "menu").exists()
    assert record.status == AdapterStatus.CANDIDATE and record.metrics == {"macro_f1": 0.5}


def test_a_version_name_is_never_reused(sessions, tmp_path: Path) -> None:
    when = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)
    first, second = add(sessions, tmp_path, "menu", when), add(sessions, tmp_path, "menu", when)
    assert first != second and second == "menu@20261122T020000Z-2"


def test_register_refuses_a_folder_without_an_adapter(sessions, tmp_path: Path) -> None:
    staged = registry.staging_dir(tmp_path, "menu")
    with pytest.raises(InvalidInput, match="no adapter"):
        registry.register(sessions, tmp_path, staged, name="menu@x", task="menu", base_model="b", data_hash="d",
                          metrics={}, status=AdapterStatus.CANDIDATE, reason="")
    assert registry.versions(sessions) == []


def test_promote_retires_the_version_in_service(sessions, tmp_path: Path) -> None:
    old = add(sessions, tmp_path, "menu", datetime(2026, 11, 21, 2, 0, tzinfo=UTC))
    new = add(sessions, tmp_path, "menu", datetime(2026, 11, 22, 2, 0, tzinfo=UTC))
    other = add(sessions, tmp_path, "support", datetime(2026, 11, 22, 2, 0, tzinfo=UTC))
    registry.promote(sessions, old, "first")
    registry.promote(sessions, other, "first")
    registry.promote(sessions, new, "better")
    active = registry.active(sessions)
    assert {task: record.name for task, record in active.items()} == {"menu": new, "support": other}
    assert registry.get(sessions, old).status == AdapterStatus.RETIRED
    assert "replaced by" in (registry.get(sessions, old).reason or "")
    with pytest.raises(Conflict, match="already"):
        registry.promote(sessions, new, "again")
    with pytest.raises(NotFound):
        registry.promote(sessions, "menu@nope", "x")


def test_rollback_walks_back_one_version_at_a_time(sessions, tmp_path: Path) -> None:
    names = [add(sessions, tmp_path, "menu", datetime(2026, 11, day, 2, 0, tzinfo=UTC)) for day in (20, 21, 22)]
    for name in names:
        registry.promote(sessions, name, "nightly")
    assert registry.rollback(sessions, "menu").name == names[1]
    assert registry.get(sessions, names[2]).status == AdapterStatus.REJECTED
    assert registry.rollback(sessions, "menu").name == names[0]
    with pytest.raises(Conflict, match="nothing to roll back"):
        registry.rollback(sessions, "menu")
    assert registry.active(sessions)["menu"].name == names[0]  # a refused rollback changes nothing
    with pytest.raises(Conflict, match="no active adapter"):
        registry.rollback(sessions, "support")


def test_the_database_refuses_two_active_versions_of_a_task(sessions, tmp_path: Path) -> None:
    first = add(sessions, tmp_path, "menu", datetime(2026, 11, 21, 2, 0, tzinfo=UTC))
    second = add(sessions, tmp_path, "menu", datetime(2026, 11, 22, 2, 0, tzinfo=UTC))
    registry.promote(sessions, first, "x")
    with pytest.raises(IntegrityError), db.transaction(sessions) as session:
        session.get(AdapterVersion, second).status = AdapterStatus.ACTIVE
    assert registry.active(sessions)["menu"].name == first
