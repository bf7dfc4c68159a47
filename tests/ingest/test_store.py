"""Component tests for the vector store: one contract run against both backends.

`edge` is Qdrant Edge on a tmp_path; `qdrant` is qdrant-client's in-memory local mode, which speaks the same
client API as a Qdrant server.
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import qdrant_edge
from qdrant_client import QdrantClient

from lorag.core.audience import ALL as ALL_AUDIENCES
from lorag.core.errors import BackendUnavailable, ConfigError, InvalidInput
from lorag.ingest.sparse import SparseVector
from lorag.ingest.store import (
    EdgeVectorStore,
    Filter,
    Hit,
    Point,
    QdrantVectorStore,
    VectorStore,
    build_vector_store,
    point_id,
)

pytestmark = pytest.mark.filterwarnings("ignore:Payload indexes have no effect")

DIM = 8
PUBLIC = Filter(audiences=("public",))
EVERYONE = Filter(audiences=ALL_AUDIENCES)
COMMON, RARE, OTHER, SECRET = 5000, 6000, 7000, 8000


def axis(i: int, noise: float = 0.0) -> np.ndarray:
    """A unit vector near axis i, so each test point has an unambiguous nearest query."""
    v = np.full(DIM, noise, dtype=np.float32)
    v[i] = 1.0
    return v / np.linalg.norm(v)


def point(
    doc: str, index: int, dense: np.ndarray, tokens: list[int], kb: str = "hr", audience: str = "public"
) -> Point:
    payload = {"doc_id": doc, "kb": kb, "audience": audience, "text": f"{doc}#{index}", "chunk_index": index}
    sparse = SparseVector(indices=sorted(tokens), values=[1.0] * len(tokens))
    return Point(point_id(doc, f"hash-{doc}-{index}", index), dense, sparse, payload)


# Every chunk holds COMMON; one holds RARE; only the internal one SECRET.
# Points 0-2 are public hr, 3 is internal hr, 4 is public it.
CORPUS = [
    point("d1", 0, axis(0), [COMMON, RARE]),
    point("d1", 1, axis(1), [COMMON]),
    point("d2", 0, axis(2), [COMMON, OTHER]),
    point("d3", 0, axis(3), [COMMON, OTHER, SECRET], audience="internal"),
    point("d4", 0, axis(4), [COMMON, OTHER], kb="it"),
]


def sparse(*tokens: int) -> SparseVector:
    return SparseVector(indices=sorted(tokens), values=[1.0] * len(tokens))


def text_of(hits: list[Hit]) -> list[str]:
    return [h.payload["text"] for h in hits]


@pytest.fixture(params=["edge", "qdrant"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VectorStore]:
    s: VectorStore
    if request.param == "edge":
        s = EdgeVectorStore(tmp_path / "index", "chunks")
    else:
        s = QdrantVectorStore(None, None, "chunks", client=QdrantClient(location=":memory:"))
    s.ensure_collection(DIM)
    s.upsert(CORPUS)
    yield s
    s.close()


def test_dense_search_returns_the_nearest_point_first(store: VectorStore) -> None:
    hits = store.search_dense(axis(2, noise=0.1), PUBLIC, limit=3)
    assert hits[0].id == CORPUS[2].id
    assert hits[0].payload["text"] == "d2#0"
    assert hits[0].score > hits[1].score


def test_sparse_search_returns_the_matching_point_first(store: VectorStore) -> None:
    assert text_of(store.search_sparse(sparse(RARE), PUBLIC, limit=3)) == ["d1#0"]


def test_kb_filter_excludes_other_kbs_in_every_search(store: VectorStore) -> None:
    flt = Filter(audiences=ALL_AUDIENCES, kb="it")
    assert text_of(store.search_dense(axis(0), flt, limit=10)) == ["d4#0"]
    assert text_of(store.search_sparse(sparse(COMMON), flt, limit=10)) == ["d4#0"]


def test_internal_chunk_never_reaches_a_public_caller(store: VectorStore) -> None:
    # The query matches the internal chunk best on both sides, and limit exceeds the collection.
    dense, lexical = axis(3), sparse(OTHER, SECRET)
    for hits in (
        store.search_dense(dense, PUBLIC, limit=50),
        store.search_sparse(lexical, PUBLIC, limit=50),
    ):
        assert hits and all(h.payload["audience"] == "public" for h in hits)
    assert store.search_dense(dense, EVERYONE, limit=1)[0].payload["text"] == "d3#0"


def test_doc_id_filter_and_count(store: VectorStore) -> None:
    assert store.count(EVERYONE) == 5
    assert store.count(PUBLIC) == 4
    assert store.count(Filter(audiences=ALL_AUDIENCES, kb="hr")) == 4
    assert store.count(Filter(audiences=("public",), doc_id="d1")) == 2
    assert text_of(store.search_dense(axis(2), Filter(audiences=("public",), doc_id="d1"), 1)) != ["d2#0"]


def test_empty_audiences_are_rejected_not_read_as_everyone(store: VectorStore) -> None:
    with pytest.raises(InvalidInput, match="audiences"):
        store.search_dense(axis(0), Filter(audiences=()), limit=1)


def test_reupsert_of_the_same_id_replaces_the_point(store: VectorStore) -> None:
    old = CORPUS[1]
    store.upsert([Point(old.id, axis(5), sparse(OTHER), {**old.payload, "text": "new"})])
    assert store.count(EVERYONE) == 5
    assert text_of(store.search_dense(axis(5), PUBLIC, limit=1)) == ["new"]
    assert old.id not in {h.id for h in store.search_sparse(sparse(COMMON, RARE), PUBLIC, 10) if h.score > 1}


def test_delete_points_removes_them_from_search_and_count(store: VectorStore) -> None:
    store.delete_points([CORPUS[0].id])
    store.delete_points([])
    assert store.count(EVERYONE) == 4
    assert store.search_sparse(sparse(RARE), PUBLIC, limit=5) == []
    assert CORPUS[0].id not in {h.id for h in store.search_dense(axis(0), PUBLIC, limit=10)}


def test_hidden_points_are_found_by_point_ids_only_until_set_live(store: VectorStore) -> None:
    hidden = point("d9", 0, axis(6), [COMMON, RARE])
    hidden = Point(hidden.id, hidden.dense, hidden.sparse, {**hidden.payload, "live": False})
    store.upsert([hidden])
    assert store.point_ids("d9") == [hidden.id]
    assert store.count(EVERYONE) == 5
    assert hidden.id not in {h.id for h in store.search_dense(axis(6), EVERYONE, limit=10)}
    assert hidden.id not in {h.id for h in store.search_sparse(sparse(RARE), EVERYONE, limit=10)}
    store.set_live([hidden.id])
    store.set_live([])
    assert store.count(EVERYONE) == 6
    assert store.search_dense(axis(6), EVERYONE, limit=1)[0].id == hidden.id


def test_point_ids_lists_every_chunk_of_a_document_whatever_its_audience(store: VectorStore) -> None:
    assert sorted(store.point_ids("d1")) == sorted([CORPUS[0].id, CORPUS[1].id])
    assert store.point_ids("d3") == [CORPUS[3].id]
    assert store.point_ids("missing") == []


def test_idf_makes_a_rare_term_outrank_a_common_one(store: VectorStore) -> None:
    # d1#0 has RARE (1 of 5 chunks), d1#1 only COMMON (5 of 5): same raw weight, IDF decides.
    hits = store.search_sparse(sparse(COMMON, RARE), EVERYONE, limit=5)
    assert hits[0].payload["text"] == "d1#0"
    rare_only = store.search_sparse(sparse(RARE), EVERYONE, limit=1)[0].score
    common_only = store.search_sparse(sparse(COMMON), EVERYONE, limit=1)[0].score
    assert rare_only > 3 * common_only


def test_empty_sparse_query_matches_nothing(store: VectorStore) -> None:
    assert store.search_sparse(sparse(), PUBLIC, limit=3) == []


def test_ensure_collection_is_idempotent_and_rejects_another_dimension(store: VectorStore) -> None:
    store.ensure_collection(DIM)
    assert store.count(EVERYONE) == 5
    with pytest.raises(ConfigError, match="8-d"):
        store.ensure_collection(DIM * 2)


def test_healthy(store: VectorStore) -> None:
    assert store.healthy()


def test_point_id_is_a_stable_uuid_per_chunk() -> None:
    a = point_id("doc", "h", 0)
    assert a == point_id("doc", "h", 0)
    assert len({a, point_id("doc", "h", 1), point_id("doc", "h2", 0), point_id("doc2", "h", 0)}) == 4


# --------------------------------------------------------------------------- edge only


def test_edge_store_persists_across_close_and_reopen(tmp_path: Path) -> None:
    first = EdgeVectorStore(tmp_path, "chunks")
    first.ensure_collection(DIM)
    first.upsert(CORPUS)
    first.close()
    again = EdgeVectorStore(tmp_path, "chunks")
    assert again.count(EVERYONE) == 5
    assert text_of(again.search_sparse(sparse(RARE), PUBLIC, 1)) == ["d1#0"]
    again.close()


def test_second_open_of_the_same_edge_store_fails_clearly(tmp_path: Path) -> None:
    first = EdgeVectorStore(tmp_path, "chunks")
    first.ensure_collection(DIM)
    with pytest.raises(BackendUnavailable, match="already open"):
        EdgeVectorStore(tmp_path, "chunks")
    first.close()
    EdgeVectorStore(tmp_path, "chunks").close()  # released on close


def test_edge_store_without_a_collection_says_what_to_do(tmp_path: Path) -> None:
    store = EdgeVectorStore(tmp_path, "chunks")
    assert not store.healthy()
    with pytest.raises(BackendUnavailable, match="ensure_collection"):
        store.count(EVERYONE)


def test_edge_optimize_keeps_every_point_searchable(tmp_path: Path) -> None:
    store = EdgeVectorStore(tmp_path, "chunks")
    store.ensure_collection(DIM)
    store.upsert(CORPUS)
    store.optimize()
    assert store.count(EVERYONE) == 5
    assert text_of(store.search_sparse(sparse(RARE), PUBLIC, 1)) == ["d1#0"]
    assert text_of(store.search_dense(axis(2), PUBLIC, 1)) == ["d2#0"]
    store.close()


def test_edge_snapshot_restores_to_the_same_points(tmp_path: Path) -> None:
    store = EdgeVectorStore(tmp_path / "live", "chunks")
    store.ensure_collection(DIM)
    store.upsert(CORPUS)
    snap = store.snapshot(tmp_path / "chunks.tar")
    store.close()
    assert tarfile.is_tarfile(snap)
    qdrant_edge.EdgeShard.unpack_snapshot(str(snap), str(tmp_path / "restored" / "chunks"))
    restored = EdgeVectorStore(tmp_path / "restored", "chunks")
    assert restored.count(EVERYONE) == 5
    assert text_of(restored.search_dense(axis(4), EVERYONE, 1)) == ["d4#0"]
    restored.close()


# --------------------------------------------------------------------------- server only


def test_unreachable_qdrant_server_raises_backend_unavailable() -> None:
    store = QdrantVectorStore("http://127.0.0.1:9", None, "chunks", timeout=1)
    assert not store.healthy()
    with pytest.raises(BackendUnavailable, match="127.0.0.1:9") as caught:
        store.ensure_collection(DIM)
    assert caught.value.retryable
    with pytest.raises(BackendUnavailable):
        store.search_dense(axis(0), PUBLIC, limit=1)
    store.close()


def test_qdrant_store_needs_exactly_one_of_url_and_client() -> None:
    with pytest.raises(InvalidInput):
        QdrantVectorStore(None, None, "chunks")


def test_build_vector_store_picks_the_backend(tmp_path: Path) -> None:
    edge = build_vector_store("edge", tmp_path, None, None, "chunks")
    assert isinstance(edge, EdgeVectorStore)
    server = build_vector_store("qdrant", tmp_path, "http://127.0.0.1:9", None, "chunks")
    assert isinstance(server, QdrantVectorStore)
    with pytest.raises(ConfigError, match="URL"):
        build_vector_store("qdrant", tmp_path, None, None, "chunks")
