"""Unit tests of `Retriever`: which store searches each mode makes, how their hits are fused, the relevance signal
it reports, and the reranker hook. The store and the embedder are stand-ins that record what they were asked."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from lorag.ingest.sparse import SparseVector
from lorag.ingest.store import Filter, Hit
from lorag.retrieval.fusion import candidates, rrf
from lorag.retrieval.search import Retriever
from lorag.retrieval.types import ScoredChunk

PUBLIC = ("public",)


def hit(name: str, score: float) -> Hit:
    return Hit(name, score, {"doc_id": f"doc-{name}", "kb": "kb", "audience": "public", "title": name,
                             "source": f"{name}.md", "section": [], "page": None, "start": 0, "end": 1, "text": name})


class Store:
    """Answers dense and sparse searches from fixed lists; records (kind, filter, limit) per search."""

    def __init__(self, dense: list[Hit], sparse: list[Hit]) -> None:
        self.dense, self.sparse = dense, sparse
        self.searches: list[tuple[str, Filter, int]] = []

    def search_dense(self, vector: Sequence[float], flt: Filter, limit: int) -> list[Hit]:
        self.searches.append(("dense", flt, limit))
        return self.dense[:limit]

    def search_sparse(self, vector: SparseVector, flt: Filter, limit: int) -> list[Hit]:
        self.searches.append(("sparse", flt, limit))
        return self.sparse[:limit]


class Embedder:
    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        return np.ones((len(texts), 4), dtype=np.float32) / 2

    def sparse_vectors(self, texts: Sequence[str]) -> list[SparseVector]:
        return [SparseVector([1], [1.0]) for _ in texts]


class Reverse:
    """A reranker that puts the candidates in reverse order; records how many it was given."""

    def __init__(self) -> None:
        self.given: list[int] = []

    def rerank(self, query: str, chunks: Sequence[ScoredChunk], top_k: int) -> list[ScoredChunk]:
        self.given.append(len(chunks))
        return list(reversed(chunks))[:top_k]


DENSE = [hit("a", 0.9), hit("b", 0.7), hit("c", 0.5)]
SPARSE = [hit("c", 12.0), hit("d", 9.0), hit("a", 3.0)]


def retriever(reranker: Reverse | None = None, dense: list[Hit] = DENSE, sparse: list[Hit] = SPARSE,
              ) -> tuple[Retriever, Store]:
    store = Store(dense, sparse)
    return Retriever(store, Embedder(), reranker), store  # type: ignore[arg-type]


def ids(chunks: Sequence[ScoredChunk]) -> list[str]:
    return [chunk.id for chunk in chunks]


def test_dense_only_searches_the_dense_vectors_alone_and_keeps_their_order() -> None:
    search, store = retriever()
    found = search.search("q", kb="kb", audiences=PUBLIC, top_k=2, mode="dense")
    assert ids(found.chunks) == ["a", "b"]
    assert [(kind, limit) for kind, _flt, limit in store.searches] == [("dense", 2)]
    assert found.best_dense == pytest.approx(0.9)


def test_sparse_only_searches_the_sparse_vectors_alone_and_counts_any_hit_as_relevant() -> None:
    search, store = retriever()
    found = search.search("q", kb="kb", audiences=PUBLIC, top_k=2, mode="sparse")
    assert ids(found.chunks) == ["c", "d"]
    assert [kind for kind, _flt, _limit in store.searches] == ["sparse"]
    assert found.best_dense == 1.0  # no cosine to judge by: finding something counts
    empty, _ = retriever(sparse=[])
    assert empty.search("q", kb="kb", audiences=PUBLIC, top_k=2, mode="sparse").best_dense == 0.0


def test_hybrid_fuses_both_candidate_pools_by_reciprocal_rank() -> None:
    search, store = retriever()
    found = search.search("q", kb="kb", audiences=PUBLIC, top_k=3, mode="hybrid")
    assert ids(found.chunks) == [h.id for h in rrf([DENSE, SPARSE])][:3] == ["a", "c", "b"]
    assert [(kind, limit) for kind, _flt, limit in store.searches] == [("dense", candidates(3)),
                                                                       ("sparse", candidates(3))]
    assert found.best_dense == pytest.approx(0.9)  # the relevance signal is the dense cosine, not the fused score
    assert [found.relevance(chunk.id) for chunk in found.chunks] == [0.9, 0.5, 0.7]


def test_a_sparse_hit_outside_the_dense_candidates_scores_at_most_the_lowest_of_them() -> None:
    dense = [hit(f"d{n}", 0.9 - n / 100) for n in range(candidates(2))]  # a full pool: the lowest bounds the rest
    search, _store = retriever(dense=dense, sparse=[hit("s", 12.0)])
    found = search.search("q", kb="kb", audiences=PUBLIC, top_k=2, mode="hybrid")
    assert ids(found.chunks) == ["d0", "s"] and found.relevance("s") == pytest.approx(dense[-1].score)
    few, _store = retriever(dense=DENSE, sparse=[hit("s", 12.0)])  # every chunk the filter holds was scored
    assert few.search("q", kb="kb", audiences=PUBLIC, top_k=2, mode="hybrid").relevance("s") == -1.0


def test_every_store_search_carries_the_callers_audiences_and_knowledge_base() -> None:
    search, store = retriever()
    search.search("q", kb="hr", audiences=("public", "internal"), top_k=2, mode="hybrid")
    assert {flt for _kind, flt, _limit in store.searches} == {Filter(audiences=("public", "internal"), kb="hr")}


def test_nothing_found_is_no_chunks_and_no_relevance() -> None:
    search, _ = retriever(dense=[], sparse=[])
    found = search.search("q", kb=None, audiences=PUBLIC, top_k=3, mode="hybrid")
    assert found.chunks == [] and found.best_dense == 0.0


def test_the_reranker_orders_the_whole_candidate_pool_and_top_k_is_cut_after_it() -> None:
    reranker = Reverse()
    search, store = retriever(reranker)
    found = search.search("q", kb="kb", audiences=PUBLIC, top_k=2, mode="dense")
    assert [limit for _kind, _flt, limit in store.searches] == [candidates(2)]  # a pool to rerank, not top_k
    assert reranker.given == [3]
    assert ids(found.chunks) == ["c", "b"]
