"""Retrieval latency of the embedded vector store: filtered dense, sparse and hybrid search.

Builds Qdrant Edge stores of synthetic chunks (random 384-d unit vectors, Zipf-distributed token ids turned
into sparse vectors by `ingest.sparse`, payload like a real chunk: 5 kbs, 70% public), then times searches
filtered on kb + audience=public (limit 8) after a warm-up. Hybrid is what `Retriever` does: the dense and the
sparse candidates from the store, fused by `retrieval.fusion.rrf` (docs/reports/retrieval-fusion.json measured
that against the store's own fused query). qdrant-client's local mode is measured at the smallest size only, as
the comparison that motivated the choice (it is pure Python and slow).

    python bench/retrieval.py --sizes 10000 100000 --out bench/results/retrieval.json
"""

from __future__ import annotations

import argparse
import functools
import importlib.metadata
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import common  # before lorag: the repository on sys.path, packaged models only
import numpy as np
from qdrant_client import QdrantClient

from lorag.core.models import resolve
from lorag.ingest.sparse import SparseEncoder, SparseVector
from lorag.ingest.store import EdgeVectorStore, Filter, Point, QdrantVectorStore, VectorStore, point_id
from lorag.retrieval.fusion import candidates, rrf

DIM = 384
KBS = tuple(f"kb{i}" for i in range(5))
VOCAB = (999, 30522)  # bert-base-uncased word ids, as the embedder's tokenizer gives them
LIMIT = 8
TARGET_P95_MS = 50.0
WRITE_BATCH = 1000
# The code hashed into the report.
MEASURED = ("ingest/store.py", "ingest/sparse.py", "retrieval/fusion.py", "bench/retrieval.py")


@dataclass(frozen=True)
class Query:
    dense: np.ndarray
    sparse: SparseVector
    flt: Filter


def zipf_tokens(rng: np.random.Generator, n: int) -> list[int]:
    """Token ids with a word-like Zipf distribution: a few very common ids, a long tail of rare ones."""
    ranks = rng.zipf(1.3, size=n * 2)
    ranks = ranks[ranks < VOCAB[1] - VOCAB[0]][:n]
    return (VOCAB[0] + ranks).tolist()


@functools.cache
def encoder() -> SparseEncoder:
    """The packaged embedder's sparse encoder: the synthetic ids are dropped or kept as its vocabulary says."""
    from transformers import AutoTokenizer

    location = resolve("packaged:all-minilm-l6-v2", common.REPO).location
    return SparseEncoder.for_tokenizer(AutoTokenizer.from_pretrained(location))


