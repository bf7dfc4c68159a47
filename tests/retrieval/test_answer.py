"""Unit tests of `Answerer` around the model: the relevance floor, the retrieval mode it asks for, the prompt it
sends, and what it makes of the model's draft. Retrieval is a stand-in; the model is the suite's fake; the
verifier is the real one, over bag-of-words vectors (texts that share words are near)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from lorag.core.errors import NotFound
from lorag.retrieval.answer import Answerer, AnswerPolicy
from lorag.retrieval.search import Retrieved
from lorag.retrieval.types import ABSTENTION, ScoredChunk
from tests.fakes import FakeGenerator

REFUNDS = ScoredChunk("c1", 0.8, "refunds", "support", "public", "Refunds", "refunds.md", ("Refunds",), None, 0, 60,
                      "Refunds reach your card within 5 to 10 business days of approval.")
FACT = "Refunds reach your card within 5 to 10 business days of approval"


class Words:
    """Bag-of-words unit vectors."""

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        vectors = np.zeros((len(texts), 128), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().replace(".", " ").split():
                vectors[row, sum(map(ord, word)) % 128] += 1
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-9)


class Search:
    """Returns `chunks` with relevance `best` (and each chunk's `cosines`); records every search's arguments."""

    def __init__(self, chunks: list[ScoredChunk], best: float, cosines: dict[str, float] | None = None) -> None:
        self.chunks, self.best, self.cosines = chunks, best, cosines
        self.asked: list[dict[str, Any]] = []

    def search(self, query: str, **options: Any) -> Retrieved:
        self.asked.append({"query": query, **options})
        return Retrieved(self.chunks, self.best, 0.0, self.cosines, beyond=0.0)


def answerer(reply: str, *, chunks: list[ScoredChunk] = [REFUNDS], best: float = 0.8,  # noqa: B006 - never mutated
             min_relevance: float = 0.3, mode: str = "hybrid", cosines: dict[str, float] | None = None,
             ) -> tuple[Answerer, Search, FakeGenerator]:
    search, model = Search(chunks, best, cosines), FakeGenerator(reply=reply, adapters={"support@1": None})  # type: ignore[dict-item]
    policy = AnswerPolicy(top_k=4, mode=mode, min_relevance=min_relevance, context_tokens=800,  # type: ignore[arg-type]
                          max_new_tokens=64)
    return Answerer(search, model, Words(), policy, "base"), search, model  # type: ignore[arg-type]


def test_below_the_relevance_floor_the_model_is_never_asked() -> None:
    answering, _search, model = answerer(f"{FACT} [1].", best=0.29)
    result = answering.ask("How long do refunds take?", kb="support", audiences=("public",))
    assert result.abstained and result.handoff and result.text == ABSTENTION
    assert model.calls == [] and result.sources == () and result.related == ()


FILTERS = ScoredChunk("c2", 0.9, "filters", "support", "public", "Filters", "filters.md", ("Filters",), None, 0, 60,
                      "Tap Filters above the restaurant list and choose one or more labels.")


def test_a_chunk_below_the_relevance_floor_is_never_shown_so_a_sentence_copied_from_it_cannot_pass() -> None:
    # A sparse hit on a shared word ("list"), ranked first: copied and cited, the check would find it in its source.
    copied = "Tap Filters above the restaurant list and choose one or more labels [1]."
    answering, _search, model = answerer(copied, chunks=[FILTERS, REFUNDS], best=0.8,
                                         cosines={"c1": 0.8, "c2": 0.2})
    result = answering.ask("How do you remove duplicates from a list?", kb="support", audiences=("public",))
    assert result.abstained and [chunk.id for chunk in result.sources] == ["c1"]
    (call,) = model.calls
    assert FILTERS.text not in call.messages[-1]["content"] and REFUNDS.text in call.messages[-1]["content"]
    shown, _search, _model = answerer(copied, chunks=[FILTERS, REFUNDS], best=0.8, cosines={"c1": 0.8, "c2": 0.4})
    assert not shown.ask("Filters?", kb="support", audiences=("public",)).abstained  # above the floor it is a source


def test_when_every_retrieved_chunk_is_below_the_floor_the_model_is_never_asked() -> None:
    answering, _search, model = answerer(f"{FACT} [1].", chunks=[FILTERS, REFUNDS], best=0.8,
                                         cosines={"c3": 0.8, "c1": 0.2, "c2": 0.1})  # the best one was reranked out
    assert answering.ask("Refunds?", kb="support", audiences=("public",)).abstained and model.calls == []


def test_nothing_retrieved_is_an_abstention_without_the_model() -> None:
    answering, _search, model = answerer(f"{FACT} [1].", chunks=[], best=0.0)
    assert answering.ask("Refunds?", kb=None, audiences=("public",)).abstained and model.calls == []


def test_the_policy_decides_the_retrieval_mode_and_depth_and_the_caller_the_audiences() -> None:
    answering, search, _model = answerer(f"{FACT} [1].", mode="sparse")
    answering.ask("How long do refunds take?", kb="support", audiences=("public", "internal"))
    assert search.asked == [{"query": "How long do refunds take?", "kb": "support",
                             "audiences": ("public", "internal"), "top_k": 4, "mode": "sparse"}]


def test_a_supported_sentence_is_answered_with_a_citation_of_its_chunk() -> None:
    answering, _search, model = answerer(f"{FACT} [1].")
    result = answering.ask("How long do refunds take?", kb="support", audiences=("public",), model="support@1")
    assert not result.abstained and result.text == f"{FACT} [1]."
    assert [citation.chunk_id for citation in result.citations] == ["c1"]
    (call,) = model.calls
    assert call.model == "support@1" and call.max_new_tokens == 64
    assert REFUNDS.text in call.messages[-1]["content"]  # the chunk is in the prompt, numbered


def test_a_draft_with_nothing_the_sources_support_abstains_and_offers_the_passages_read() -> None:
    answering, _search, _model = answerer("The moon is made of green cheese [1].")
    result = answering.ask("How long do refunds take?", kb="support", audiences=("public",))
    assert result.abstained and result.citations == ()
    assert result.draft == "The moon is made of green cheese [1]."
    assert [chunk.doc_id for chunk in result.related] == ["refunds"]


def test_streaming_gives_the_same_verified_answer_as_asking() -> None:
    answering, _search, _model = answerer(f"{FACT} [1]. {FACT} [1].")
    asked = answering.ask("How long do refunds take?", kb="support", audiences=("public",))
    *deltas, final = answering.ask_stream("How long do refunds take?", kb="support", audiences=("public",))
    assert "".join(deltas) == final.text == asked.text == f"{FACT} [1]."  # the repeat ends the draft


def test_a_model_that_abstains_is_asked_once_more_with_the_abstention_barred() -> None:
    answering, _search, model = answerer(ABSTENTION)
    model.avoiding = f"{FACT} [1]."
    result = answering.ask("How long do refunds take?", kb="support", audiences=("public",))
    assert not result.abstained and result.text == f"{FACT} [1]." and result.draft == f"{FACT} [1]."
    assert [call.avoid for call in model.calls] == [None, ABSTENTION]
    *deltas, final = answering.ask_stream("How long do refunds take?", kb="support", audiences=("public",))
    assert "".join(deltas) == final.text == result.text  # the first draft's abstention never went out
    assert [call.avoid for call in model.calls[2:]] == [None, ABSTENTION]


def test_the_second_look_still_abstains_when_its_answer_is_unsupported() -> None:
    answering, _search, model = answerer(ABSTENTION)
    model.avoiding = "The moon is made of green cheese [1]."
    for ask in (answering.ask, lambda *a, **k: list(answering.ask_stream(*a, **k))[-1]):
        result = ask("How long do refunds take?", kb="support", audiences=("public",))
        assert result.abstained and result.text == ABSTENTION and result.citations == ()
    *deltas, _final = answering.ask_stream("How long do refunds take?", kb="support", audiences=("public",))
    assert deltas == [ABSTENTION]


def test_no_second_look_when_it_is_off_or_the_model_answered() -> None:
    answering, _search, model = answerer(ABSTENTION)
    model.avoiding = f"{FACT} [1]."
    answering.policy = replace(answering.policy, second_look=False)
    assert answering.ask("How long do refunds take?", kb="support", audiences=("public",)).abstained
    answering, _search, model = answerer("The moon is made of green cheese [1].")  # rejected, but not an abstention
    model.avoiding = f"{FACT} [1]."
    assert answering.ask("How long do refunds take?", kb="support", audiences=("public",)).abstained
    assert [call.avoid for call in model.calls] == [None]


def test_no_second_look_when_retrieval_found_nothing_clearly_relevant() -> None:
    """Above the floor that lets the model read at all (0.3 here), below the one a second look needs (0.45)."""
    answering, _search, model = answerer(ABSTENTION, best=0.44)
    model.avoiding = f"{FACT} [1]."
    assert answering.ask("How long do refunds take?", kb="support", audiences=("public",)).abstained
    assert list(answering.ask_stream("How long do refunds take?", kb="support", audiences=("public",)))[-1].abstained
    assert [call.avoid for call in model.calls] == [None, None]
    answering.policy = replace(answering.policy, second_look_relevance=0.44)
    assert not answering.ask("How long do refunds take?", kb="support", audiences=("public",)).abstained


def test_an_unknown_model_is_refused_even_when_retrieval_would_abstain() -> None:
    answering, _search, _model = answerer("", best=0.0)
    with pytest.raises(NotFound, match="unknown model"):
        answering.ask("Refunds?", kb=None, audiences=("public",), model="nope@9")
