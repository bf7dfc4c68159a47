"""What the app opens once at start-up and closes at shut-down, and how routes reach it."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi import Request
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from core import db, models
from core.settings import Settings

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

logger = logging.getLogger(__name__)


@dataclass
class Resources:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    generator: tuple[Any, Any] | None = None  # (model, tokenizer) of the base model
    embedder: SentenceTransformer | None = None

    def close(self) -> None:
        self.engine.dispose()


def open_resources(settings: Settings) -> Resources:
    settings.home.mkdir(parents=True, exist_ok=True)
    engine = db.build_engine(settings.database_url, echo=settings.database.echo)
    db.migrate(engine)
    resources = Resources(settings=settings, engine=engine, sessions=db.build_sessions(engine))
    if settings.server.load_models:
        _load_models(resources)
    return resources


def _load_models(resources: Resources) -> None:
    section = resources.settings.models
    if section.threads:
        import torch

        torch.set_num_threads(section.threads)
    base = models.resolve(section.base, resources.settings.models_dir)
    resources.generator = models.load_causal_lm(base, section.device)
    embedder = models.resolve(section.embedder, resources.settings.models_dir)
    resources.embedder = models.load_embedder(embedder, section.device)
    logger.info("models loaded: base=%s embedder=%s", base.location, embedder.location)


def get_resources(request: Request) -> Resources:
    return request.app.state.resources


def get_settings(request: Request) -> Settings:
    return request.app.state.resources.settings
