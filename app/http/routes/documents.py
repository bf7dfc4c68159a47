"""Documents and ingestion jobs: upload, look up, delete."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from pathlib import PurePath
from typing import Annotated, Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, File, Form, UploadFile
from pydantic import BaseModel
from sqlalchemy import select

from lorag.app.http.deps import IngestCaller, ResourcesDep
from lorag.app.resources import Resources
from lorag.core.audience import Audience
from lorag.core.errors import BackendUnavailable, Forbidden, InvalidInput, NotFound, PayloadTooLarge, shown
from lorag.core.keys import Principal
from lorag.core.tables import Document, Job
from lorag.ingest import registry
from lorag.ingest.pipeline import remove
from lorag.ingest.service import check_upload
from lorag.ingest.worker import IngestQueue

router = APIRouter(prefix="/v1", tags=["documents"])

MAX_NAME_BYTES = 255  # the longest file name ext4, XFS, APFS and NTFS hold; a worker writes the file to parse it


class DocumentOut(BaseModel):
    id: str
    kb: str
    audience: str
    source: str
    source_url: str | None
    title: str | None
    media_type: str | None
    status: str
    error: str | None
    version: int
    chunk_count: int
    size_bytes: int
    content_hash: str | None
    job_id: str | None
    created_at: datetime
    updated_at: datetime
    indexed_at: datetime | None

    @classmethod
    def of(cls, row: Document) -> DocumentOut:
        return cls.model_validate(row, from_attributes=True)


class JobOut(BaseModel):
    id: str
    kind: str
    kb: str | None
    status: Literal["queued", "running", "done"]
    total: int
    counts: dict[str, int]
    documents: list[DocumentOut]
    created_at: datetime


@router.post("/documents", status_code=202, response_model=DocumentOut, summary="Upload one document")
async def upload(
    resources: ResourcesDep,
    principal: IngestCaller,
    file: Annotated[UploadFile, File(description="The document: PDF, HTML, Markdown, text, DOCX, CSV/TSV, JSONL.")],
    kb: Annotated[str, Form(description="Knowledge base to add it to.")],
    audience: Annotated[Audience, Form(description="Who may see it.")] = Audience.PUBLIC,
    source_url: Annotated[str | None, Form(max_length=2048, description="Where readers find the original "
                                           "(http or https); citations link there. Without it they show the "
                                           "file name, unlinked.")] = None,
) -> DocumentOut:
    principal.check_kb(kb)
    source = PurePath(file.filename or "upload").name
    if audience not in principal.audiences:
        raise Forbidden(registry.refused_write(kb, source), param="audience")
    check_source(source)
    link = check_source_url(source_url) if source_url else None
    registry.check_writable(resources.sessions, kb=kb, source=source, writable=principal.audiences)
    limit = resources.settings.ingest.max_bytes
    data = await file.read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLarge(f"{source[:80]}: over the limit of {limit} bytes; split the document", param="file")
    check_upload(kb=kb, audience=audience, source=source, data=data)
    job_id = registry.create_job(resources.sessions, "upload", kb)
    submitted = registry.submit(resources.sessions, kb=kb, audience=audience, source=source, data=data,
                                job_id=job_id, writable=principal.audiences, source_url=link)
    if submitted.queued:
        _queue(resources).enqueue([submitted.doc_id])
    return DocumentOut.of(registry.get(resources.sessions, submitted.doc_id))


@router.get("/documents/{doc_id}", response_model=DocumentOut, summary="A document's registry entry")
def get_document(doc_id: str, resources: ResourcesDep,
                 principal: IngestCaller) -> DocumentOut:
    return DocumentOut.of(visible(principal, registry.get(resources.sessions, doc_id)))


@router.delete("/documents/{doc_id}", response_model=DocumentOut, summary="Delete a document and its chunks")
def delete_document(doc_id: str, resources: ResourcesDep,
                    principal: IngestCaller) -> DocumentOut:
    visible(principal, registry.get(resources.sessions, doc_id))
    remove(resources.store, resources.sessions, doc_id)
    return DocumentOut.of(registry.get(resources.sessions, doc_id))


@router.get("/jobs/{job_id}", response_model=JobOut, summary="Progress of an ingestion job")
def get_job(job_id: str, resources: ResourcesDep,
            principal: IngestCaller) -> JobOut:
    with resources.sessions() as session:
        job = session.get(Job, job_id)
        everything = list(session.scalars(select(Document).where(Document.job_id == job_id)))
    rows = [row for row in everything if may_see(principal, row)]
    if job is None or (everything and not rows) or (job.kb and not may_see_kb(principal, job.kb)):
        raise NotFound(f"no job with id {shown(job_id)}", param="id")
    counts = Counter(str(row.status) for row in rows)
    waiting = counts["queued"] + counts["processing"]
    status = "done" if not waiting else "running" if counts["processing"] or len(rows) > waiting else "queued"
    return JobOut(id=job.id, kind=job.kind, kb=job.kb, status=status, total=len(rows), counts=dict(counts),
                  documents=[DocumentOut.of(row) for row in rows], created_at=job.created_at)


def check_source(source: str) -> None:
    """A file name every worker's file system can hold: refused here rather than failing in a worker."""
    size = len(source.encode("utf-8", "surrogatepass"))
    if size > MAX_NAME_BYTES:
        raise InvalidInput(f"the file name is {size} bytes long; names may have at most {MAX_NAME_BYTES} bytes "
                           "(UTF-8): rename the file", param="file")
    if any(ord(char) < 32 or ord(char) == 127 for char in source):
        raise InvalidInput("the file name holds control characters; rename the file", param="file")


def check_source_url(url: str) -> str:
    """Only an http(s) link with a host becomes a citation link; anything else is refused, not stored."""
    parsed = urlsplit(url.strip())
    if parsed.scheme not in ("http", "https") or not parsed.hostname or any(c.isspace() for c in url.strip()):
        raise InvalidInput("source_url must be an http:// or https:// link with a host, such as "
                           "https://help.example.com/refunds", param="source_url")
    return url.strip()


def may_see_kb(principal: Principal, kb: str) -> bool:
    return principal.kbs is None or kb in principal.kbs


def may_see(principal: Principal, row: Document) -> bool:
    return row.audience in principal.audiences and may_see_kb(principal, row.kb)


def visible(principal: Principal, row: Document) -> Document:
    """The document, or the same NotFound as a missing one: another audience's documents don't exist for you."""
    if not may_see(principal, row):
        raise NotFound(f"no document with id {shown(row.id)}", param="id")
    return row


def _queue(resources: Resources) -> IngestQueue:
    if resources.queue is None:
        raise BackendUnavailable("the ingestion queue is not open")
    return resources.queue
