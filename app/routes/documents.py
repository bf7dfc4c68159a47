"""Documents and ingestion jobs: upload, look up, delete."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from pathlib import PurePath
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, File, Form, UploadFile
from pydantic import BaseModel
from sqlalchemy import select

from app.auth import requires
from app.keys import Principal
from app.resources import Resources, get_resources
from core.errors import BackendUnavailable, Forbidden, NotFound, PayloadTooLarge
from core.tables import Document, Job
from ingest import registry
from ingest.pipeline import remove
from ingest.service import check_upload
from ingest.worker import IngestQueue

router = APIRouter(prefix="/v1", tags=["documents"])


class DocumentOut(BaseModel):
    id: str
    kb: str
    audience: str
    source: str
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
    resources: Annotated[Resources, Depends(get_resources)],
    principal: Annotated[Principal, Depends(requires("ingest"))],
    file: Annotated[UploadFile, File(description="The document: PDF, HTML, Markdown, text, DOCX, CSV/TSV, JSONL.")],
    kb: Annotated[str, Form(description="Knowledge base to add it to.")],
    audience: Annotated[Literal["public", "internal"], Form(description="Who may see it.")] = "public",
) -> DocumentOut:
    principal.check_kb(kb)
    if audience not in principal.audiences:
        raise Forbidden(f"this API key may not add {audience} documents", param="audience")
    limit = resources.settings.ingest.max_bytes
    data = await file.read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLarge(f"{file.filename}: over the limit of {limit} bytes; split the document", param="file")
    source = PurePath(file.filename or "upload").name
    check_upload(kb=kb, audience=audience, source=source, data=data)
    job_id = registry.create_job(resources.sessions, "upload", kb)
    submitted = registry.submit(resources.sessions, kb=kb, audience=audience, source=source, data=data,
                                job_id=job_id)
    if submitted.queued:
        _queue(resources).enqueue([submitted.doc_id])
    return DocumentOut.of(registry.get(resources.sessions, submitted.doc_id))


@router.get("/documents/{doc_id}", response_model=DocumentOut, summary="A document's registry entry")
def get_document(doc_id: str, resources: Annotated[Resources, Depends(get_resources)],
                 principal: Annotated[Principal, Depends(requires("ingest"))]) -> DocumentOut:
    return DocumentOut.of(visible(principal, registry.get(resources.sessions, doc_id)))


@router.delete("/documents/{doc_id}", response_model=DocumentOut, summary="Delete a document and its chunks")
def delete_document(doc_id: str, resources: Annotated[Resources, Depends(get_resources)],
                    principal: Annotated[Principal, Depends(requires("ingest"))]) -> DocumentOut:
    visible(principal, registry.get(resources.sessions, doc_id))
    remove(resources.store, resources.sessions, doc_id)
    return DocumentOut.of(registry.get(resources.sessions, doc_id))


@router.get("/jobs/{job_id}", response_model=JobOut, summary="Progress of an ingestion job")
def get_job(job_id: str, resources: Annotated[Resources, Depends(get_resources)],
            principal: Annotated[Principal, Depends(requires("ingest"))]) -> JobOut:
    with resources.sessions() as session:
        job = session.get(Job, job_id)
        everything = list(session.scalars(select(Document).where(Document.job_id == job_id)))
    rows = [row for row in everything if may_see(principal, row)]
    if job is None or (everything and not rows) or (job.kb and not may_see_kb(principal, job.kb)):
        raise NotFound(f"no job with id {job_id!r}", param="id")
    counts = Counter(str(row.status) for row in rows)
    waiting = counts["queued"] + counts["processing"]
    status = "done" if not waiting else "running" if counts["processing"] or len(rows) > waiting else "queued"
    return JobOut(id=job.id, kind=job.kind, kb=job.kb, status=status, total=len(rows), counts=dict(counts),
                  documents=[DocumentOut.of(row) for row in rows], created_at=job.created_at)


def may_see_kb(principal: Principal, kb: str) -> bool:
    return principal.kbs is None or kb in principal.kbs


def may_see(principal: Principal, row: Document) -> bool:
    return row.audience in principal.audiences and may_see_kb(principal, row.kb)


def visible(principal: Principal, row: Document) -> Document:
    """The document, or the same NotFound as a missing one: another audience's documents don't exist for you."""
    if not may_see(principal, row):
        raise NotFound(f"no document with id {row.id!r}", param="id")
    return row


def _queue(resources: Resources) -> IngestQueue:
    if resources.queue is None:
        raise BackendUnavailable("the ingestion queue is not open")
    return resources.queue
