"""The FastAPI app factory. Settings, engines and models are opened in `lifespan`, never at import time."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from lorag.app.http import answer_tokens
from lorag.app.http.auth import build_rate_limiter, install_cors
from lorag.app.http.docs import install_docs
from lorag.app.http.errors import install_error_handlers
from lorag.app.http.limits import install_body_limit
from lorag.app.http.observability import Metrics, install_observability
from lorag.app.http.routes import answers, documents, feedback, health, tagging, widget
from lorag.app.http.routes import slack as slack_events
from lorag.app.resources import open_resources
from lorag.core import models
from lorag.core.faults import as_lorag_error
from lorag.core.logs import configure_logging
from lorag.core.settings import Settings, load_settings

logger = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; `uvicorn --factory app.main:create_app` reads settings from the environment."""
    resolved = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            answer_tokens.secret_of(resolved)  # made now, so answering never writes (a full disk still answers)
            app.state.resources = open_resources(resolved)
        except Exception as exc:  # the edge of start-up: a known fault gets one clear line before uvicorn's trace
            fault = as_lorag_error(exc, "starting")
            if fault is not None:
                logger.error("cannot start: %s", fault.message)
            raise
        try:
            yield
        finally:
            app.state.resources.close()

    app = FastAPI(title="lorag", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Answers from your own documents with checked citations.")
    app.state.metrics = Metrics()
    app.state.rate_limiter = build_rate_limiter(resolved)
    install_cors(app)
    install_body_limit(app, resolved.server.max_body_bytes, resolved.ingest.max_bytes)
    install_observability(app, app.state.metrics)
    install_error_handlers(app)
    install_docs(app)
    app.include_router(health.router)
    app.include_router(documents.router)
    app.include_router(answers.router)
    app.include_router(feedback.router)
    app.include_router(widget.router)
    app.include_router(tagging.router)
    app.include_router(slack_events.router)
    return app


def main_app() -> FastAPI:
    """Entry for `uvicorn --factory`: configure logging once, then build."""
    settings = load_settings()
    configure_logging(settings.log.level)
    models.stay_offline_unless_hub([settings.models.base, settings.models.embedder], settings.models_dir)
    return create_app(settings)
