"""The document registry: the source of truth for what is indexed. Workers claim documents with a lease.

A document moves queued → processing → indexed | failed, and → deleted. A worker that dies mid-document
leaves a lease that expires; `stale` finds such documents so they are queued again, and a compare-and-set on
(lease owner, content hash) keeps a late or stale worker from recording a result that is no longer current.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, delete, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from lorag.core.db import transaction
from lorag.core.errors import Forbidden, NotFound, shown
from lorag.core.tables import Blob, Document, DocumentStatus, Job, utcnow

DOCUMENT_NAMESPACE = uuid.UUID("2b7e1516-28ae-4d2a-abf7-158809cf4f3c")
MAX_ATTEMPTS = 5  # crashed or abandoned attempts in a row before a document fails for good


@dataclass(frozen=True)
class Claim:
    """A worker's right to index one version of one document until its lease expires."""

    doc_id: str
    kb: str
    audience: str
    source: str
    content_hash: str
    version: int
    owner: str
    source_url: str | None = None


@dataclass(frozen=True)
class Submitted:
    doc_id: str
    queued: bool  # False: the same content is already indexed, nothing to do


def document_id(kb: str, source: str) -> str:
    """The same source in the same knowledge base is the same document, on every machine."""
    return str(uuid.uuid5(DOCUMENT_NAMESPACE, f"{kb}\x1f{source}"))


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def create_job(sessions: sessionmaker[Session], kind: str, kb: str | None) -> str:
    job_id = str(uuid.uuid4())
    with transaction(sessions) as session:
        session.add(Job(id=job_id, kind=kind, kb=kb))
    return job_id


def submit(sessions: sessionmaker[Session], *, kb: str, audience: str, source: str, data: bytes,
           job_id: str | None, writable: tuple[str, ...] | None = None, source_url: str | None = None) -> Submitted:
    """Register a document's current bytes; queue it unless this exact content is already indexed.

    `writable`: the audiences the caller may write. A document already stored under this name for another
    audience is refused inside the same transaction, with the same answer whatever the stored document is.
    """
    doc_id, digest = document_id(kb, source), content_hash(data)
    with transaction(sessions) as session:
        row = session.get(Document, doc_id, with_for_update=True)
        if row is not None and writable is not None and row.audience not in writable:
            raise Forbidden(refused_write(kb, source), param="file")
        same_link = source_url is None or (row is not None and row.source_url == source_url)
        if row and row.content_hash == digest and row.audience == audience and row.status == DocumentStatus.INDEXED \
                and same_link:
            return Submitted(doc_id, queued=False)
        if session.get(Blob, digest) is None:
            session.add(Blob(content_hash=digest, data=data))
        if row is None:
            row = Document(id=doc_id, kb=kb, source=source, version=0, attempts=0, chunk_count=0,
                           source_url=source_url)
            session.add(row)
        row.version = (row.version or 0) + (row.content_hash != digest)
        row.audience, row.content_hash, row.size_bytes = audience, digest, len(data)
        row.source_url = source_url if source_url is not None else row.source_url
        row.status, row.error, row.job_id, row.attempts = DocumentStatus.QUEUED, None, job_id, 0
        row.lease_owner = row.lease_expires_at = None
        row.updated_at = utcnow()
    return Submitted(doc_id, queued=True)


def check_writable(sessions: sessionmaker[Session], *, kb: str, source: str, writable: tuple[str, ...]) -> None:
    """Refuse, before anything is written, a name that another audience's document holds."""
    with sessions() as session:
        row = session.get(Document, document_id(kb, source))
    if row is not None and row.audience not in writable:
        raise Forbidden(refused_write(kb, source), param="file")


def refused_write(kb: str, source: str) -> str:
    """One message for every refused write, so a refusal tells nothing about what is stored under the name."""
    return (f"this API key may not write {source!r} in the knowledge base {kb!r}: a document of another "
            "audience may use that name, or the key lacks that audience; choose another file name")


def claim(sessions: sessionmaker[Session], doc_id: str, owner: str, lease_s: float,
          max_attempts: int = MAX_ATTEMPTS) -> Claim | None:
    """Take a queued document, or one whose worker's lease expired; None if nobody should work on it now.

    A document whose worker crashed or died `max_attempts` times in a row fails for good, with the reason:
    a cause that does not change would otherwise be retried forever. Faults of the machine (database away,
    disk full) give the attempt back (`requeue`), so they never count.
    """
    now = utcnow()
    claimable = or_(Document.status == DocumentStatus.QUEUED,
                    (Document.status == DocumentStatus.PROCESSING) & (Document.lease_expires_at < now))
    with transaction(sessions) as session:
        taken = session.execute(
            update(Document).where(Document.id == doc_id, claimable, Document.attempts < max_attempts)
            .values(status=DocumentStatus.PROCESSING, lease_owner=owner, attempts=Document.attempts + 1,
                    lease_expires_at=now + timedelta(seconds=lease_s), updated_at=now)
        ).rowcount
        if not taken:
            _give_up(session, doc_id, claimable, max_attempts)
            return None
        row = session.get(Document, doc_id)
        assert row is not None and row.content_hash is not None
        return Claim(row.id, row.kb, row.audience, row.source, row.content_hash, row.version, owner,
                     row.source_url)


