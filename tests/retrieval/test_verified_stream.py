"""Streaming shows verified text only: the deltas join to the final answer's text, markers renumbered as they go,
for a scripted model that writes junk beside supported sentences, loops, or abstains. Ingestion, the store,
retrieval, the embedder and the verifier are the real ones; only the model is scripted.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from lorag.core import db
from lorag.ingest import service
from lorag.ingest.pipeline import ChunkingPolicy, Indexer
from lorag.ingest.store import EdgeVectorStore
from lorag.retrieval.answer import Answerer, AnswerPolicy, AnswerResult, VerifiedText
from lorag.retrieval.search import Retriever
from lorag.retrieval.sentences import sentence_spans
from lorag.retrieval.types import ABSTENTION, VerifiedAnswer
from lorag.serving.protocol import Messages
from tests.fakes import FakeGenerator
from tests.ingest.test_pipeline import embedder_for_tests

FEES = ("# Fees\n\nThe service fee is 5% of the food subtotal, with a minimum of €0.99 and a maximum of €3.99 "
        "per order.\n")
DELIVERY = "# Delivery\n\nCouriers deliver most orders within 35 minutes of the restaurant accepting them.\n"
FEE = "The service fee is 5% of the food subtotal"
COURIER = "Couriers deliver most orders within 35 minutes"


def ScriptedModel(script: str, finish_reason: str = "stop") -> FakeGenerator:  # noqa: N802
    """Writes `script` a few characters at a time; `{fees}` and `{delivery}` become those sources' numbers."""

    def text(messages: Messages, _model: str | None) -> str:
        numbers = {title.lower(): n for n, title in re.findall(r"^\[(\d+)\] (\w+)", messages[-1]["content"], re.M)}
        return script.format(**numbers)

    return FakeGenerator(reply=text, name="scripted", finish_reason=finish_reason)  # pieces that split words


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EdgeVectorStore, object]]:
    home = tmp_path_factory.mktemp("stream")
    embedder = embedder_for_tests()
    engine = db.build_engine(f"sqlite:///{home / 'lorag.db'}")
    db.migrate(engine)
    vectors = EdgeVectorStore(home / "store", "lorag")
    vectors.ensure_collection(embedder.dim)
    indexer = Indexer(sessions=db.build_sessions(engine), store=vectors, embedder=embedder, lease_s=60, owner="t",
                      policy=ChunkingPolicy(chunk_tokens=200, overlap_tokens=32, max_bytes=2_000_000))
    for name, text in (("fees.md", FEES), ("delivery.md", DELIVERY)):
        (home / name).write_text(text)
        report = service.submit_files(indexer.sessions, service.collect([home / name]), kb="support",
                                      audience="public", max_bytes=2_000_000, job_id=None)
        assert [indexer.run(doc_id).status for doc_id in report.queued] == ["indexed"]
    yield vectors, embedder
    vectors.close()
    engine.dispose()


def answerer(store: tuple, model: FakeGenerator, max_new_tokens: int = 200, min_relevance: float = 0.1) -> Answerer:
    vectors, embedder = store
    policy = AnswerPolicy(top_k=6, mode="hybrid", min_relevance=min_relevance, context_tokens=1600,
                          max_new_tokens=max_new_tokens)
    return Answerer(Retriever(vectors, embedder), model, embedder, policy, "base")  # type: ignore[arg-type]


def streamed(answering: Answerer, question: str) -> tuple[list[str], AnswerResult]:
    events = list(answering.ask_stream(question, kb="support", audiences=("public",)))
    *deltas, final = events
    assert isinstance(final, AnswerResult) and all(isinstance(delta, str) for delta in deltas)
    return deltas, final  # type: ignore[return-value]


QUESTION = "How is the service fee calculated, and how fast is delivery?"
JUNK_AND_FACTS = ("The moon is made of cheese [{delivery}]. {fee} [{fees}]. Ignore that [9]. {courier} [{delivery}]. "
                  "Also the fee is 50% of everything [{fees}].")


def test_joined_deltas_are_the_verified_answer_with_markers_renumbered(store: tuple) -> None:
    script = JUNK_AND_FACTS.format(fee=FEE, courier=COURIER, fees="{fees}", delivery="{delivery}")
    deltas, final = streamed(answerer(store, ScriptedModel(script)), QUESTION)
    assert "".join(deltas) == final.text
    assert final.text == f"{FEE} [1]. {COURIER} [2]."  # numbers in order of first use, junk never shown
    assert [citation.source for citation in final.citations] == ["fees.md", "delivery.md"]
    assert len(deltas) == 2 and final.finish_reason == "stop" and not final.abstained
    assert final.timings.first_sentence_s is not None and final.timings.first_token_s is not None
    assert final.timings.first_sentence_s >= final.timings.first_token_s


def test_streamed_and_not_streamed_answers_are_the_same(store: tuple) -> None:
    script = JUNK_AND_FACTS.format(fee=FEE, courier=COURIER, fees="{fees}", delivery="{delivery}")
    answering = answerer(store, ScriptedModel(script))
    _, final = streamed(answering, QUESTION)
    asked = answering.ask(QUESTION, kb="support", audiences=("public",))
    assert (asked.text, asked.citations) == (final.text, final.citations)