def unit_vectors(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.normal(size=(n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def make_points(n: int, seed: int) -> list[Point]:
    rng = np.random.default_rng(seed)
    dense = unit_vectors(rng, n)
    lexical = encoder().vectors([zipf_tokens(rng, int(rng.integers(60, 160))) for _ in range(n)])
    kbs, public = rng.choice(KBS, size=n), rng.random(n) < 0.7
    return [
        Point(point_id(f"doc{i // 10}", f"h{i}", i % 10), dense[i], lexical[i], payload(i, kbs[i], public[i]))
        for i in range(n)
    ]


def payload(i: int, kb: str, public: bool) -> dict[str, object]:
    return {
        "doc_id": f"doc{i // 10}", "kb": str(kb), "audience": "public" if public else "internal",
        "title": f"Document {i // 10}", "section": ["Chapter", f"Section {i % 7}"], "page": i % 30,
        "start": 0, "end": 600, "source": f"docs/doc{i // 10}.pdf", "text": "lorem ipsum " * 50,
        "chunk_index": i % 10, "content_hash": f"h{i}", "version": 1, "live": True,
    }  # fmt: skip


def make_queries(n: int, seed: int) -> list[Query]:
    rng = np.random.default_rng(seed)
    dense = unit_vectors(rng, n)
    lexical = encoder().vectors([zipf_tokens(rng, int(rng.integers(3, 9))) for _ in range(n)])
    return [Query(dense[i], lexical[i], Filter(audiences=("public",), kb=str(rng.choice(KBS)))) for i in range(n)]


def timed_write(store: VectorStore, points: Sequence[Point]) -> float:
    """Points per second through `upsert`, in batches as the ingest pipeline sends them."""
    start = time.perf_counter()
    for i in range(0, len(points), WRITE_BATCH):
        store.upsert(points[i : i + WRITE_BATCH])
    return len(points) / (time.perf_counter() - start)


def percentiles(run: Callable[[Query], object], queries: Sequence[Query], warmup: int) -> dict[str, float]:
    for q in queries[:warmup]:
        run(q)
    times = []
    for q in queries:
        start = time.perf_counter()
        run(q)
        times.append((time.perf_counter() - start) * 1000)
    return {"p50_ms": round(float(np.percentile(times, 50)), 2), "p95_ms": round(float(np.percentile(times, 95)), 2)}


def measure(store: VectorStore, points: Sequence[Point], queries: Sequence[Query], warmup: int) -> dict:
    store.ensure_collection(DIM)
    write = timed_write(store, points)
    result: dict[str, object] = {"points": store.count(Filter(audiences=("public", "internal")))}
    result["write_points_per_s"] = round(write)
    result["dense"] = percentiles(lambda q: store.search_dense(q.dense, q.flt, LIMIT), queries, warmup)
    result["sparse"] = percentiles(lambda q: store.search_sparse(q.sparse, q.flt, LIMIT), queries, warmup)
    pool = candidates(LIMIT)  # what Retriever does: both candidate pools from the store, fused by retrieval
    result["hybrid"] = percentiles(
        lambda q: rrf([store.search_dense(q.dense, q.flt, pool), store.search_sparse(q.sparse, q.flt, pool)],
                      limit=LIMIT), queries, warmup)
    return result


def bench_edge(size: int, queries: Sequence[Query], warmup: int, seed: int) -> dict:
    points = make_points(size, seed)
    with tempfile.TemporaryDirectory() as tmp:
        store = EdgeVectorStore(Path(tmp), "chunks")
        try:
            return measure(store, points, queries, warmup)
        finally:
            store.close()


def bench_client_local(size: int, queries: Sequence[Query], warmup: int, seed: int) -> dict:
    store = QdrantVectorStore(None, None, "chunks", client=QdrantClient(location=":memory:"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "payload indexes have no effect in local mode" is the point
        result = measure(store, make_points(size, seed), queries, warmup)
    store.close()
    return result


def provenance(args: argparse.Namespace) -> dict:
    """What made these numbers: settings, versions, machine and a hash of the code measured."""
    versions = {p: importlib.metadata.version(p) for p in ("qdrant-edge-py", "qdrant-client", "numpy")}
    return {
        "settings": {**vars(args), "out": str(args.out) if args.out else None, "limit": LIMIT, "dim": DIM},
        "versions": {**versions, "python": sys.version.split()[0]},
        "machine": common.machine(),
        "code_sha256": common.code_sha256(MEASURED),
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000], help="chunks per store")
    parser.add_argument("--queries", type=int, default=200, help="timed queries per search kind")
    parser.add_argument("--warmup", type=int, default=20, help="untimed queries first")
    parser.add_argument("--client-queries", type=int, default=30, help="timed queries for qdrant-client local")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    queries = make_queries(args.queries, args.seed + 1)
    edge = {str(n): bench_edge(n, queries, args.warmup, args.seed) for n in args.sizes}
    small = min(args.sizes)
    local = {str(small): bench_client_local(small, queries[: args.client_queries], 5, args.seed)}
    largest = edge[str(max(args.sizes))]["hybrid"]["p95_ms"]
    report = {
        "edge": edge,
        "qdrant_client_local": local,
        "target_p95_ms": TARGET_P95_MS,
        "meets_target": largest <= TARGET_P95_MS,
        **provenance(args),
    }
    common.emit(report, args.out)


if __name__ == "__main__":
    main()
