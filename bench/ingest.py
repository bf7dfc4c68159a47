"""Ingestion throughput on a real corpus: the Python 3.11 documentation (Debian's python3.11-doc).

Ingests the HTML pages through the real path (registry → parse → chunk → embed → sparse → swap into the
embedded store) and, in the same run, embeds the very same chunk texts with the same model alone. The ratio
of the two chunks/s figures says whether ingestion is bound by the embedder (target >= 0.8).

    PYTHONPATH=. python bench/ingest.py --docs 120 --out bench/results/ingest.json

The corpus is fetched the way ../shared/data/README.md describes (apt-get download + dpkg-deb), into
`--cache` (default .cache/python-docs), once.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

import common  # before lorag: the repository on sys.path, packaged models only

from lorag.core import db, models
from lorag.ingest import service
from lorag.ingest.embed import Embedder
from lorag.ingest.pipeline import ChunkingPolicy, Indexer
from lorag.ingest.store import EdgeVectorStore, Filter

TARGET_RATIO = 0.8
HTML_DIR = "usr/share/doc/python3.11/html"


def fetch_python_docs(cache: Path) -> Path:
    html = cache / HTML_DIR
    if html.is_dir():
        return html
    cache.mkdir(parents=True, exist_ok=True)
    subprocess.run(["apt-get", "download", "python3.11-doc"], cwd=cache, check=True, capture_output=True)
    package = next(cache.glob("python3.11-doc_*.deb"))
    subprocess.run(["dpkg-deb", "-x", str(package), str(cache)], check=True)
    return html


def pick_pages(html: Path, count: int) -> list[Path]:
    """A fixed, spread-out sample: every k-th page of the sorted list, skipping generated indexes."""
    pages = sorted(p for p in html.rglob("*.html") if "_sources" not in p.parts and p.name not in
                   {"genindex.html", "search.html", "py-modindex.html"} and not p.name.startswith("genindex-"))
    step = max(1, len(pages) // count)
    return pages[::step][:count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=120, help="pages of the Python docs to ingest")
    parser.add_argument("--cache", type=Path, default=common.REPO / ".cache" / "python-docs")
    parser.add_argument("--batch", type=int, default=64, help="embedding batch size")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args()

    pages = pick_pages(fetch_python_docs(args.cache), args.docs)
    ref = models.resolve("packaged:all-minilm-l6-v2", Path("unused"))
    embedder = Embedder(models.load_embedder(ref, "cpu"), batch_size=args.batch)
    embedder.embed_batch(["warm-up"] * 8)

    with tempfile.TemporaryDirectory(prefix="lorag-bench-") as folder:
        engine = db.build_engine(f"sqlite:///{folder}/lorag.db")
        db.migrate(engine)
        sessions = db.build_sessions(engine)
        store = EdgeVectorStore(Path(folder) / "store", "lorag")
        store.ensure_collection(embedder.dim)
        indexer = Indexer(sessions=sessions, store=store, embedder=embedder,
                          policy=ChunkingPolicy(200, 32, 20_000_000), lease_s=600, owner="bench")
        started = time.perf_counter()
        files = [service.SourceFile(p.relative_to(pages[0].parents[1]).as_posix(), p) for p in pages]
        report = service.submit_files(sessions, files, kb="python", audience="internal", max_bytes=20_000_000,
                                      job_id=None)
        outcomes = list(indexer.run_many(report.queued))
        ingest_s = time.perf_counter() - started
        hits = store.search_dense([1.0] + [0.0] * 383, Filter(audiences=("internal",)), 1_000_000)
        texts = [hit.payload["text"] for hit in hits]
        store.close()
        engine.dispose()

    started = time.perf_counter()
    embedder.embed_batch(texts)
    embed_s = time.perf_counter() - started

    chunks = sum(o.chunks for o in outcomes)
    result = {
        "benchmark": "ingest",
        "corpus": f"python3.11-doc HTML, {len(pages)} pages",
        "documents": len(pages),
        "indexed": sum(o.status == "indexed" for o in outcomes),
        "failed": {o.doc_id: o.reason for o in outcomes if o.status == "failed"},
        "chunks": chunks,
        "ingest_seconds": round(ingest_s, 2),
        "documents_per_s": round(len(pages) / ingest_s, 2),
        "chunks_per_s": round(chunks / ingest_s, 1),
        "raw_embedding_chunks_per_s": round(len(texts) / embed_s, 1),
        "ratio_ingest_to_raw_embedding": round((chunks / ingest_s) / (len(texts) / embed_s), 3),
        "target_ratio": TARGET_RATIO,
        "peak_rss_mb": common.peak_rss_mb(),
        "embed_batch": args.batch,
        "machine": common.machine(),
    }
    result["meets_target"] = result["ratio_ingest_to_raw_embedding"] >= TARGET_RATIO
    common.emit(result, args.out)


if __name__ == "__main__":
    main()
