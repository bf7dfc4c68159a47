"""The metadata store's tables (SQLAlchemy 2). Alembic migrations in core/migrations create them."""

from __future__ import annotations

import enum
from datetime import UTC, datetime

from sqlalchemy import DateTime, Enum, Index, Integer, LargeBinary, String, Text, UniqueConstraint, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class DocumentStatus(enum.StrEnum):
    QUEUED = "queued"
    PROCESSING = "processing"
    INDEXED = "indexed"
    FAILED = "failed"
    DELETED = "deleted"


def _enum(kind: type[enum.StrEnum], name: str) -> Enum:
    # Stored as plain strings with a CHECK, so SQLite and Postgres hold the same thing.
    return Enum(kind, name=name, native_enum=False, values_callable=lambda members: [m.value for m in members])


class Document(Base):
    """The registry: the source of truth for what is indexed, never the vector store."""

    __tablename__ = "documents"
    __table_args__ = (
        UniqueConstraint("kb", "source", name="uq_documents_kb_source"),
        Index("ix_documents_status_lease", "status", "lease_expires_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kb: Mapped[str] = mapped_column(String(64), index=True)
    audience: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(1024))
    # A link for citations, given by an ingest key with the upload (http or https only); never made from `source`.
    source_url: Mapped[str | None] = mapped_column(String(2048))
    title: Mapped[str | None] = mapped_column(String(512))
    media_type: Mapped[str | None] = mapped_column(String(128))
    content_hash: Mapped[str | None] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(Integer, default=0)
    version: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[DocumentStatus] = mapped_column(_enum(DocumentStatus, "document_status"))
    error: Mapped[str | None] = mapped_column(Text)
    chunk_count: Mapped[int] = mapped_column(Integer, default=0)
    job_id: Mapped[str | None] = mapped_column(String(36), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
    indexed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Job(Base):
    """A batch of documents handed to the workers (an upload, an ingest or a sync); its progress is
    counted from the documents that carry its id."""

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    kb: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Blob(Base):
    """The bytes of each current document version, by content hash, so that any worker on any machine
    indexes exactly the version the registry names (and a backup of the database holds the sources)."""

    __tablename__ = "blobs"

    content_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class FeedbackKind(enum.StrEnum):
    RATING = "rating"  # thumbs up (+1) or down (-1) on an answer or a tag
    CORRECTION = "correction"  # an expert's corrected answer
    TAG = "tag"  # tags a person confirmed or corrected for an item


class Feedback(Base):
    """What people said about answers and tags; the nightly job reads it as training data.

    For a correction `correction` holds the corrected answer; for a tag the confirmed tags as JSON.
    """

    __tablename__ = "feedback"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[FeedbackKind] = mapped_column(_enum(FeedbackKind, "feedback_kind"))
    task: Mapped[str | None] = mapped_column(String(64), index=True)
    kb: Mapped[str | None] = mapped_column(String(64), index=True)
    audience: Mapped[str] = mapped_column(String(16))
    question: Mapped[str] = mapped_column(Text)
    answer: Mapped[str | None] = mapped_column(Text)
    rating: Mapped[int | None] = mapped_column(Integer)
    correction: Mapped[str | None] = mapped_column(Text)
    comment: Mapped[str | None] = mapped_column(Text)
    model: Mapped[str | None] = mapped_column(String(128))
    citations: Mapped[str | None] = mapped_column(Text)  # JSON list of the answer's citations
    channel: Mapped[str] = mapped_column(String(32), default="api")  # widget | slack | api | tagging
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AdapterStatus(enum.StrEnum):
    CANDIDATE = "candidate"  # trained and evaluated, not (yet) in service
    ACTIVE = "active"  # the version in service for its task; at most one per task
    RETIRED = "retired"  # was active; rollback can bring it back
    REJECTED = "rejected"  # the gate refused it; `reason` says why


class AdapterVersion(Base):
    """The adapter registry. A version's name is `<task>@<UTC timestamp>` and is never reused; its files
    (adapter weights, run.json, the evaluation report) live in `path` and never change once written."""

    __tablename__ = "adapter_versions"
    __table_args__ = (
        Index("ix_adapter_versions_task_status", "task", "status"),
        # At most one version in service per task, enforced by the database even against racing promotions.
        Index("uq_adapter_versions_one_active", "task", unique=True,
              sqlite_where=text("status = 'active'"), postgresql_where=text("status = 'active'")),
    )

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    task: Mapped[str] = mapped_column(String(64))
    status: Mapped[AdapterStatus] = mapped_column(_enum(AdapterStatus, "adapter_status"))
    path: Mapped[str] = mapped_column(String(1024))
    base_model: Mapped[str] = mapped_column(String(512))
    data_hash: Mapped[str] = mapped_column(String(64))
    metrics: Mapped[str] = mapped_column(Text, default="{}")  # JSON: the candidate's test metrics
    reason: Mapped[str | None] = mapped_column(Text)  # the gate's decision, a promotion or a rollback
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    promoted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    retired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ApiKey(Base):
    """An API key: only its SHA-256 is stored (keys are 256-bit random, so a slow hash adds nothing).

    The audience a caller may read comes from the key's scopes, never from a request. `kbs`, `adapters` and
    `origins` are JSON lists; `kbs`/`adapters` null means any.
    """

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # the public part, shown in lists and logs
    name: Mapped[str] = mapped_column(String(128))
    secret_hash: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[str] = mapped_column(Text)
    kbs: Mapped[str | None] = mapped_column(Text)
    adapters: Mapped[str | None] = mapped_column(Text)
    origins: Mapped[str] = mapped_column(Text, default="[]")
    rate_per_minute: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
