"""The vector store seam: chunks with a dense and a sparse vector, searched under an audience filter.

- `EdgeVectorStore`: the embedded default, Qdrant Edge (`qdrant-edge-py`) on disk in this process. Only one
  store object (one process) may open a path at a time; a second gets `BackendUnavailable`.
- `QdrantVectorStore`: a Qdrant server by URL through `qdrant-client`, or any given `QdrantClient`.

Both keep a named dense vector `dense` (cosine) and a named sparse vector `sparse` with Qdrant's IDF
modifier (see `ingest/sparse.py`), and payload indexes on `kb`, `audience`, `doc_id` and `live`.
Every search takes a `Filter` that is applied by the engine inside the query, never afterwards in Python,
so a caller limited to `("public",)` can never receive an `internal` chunk, whatever `limit` is.

Dense and sparse hits are fused by retrieval (`retrieval/fusion.py`), not here: serving needs the dense cosines too.

Example:
    >>> store = build_vector_store("edge", Path("data/index"), None, None, "chunks")
    >>> store.ensure_collection(384)
    >>> store.search_dense(dense, Filter(audiences=("public",), kb="hr"), limit=8)
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import shutil
import tarfile
import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import qdrant_edge as qe
from qdrant_client import QdrantClient
from qdrant_client import models as qm
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from lorag.core.errors import BackendUnavailable, ConfigError, InvalidInput, StorageFull
from lorag.ingest.sparse import SparseVector

logger = logging.getLogger(__name__)

DENSE = "dense"
SPARSE = "sparse"
# Payload fields the engine indexes; every search filters on them.
KEYWORD_FIELDS = ("kb", "audience", "doc_id")
LIVE = "live"
UPSERT_BATCH = 512
# Fixed namespace so a chunk's point id is the same on every machine and every re-ingest.
POINT_NAMESPACE = uuid.UUID("6f1d3c0e-8a4b-5c2d-9e7f-4a1b2c3d4e5f")

DenseVector = Sequence[float] | np.ndarray


@dataclass(frozen=True)
class Point:
    id: str
    dense: DenseVector
    sparse: SparseVector
    payload: dict[str, Any]


@dataclass(frozen=True)
class Hit:
    id: str
    score: float
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Filter:
    """What a caller may see. `audiences` is required so that no call site forgets it."""

    audiences: tuple[str, ...]
    kb: str | None = None
    doc_id: str | None = None


class VectorStore(Protocol):
    def ensure_collection(self, dim: int) -> None: ...
    def upsert(self, points: Sequence[Point]) -> None: ...
    def delete_points(self, ids: Sequence[str]) -> None: ...
    def set_live(self, ids: Sequence[str]) -> None: ...  # points written with `live: False` become searchable
    def point_ids(self, doc_id: str) -> list[str]: ...
    def search_dense(self, vector: DenseVector, flt: Filter, limit: int) -> list[Hit]: ...
    def search_sparse(self, vector: SparseVector, flt: Filter, limit: int) -> list[Hit]: ...
    def count(self, flt: Filter) -> int: ...
    def healthy(self) -> bool: ...
    def close(self) -> None: ...


def point_id(doc_id: str, content_hash: str, chunk_index: int) -> str:
    """Deterministic id: re-ingesting an unchanged chunk overwrites it instead of duplicating it."""
    return str(uuid.uuid5(POINT_NAMESPACE, f"{doc_id}\x1f{content_hash}\x1f{chunk_index}"))


def _as_list(vector: DenseVector) -> list[float]:
    return vector.tolist() if isinstance(vector, np.ndarray) else list(vector)


def _conditions(flt: Filter) -> list[tuple[str, str | list[str]]]:
    """A filter as (field, value or any-of values) pairs, shared by both backends."""
    if not flt.audiences:
        raise InvalidInput("Filter.audiences is empty; pass the audiences the caller may see, e.g. ('public',).")
    pairs: list[tuple[str, str | list[str]]] = [("audience", [str(audience) for audience in flt.audiences])]
    return pairs + [(key, value) for key, value in (("kb", flt.kb), ("doc_id", flt.doc_id)) if value]


def _stored_payload(payload: dict[str, Any]) -> dict[str, Any]:
    """Visible points are stored with `live: true`, hidden ones (written with `live: false`) without `live`.

    Ingest writes a new version hidden, deletes the old one, then calls `set_live` (ingest/pipeline.py).
    Searches require `live` to be present rather than "not false" because qdrant-edge-py 0.9 turns
    `MatchValue(False)` into the integer 0, which never matches a bool; an is-empty check works in both engines.
    """
    if payload.get(LIVE) is False:
        return {key: value for key, value in payload.items() if key != LIVE}
    return {**payload, LIVE: True}


# --------------------------------------------------------------------------- embedded: Qdrant Edge


def _edge_match(pairs: list[tuple[str, str | list[str]]]) -> list[qe.FieldCondition]:
    return [qe.FieldCondition(k, match=qe.MatchAny(v) if isinstance(v, list) else qe.MatchValue(v)) for k, v in pairs]


def _edge_filter(flt: Filter) -> qe.Filter:
    return qe.Filter(must=_edge_match(_conditions(flt)), must_not=[qe.IsEmptyCondition(LIVE)])


def _edge_config(dim: int) -> qe.EdgeConfig:
    return qe.EdgeConfig(
        vectors={DENSE: qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine)},
        sparse_vectors={SPARSE: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
    )


def _edge_hits(points: Sequence[Any]) -> list[Hit]:
    return [Hit(str(p.id), float(p.score), dict(p.payload or {})) for p in points]


def _open_edge_shard(path: Path) -> qe.EdgeShard | None:
    """The shard at `path`, or None where none was created yet."""
    if not (path / "edge_config.json").exists():
        return None
    try:
        return qe.EdgeShard.load(str(path))
    except Exception as e:
        # The engine locks the shard's WAL; a second opener fails with "WouldBlock".
        if "WouldBlock" in str(e):
            raise BackendUnavailable(
                f"the embedded vector store at {path} is already open in another process, such as a running "
                "`lorag serve` (only one may open it). While the server runs, use its API instead: POST /v1/ask "
                "to ask, POST /v1/documents to add files; or stop the server, or use a Qdrant server "
                "(LORAG_STORE__BACKEND=qdrant), which many processes share."
            ) from e
        raise


class EdgeVectorStore:
    """Qdrant Edge on disk at `path / collection`, inside this process."""

    def __init__(self, path: Path, collection: str, *, min_free_bytes: int = 0) -> None:
        self.path = Path(path) / collection
        self.min_free_bytes = min_free_bytes
        self._shard = _open_edge_shard(self.path)
        # Edge applies updates synchronously; the lock only keeps a snapshot from copying a half-written update.
        self._write_lock = threading.Lock()

    def ensure_collection(self, dim: int) -> None:
        if self._shard is None:
            self._shard = qe.EdgeShard.create(str(self.path), _edge_config(dim))
        existing = self._dense_dim()
        if existing != dim:
            raise ConfigError(
                f"The vector store at {self.path} holds {existing}-d vectors but the embedder gives {dim}-d; "
                "re-index into a new collection or use the embedder it was built with."
            )
        indexed = self._shard_or_raise().info().payload_schema
        wanted = {name: qe.PayloadSchemaType.Keyword for name in KEYWORD_FIELDS} | {LIVE: qe.PayloadSchemaType.Bool}
        for name, kind in wanted.items():
            if name not in indexed:
                self._shard_or_raise().update(qe.UpdateOperation.create_field_index(name, kind))

    def _dense_dim(self) -> int:
        # The engine has no getter for its vector config; it persists it as this JSON beside the segments.
        config = json.loads((self.path / "edge_config.json").read_text())
        return int(config["vectors"][DENSE]["size"])

    def _shard_or_raise(self) -> qe.EdgeShard:
        if self._shard is None:
            raise BackendUnavailable(f"No vector store at {self.path} yet; call ensure_collection(dim) first.")
        return self._shard

    def upsert(self, points: Sequence[Point]) -> None:
        for start in range(0, len(points), UPSERT_BATCH):
            batch = [
                qe.Point(
                    p.id,
                    {DENSE: _as_list(p.dense), SPARSE: qe.SparseVector(p.sparse.indices, p.sparse.values)},
                    _stored_payload(p.payload),
                )
                for p in points[start : start + UPSERT_BATCH]
            ]
            self._update(qe.UpdateOperation.upsert_points(batch))

    def delete_points(self, ids: Sequence[str]) -> None:
        if ids:
            self._update(qe.UpdateOperation.delete_points(list(ids)))

    def set_live(self, ids: Sequence[str]) -> None:
        if ids:
            self._update(qe.UpdateOperation.set_payload(list(ids), {LIVE: True}))

    def _update(self, operation: qe.UpdateOperation) -> None:
        shard = self._shard_or_raise()
        with self._write_lock:
            self._check_free_space()
            shard.update(operation)

    def _check_free_space(self) -> None:
        # The engine writes through memory maps: on a full disk that is SIGBUS, not an error. Refuse first.
        free = shutil.disk_usage(self.path).free
        if free < self.min_free_bytes:
            raise StorageFull(f"Only {free >> 20} MB are free on the disk under the vector store at {self.path} "
                              f"(LORAG_STORE__MIN_FREE_MB={self.min_free_bytes >> 20}); the write was not applied. "
                              "Free disk space; ingestion resumes by itself.")

    def point_ids(self, doc_id: str) -> list[str]:
        shard, found, offset = self._shard_or_raise(), [], None
        while True:
            request = qe.ScrollRequest(
                offset=offset, limit=1000, filter=qe.Filter(must=_edge_match([("doc_id", doc_id)]))
            )
            records, offset = shard.scroll(request)
            found += [str(r.id) for r in records]
            if offset is None:
                return found

    def search_dense(self, vector: DenseVector, flt: Filter, limit: int) -> list[Hit]:
        return self._query(qe.Query.Nearest(_as_list(vector), using=DENSE), flt, limit)

    def search_sparse(self, vector: SparseVector, flt: Filter, limit: int) -> list[Hit]:
        if not vector.indices:
            return []
        query = qe.Query.Nearest(qe.SparseVector(vector.indices, vector.values), using=SPARSE)
        return self._query(query, flt, limit)

    def _query(self, query: Any, flt: Filter, limit: int) -> list[Hit]:
        request = qe.QueryRequest(limit, query=query, filter=_edge_filter(flt), with_payload=True)
        return _edge_hits(self._shard_or_raise().query(request))

    def count(self, flt: Filter) -> int:
        return int(self._shard_or_raise().count(qe.CountRequest(exact=True, filter=_edge_filter(flt))))

    def healthy(self) -> bool:
        if self._shard is None:
            return False
        try:
            self._shard.info()
        except Exception:  # the engine raises bare Exception; a probe reports rather than raises
            logger.exception("embedded vector store at %s is not usable", self.path)
            return False
        return True

    def optimize(self) -> bool:
        """Merge segments and build the HNSW index; blocks (about 130 s for 100k chunks on 2 cores).

        Edge never optimizes in the background, so without this every search is an exact scan of the
        filtered points: fine to ~100k chunks (dense p95 ~25 ms), ~3 ms after optimizing. Run it after bulk
        ingest, off the request path. Returns whether anything changed.
        """
        with self._write_lock:
            return bool(self._shard_or_raise().optimize())

    def snapshot(self, dest: Path) -> Path:
        """Flush and write the whole shard as a tar file; restore with `qdrant_edge.EdgeShard.unpack_snapshot`."""
        shard = self._shard_or_raise()
        with self._write_lock:
            shard.flush()
            with tarfile.open(dest, "w") as tar:
                tar.add(self.path, arcname=".")
        return dest

    def close(self) -> None:
        if self._shard is not None:
            self._shard.flush()
            self._shard.close()
            self._shard = None


# --------------------------------------------------------------------------- server: qdrant-client


def _client_match(pairs: list[tuple[str, str | list[str]]]) -> list[qm.Condition]:
    return [
        qm.FieldCondition(key=k, match=qm.MatchAny(any=v) if isinstance(v, list) else qm.MatchValue(value=v))
        for k, v in pairs
    ]


def _client_filter(flt: Filter) -> qm.Filter:
    hidden: list[qm.Condition] = [qm.IsEmptyCondition(is_empty=qm.PayloadField(key=LIVE))]
    return qm.Filter(must=_client_match(_conditions(flt)), must_not=hidden)


def _client_hits(points: Sequence[qm.ScoredPoint]) -> list[Hit]:
    return [Hit(str(p.id), float(p.score), dict(p.payload or {})) for p in points]


class QdrantVectorStore:
    """A Qdrant server at `url`, or the given `client` (e.g. `QdrantClient(location=":memory:")`)."""

    def __init__(
        self,
        url: str | None,
        api_key: str | None,
        collection: str,
        timeout: float = 5.0,
        client: QdrantClient | None = None,
    ) -> None:
        if (url is None) == (client is None):
            raise InvalidInput("QdrantVectorStore needs exactly one of url or client.")
        self.collection = collection
        self._where = url or "the given QdrantClient"
        # check_compatibility=False: constructing must not touch the network; healthy() reports reachability.
        self._client = client or QdrantClient(
            url=url, api_key=api_key, timeout=math.ceil(timeout), check_compatibility=False
        )

    @contextlib.contextmanager
    def _server_call(self) -> Iterator[None]:
        """Connection failures and 502/503/504 become a retryable `BackendUnavailable`."""
        try:
            yield
        except ResponseHandlingException as e:
            raise BackendUnavailable(f"Cannot reach the Qdrant server at {self._where}: {e.source}") from e
        except UnexpectedResponse as e:
            if e.status_code in (502, 503, 504):
                raise BackendUnavailable(f"The Qdrant server at {self._where} answered {e.status_code}.") from e
            raise

    def ensure_collection(self, dim: int) -> None:
        with self._server_call():
            if not self._client.collection_exists(self.collection):
                self._create(dim)
            info = self._client.get_collection(self.collection)
            self._ensure_indexes(set(info.payload_schema))
        vectors = info.config.params.vectors
        size = vectors[DENSE].size if isinstance(vectors, dict) else None
        if size != dim:
            raise ConfigError(
                f"Qdrant collection {self.collection!r} holds {size}-d vectors but the embedder gives {dim}-d; "
                "re-index into a new collection or use the embedder it was built with."
            )

    def _create(self, dim: int) -> None:
        self._client.create_collection(
            self.collection,
            vectors_config={DENSE: qm.VectorParams(size=dim, distance=qm.Distance.COSINE)},
            sparse_vectors_config={SPARSE: qm.SparseVectorParams(modifier=qm.Modifier.IDF)},
        )

    def _ensure_indexes(self, indexed: set[str]) -> None:
        wanted = {name: qm.PayloadSchemaType.KEYWORD for name in KEYWORD_FIELDS} | {LIVE: qm.PayloadSchemaType.BOOL}
        for name, kind in wanted.items():
            if name not in indexed:
                self._client.create_payload_index(self.collection, name, kind)

    def upsert(self, points: Sequence[Point]) -> None:
        for start in range(0, len(points), UPSERT_BATCH):
            batch = [
                qm.PointStruct(
                    id=p.id,
                    vector={
                        DENSE: _as_list(p.dense),
                        SPARSE: qm.SparseVector(indices=p.sparse.indices, values=p.sparse.values),
                    },
                    payload=_stored_payload(p.payload),
                )
                for p in points[start : start + UPSERT_BATCH]
            ]
            with self._server_call():
                self._client.upsert(self.collection, batch, wait=True)

    def delete_points(self, ids: Sequence[str]) -> None:
        if ids:
            with self._server_call():
                self._client.delete(self.collection, qm.PointIdsList(points=list(ids)), wait=True)

    def set_live(self, ids: Sequence[str]) -> None:
        if ids:
            with self._server_call():
                self._client.set_payload(self.collection, {LIVE: True}, points=list(ids), wait=True)

    def point_ids(self, doc_id: str) -> list[str]:
        found: list[str] = []
        offset: Any = None
        while True:
            with self._server_call():
                records, offset = self._client.scroll(
                    self.collection,
                    qm.Filter(must=_client_match([("doc_id", doc_id)])),
                    limit=1000,
                    offset=offset,
                    with_payload=False,
                )
            found += [str(r.id) for r in records]
            if offset is None:
                return found

    def search_dense(self, vector: DenseVector, flt: Filter, limit: int) -> list[Hit]:
        return self._query(_as_list(vector), DENSE, flt, limit)

    def search_sparse(self, vector: SparseVector, flt: Filter, limit: int) -> list[Hit]:
        if not vector.indices:
            return []
        return self._query(qm.SparseVector(indices=vector.indices, values=vector.values), SPARSE, flt, limit)

    def _query(self, query: Any, using: str | None, flt: Filter, limit: int) -> list[Hit]:
        with self._server_call():
            response = self._client.query_points(
                self.collection,
                query=query,
                using=using,
                query_filter=_client_filter(flt),
                limit=limit,
                with_payload=True,
            )
        return _client_hits(response.points)

    def count(self, flt: Filter) -> int:
        with self._server_call():
            return self._client.count(self.collection, count_filter=_client_filter(flt), exact=True).count

    def healthy(self) -> bool:
        try:
            with self._server_call():
                self._client.get_collections()
        except BackendUnavailable:
            logger.warning("Qdrant server at %s is unreachable", self._where)
            return False
        return True

    def close(self) -> None:
        self._client.close()


def build_vector_store(
    backend: Literal["edge", "qdrant"],
    path: Path,
    url: str | None,
    api_key: str | None,
    collection: str,
    *,
    min_free_bytes: int = 0,
) -> VectorStore:
    """The embedded store under `path`, or the Qdrant server at `url`."""
    if backend == "edge":
        return EdgeVectorStore(path, collection, min_free_bytes=min_free_bytes)
    if url is None:
        raise ConfigError("The qdrant vector store backend needs a URL (e.g. http://localhost:6333).")
    return QdrantVectorStore(url, api_key, collection)
