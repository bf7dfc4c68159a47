"""`lorag backup PATH` and `lorag restore PATH`: the database, the adapter registry and the vector store.

    backup:  database tables (one consistent read) → PATH/db/<table>.jsonl; registered adapter versions →
             PATH/adapters/<version>/; PATH/manifest.json last (lorag version, migration, counts, file hashes)
    restore: check the manifest and every file hash → migrate an empty database → insert the rows → copy the
             adapters and point the registry at them → rebuild the vector store from the restored documents

The vector store is rebuilt rather than copied: the database holds every live document's bytes (the registry is
the source of truth, never the store), so re-indexing them gives the same chunks and ids for the embedded store
and a Qdrant server alike, without stopping the server that holds the store. It costs the indexing time.

A backup is written into a new folder and only counts once its manifest is there; a restore refuses a target
that already holds documents, adapter versions, keys or feedback, so nothing stored is ever overwritten.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import json
import logging
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, insert, select, update
from sqlalchemy.sql.schema import Table

from lorag.app import wiring
from lorag.app.cli import documents  # the inline indexer with its progress bar, as `lorag ingest` runs it
from lorag.core import db
from lorag.core.errors import Conflict, InvalidInput
from lorag.core.settings import Settings
from lorag.core.tables import AdapterVersion, Base, Document, DocumentStatus
from lorag.finetune.registry import STAGING

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
FORMAT = 1
LIVE = (DocumentStatus.QUEUED, DocumentStatus.PROCESSING, DocumentStatus.INDEXED)


@dataclass(frozen=True)
class BackupReport:
    path: Path
    rows: dict[str, int]
    adapters: int


@dataclass(frozen=True)
class RestoreReport:
    rows: dict[str, int]
    adapters: int
    reindexed: int
    failed: int


def backup(settings: Settings, target: Path) -> BackupReport:
    if target.exists() and any(target.iterdir()):
        raise InvalidInput(f"{target} is not empty: a backup goes into a new or empty folder", param="path")
    (target / "db").mkdir(parents=True, exist_ok=True)
    engine = db.build_engine(settings.database_url)
    try:
        db.migrate(engine)
        revision = db.current_revision(engine)
        rows = _dump_tables(engine, target / "db")
        versions = _adapter_dirs(engine)
    finally:
        engine.dispose()
    for name, path in versions.items():
        if path.is_dir():
            shutil.copytree(path, target / "adapters" / name)
        else:
            logger.warning("adapter version %s has no files at %s; backed up as a registry row only", name, path)
    files = {str(path.relative_to(target)): _sha256(path) for path in sorted(target.rglob("*")) if path.is_file()}
    manifest = {"format": FORMAT, "lorag": importlib.metadata.version("lorag"), "migration": revision,
                "created_at": datetime.now(UTC).isoformat(), "rows": rows, "files": files}
    (target / MANIFEST).write_text(json.dumps(manifest, indent=2))  # last: a backup without it is incomplete
    return BackupReport(target, rows, len(versions))


def restore(settings: Settings, source: Path) -> RestoreReport:
    manifest = _checked_manifest(source)
    engine = db.build_engine(settings.database_url)
    try:
        db.migrate(engine)
        if db.current_revision(engine) != manifest["migration"]:
            raise Conflict(f"the backup is at migration {manifest['migration']}, this lorag at "
                           f"{db.current_revision(engine)}: restore it with the lorag version that made it "
                           f"({manifest['lorag']}), then upgrade")
        _refuse_if_not_empty(engine)
        rows = _load_tables(engine, source / "db")
        adapters = _restore_adapters(engine, source / "adapters", settings.adapters_dir)
        doc_ids = _requeue_live_documents(engine)
    finally:
        engine.dispose()
    with wiring.open_ingest(settings) as ctx:
        outcomes = documents.run_inline(ctx, doc_ids)
    failed = sum(outcome.status != DocumentStatus.INDEXED for outcome in outcomes)
    return RestoreReport(rows, adapters, len(doc_ids) - failed, failed)


def _tables() -> list[Table]:
    return list(Base.metadata.sorted_tables)  # parents before children, for inserts


def _dump_tables(engine: Engine, folder: Path) -> dict[str, int]:
    counts = {}
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            connection = connection.execution_options(isolation_level="REPEATABLE READ")
        with connection.begin():  # one snapshot for every table
            for table in _tables():
                count = 0
                with (folder / f"{table.name}.jsonl").open("w") as out:
                    for row in connection.execute(select(table)).mappings():
                        out.write(json.dumps({key: _encode(value) for key, value in row.items()}) + "\n")
                        count += 1
                counts[table.name] = count
    return counts


def _load_tables(engine: Engine, folder: Path) -> dict[str, int]:
    counts = {}
    with engine.begin() as connection:  # all or nothing
        for table in _tables():
            path = folder / f"{table.name}.jsonl"
            rows = [{key: _decode(value) for key, value in json.loads(line).items()}
                    for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
            unknown = {key for row in rows for key in row} - set(table.columns.keys())
            if unknown:
                raise InvalidInput(f"the backup's {table.name} has columns this lorag does not know: "
                                   f"{sorted(unknown)}", param="path")
            for start in range(0, len(rows), 500):
                connection.execute(insert(table), rows[start:start + 500])
            counts[table.name] = len(rows)
    return counts


def _refuse_if_not_empty(engine: Engine) -> None:
    with engine.connect() as connection:
        held = {table.name: connection.scalar(select(func.count()).select_from(table)) for table in _tables()}
    held = {name: count for name, count in held.items() if count}
    if held:
        raise Conflict("the target already holds data ("
                       + ", ".join(f"{count} {name}" for name, count in sorted(held.items()))
                       + "): restore into a new LORAG_HOME or an empty database, so nothing stored is lost")


def _adapter_dirs(engine: Engine) -> dict[str, Path]:
    with engine.connect() as connection:
        return {name: Path(path) for name, path in connection.execute(select(AdapterVersion.name,
                                                                             AdapterVersion.path))}


def _restore_adapters(engine: Engine, folder: Path, adapters_dir: Path) -> int:
    """Copy each version into this home's adapters folder and point its registry row there."""
    if not folder.is_dir():
        return 0
    adapters_dir.mkdir(parents=True, exist_ok=True)
    restored = 0
    with engine.begin() as connection:
        for version in sorted(folder.iterdir()):
            if version.name == STAGING:
                continue
            destination = adapters_dir / version.name
            if destination.exists():
                raise Conflict(f"{destination} already exists: restore into a new LORAG_HOME")
            shutil.copytree(version, destination)
            connection.execute(update(AdapterVersion).where(AdapterVersion.name == version.name)
                               .values(path=str(destination)))
            restored += 1
    return restored


