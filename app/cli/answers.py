"""`lorag ask`: a question answered from the knowledge base, with its checked sources."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from lorag.app.cli.base import cli_settings, edge
from lorag.core.audience import Audience
from lorag.core.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from lorag.serving.protocol import Generator
    from lorag.serving.router import AdapterRouter

app = typer.Typer()


@app.command()
@edge
def ask(
    question: Annotated[str, typer.Argument(help="The question.")],
    kb: Annotated[str | None, typer.Option(help="Knowledge base to search; all when omitted.")] = None,
    audience: Annotated[Audience, typer.Option(help="Answer from public, or public and internal, documents.")
                        ] = Audience.PUBLIC,
    model: Annotated[str | None, typer.Option(help="Base model or adapter version.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole answer as JSON.")] = False,
) -> None:
    """Answer a question from the knowledge base and print its sources."""
    from lorag.app import wiring
    from lorag.retrieval.factory import build_answerer
    from lorag.serving.factory import build_answer_generator

    settings = cli_settings()
    with wiring.open_ingest(settings) as ctx:
        generator = build_answer_generator(settings)
        answerer = build_answerer(settings, ctx.store, ctx.embedder, generator)
        model = _serve_adapters(settings, ctx.sessions, generator).resolve(model, kb)
        result = answerer.ask(question, kb=kb, audiences=audience.visible, model=model)
    if as_json:
        from lorag.app.http.routes.answers import to_response

        typer.echo(to_response(result, None).model_dump_json(indent=2))  # no feedback from here: no token
        return
    typer.echo(result.text)
    for citation in result.citations:
        where = " > ".join(citation.section) or citation.title
        page = f", page {citation.page}" if citation.page else ""
        typer.echo(f"  [{citation.marker}] {citation.source}: {where}{page}")
    if result.abstained:
        typer.echo("  (no supported answer: hand over to a person)")
    for chunk in result.related:
        where = " > ".join(chunk.section) or chunk.title
        typer.echo(f"  related, not checked as an answer: {chunk.source}: {where}")


def _serve_adapters(settings: Settings, sessions: sessionmaker[Session], generator: Generator) -> AdapterRouter:
    """The registry's active adapters, loaded into a one-off command's generator."""
    from lorag.app.wiring import configured_tasks
    from lorag.serving.router import AdapterRouter

    router = AdapterRouter(generator, sessions, configured_tasks(settings), poll_s=settings.finetune.poll_s,
                           drain_s=settings.finetune.drain_s)
    router.sync()
    return router
