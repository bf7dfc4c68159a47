"""A question in, a cited answer out: search → build_prompt → Generator → verify citations.

When retrieval finds nothing relevant the model is not asked at all; when the model's answer has no
sentence a cited source supports, the caller gets the abstention (with `handoff`) instead of the answer.
Streaming sends the model's text as it comes, then a final result whose text and citations are the
verified ones: a client shows the final text in place of the streamed draft.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from core.errors import NotFound
from ingest.embed import Embedder
from retrieval.citations import LEXICAL_THRESHOLD, SEMANTIC_THRESHOLD, verify
from retrieval.generate import Generator
from retrieval.prompt import build_prompt, condense_query
from retrieval.search import Mode, Retriever
from retrieval.types import ABSTENTION, Citation, Prompt, ScoredChunk

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Timings:
    retrieval_s: float
    prompt_s: float
    generation_s: float
    verification_s: float
    total_s: float
    first_token_s: float | None = None


@dataclass(frozen=True)
class AnswerResult:
    text: str
    citations: tuple[Citation, ...]
    abstained: bool
    handoff: bool
    model: str
    sources: tuple[ScoredChunk, ...]
    timings: Timings
    prompt_tokens: int = 0
    completion_tokens: int = 0
    draft: str = ""  # the model's own text, before verification


@dataclass(frozen=True)
class AnswerPolicy:
    top_k: int
    mode: Mode
    min_relevance: float
    context_tokens: int
    max_new_tokens: int
    attribute_uncited: bool = True


@dataclass(frozen=True)
class _Planned:
    prompt: Prompt
    started: float
    retrieval_s: float
    prompt_s: float


class Answerer:
    def __init__(self, retriever: Retriever, generator: Generator, embedder: Embedder, policy: AnswerPolicy,
                 base_model: str) -> None:
        self.retriever = retriever
        self.generator = generator
        self.similarity = cosine_similarity(embedder)
        self.policy = policy
        self.base_model = base_model

    def ask(self, question: str, *, kb: str | None, audiences: tuple[str, ...],
            history: Sequence[dict[str, str]] = (), model: str | None = None) -> AnswerResult:
        planned = self._plan(question, kb, audiences, history, model)
        if isinstance(planned, AnswerResult):
            return planned
        started = time.perf_counter()
        generation = self.generator.generate(planned.prompt.messages, model=model,
                                             max_new_tokens=self.policy.max_new_tokens)
        return self._finish(planned, generation.text, model, time.perf_counter() - started, None,
                            generation.completion_tokens)

    def ask_stream(self, question: str, *, kb: str | None, audiences: tuple[str, ...],
                   history: Sequence[dict[str, str]] = (), model: str | None = None) -> Iterator[str | AnswerResult]:
        """Text deltas as the model writes them, then the verified AnswerResult."""
        planned = self._plan(question, kb, audiences, history, model)
        if isinstance(planned, AnswerResult):
            yield planned.text
            yield planned
            return
        started, first, parts = time.perf_counter(), None, []
        for delta in self.generator.stream(planned.prompt.messages, model=model,
                                           max_new_tokens=self.policy.max_new_tokens):
            first = first if first is not None else time.perf_counter() - planned.started
            parts.append(delta)
            yield delta
        draft = "".join(parts)
        yield self._finish(planned, draft, model, time.perf_counter() - started, first,
                           self.generator.count_tokens(draft))

    def _plan(self, question: str, kb: str | None, audiences: tuple[str, ...],
              history: Sequence[dict[str, str]], model: str | None) -> _Planned | AnswerResult:
        started = time.perf_counter()
        check_model(self.generator, model)
        query = condense_query(question, history)
        found = self.retriever.search(query, kb=kb, audiences=audiences, top_k=self.policy.top_k,
                                      mode=self.policy.mode)
        if not found.chunks or found.best_dense < self.policy.min_relevance:
            logger.info("abstained before generation: best relevance %.3f < %.3f", found.best_dense,
                        self.policy.min_relevance)
            timings = Timings(found.seconds, 0.0, 0.0, 0.0, time.perf_counter() - started)
            return AnswerResult(ABSTENTION, (), True, True, self.base_model, (), timings)
        built = time.perf_counter()
        prompt = build_prompt(question, found.chunks, count_tokens=self.generator.count_tokens,
                              budget_tokens=self.policy.context_tokens, history=history)
        return _Planned(prompt, started, found.seconds, time.perf_counter() - built)

    def _finish(self, planned: _Planned, draft: str, model: str | None, generation_s: float,
                first_token_s: float | None, completion_tokens: int) -> AnswerResult:
        checked = time.perf_counter()
        verified = verify(draft, planned.prompt.sources, similarity=self.similarity,
                          lexical_threshold=LEXICAL_THRESHOLD, semantic_threshold=SEMANTIC_THRESHOLD,
                          attribute_uncited=self.policy.attribute_uncited)
        now = time.perf_counter()
        timings = Timings(planned.retrieval_s, planned.prompt_s, generation_s, now - checked, now - planned.started,
                          first_token_s)
        result = AnswerResult(verified.text, verified.citations, verified.abstained, verified.handoff,
                              model or self.base_model, planned.prompt.sources, timings,
                              planned.prompt.prompt_tokens, completion_tokens, draft)
        log_answer(result)
        return result


def check_model(generator: Generator, model: str | None) -> None:
    """An unknown model is an error even when retrieval would abstain before generating."""
    if model is not None:
        available = generator.models()
        if model not in available:
            raise NotFound(f"unknown model {model!r}; available: {', '.join(available)}", param="model")


def cosine_similarity(embedder: Embedder) -> Callable[[list[str], list[str]], list[float]]:
    def similarity(left: list[str], right: list[str]) -> list[float]:
        if not left:
            return []
        vectors = embedder.embed_batch([*left, *right])
        a, b = vectors[: len(left)], vectors[len(left):]
        return [float(x) for x in np.sum(a * b, axis=1)]

    return similarity


def log_answer(result: AnswerResult) -> None:
    chunks = ", ".join(f"{chunk.id[:8]}:{chunk.score:.3f}" for chunk in result.sources)
    logger.info("answer model=%s abstained=%s citations=%d chunks=[%s] latency=%.2fs prompt_tokens=%d "
                "completion_tokens=%d", result.model, result.abstained, len(result.citations), chunks,
                result.timings.total_s, result.prompt_tokens, result.completion_tokens)
