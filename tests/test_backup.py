"""`lorag backup` / `lorag restore`: a round trip gives the same database rows, adapters and searchable chunks."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from lorag.app import wiring
from lorag.app.cli import backup, documents
from lorag.core import db, keys
from lorag.core.errors import Conflict, InvalidInput
from lorag.core.settings import Settings
from lorag.core.tables import AdapterStatus
from lorag.finetune import registry
from lorag.ingest.store import Filter

pytestmark = pytest.mark.slow  # the real embedder indexes the documents, twice


def populate(settings: Settings, docs: Path) -> None:
    docs.mkdir()
    for i in range(3):
        (docs / f"policy-{i}.md").write_text(f"# Policy {i}\n\nRefunds over {i}0 euros need a second approval.\n")
    _run_id, report, outcomes = documents.ingest_paths(settings, [docs], kb="policies", audience="internal",
                                                        wait=True)
    assert [outcome.status for outcome in outcomes] == ["indexed"] * 3
    with wiring.open_registry(settings) as sessions:
        staged = registry.staging_dir(settings.adapters_dir, "support")
        (staged / "adapter_config.json").write_text(json.dumps({"r": 8}))
        (staged / "adapter_model.safetensors").write_bytes(b"\x00weights\xff" * 100)
        registry.register(sessions, settings.adapters_dir, staged, name="support@1", task="support",
                          base_model="base", data_hash="h", metrics={"token_f1": 0.5}, status=AdapterStatus.CANDIDATE,
                          reason="test")
        registry.promote(sessions, "support@1", "test")
        keys.create(sessions, name="site", scopes=["chat:public"], origins=["https://example.com"])


def rows(settings: Settings) -> dict[str, list[dict]]:
    engine = db.build_engine(settings.database_url)
    try:
        with engine.connect() as connection:
            return {table.name: sorted((dict(row) for row in connection.execute(table.select()).mappings()),
                                       key=repr) for table in backup._tables()}
    finally:
        engine.dispose()


def chunks(settings: Settings) -> int:
    with wiring.open_ingest(settings) as ctx:
        return ctx.store.count(Filter(audiences=("internal",), kb="policies"))


def test_a_backup_restores_into_a_new_home_with_everything(tmp_path: Path,
                                                           make_settings: Callable[..., Settings]) -> None:
    old = make_settings(home=tmp_path / "old")
    populate(old, tmp_path / "docs")
    made = backup.backup(old, tmp_path / "backup")
    assert made.rows["documents"] == 3 and made.rows["api_keys"] == 1 and made.adapters == 1

    new = make_settings(home=tmp_path / "new")
    restored = backup.restore(new, tmp_path / "backup")
    assert (restored.reindexed, restored.failed, restored.adapters) == (3, 0, 1)
    before, after = rows(old), rows(new)
    for table in ("documents", "jobs"):  # indexing again changes the timestamps and attempt counts, only those
        for row in before.get(table, []) + after.get(table, []):
            for column in ("updated_at", "lease_owner", "lease_expires_at", "attempts", "indexed_at", "job_id",
                           "finished_at", "started_at", "created_at", "status", "done", "failed", "total"):
                row.pop(column, None)
    for row in before["adapter_versions"] + after["adapter_versions"]:
        row.pop("path")
    assert before == after
    assert chunks(new) == chunks(old) > 0
    active = registry.active(db.build_sessions(db.build_engine(new.database_url)))["support"]
    assert active.path == new.adapters_dir / "support@1"
    assert (active.path / "adapter_model.safetensors").read_bytes() == \
        (old.adapters_dir / "support@1" / "adapter_model.safetensors").read_bytes()


def test_restore_refuses_a_damaged_or_incomplete_backup_and_a_home_with_data(
        tmp_path: Path, make_settings: Callable[..., Settings]) -> None:
    old = make_settings(home=tmp_path / "old")
    populate(old, tmp_path / "docs")
    backup.backup(old, tmp_path / "backup")
    with pytest.raises(Conflict, match="already holds data"):
        backup.restore(old, tmp_path / "backup")  # the home it came from: nothing may be overwritten
    with pytest.raises(InvalidInput, match="not empty"):
        backup.backup(old, tmp_path / "backup")
    damaged = tmp_path / "backup" / "db" / "documents.jsonl"
    damaged.write_text(damaged.read_text().replace("policy-1", "policy-9"))
    with pytest.raises(InvalidInput, match="damaged: db/documents.jsonl"):
        backup.restore(make_settings(home=tmp_path / "new"), tmp_path / "backup")
    (tmp_path / "backup" / "manifest.json").unlink()
    with pytest.raises(InvalidInput, match="no manifest.json"):
        backup.restore(make_settings(home=tmp_path / "new"), tmp_path / "backup")
