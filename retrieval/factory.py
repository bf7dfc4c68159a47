"""`build_*` factories for answering: settings sections in, plain constructor arguments out."""

from __future__ import annotations

from lorag.core import models
from lorag.core.settings import Settings
from lorag.ingest.embed import Embedder
from lorag.ingest.store import VectorStore
from lorag.retrieval.answer import Answerer, AnswerPolicy
from lorag.retrieval.batching import BatchingGenerator
from lorag.retrieval.generate import Generator, TransformersGenerator, build_generator
from lorag.retrieval.search import CrossEncoderReranker, Reranker, Retriever


def build_answer_generator(settings: Settings) -> Generator:
    """The in-process model (embedded default) or a client of an OpenAI-compatible server such as vLLM."""
    section = settings.generator
    ref = models.resolve(settings.models.base, settings.models_dir)
    if section.backend == "transformers":
        model, tokenizer = models.load_causal_lm(ref, settings.models.device)
    else:
        from transformers import AutoTokenizer

        model, tokenizer = None, AutoTokenizer.from_pretrained(ref.location, local_files_only=ref.local)
    api_key = section.api_key.get_secret_value() if section.api_key else None
    generator = build_generator(section.backend, model=model, tokenizer=tokenizer,
                                base_name=models.served_name(settings.models.base), adapters={},
                                base_url=section.base_url, api_key=api_key, timeout_s=section.timeout_s,
                                repetition_penalty=section.repetition_penalty)
    if isinstance(generator, TransformersGenerator) and section.batch_max > 1:
        # A server (vLLM) batches concurrent requests itself; the in-process model needs this in front of it.
        return BatchingGenerator(generator, max_batch=section.batch_max, max_wait_s=section.batch_wait_s)
    return generator


def build_reranker(settings: Settings) -> Reranker | None:
    if not settings.retrieval.reranker:
        return None
    ref = models.resolve(settings.retrieval.reranker, settings.models_dir)
    return CrossEncoderReranker(ref.location, models.torch_device(settings.models.device), ref.local)


def build_answerer(settings: Settings, store: VectorStore, embedder: Embedder, generator: Generator) -> Answerer:
    section = settings.retrieval
    policy = AnswerPolicy(top_k=section.top_k, mode=section.mode, min_relevance=section.min_relevance,
                          context_tokens=section.context_tokens, max_new_tokens=settings.generator.max_new_tokens,
                          attribute_uncited=section.attribute_uncited)
    retriever = Retriever(store, embedder, build_reranker(settings))
    return Answerer(retriever, generator, embedder, policy, models.served_name(settings.models.base))
