"""Index one claimed document: parse → split → embed (dense + sparse) → swap its chunks in the store.

The swap never shows two versions of a document at once: the new points are written hidden (`live=False`),
then the old version's points are deleted, then the new ones are made visible. A search between the last two
steps sees neither version, for as long as one store call takes. A worker that dies anywhere in between
leaves hidden points that the next attempt overwrites (point ids are deterministic) or deletes.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePath

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from lorag.core.errors import BackendUnavailable, InvalidInput, NotFound
from lorag.core.faults import as_lorag_error
from lorag.ingest import registry
from lorag.ingest.chunk import split
from lorag.ingest.document import Chunk, ParsedDocument, content_hash
from lorag.ingest.embed import Embedder
from lorag.ingest.parse import parse
from lorag.ingest.registry import Claim
from lorag.ingest.sparse import SparseVector
from lorag.ingest.store import Point, VectorStore, point_id

logger = logging.getLogger(__name__)

RENEW_EVERY = 256  # chunks embedded between two lease renewals
PARSE_AHEAD = 8  # documents parsed ahead of the embedder (bounded, so memory stays flat)


Vectors = tuple[np.ndarray, list[SparseVector]]


class LeaseLost(Exception):
    """This worker's claim expired and was taken over; its work is dropped, the new holder finishes."""


@dataclass(frozen=True)
class ChunkingPolicy:
    chunk_tokens: int
    overlap_tokens: int
    max_bytes: int


@dataclass(frozen=True)
class Prepared:
    """A claimed document, parsed and split, waiting for the embedder."""

    held: Claim
    parsed: ParsedDocument
    chunks: list[Chunk]
    started: float


@dataclass(frozen=True)
class Outcome:
    """What happened to one document: indexed, failed (bad input), skipped (nothing to do) or retry."""

    doc_id: str
    status: str
    chunks: int = 0
    reason: str | None = None


