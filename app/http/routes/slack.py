"""Slack's Events API at POST /slack/events: signed requests in, bolt (app/slack.py) does the rest.

The bolt app is built on the first request, not at start-up, so the API serves even when Slack is unreachable.
Unconfigured (no bot token or signing secret), the route answers 404 in the OpenAI error envelope.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from fastapi import APIRouter, FastAPI, Request, Response
from starlette.concurrency import run_in_threadpool

from lorag.core.errors import BackendUnavailable, NotFound

if TYPE_CHECKING:
    from slack_bolt import App

router = APIRouter(tags=["slack"])
_building = threading.Lock()


@router.post("/slack/events", summary="Slack's Events API (requests signed with the app's signing secret)")
async def slack_events(request: Request) -> Response:
    from slack_bolt.adapter.starlette.handler import to_bolt_request, to_starlette_response

    bolt = await run_in_threadpool(slack_app, request.app)
    body = await request.body()
    # bolt's own FastAPI adapter dispatches on the event loop; dispatching checks the signature, may call
    # auth.test and waits for the acknowledgement, so it runs in a worker thread instead.
    response = await run_in_threadpool(bolt.dispatch, to_bolt_request(request, body))
    return to_starlette_response(response)


def slack_app(app: FastAPI) -> App:
    """The app's bolt App, built once."""
    with _building:
        built: App | None = getattr(app.state, "slack", None)
        if built is None:
            from lorag.app.slack import build_slack_app

            resources = app.state.resources
            section = resources.settings.slack
            if section.bot_token is None or section.signing_secret is None:
                raise NotFound("Slack is not configured here: set LORAG_SLACK__BOT_TOKEN and "
                               "LORAG_SLACK__SIGNING_SECRET to receive its events", code="slack_not_configured")
            if resources.answerer is None:
                raise BackendUnavailable("the answering models are not loaded (LORAG_SERVER__LOAD_MODELS=false)")
            built = app.state.slack = build_slack_app(resources, resources.settings)
        return built
