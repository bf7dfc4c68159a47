"""`build_*` factories: settings sections in, plain constructor arguments out."""

from __future__ import annotations

import os
import socket
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session, sessionmaker

from lorag.core.settings import Settings
from lorag.ingest.embed import Embedder
from lorag.ingest.pipeline import ChunkingPolicy, Indexer
from lorag.ingest.store import VectorStore, build_vector_store
from lorag.ingest.worker import IngestQueue, build_huey

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


def build_store(settings: Settings) -> VectorStore:
    section = settings.store
    api_key = section.api_key.get_secret_value() if section.api_key else None
    return build_vector_store(section.backend, settings.store_dir, section.url, api_key, section.collection,
                              min_free_bytes=section.min_free_mb << 20)


def build_embedder(settings: Settings, model: SentenceTransformer) -> Embedder:
    return Embedder(model, batch_size=settings.ingest.embed_batch)


def load_embedder(settings: Settings) -> Embedder:
    """The configured embedder (`LORAG_MODELS__EMBEDDER`), loaded on the configured device."""
    from lorag.core import models

    ref = models.resolve(settings.models.embedder, settings.models_dir)
    return build_embedder(settings, models.load_embedder(ref, settings.models.device))


def build_indexer(settings: Settings, sessions: sessionmaker[Session], store: VectorStore,
                  embedder: Embedder) -> Indexer:
    section = settings.ingest
    policy = ChunkingPolicy(section.chunk_tokens, section.overlap_tokens, section.max_bytes)
    owner = f"{socket.gethostname()}:{os.getpid()}"
    return Indexer(sessions=sessions, store=store, embedder=embedder, policy=policy,
                   lease_s=settings.queue.lease_s, owner=owner)


def build_queue(settings: Settings, indexer: Indexer | None) -> IngestQueue:
    huey = build_huey(settings.queue.backend, settings.home / "queue.db", settings.queue.redis_url)
    return IngestQueue(huey, indexer.run if indexer else None)
