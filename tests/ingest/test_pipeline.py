"""Component tests: real parser, real packaged embedder, the embedded store on disk, SQLite."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from lorag.core import db, models
from lorag.core.tables import DocumentStatus
from lorag.ingest import registry, service
from lorag.ingest.embed import Embedder
from lorag.ingest.parse import parse
from lorag.ingest.pipeline import ChunkingPolicy, Indexer
from lorag.ingest.store import EdgeVectorStore, Filter, VectorStore

REPO = Path(__file__).resolve().parents[2]
SUPPORT = REPO / "samples" / "kb" / "support"
FIXTURES = Path(__file__).parent / "fixtures"
MIXED = ["refund_policy.pdf", "courier_handbook.docx", "become_a_courier.html", "late_deliveries.md",
         "fees_explained.txt", "delivery_fees_by_zone.csv", "faq.jsonl"]
EVERYONE = Filter(audiences=("public", "internal"))


def embedder_for_tests() -> Embedder:
    ref = models.resolve("packaged:all-minilm-l6-v2", Path("unused"))
    return Embedder(models.load_embedder(ref, "cpu"), batch_size=32)


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return embedder_for_tests()


@dataclass
class Bench:
    folder: Path
    indexer: Indexer
    store: VectorStore

    def ingest(self, paths: list[Path], kb: str = "support", audience: str = "public") -> service.SubmitReport:
        report = service.submit_files(self.indexer.sessions, service.collect(paths), kb=kb, audience=audience,
                                      max_bytes=self.indexer.policy.max_bytes, job_id=None)
        for doc_id in report.queued:
            self.indexer.run(doc_id)
        return report

    def chunks_of(self, doc_id: str) -> list[dict]:
        hits = self.store.search_dense([0.0] * 383 + [1.0], Filter(audiences=("public", "internal"),
                                                                   doc_id=doc_id), limit=10_000)
        return sorted((hit.payload for hit in hits), key=lambda p: p["chunk_index"])


@pytest.fixture
def bench(tmp_path: Path, embedder: Embedder) -> Iterator[Bench]:
    engine = db.build_engine(f"sqlite:///{tmp_path / 'lorag.db'}")
    db.migrate(engine)
    store = EdgeVectorStore(tmp_path / "store", "lorag")
    store.ensure_collection(embedder.dim)
    indexer = Indexer(sessions=db.build_sessions(engine), store=store, embedder=embedder,
                      policy=ChunkingPolicy(chunk_tokens=200, overlap_tokens=32, max_bytes=2_000_000),
                      lease_s=60, owner="test")
    folder = tmp_path / "docs"
    folder.mkdir()
    yield Bench(folder, indexer, store)
    store.close()
    engine.dispose()


def test_every_format_is_indexed_with_offsets_that_round_trip(bench: Bench) -> None:
    report = bench.ingest([SUPPORT / name for name in MIXED])
    assert len(report.queued) == len(MIXED) and not report.rejected
    for name in MIXED:
        row = registry.get(bench.indexer.sessions, registry.document_id("support", name))
        assert row.status == DocumentStatus.INDEXED, (name, row.error)
        chunks = bench.chunks_of(row.id)
        assert len(chunks) == row.chunk_count > 0
        text = parse(SUPPORT / name, max_bytes=2_000_000).text
        for chunk in chunks:
            assert text[chunk["start"]:chunk["end"]] == chunk["text"]
            assert chunk["kb"] == "support" and chunk["audience"] == "public" and chunk["source"] == name
    pdf_chunks = bench.chunks_of(registry.document_id("support", "refund_policy.pdf"))
    assert {chunk["page"] for chunk in pdf_chunks} >= {1, 2}


def test_an_unchanged_document_costs_nothing_and_a_changed_one_is_replaced(bench: Bench) -> None:
    doc = bench.folder / "refunds.md"
    doc.write_text("# Refunds\n\nRefunds take 5 days.\n\n## Late orders\n\nLate orders get a voucher.\n")
    bench.ingest([doc])
    doc_id = registry.document_id("support", "refunds.md")
    before = bench.chunks_of(doc_id)
    assert bench.ingest([doc]).unchanged == [doc_id]

    doc.write_text("# Refunds\n\nRefunds take 3 days now.\n")
    assert bench.ingest([doc]).queued == [doc_id]
    after = bench.chunks_of(doc_id)
    assert all("3 days" in c["text"] or c["text"].startswith("# Refunds") for c in after)
    assert not any("5 days" in c["text"] for c in after)
    assert {c["version"] for c in after} == {2} and len(after) == registry.get(bench.indexer.sessions,
                                                                                  doc_id).chunk_count
    assert before


class WatchedStore:
    """The real store, looked at after every write: which versions of one document can a search see?"""

    def __init__(self, store: VectorStore, doc_id: str) -> None:
        self.store, self.doc_id, self.seen = store, doc_id, []

    def __getattr__(self, name: str) -> object:
        return getattr(self.store, name)

    def _look(self) -> None:
        hits = self.store.search_dense([1.0] + [0.0] * 383, Filter(audiences=("public",), doc_id=self.doc_id), 1000)
        self.seen.append({hit.payload["version"] for hit in hits})

    def upsert(self, points: list) -> None:
        self.store.upsert(points)
        self._look()

    def delete_points(self, ids: list[str]) -> None:
        self.store.delete_points(ids)
        self._look()

    def set_live(self, ids: list[str]) -> None:
        self.store.set_live(ids)
        self._look()


def test_two_versions_are_never_searchable_at_once(bench: Bench) -> None:
    doc = bench.folder / "menu.md"
    doc.write_text("# Menu\n\n" + "\n\n".join(f"Dish {i} costs {i} euros." for i in range(40)))
    bench.ingest([doc])
    doc_id = registry.document_id("support", "menu.md")
    doc.write_text("# Menu\n\n" + "\n\n".join(f"Plate {i} is priced at {i + 1} euros." for i in range(40)))
    service.submit_files(bench.indexer.sessions, service.collect([doc]), kb="support", audience="public",
                         max_bytes=2_000_000, job_id=None)
    watched = WatchedStore(bench.store, doc_id)
    bench.indexer.store = watched  # type: ignore[assignment]
    assert bench.indexer.run(doc_id).status == "indexed"
    assert watched.seen == [{1}, set(), {2}]


def test_sync_mirrors_a_folder(bench: Bench) -> None:
    for name in ("late_deliveries.md", "tipping.md"):
        shutil.copy(SUPPORT / name, bench.folder / name)
    service.sync_folder(bench.indexer.sessions, bench.store, bench.folder, kb="support", audience="public",
                        max_bytes=2_000_000, job_id=None)
    for doc_id in [registry.document_id("support", n) for n in ("late_deliveries.md", "tipping.md")]:
        bench.indexer.run(doc_id)
    (bench.folder / "tipping.md").unlink()
    report = service.sync_folder(bench.indexer.sessions, bench.store, bench.folder, kb="support",
                                 audience="public", max_bytes=2_000_000, job_id=None)
    gone = registry.document_id("support", "tipping.md")
    assert report.deleted == [gone]
    assert registry.get(bench.indexer.sessions, gone).status == DocumentStatus.DELETED
    assert bench.chunks_of(gone) == []
    assert bench.chunks_of(registry.document_id("support", "late_deliveries.md"))


BAD = {
    "slides.pptx": b"PK\x03\x04 not supported",
    "empty.md": b"",
    "garbage.txt": bytes(range(256)) * 40,
    "latin1.txt": "Caf\xe9 cr\xe8me br\xfbl\xe9e, na\xefve fa\xe7ade. ".encode("cp1252") * 3 + b"\x81\x8d\x8f\x90\x9d",
    "ragged.csv": b"name,price\nsoup,4\nsalad,5,extra\n",
    "huge.md": b"# Big\n\n" + b"word " * 500_000,
}


def test_bad_files_fail_with_a_reason_and_the_rest_goes_on(bench: Bench) -> None:
    for name, data in BAD.items():
        (bench.folder / name).write_bytes(data)
    for name in ("corrupt.pdf", "encrypted.pdf"):
        shutil.copy(FIXTURES / name, bench.folder / name)
    shutil.copy(SUPPORT / "tipping.md", bench.folder / "tipping.md")
    bench.ingest([bench.folder])
    sessions = bench.indexer.sessions
    assert registry.get(sessions, registry.document_id("support", "tipping.md")).status == DocumentStatus.INDEXED
    reasons = {name: registry.get(sessions, registry.document_id("support", name)) for name in
               [*BAD, "corrupt.pdf", "encrypted.pdf"]}
    expected_words = {"slides.pptx": "unsupported", "empty.md": "empty", "garbage.txt": "binary",
                      "ragged.csv": "row", "huge.md": "over the limit", "corrupt.pdf": "pdf",
                      "encrypted.pdf": "encrypted", "latin1.txt": None}
    for name, row in reasons.items():
        word = expected_words[name]
        if word is None:  # a legacy encoding that can be detected is read, not refused
            continue
        assert row.status == DocumentStatus.FAILED, name
        assert word in (row.error or "").lower(), (name, row.error)
        assert bench.chunks_of(row.id) == []


def test_a_bad_new_version_keeps_the_previous_one_searchable(bench: Bench) -> None:
    doc = bench.folder / "prices.csv"
    doc.write_text("dish,price\nsoup,4\nsalad,5\n")
    bench.ingest([doc])
    doc_id = registry.document_id("support", "prices.csv")
    before = bench.chunks_of(doc_id)
    doc.write_text("dish,price\nsoup,4,oops\n")
    bench.ingest([doc])
    row = registry.get(bench.indexer.sessions, doc_id)
    assert row.status == DocumentStatus.FAILED and "row" in row.error.lower()
    assert bench.chunks_of(doc_id) == before


def test_run_many_overlaps_parsing_but_keeps_order_and_outcomes(bench: Bench) -> None:
    (bench.folder / "a.md").write_text("# A\n\nAlpha text.")
    (bench.folder / "b.csv").write_text("x,y\n1,2,3\n")
    (bench.folder / "c.md").write_text("# C\n\nGamma text.")
    report = service.submit_files(bench.indexer.sessions, service.collect([bench.folder]), kb="support",
                                  audience="public", max_bytes=2_000_000, job_id=None)
    outcomes = list(bench.indexer.run_many(report.queued))
    assert [o.doc_id for o in outcomes] == report.queued
    assert [o.status for o in outcomes] == ["indexed", "failed", "indexed"]