def _requeue_live_documents(engine: Engine) -> list[str]:
    """Every live document goes back to the queue: its chunks are rebuilt from the bytes in the database."""
    with engine.begin() as connection:
        ids = [doc_id for (doc_id,) in connection.execute(select(Document.id).where(Document.status.in_(LIVE)))]
        connection.execute(update(Document).where(Document.id.in_(ids))
                           .values(status=DocumentStatus.QUEUED, lease_owner=None, lease_expires_at=None,
                                   attempts=0))
    return ids


def _checked_manifest(source: Path) -> Mapping[str, Any]:
    path = source / MANIFEST
    if not path.is_file():
        raise InvalidInput(f"{source} is not a complete lorag backup: it has no {MANIFEST} (a backup that was "
                           "interrupted has none)", param="path")
    manifest = json.loads(path.read_text())
    if manifest.get("format") != FORMAT:
        raise InvalidInput(f"backup format {manifest.get('format')!r} is not {FORMAT}", param="path")
    for relative, digest in manifest["files"].items():
        file = source / relative
        if not file.is_file() or _sha256(file) != digest:
            raise InvalidInput(f"the backup is damaged: {relative} is missing or changed since it was written",
                               param="path")
    return manifest


def _encode(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"$bytes": base64.b64encode(value).decode("ascii")}
    if isinstance(value, datetime):
        return {"$datetime": value.isoformat()}
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict) and len(value) == 1:
        if "$bytes" in value:
            return base64.b64decode(value["$bytes"])
        if "$datetime" in value:
            return datetime.fromisoformat(value["$datetime"])
    return value


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def describe(report: BackupReport | RestoreReport) -> Iterator[str]:
    yield "rows: " + ", ".join(f"{name} {count}" for name, count in report.rows.items() if count)
    yield f"adapter versions: {report.adapters}"
    if isinstance(report, RestoreReport):
        yield f"documents re-indexed: {report.reindexed}, failed: {report.failed}"
