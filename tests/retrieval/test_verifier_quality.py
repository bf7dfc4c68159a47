"""How well `verify` tells supported sentences from junk, measured on hand-labelled pairs over real chunks.

tests/retrieval/data/verifier_pairs.jsonl holds (sentence, chunk, supported?) pairs built from the sample
knowledge bases and the Python FAQ (see build_verifier_pairs.py there). Each sentence is verified as the
last sentence of an answer that cites the chunk as its only source, after the answer text the pair gives as
context, with the settings that ship (the packaged MiniLM embedder, the module's thresholds, unmarked
sentences attributed). A supported sentence is a positive; precision is the share of kept sentences that
are supported, recall the share of supported sentences kept.

The thresholds were chosen on the dev half only; the held-out half is the honest number. Measured
(288 pairs, 144 per half): dev precision 1.000 recall 0.873; held-out precision 0.930 recall 0.883; all
precision 0.964 recall 0.878. Every junk kind (heading echoes, title-only claims, "The answer is ...",
"The source is ...", repeats, cut-off fragments, bare "Yes") is dropped in both halves. What leaks on the
held-out half are four claims on the chunk's topic that it does not make ("the tip is charged separately
after the delivery" against "the tip is charged together with your order"): grounding by word overlap and
MiniLM cosine cannot tell them from rewordings. So the held-out precision target of 0.95 is not met; its
test is an expected failure (strict, so it reports when it starts passing) beside a floor at today's level.

    .venv/bin/python -m pytest tests/retrieval/test_verifier_quality.py -q -s   # prints the scores by kind
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from lorag.ingest.embed import Embedder
from lorag.retrieval.citations import LEXICAL_THRESHOLD, SEMANTIC_THRESHOLD, split_answer, verify
from lorag.retrieval.types import ScoredChunk

PAIRS = Path(__file__).with_name("data") / "verifier_pairs.jsonl"
Similarity = Callable[[list[str], list[str]], list[float]]


@dataclass(frozen=True)
class Pair:
    id: int
    split: str
    kind: str
    supported: bool
    sentence: str
    context: str
    chunk: ScoredChunk


@dataclass(frozen=True)
class Scores:
    precision: float
    recall: float
    kept: Counter[str]
    total: Counter[str]


def load_pairs() -> list[Pair]:
    pairs = []
    for line in PAIRS.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        source = row["chunk"]
        chunk = ScoredChunk(id=f"chunk-{row['id']}", score=0.5, doc_id=source["source"], kb="kb", audience="public",
                            title=source["title"], source=source["source"], section=tuple(source["section"]),
                            page=None, start=0, end=len(source["text"]), text=source["text"])
        pairs.append(Pair(row["id"], row["split"], row["kind"], row["supported"], row["sentence"], row["context"],
                          chunk))
    return pairs


def shown_sentences(answer: str, chunk: ScoredChunk, similarity: Similarity | None) -> int:
    """How many sentences of `answer` the user sees once it is verified against `chunk` as source [1]."""
    if not answer.strip():
        return 0
    result = verify(answer, [chunk], similarity=similarity, lexical_threshold=LEXICAL_THRESHOLD,
                    semantic_threshold=SEMANTIC_THRESHOLD, attribute_uncited=True)
    return 0 if result.abstained else len(split_answer(result.text))


def kept(pair: Pair, similarity: Similarity | None) -> bool:
    """Whether the pair's sentence survives: verifying it after its context shows one sentence more."""
    before = shown_sentences(pair.context, pair.chunk, similarity)
    return shown_sentences(f"{pair.context} {pair.sentence}".strip(), pair.chunk, similarity) > before


def score(pairs: Sequence[Pair], decisions: Sequence[bool]) -> Scores:
    true_positive = sum(d and p.supported for p, d in zip(pairs, decisions, strict=True))
    precision = true_positive / max(1, sum(decisions))
    recall = true_positive / max(1, sum(p.supported for p in pairs))
    kept_by_kind = Counter(p.kind for p, d in zip(pairs, decisions, strict=True) if d)
    return Scores(precision, recall, kept_by_kind, Counter(p.kind for p in pairs))


def report(name: str, scores: Scores) -> str:
    kinds = ", ".join(f"{kind} {scores.kept[kind]}/{total}" for kind, total in sorted(scores.total.items()))
    return f"{name}: precision {scores.precision:.3f} recall {scores.recall:.3f} (kept/total: {kinds})"


@dataclass
class RememberingEmbedder:
    """The packaged embedder, embedding each distinct text once: pairs share chunks and contexts."""

    embedder: Embedder
    vectors: dict[str, np.ndarray]

    def embed_batch(self, texts: list[str]) -> np.ndarray:
        missing = [text for text in dict.fromkeys(texts) if text not in self.vectors]
        if missing:
            self.vectors.update(zip(missing, self.embedder.embed_batch(missing), strict=True))
        return np.stack([self.vectors[text] for text in texts])


@pytest.fixture(scope="module")
def cosine() -> Similarity:
    """The similarity the answerer ships: the packaged embedder behind `cosine_similarity`."""
    from lorag.retrieval.answer import cosine_similarity
    from tests.ingest.test_pipeline import embedder_for_tests

    return cosine_similarity(RememberingEmbedder(embedder_for_tests(), {}))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def decisions(cosine: Similarity) -> dict[int, bool]:
    return {pair.id: kept(pair, cosine) for pair in load_pairs()}


def test_the_labelled_set_is_large_and_covers_every_kind_in_both_halves() -> None:
    pairs = load_pairs()
    assert len(pairs) >= 200
    for half in ("dev", "heldout"):
        kinds = {p.kind for p in pairs if p.split == half}
        assert kinds == {p.kind for p in pairs}, half
    assert all(p.sentence not in p.chunk.title for p in pairs if p.kind == "extractive")


def scores_on(half: str, decisions: dict[int, bool]) -> Scores:
    pairs = [p for p in load_pairs() if half in ("all", p.split)]
    scores = score(pairs, [decisions[p.id] for p in pairs])
    print(report(half, scores))
    return scores


@pytest.mark.slow
@pytest.mark.parametrize("half", [
    "dev",
    pytest.param("heldout", marks=pytest.mark.xfail(strict=True, reason=(
        "held-out precision is 0.930: four same-topic claims the chunk does not make pass the overlap and "
        "MiniLM checks; see the module docstring"))),
    "all",
])
def test_precision_at_least_095_at_recall_at_least_080(decisions: dict[int, bool], half: str) -> None:
    scores = scores_on(half, decisions)
    assert scores.precision >= 0.95 and scores.recall >= 0.80, report(half, scores)


@pytest.mark.slow
def test_held_out_scores_do_not_fall_below_todays(decisions: dict[int, bool]) -> None:
    scores = scores_on("heldout", decisions)
    assert scores.precision >= 0.92 and scores.recall >= 0.85, report("heldout", scores)


@pytest.mark.slow
def test_no_junk_kind_gets_through(decisions: dict[int, bool]) -> None:
    junk = ("heading_echo", "title_only", "answer_is", "source_echo", "repeat", "truncated", "no_claim")
    leaked = [p.sentence for p in load_pairs() if p.kind in junk and decisions[p.id]]
    assert leaked == []
