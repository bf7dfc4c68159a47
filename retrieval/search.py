"""Hybrid retrieval: dense and sparse candidates fused by reciprocal rank, filtered inside the store.

The audience filter is part of every store query (never applied afterwards), so a public caller cannot
receive an internal chunk whatever `top_k` is. The best dense cosine of the candidates is kept as the
relevance signal that decides whether there is anything worth answering from.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from lorag.ingest.embed import Embedder
from lorag.ingest.store import Filter, Hit, VectorStore
from lorag.retrieval.fusion import candidates, rrf
from lorag.retrieval.types import ScoredChunk

Mode = Literal["dense", "sparse", "hybrid"]


class Reranker(Protocol):
    def rerank(self, query: str, chunks: Sequence[ScoredChunk], top_k: int) -> list[ScoredChunk]: ...


class CrossEncoderReranker:
    """A sentence-transformers cross-encoder, used when `LORAG_RETRIEVAL__RERANKER` names one."""

    def __init__(self, location: str, device: str, local_only: bool) -> None:
        from sentence_transformers import CrossEncoder

        self.model = CrossEncoder(location, device=device, local_files_only=local_only)

    def rerank(self, query: str, chunks: Sequence[ScoredChunk], top_k: int) -> list[ScoredChunk]:
        if not chunks:
            return []
        scores = self.model.predict([(query, chunk.text) for chunk in chunks], show_progress_bar=False)
        ranked = sorted(zip(scores, chunks, strict=True), key=lambda pair: float(pair[0]), reverse=True)
        return [chunk for _score, chunk in ranked[:top_k]]


@dataclass(frozen=True)
class Retrieved:
    chunks: list[ScoredChunk]
    best_dense: float  # highest cosine between the query and any candidate; 0 when nothing was found
    seconds: float
    cosines: Mapping[str, float] | None = None  # chunk id → cosine to the query, for the dense candidates
    beyond: float = 1.0  # the most a chunk outside `cosines` can score: the lowest dense candidate's cosine

    def relevance(self, chunk_id: str) -> float:
        """The chunk's cosine to the query: a sparse hit outside the dense candidates scores at most `beyond`
        (every chunk above it would be among them), a search with no dense side counts any hit as relevant (1).

        >>> found = Retrieved([], 0.9, 0.0, {"a": 0.9, "b": 0.4}, beyond=0.4)
        >>> found.relevance("a"), found.relevance("c"), Retrieved([], 1.0, 0.0).relevance("c")
        (0.9, 0.4, 1.0)
        """
        if self.cosines is None:
            return 1.0
        return self.cosines.get(chunk_id, self.beyond)


class Retriever:
    def __init__(self, store: VectorStore, embedder: Embedder, reranker: Reranker | None = None) -> None:
        self.store = store
        self.embedder = embedder
        self.reranker = reranker

    def search(self, query: str, *, kb: str | None, audiences: tuple[str, ...], top_k: int,
               mode: Mode = "hybrid") -> Retrieved:
        started = time.perf_counter()
        flt = Filter(audiences=audiences, kb=kb)
        pool = candidates(top_k) if (mode == "hybrid" or self.reranker) else top_k
        dense_hits = self._dense(query, flt, pool) if mode != "sparse" else []
        sparse_hits = self._sparse(query, flt, pool) if mode != "dense" else []
        fused = rrf([dense_hits, sparse_hits]) if mode == "hybrid" else dense_hits or sparse_hits
        chunks = [ScoredChunk.from_hit(hit.id, hit.score, hit.payload) for hit in fused]
        if self.reranker is not None:
            chunks = self.reranker.rerank(query, chunks, top_k)
        # Sparse-only search has no cosine to judge relevance by; finding anything counts as relevant.
        best = max((hit.score for hit in dense_hits), default=1.0 if mode == "sparse" and chunks else 0.0)
        if mode == "sparse":
            return Retrieved(chunks[:top_k], best, time.perf_counter() - started)
        # Fewer dense hits than asked for: the filter holds no other chunk, so none lies beyond them.
        beyond = min((hit.score for hit in dense_hits), default=0.0) if len(dense_hits) >= pool else -1.0
        return Retrieved(chunks[:top_k], best, time.perf_counter() - started,
                         {hit.id: hit.score for hit in dense_hits}, beyond)

    def _dense(self, query: str, flt: Filter, limit: int) -> list[Hit]:
        vector = self.embedder.embed_batch([query])[0]
        return self.store.search_dense(vector, flt, limit)

    def _sparse(self, query: str, flt: Filter, limit: int) -> list[Hit]:
        vector = self.embedder.sparse_vectors([query])[0]
        return self.store.search_sparse(vector, flt, limit)
