"""`build_*` factories for answering: settings sections in, plain constructor arguments out. Generators are
built by `serving.factory`."""

from __future__ import annotations

from lorag.core import models
from lorag.core.settings import Settings
from lorag.ingest.embed import Embedder
from lorag.ingest.store import VectorStore
from lorag.retrieval.answer import Answerer, AnswerPolicy
from lorag.retrieval.search import CrossEncoderReranker, Reranker, Retriever
from lorag.serving.protocol import Generator


def build_reranker(settings: Settings) -> Reranker | None:
    if not settings.retrieval.reranker:
        return None
    ref = models.resolve(settings.retrieval.reranker, settings.models_dir)
    return CrossEncoderReranker(ref.location, models.torch_device(settings.models.device), ref.local)


def build_answerer(settings: Settings, store: VectorStore, embedder: Embedder, generator: Generator) -> Answerer:
    section = settings.retrieval
    policy = AnswerPolicy(top_k=section.top_k, mode=section.mode, min_relevance=section.min_relevance,
                          context_tokens=section.context_tokens, max_new_tokens=settings.generator.max_new_tokens,
                          attribute_uncited=section.attribute_uncited, second_look=section.second_look,
                          second_look_relevance=section.second_look_relevance)
    retriever = Retriever(store, embedder, build_reranker(settings))
    return Answerer(retriever, generator, embedder, policy, models.served_name(settings.models.base))
