"""Questions written from a knowledge base's documents: the rules, the round-trip filter on a real index, the split."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from lorag.core import db
from lorag.finetune import data, synth
from lorag.finetune.examples import GroundingContext, grounded_example
from lorag.finetune.tasks import Data, Documents, SplitSpec, TaskSpec
from lorag.ingest import service
from lorag.ingest.embed import Embedder
from lorag.ingest.pipeline import ChunkingPolicy, Indexer
from lorag.ingest.store import EdgeVectorStore
from lorag.retrieval.search import Retriever
from lorag.retrieval.types import ABSTENTION, ScoredChunk
from tests.ingest.test_pipeline import embedder_for_tests

CHUNK_TOKENS, OVERLAP = 200, 32

GIFT_CARDS = """# Gift cards

## Validity

A gift card is valid for 3 years from the date it was bought. The expiry date is shown in the email.

## Redeeming a gift card

Go to Account > Gift cards > Redeem and enter the 16-character code. The full value is added to your balance.
"""
TIPPING = """# Tipping your courier

## How to tip

At checkout you can choose 1, 2 or 3 euros, or tap Other to enter an amount of up to 50 euros.

## Where your tip goes

Every tip goes to the courier who delivered your order. Dashbite takes no commission on tips.
"""
FAQ = [{"question": "Can I pay with cash?", "answer": "No. Cash is not accepted for any order, because couriers "
        "do not carry change."},
       {"question": "Do you deliver on Sundays?", "answer": "Yes. Dashbite delivers every day of the week."}]
FEES = "city,zone,delivery_fee_eur,typical_minutes\nAmsterdam,A,1.99,20-30\nRotterdam,B,2.99,25-35\n"


def chunk(text: str, section: tuple[str, ...] = (), title: str = "Doc", source: str = "doc.md") -> ScoredChunk:
    return ScoredChunk("c-" + str(abs(hash(text)) % 10**8), 0.0, "d1", "kb", "public", title, source, section, None,
                       0, len(text), text)


# --- rules (unit) -----------------------------------------------------------------------------------------------

def test_an_faq_row_gives_its_question_and_the_answer_without_the_field_name() -> None:
    row = chunk("question: Can I pay with cash?\nanswer: No. Cash is not accepted for any order.", ("Cash?",))
    [candidate] = synth.rule_candidates(row, max_sentences=2)
    assert (candidate.method, candidate.question) == ("faq", "Can I pay with cash?")
    assert candidate.target == "No. Cash is not accepted for any order."


def test_a_heading_becomes_a_question_answered_by_the_first_body_sentences() -> None:
    text = "Validity\n\nA gift card is valid for 3 years. The expiry date is in the email. Balances never expire."
    [candidate] = synth.rule_candidates(chunk(text, ("Gift cards", "Validity"), "Gift cards"), max_sentences=2)
    assert candidate.method == "heading"
    assert candidate.question == "What is the validity (gift cards)?"
    assert candidate.target == "A gift card is valid for 3 years. The expiry date is in the email."


def test_a_question_heading_is_asked_as_written_and_a_later_chunk_of_the_section_asks_nothing() -> None:
    first = chunk("Why is Python slow?\n\nIt is interpreted, not compiled to machine code.", ("Why is Python slow?",))
    later = chunk("Later text of the same section, without its heading.", ("Why is Python slow?",))
    assert [(c.method, c.question) for c in synth.rule_candidates(first, 1)] == [("question-heading",
                                                                                   "Why is Python slow?")]
    assert synth.rule_candidates(later, 1) == []


def test_a_table_row_asks_for_one_field_by_the_row_name_and_copies_that_line() -> None:
    row = chunk("city: Amsterdam\nzone: A\ndelivery_fee_eur: 1.99\ntypical_minutes: 20-30", ("row 1",))
    [candidate] = synth.rule_candidates(row, 2)
    assert candidate.method == "table" and candidate.question.endswith("for city Amsterdam, zone A?")
    assert candidate.target in row.text.splitlines()[2:]
    assert candidate.question.split(" for ")[0].removeprefix("What is the ") in candidate.target.replace("_", " ")


@pytest.mark.parametrize(("output", "expected"), [
    ("1. How long is a gift card valid?\nAnswer: 3 years", "How long is a gift card valid?"),
    ("Question: Can I tip in cash?", "Can I tip in cash?"),
    ("A gift card is valid for 3 years.", None),
    ("What?", None),
])
def test_only_a_line_that_reads_as_a_question_is_taken_from_the_model(output: str, expected: str | None) -> None:
    assert synth.clean_question(output) == expected


def test_the_unanswerable_share_is_of_generated_records_only_and_stable() -> None:
    generated = [data.Record(f"generated question {n}?", f"answer {n}", origin="generated",
                             meta={"chunk_id": f"c{n}", "group": f"c{n}"}) for n in range(400)]
    filed = [data.Record(f"file question {n}?", f"answer {n}") for n in range(100)]
    once = synth.with_unanswerable([*generated, *filed], 0.25, "s")
    assert once == synth.with_unanswerable([*generated, *filed], 0.25, "s")
    unanswerable = [r for r in once if r.output is None]
    assert 0.18 < len(unanswerable) / 400 < 0.32 and all(r.origin == "generated" for r in unanswerable)
    assert all(r.meta["without"] == f"answer {r.prompt.split()[-1][:-1]}" for r in unanswerable)


# --- on a real index (component) --------------------------------------------------------------------------------

@dataclass
class Indexed:
    store: EdgeVectorStore
    embedder: Embedder
    sessions: object
    chunks: list[ScoredChunk]


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Indexed]:
    home = tmp_path_factory.mktemp("synth")
    embedder = embedder_for_tests()
    engine = db.build_engine(f"sqlite:///{home / 'lorag.db'}")
    db.migrate(engine)
    store = EdgeVectorStore(home / "store", "lorag")
    store.ensure_collection(embedder.dim)
    sessions = db.build_sessions(engine)
    indexer = Indexer(sessions=sessions, store=store, embedder=embedder, lease_s=60, owner="t",
                      policy=ChunkingPolicy(chunk_tokens=CHUNK_TOKENS, overlap_tokens=OVERLAP, max_bytes=2_000_000))
    files = {"gift_cards.md": GIFT_CARDS, "tipping.md": TIPPING, "faq.jsonl": "\n".join(map(json.dumps, FAQ)),
             "fees.csv": FEES}
    for name, text in files.items():
        (home / name).write_text(text)
    report = service.submit_files(sessions, service.collect([home / name for name in files]), kb="kb",
                                  audience="public", max_bytes=2_000_000, job_id=None)
    assert {indexer.run(doc_id).status for doc_id in report.queued} == {"indexed"}
    chunks = synth.kb_chunks(sessions, store, embedder, kb="kb", audiences=["public"], chunk_tokens=CHUNK_TOKENS,
                             overlap_tokens=OVERLAP)
    yield Indexed(store, embedder, sessions, chunks)
    store.close()
    engine.dispose()


def task_of(**documents: object) -> TaskSpec:
    return TaskSpec(name="docs", kind="grounded-qa", kb="kb", context_chunks=3,
                    data=Data(documents=Documents(questions="rules", **documents), feedback=False),
                    split=SplitSpec(validation=0.0, test=0.4))


def test_the_chunks_rebuilt_from_the_documents_are_the_indexed_ones(indexed: Indexed) -> None:
    stored = {pid for chunk in indexed.chunks for pid in indexed.store.point_ids(chunk.doc_id)}
    assert {chunk.id for chunk in indexed.chunks} == stored and len(stored) >= 8
    found = Retriever(indexed.store, indexed.embedder).search("gift card valid for 3 years", kb="kb",
                                                             audiences=("public",), top_k=1)
    assert found.chunks[0].id in stored and found.chunks[0].text in {c.text for c in indexed.chunks}


def test_the_round_trip_keeps_a_question_its_chunk_answers_and_drops_one_pinned_to_the_wrong_chunk(
        indexed: Indexed) -> None:
    retriever, task = Retriever(indexed.store, indexed.embedder), task_of()
    validity = next(c for c in indexed.chunks if c.section[-1:] == ("Validity",))
    tipping = next(c for c in indexed.chunks if c.section[-1:] == ("How to tip",))
    right = synth.Candidate("How long is a gift card valid?", "A gift card is valid for 3 years.", validity, "model")
    wrong = synth.Candidate("How long is a gift card valid?", "A gift card is valid for 3 years.", tipping, "model")
    assert synth.round_trips(right, retriever, task, k=1)
    assert not synth.round_trips(wrong, retriever, task, k=3)
    report = synth.SynthReport()
    kept = synth.kept_candidates([right, wrong], retriever, task, task.data.documents, report)
    assert kept == [right]
    assert report.filtered["round_trip"] + report.filtered["duplicate"] == 1


def test_rules_write_questions_for_every_kind_of_chunk_and_the_report_adds_up(indexed: Indexed) -> None:
    retriever, task = Retriever(indexed.store, indexed.embedder), task_of()
    records, report = synth.synthesize(task, indexed.chunks, retriever, indexed.embedder, writer=None)
    methods = {record.meta["method"] for record in records}
    assert {"faq", "heading", "table"} <= set(report.generated)
    assert {"faq", "heading"} <= methods
    assert report.kept == len(records) == sum(report.generated.values()) - sum(report.filtered.values())
    assert all(record.origin == "generated" and record.output in next(
        c.text for c in indexed.chunks if c.id == record.meta["chunk_id"]).replace("answer: ", "")
        for record in records if record.meta["method"] != "table")
    capped, capped_report = synth.synthesize(task_of(max_examples=2), indexed.chunks, retriever, indexed.embedder,
                                             writer=None)
    assert len(capped) == 2 and capped_report.filtered["over_cap"] == len(records) - 2


def test_the_test_split_shares_no_chunk_with_training(indexed: Indexed) -> None:
    task = task_of()
    base = synth.synthesize(task, indexed.chunks, Retriever(indexed.store, indexed.embedder), indexed.embedder,
                            writer=None)[0]
    # Several questions per chunk, as the model and the rules together write them.
    records = [data.Record(f"{r.prompt} (variant {n})", r.output, origin="generated", meta=r.meta)
               for r in base for n in range(4)]
    splits = data.split(records, task.split)
    train_chunks = {r.meta["chunk_id"] for r in splits["train"]}
    test_chunks = {r.meta["chunk_id"] for r in splits["test"]}
    assert train_chunks and test_chunks and not train_chunks & test_chunks
    # A QA file's test question takes its gold section's chunks out of generated training too.
    held_out = [data.Record("How long is a gift card valid?", "3 years", meta={"doc": "gift_cards.md",
                                                                               "section": "Validity"})]
    kept, dropped = synth.without_held_out_chunks(records, held_out, indexed.chunks)
    assert dropped >= 4 and all(r.meta["section"] != "Validity" for r in kept)


def test_an_unanswerable_example_hides_its_source_and_a_same_document_distractor_comes_first(
        indexed: Indexed) -> None:
    task = task_of()
    grounding = GroundingContext(Retriever(indexed.store, indexed.embedder), lambda text: len(text.split()), 1500)
    validity = next(c for c in indexed.chunks if c.section[-1:] == ("Validity",))
    target = "A gift card is valid for 3 years from the date it was bought."
    record = data.Record("How long is a gift card valid?", target, origin="generated",
                         meta={"chunk_id": validity.id, "group": validity.id, "doc": validity.source})
    answered = grounded_example(task, record, grounding)
    assert answered is not None and answered.response.startswith(target.rstrip(".")) and "[" in answered.response
    [hidden] = synth.with_unanswerable([record], 0.999, "s")
    example = grounded_example(task, hidden, grounding)
    assert example is not None and example.response == ABSTENTION
    user = example.messages[-1]["content"]
    assert "valid for 3 years" not in user
    assert user.split("[1] ", 1)[1].startswith("Gift cards"), "the hard distractor is from the same document"


def test_only_a_grounded_qa_task_may_write_questions_from_documents() -> None:
    with pytest.raises(ValueError, match="only a grounded-qa task"):
        TaskSpec(name="tags", kind="chat", data=Data(documents=Documents()))
    task = TaskSpec.model_validate({"name": "docs", "kind": "grounded-qa", "kb": "kb",
                                    "data": {"documents": {"max_examples": 50}}})
    assert task.data.documents is not None and task.data.documents.questions == "rules"
    assert not task.data.sources, "documents alone are a complete data section"
