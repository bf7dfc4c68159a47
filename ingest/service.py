"""Documents in: files and folders become registry entries (and queued work); folders can be mirrored.

Files that cannot be used at all (unsupported type, over the size limit) are recorded as failed right away,
without storing their bytes; everything else is parsed by a worker, which records its own failures.
A failure never touches what a document's previous version put in the store.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from lorag.core.audience import Audience
from lorag.core.db import transaction
from lorag.core.errors import InvalidInput
from lorag.core.tables import Document, DocumentStatus, utcnow
from lorag.ingest import registry
from lorag.ingest.parse import media_type_of
from lorag.ingest.pipeline import remove
from lorag.ingest.registry import Submitted
from lorag.ingest.store import VectorStore


@dataclass(frozen=True)
class SourceFile:
    source: str  # the document's name inside its knowledge base: a path relative to what was given
    path: Path


@dataclass
class SubmitReport:
    queued: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)  # source -> reason
    deleted: list[str] = field(default_factory=list)


def check_target(kb: str, audience: str) -> None:
    if not kb or len(kb) > 64 or not all(c.isalnum() or c in "-_." for c in kb):
        raise InvalidInput(f"knowledge base name {kb!r} must be 1-64 letters, digits, '-', '_' or '.'", param="kb")
    Audience.parse(audience)


def collect(paths: Sequence[Path]) -> list[SourceFile]:
    """Files to ingest: a file stands for itself (by name); a folder for its files (by relative path)."""
    found: list[SourceFile] = []
    for path in paths:
        if path.is_dir():
            found += [SourceFile(file.relative_to(path).as_posix(), file) for file in _walk(path)]
        elif path.is_file():
            found.append(SourceFile(path.name, path))
        else:
            raise InvalidInput(f"{path}: no such file or folder")
    return found


def _walk(folder: Path) -> list[Path]:
    files = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "_")))
        files += [Path(root) / name for name in sorted(names) if not name.startswith(".")]
    return files


def submit_files(sessions: sessionmaker[Session], files: Sequence[SourceFile], *, kb: str, audience: str,
                 max_bytes: int, job_id: str | None) -> SubmitReport:
    check_target(kb, audience)
    report = SubmitReport()
    for file in files:
        reason = _unusable(file.path, max_bytes)
        if reason:
            reject(sessions, kb=kb, audience=audience, source=file.source, reason=reason, job_id=job_id)
            report.rejected[file.source] = reason
            continue
        outcome = registry.submit(sessions, kb=kb, audience=audience, source=file.source,
                                  data=file.path.read_bytes(), job_id=job_id)
        _record(report, outcome)
    return report


def check_upload(*, kb: str, audience: str, source: str, data: bytes) -> None:
    """Refuse what can be refused before anything is stored."""
    check_target(kb, audience)
    media_type_of(Path(source))
    if not data:
        raise InvalidInput(f"{source}: file is empty (0 bytes); upload a file with content.", param="file")


def _record(report: SubmitReport, outcome: Submitted) -> None:
    (report.queued if outcome.queued else report.unchanged).append(outcome.doc_id)


def _unusable(path: Path, max_bytes: int) -> str | None:
    try:
        media_type_of(path)
    except InvalidInput as exc:
        return exc.message
    size = path.stat().st_size
    if size > max_bytes:
        return (f"{path.name}: file is {size} bytes, over the limit of {max_bytes} bytes; "
                "split it or raise LORAG_INGEST__MAX_BYTES.")
    return None


def reject(sessions: sessionmaker[Session], *, kb: str, audience: str, source: str, reason: str,
           job_id: str | None) -> str:
    """Record a file that cannot be used; a previous version, if any, stays searchable."""
    doc_id = registry.document_id(kb, source)
    with transaction(sessions) as session:
        row = session.get(Document, doc_id)
        if row is None:
            row = Document(id=doc_id, kb=kb, source=source, audience=audience, version=0, attempts=0,
                           chunk_count=0, size_bytes=0)
            session.add(row)
        row.status, row.error, row.job_id, row.updated_at = DocumentStatus.FAILED, reason, job_id, utcnow()
    return doc_id


def sync_folder(sessions: sessionmaker[Session], store: VectorStore, folder: Path, *, kb: str, audience: str,
                max_bytes: int, job_id: str | None) -> SubmitReport:
    """Mirror `folder` into `kb`: add new files, update changed ones, delete documents whose file is gone."""
    if not folder.is_dir():
        raise InvalidInput(f"{folder}: not a folder; `lorag sync` mirrors a folder into a knowledge base")
    files = collect([folder])
    report = submit_files(sessions, files, kb=kb, audience=audience, max_bytes=max_bytes, job_id=job_id)
    present = {file.source for file in files}
    for source, row in registry.live_documents(sessions, kb).items():
        if source not in present:
            remove(store, sessions, row.id)
            report.deleted.append(row.id)
    return report