def _give_up(session: Session, doc_id: str, claimable: ColumnElement[bool], max_attempts: int) -> None:
    row = session.get(Document, doc_id)
    if row is None or row.attempts < max_attempts:
        return
    last = row.error or "the worker stopped while indexing it"
    session.execute(
        update(Document).where(Document.id == doc_id, claimable, Document.attempts >= max_attempts)
        .values(status=DocumentStatus.FAILED, updated_at=utcnow(), lease_owner=None, lease_expires_at=None,
                error=f"gave up after {row.attempts} attempts; last error: {last}"[:4000])
        .execution_options(synchronize_session=False))


def record_crash(sessions: sessionmaker[Session], held: Claim, reason: str) -> None:
    """Keep why an attempt crashed, for the failure that ends the retries; the lease brings it back."""
    with transaction(sessions) as session:
        session.execute(update(Document).where(*_still_held(held)).values(error=f"crashed: {reason}"[:4000]))


def renew(sessions: sessionmaker[Session], held: Claim, lease_s: float) -> bool:
    """Extend a lease while a long document is still being worked on; False if it was lost."""
    with transaction(sessions) as session:
        return bool(session.execute(
            update(Document).where(*_still_held(held))
            .values(lease_expires_at=utcnow() + timedelta(seconds=lease_s))
        ).rowcount)


def finish(sessions: sessionmaker[Session], held: Claim, *, chunk_count: int, title: str,
           media_type: str) -> bool:
    """Record an indexed document, only if the claim is still current; drop blobs nothing refers to."""
    now = utcnow()
    with transaction(sessions) as session:
        done = session.execute(
            update(Document).where(*_still_held(held))
            .values(status=DocumentStatus.INDEXED, chunk_count=chunk_count, title=title[:512],
                    media_type=media_type, error=None, indexed_at=now, updated_at=now,
                    lease_owner=None, lease_expires_at=None)
        ).rowcount
        _drop_unreferenced_blobs(session)
    return bool(done)


def fail(sessions: sessionmaker[Session], held: Claim, reason: str) -> bool:
    with transaction(sessions) as session:
        return bool(session.execute(
            update(Document).where(*_still_held(held))
            .values(status=DocumentStatus.FAILED, error=reason[:4000], updated_at=utcnow(),
                    lease_owner=None, lease_expires_at=None)
        ).rowcount)


def requeue(sessions: sessionmaker[Session], held: Claim, reason: str) -> None:
    """Give a claim back after a transient error (store or database briefly away), keeping the reason."""
    with transaction(sessions) as session:
        session.execute(
            update(Document).where(*_still_held(held))
            .values(status=DocumentStatus.QUEUED, error=f"retrying: {reason}"[:4000], updated_at=utcnow(),
                    lease_owner=None, lease_expires_at=None, attempts=Document.attempts - 1)
        )


def _still_held(held: Claim) -> tuple:
    return (Document.id == held.doc_id, Document.status == DocumentStatus.PROCESSING,
            Document.lease_owner == held.owner, Document.content_hash == held.content_hash)


def _drop_unreferenced_blobs(session: Session) -> None:
    current = select(Document.content_hash).where(Document.content_hash.is_not(None),
                                                  Document.status != DocumentStatus.DELETED)
    session.execute(delete(Blob).where(Blob.content_hash.not_in(current)))


def blob(sessions: sessionmaker[Session], digest: str) -> bytes:
    with sessions() as session:
        found = session.get(Blob, digest)
        if found is None:
            raise NotFound(f"the content {digest[:12]} of this document is no longer stored")
        return found.data


def stale(sessions: sessionmaker[Session], lease_s: float, now: datetime | None = None) -> list[str]:
    """Documents that need a worker: expired leases, and queued ones whose task may have been lost."""
    now = now or utcnow()
    with sessions() as session:
        return list(session.scalars(select(Document.id).where(or_(
            (Document.status == DocumentStatus.PROCESSING) & (Document.lease_expires_at < now),
            (Document.status == DocumentStatus.QUEUED) & (Document.updated_at < now - timedelta(seconds=lease_s)),
        ))))


def get(sessions: sessionmaker[Session], doc_id: str) -> Document:
    with sessions() as session:
        row = session.get(Document, doc_id)
        if row is None:
            raise NotFound(f"no document with id {shown(doc_id)}", param="id")
        return row


def live_documents(sessions: sessionmaker[Session], kb: str) -> dict[str, Document]:
    """Every document of a knowledge base that is not deleted, by source."""
    with sessions() as session:
        rows = session.scalars(select(Document).where(Document.kb == kb, Document.status != DocumentStatus.DELETED))
        return {row.source: row for row in rows}


def mark_deleted(sessions: sessionmaker[Session], doc_id: str) -> None:
    with transaction(sessions) as session:
        session.execute(update(Document).where(Document.id == doc_id).values(
            status=DocumentStatus.DELETED, chunk_count=0, updated_at=utcnow(), lease_owner=None,
            lease_expires_at=None))
        _drop_unreferenced_blobs(session)