class Indexer:
    """Turns queued documents in the registry into searchable chunks, exactly once per content version."""

    def __init__(self, *, sessions: sessionmaker[Session], store: VectorStore, embedder: Embedder,
                 policy: ChunkingPolicy, lease_s: float, owner: str) -> None:
        self.sessions = sessions
        self.store = store
        self.embedder = embedder
        self.policy = policy
        self.lease_s = lease_s
        self.owner = owner

    def run(self, doc_id: str) -> Outcome:
        prepared = self.prepare(doc_id)
        return prepared if isinstance(prepared, Outcome) else self.complete(prepared)

    def run_many(self, doc_ids: Sequence[str]) -> Iterator[Outcome]:
        """Index documents in order, parsing the next one in a thread while the current ones are embedded.

        Parsing is CPU work in Python and spaCy, embedding is torch (which releases the GIL): overlapping them
        hides most of the parsing time behind the embedder. Small documents are embedded together, up to
        RENEW_EVERY chunks, so the embedder sees full, length-sorted batches.
        """
        group: list[Prepared] = []
        for prepared in self._prefetched(doc_ids):
            if isinstance(prepared, Prepared) and len(prepared.chunks) < RENEW_EVERY:
                group.append(prepared)
                if sum(len(p.chunks) for p in group) < RENEW_EVERY:
                    continue
            yield from self._complete_together(group)
            group = []
            if not isinstance(prepared, Prepared):
                yield prepared
            elif len(prepared.chunks) >= RENEW_EVERY:
                yield self.complete(prepared)
        yield from self._complete_together(group)

    def _prefetched(self, doc_ids: Sequence[str]) -> Iterator[Prepared | Outcome]:
        """`prepare` each document in a parsing thread that keeps up to PARSE_AHEAD documents ready."""
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="lorag-parse") as parser:
            upcoming = deque(parser.submit(self.prepare, doc_id) for doc_id in doc_ids[:PARSE_AHEAD])
            for position in range(len(doc_ids)):
                prepared = upcoming.popleft().result()
                if position + PARSE_AHEAD < len(doc_ids):
                    upcoming.append(parser.submit(self.prepare, doc_ids[position + PARSE_AHEAD]))
                yield prepared

    def _complete_together(self, group: list[Prepared]) -> Iterator[Outcome]:
        texts = [chunk.text for prepared in group for chunk in prepared.chunks]
        dense, sparse = self._embed(texts)
        first = 0
        for prepared in group:
            last = first + len(prepared.chunks)
            yield self.complete(prepared, vectors=(dense[first:last], sparse[first:last]))
            first = last

    def prepare(self, doc_id: str) -> Prepared | Outcome:
        """Claim, parse and split one document; an Outcome when there is nothing more to do."""
        held = registry.claim(self.sessions, doc_id, self.owner, self.lease_s)
        if held is None:
            return Outcome(doc_id, "skipped")
        try:
            parsed = self._parse(held)
            chunks = split(parsed, count_tokens=self.embedder.count_tokens,
                           chunk_tokens=self.policy.chunk_tokens, overlap_tokens=self.policy.overlap_tokens)
        except (InvalidInput, NotFound) as exc:
            return self._failed(held, exc.message)
        except Exception as exc:
            if as_lorag_error(exc) is None:  # a crash, not a fault of the machine: counted against the document
                registry.record_crash(self.sessions, held, f"{type(exc).__name__}: {exc}")
            raise
        return Prepared(held, parsed, chunks, time.perf_counter())

    def complete(self, prepared: Prepared, vectors: Vectors | None = None) -> Outcome:
        """Embed (unless `vectors` were computed with other documents), swap into the store, record indexed."""
        held, parsed = prepared.held, prepared.parsed
        try:
            points = self._points(held, parsed, prepared.chunks, vectors)
            swap(self.store, held.doc_id, points)
            finished = registry.finish(self.sessions, held, chunk_count=len(points), title=parsed.title,
                                       media_type=parsed.media_type)
        except InvalidInput as exc:
            return self._failed(held, exc.message)
        except LeaseLost as exc:
            return Outcome(held.doc_id, "skipped", reason=str(exc))
        except Exception as exc:  # store or database away, disk full: hand the document back for a retry
            error = as_lorag_error(exc)
            if not isinstance(error, BackendUnavailable):
                registry.record_crash(self.sessions, held, f"{type(exc).__name__}: {exc}")
                raise
            return self._retry(held, error.message)
        if not finished:
            # A newer version was submitted meanwhile (or our lease was taken over); its own run will swap.
            return Outcome(held.doc_id, "skipped", reason="superseded while indexing")
        logger.info("indexed %s (%s): %d chunks in %.2fs", held.source, held.doc_id, len(points),
                    time.perf_counter() - prepared.started)
        return Outcome(held.doc_id, "indexed", chunks=len(points))

    def _retry(self, held: Claim, reason: str) -> Outcome:
        """Queue the document again; if even that fails, its lease runs out and a reaper re-enqueues it."""
        logger.warning("document %s (%s) will be retried: %s", held.source, held.doc_id, reason)
        registry.requeue(self.sessions, held, reason)
        return Outcome(held.doc_id, "retry", reason=reason)

    def _failed(self, held: Claim, reason: str) -> Outcome:
        registry.fail(self.sessions, held, reason)
        logger.warning("document %s (%s) failed: %s", held.source, held.doc_id, reason)
        return Outcome(held.doc_id, "failed", reason=reason)

    def _parse(self, held: Claim) -> ParsedDocument:
        data = registry.blob(self.sessions, held.content_hash)
        name = _short_name(PurePath(held.source).name or "document")
        with tempfile.TemporaryDirectory(prefix="lorag-parse-") as folder:
            path = Path(folder) / name
            path.write_bytes(data)
            return parse(path, max_bytes=self.policy.max_bytes)

    def _embed(self, texts: list[str]) -> Vectors:
        return self.embedder.embed_batch(texts), self.embedder.sparse_vectors(texts)

    def _points(self, held: Claim, parsed: ParsedDocument, chunks: list[Chunk],
                vectors: Vectors | None) -> list[Point]:
        points: list[Point] = []
        for first in range(0, len(chunks), RENEW_EVERY):
            batch = chunks[first:first + RENEW_EVERY]
            dense, sparse = vectors or self._embed([chunk.text for chunk in batch])
            points += [Point(id=point_id(held.doc_id, content_hash(chunk.text), chunk.index), dense=dense[i],
                             sparse=sparse[i], payload=_payload(held, parsed, chunk))
                       for i, chunk in enumerate(batch)]
            # A long document keeps its lease while it is being embedded; a dead worker's lease runs out.
            if not registry.renew(self.sessions, held, self.lease_s):
                raise LeaseLost(f"{held.source}: another worker took over this document")
        return points


def _short_name(name: str, limit: int = 200) -> str:
    """A file name the temporary folder can hold (names were not always checked at upload); suffix kept."""
    if len(name.encode("utf-8", "surrogatepass")) <= limit:
        return name
    suffix = PurePath(name).suffix[:16]
    return name.encode("utf-8", "surrogatepass")[:limit - len(suffix.encode())].decode("utf-8", "ignore") + suffix


def _payload(held: Claim, parsed: ParsedDocument, chunk: Chunk) -> dict[str, object]:
    return {
        "doc_id": held.doc_id, "kb": held.kb, "audience": held.audience, "source": held.source,
        "title": parsed.title, "section": list(chunk.section_path), "page": chunk.page,
        "start": chunk.start, "end": chunk.end, "chunk_index": chunk.index, "text": chunk.text,
        "content_hash": content_hash(chunk.text), "version": held.version, "live": False, "url": held.source_url,
    }


def swap(store: VectorStore, doc_id: str, points: list[Point]) -> None:
    """Replace a document's chunks: write hidden, delete the old version, then show the new one."""
    new_ids = [point.id for point in points]
    old_ids = set(store.point_ids(doc_id)) - set(new_ids)
    store.upsert(points)
    store.delete_points(sorted(old_ids))
    store.set_live(new_ids)


def remove(store: VectorStore, sessions: sessionmaker[Session], doc_id: str) -> None:
    """Delete a document's chunks, then record it deleted (a crash in between is redone by a second call)."""
    store.delete_points(store.point_ids(doc_id))
    registry.mark_deleted(sessions, doc_id)
