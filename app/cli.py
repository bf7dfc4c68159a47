"""The `lorag` command: every job is a subcommand. Errors print one clear line and exit non-zero."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from functools import wraps
from typing import Annotated, ParamSpec, TypeVar

import typer

from core import db, models
from core.errors import LoragError
from core.logs import configure_logging
from core.settings import Settings, load_settings, redacted

cli = typer.Typer(name="lorag", no_args_is_help=True, add_completion=False,
                  help="Answers from your own documents with checked citations, from nightly LoRA-tuned models.")
logger = logging.getLogger("lorag")

P = ParamSpec("P")
R = TypeVar("R")


def edge(command: Callable[P, R]) -> Callable[P, R]:
    """Translate lorag's errors into one line on stderr and exit code 1."""

    @wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except LoragError as exc:
            typer.secho(f"error: {exc.message}", fg=typer.colors.RED, err=True)
            raise typer.Exit(1) from None

    return run


def _settings() -> Settings:
    settings = load_settings()
    configure_logging(settings.log.level)
    models.stay_offline_unless_hub([settings.models.base, settings.models.embedder], settings.models_dir)
    return settings


@cli.command()
@edge
def config() -> None:
    """Print the resolved settings as JSON, secrets redacted."""
    typer.echo(json.dumps(redacted(_settings()), indent=2, default=str))


@cli.command()
@edge
def setup() -> None:
    """Prepare LORAG_HOME: migrate the database and provision the models (offline). Idempotent."""
    settings = _settings()
    started = time.perf_counter()
    settings.home.mkdir(parents=True, exist_ok=True)
    engine = db.build_engine(settings.database_url)
    db.migrate(engine)
    engine.dispose()
    for spec in (settings.models.base, settings.models.embedder):
        ref = models.provision(spec, settings.models_dir)
        typer.echo(f"model ready: {spec} -> {ref.location}")
    typer.echo(f"setup done in {time.perf_counter() - started:.1f}s (LORAG_HOME={settings.home.resolve()})")


@cli.command()
@edge
def serve(
    host: Annotated[str | None, typer.Option(help="Interface; default LORAG_SERVER__HOST.")] = None,
    port: Annotated[int | None, typer.Option(help="Port; default LORAG_SERVER__PORT.")] = None,
) -> None:
    """Serve the HTTP API (uvicorn)."""
    import uvicorn

    settings = _settings()
    uvicorn.run("app.main:main_app", factory=True, host=host or settings.server.host,
                port=port or settings.server.port, log_config=None)


def main() -> None:
    sys.exit(cli())