def test_a_loop_is_stopped_at_the_first_repeated_sentence(store: tuple) -> None:
    """The measured failure: one sentence nine times, cut mid-sentence at the token cap."""
    model = ScriptedModel(f"{FEE} [{{fees}}]. " * 9 + "The service")
    deltas, final = streamed(answerer(store, model, max_new_tokens=len((f"{FEE} [1]. " * 9).split()) + 2), QUESTION)
    assert "".join(deltas) == final.text == f"{FEE} [1]."
    assert final.finish_reason == "stop"  # the loop was stopped, the answer is complete
    assert model.closed == [True]  # the model was told to stop
    assert final.draft.count(FEE) < 9


def test_a_sentence_cut_off_by_the_token_cap_is_dropped(store: tuple) -> None:
    script = f"{COURIER} [{{delivery}}]. {FEE}"  # the cap falls inside a supported sentence
    model = ScriptedModel(script, finish_reason="length")
    answering = answerer(store, model, max_new_tokens=len(script.split()))
    deltas, final = streamed(answering, QUESTION)
    assert "".join(deltas) == final.text == f"{COURIER} [1]."
    assert final.finish_reason == "length"
    asked = answering.ask(QUESTION, kb="support", audiences=("public",))
    assert (asked.text, asked.finish_reason) == (final.text, "length")


def test_an_abstention_streams_the_abstention_text(store: tuple) -> None:
    for script in (f"{ABSTENTION}", f"The moon is made of cheese [{{fees}}]. {ABSTENTION} {FEE} [{{fees}}]."):
        deltas, final = streamed(answerer(store, ScriptedModel(script)), QUESTION)
        assert "".join(deltas) == final.text == ABSTENTION
        assert final.abstained and final.handoff and final.citations == ()


def test_what_is_out_stays_out_when_the_model_abstains_later(store: tuple) -> None:
    deltas, final = streamed(answerer(store, ScriptedModel(f"{FEE} [{{fees}}]. {ABSTENTION}")), QUESTION)
    assert "".join(deltas) == final.text == f"{FEE} [1]."
    assert not final.abstained


def _checked(text: str) -> VerifiedAnswer:
    """A verifier for VerifiedText alone: a sentence is supported when it mentions 'fee'; list numbers stay."""
    kept = [text[start:end] for start, end in sentence_spans(text)
            if "fee" in text[start:end] or not re.search(r"[a-z]", text[start:end])]
    if not kept:
        return VerifiedAnswer(ABSTENTION, (), True, True, (), ())
    return VerifiedAnswer(" ".join(kept), (), False, False, (), ())


def test_text_waits_for_markers_that_may_still_follow_a_sentence() -> None:
    text = VerifiedText(_checked)
    assert text.feed("The fee is 5%.") == ""  # more may follow: a marker, or "5%.5"
    assert text.feed(" [") == ""  # a marker on its way belongs to the sentence before
    assert text.feed("1] Then") == "The fee is 5%. [1]"
    assert text.feed(" the fee is capped.") == ""
    assert text.finish(truncated=False) == " Then the fee is capped."
    assert text.answer.text == "The fee is 5%. [1] Then the fee is capped."


# The real model's draft for "How is the service fee calculated?" (192 tokens, base model, greedy).
NUMBERED_LOOP = ("The service fee is calculated based on the following steps:\n\n1. The service fee is set by the "
                 "service provider.\n"
                 + "".join(f"{n}. The service provider sets the service fee based on the number of orders.\n"
                           for n in range(2, 11))
                 + "11. The service provider sets")


def test_a_numbered_list_that_loops_stops_before_the_repeated_item() -> None:
    text = VerifiedText(_checked)
    shown = [text.feed(NUMBERED_LOOP[start:start + 5]) for start in range(0, len(NUMBERED_LOOP), 5)]
    shown.append(text.finish(truncated=True))
    assert text.looping and not text.truncated
    assert "".join(shown) == text.answer.text == (
        "The service fee is calculated based on the following steps: 1. The service fee is set by the service "
        "provider. 2. The service provider sets the service fee based on the number of orders.")


def test_an_abstention_offers_the_retrieved_documents_as_related_articles_and_an_answer_does_not(
        store: tuple) -> None:
    abstained = answerer(store, ScriptedModel(ABSTENTION)).ask(QUESTION, kb="support", audiences=("public",))
    related = abstained.related
    assert abstained.abstained and related
    assert sorted(chunk.source for chunk in related) == ["delivery.md", "fees.md"]  # one passage per document
    answered = answerer(store, ScriptedModel(f"{FEE} [{{fees}}].")).ask(QUESTION, kb="support",
                                                                        audiences=("public",))
    assert not answered.abstained and answered.related == ()


def test_a_question_nothing_relevant_was_found_for_offers_no_articles(store: tuple) -> None:
    result = answerer(store, ScriptedModel(ABSTENTION), min_relevance=0.99).ask(
        "Do you deliver by drone?", kb="support", audiences=("public",))
    assert result.abstained and result.related == ()
