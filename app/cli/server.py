"""`lorag config`, `setup`, `serve`, `serve-model`, `slack`, `backup` and `restore`: the service and its home."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from lorag.app.cli.base import cli_settings, edge
from lorag.core import db, models
from lorag.core.settings import Settings, redacted

app = typer.Typer()


@app.command()
@edge
def config() -> None:
    """Print the resolved settings as JSON, secrets redacted; `*_resolved` fields show what an empty one means."""
    from lorag.app.wiring import tasks_location

    settings = cli_settings()
    shown = redacted(settings)
    shown["finetune"]["tasks_resolved"] = str(tasks_location(settings))
    shown["models"]["cache_dir_resolved"] = str(settings.models_dir.resolve())
    typer.echo(json.dumps(shown, indent=2, default=str))


SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "kb"


SAMPLE_KBS = (("support", "public"), ("experts", "internal"))


@app.command()
@edge
def setup(
    samples: Annotated[bool, typer.Option(help="Also mirror the sample knowledge bases (support, experts).")] = True,
    adapters: Annotated[bool, typer.Option(help="Train short demo adapters for tasks that have none in service.")]
    = True,
) -> None:
    """Prepare LORAG_HOME: migrate, provision the models (offline), ingest the samples, train demo adapters.
    Idempotent."""
    settings = cli_settings()
    started = time.perf_counter()
    settings.home.mkdir(parents=True, exist_ok=True)
    engine = db.build_engine(settings.database_url)
    db.migrate(engine)
    engine.dispose()
    for spec in (settings.models.base, settings.models.embedder):
        ref = models.provision(spec, settings.models_dir)
        typer.echo(f"model ready: {spec} -> {ref.location}")
    if samples:
        _ingest_samples(settings)
    if adapters:
        from lorag.app.cli import finetune

        finetune.train_demo_adapters(settings)
    typer.echo(f"setup done in {time.perf_counter() - started:.1f}s (LORAG_HOME={settings.home.resolve()})")


def _ingest_samples(settings: Settings) -> None:
    from lorag.app.cli import documents

    if not SAMPLES.is_dir():
        typer.echo(f"no sample knowledge bases at {SAMPLES}; skipped")
        return
    for kb, audience in SAMPLE_KBS:
        job_id, report, outcomes = documents.sync_path(settings, SAMPLES / kb, kb=kb, audience=audience, wait=True)
        line, _code = documents.summarise(report, outcomes)
        typer.echo(f"knowledge base {kb} ({audience}): {line}")


@app.command()
@edge
def serve(
    host: Annotated[str | None, typer.Option(help="Interface; default LORAG_SERVER__HOST.")] = None,
    port: Annotated[int | None, typer.Option(help="Port; default LORAG_SERVER__PORT.")] = None,
) -> None:
    """Serve the HTTP API (uvicorn)."""
    import uvicorn

    settings = cli_settings()
    uvicorn.run("lorag.app.http.main:main_app", factory=True, host=host or settings.server.host,
                port=port or settings.server.port, log_config=None)


@app.command("serve-model")
@edge
def serve_model() -> None:
    """Run vLLM (OpenAI-compatible) with the base model and the active adapter versions (LORAG_VLLM__*)."""
    from lorag.app import wiring
    from lorag.finetune import registry
    from lorag.serving import vllm as model_server

    settings = cli_settings()
    models.provision(settings.models.base, settings.models_dir)
    with wiring.open_registry(settings) as sessions:
        active = registry.active(sessions)
        typer.echo(f"vLLM on http://{settings.vllm.host}:{settings.vllm.port}/v1 with "
                   f"{', '.join(record.name for record in active.values()) or 'no adapters yet'}", err=True)
        if not settings.vllm.runtime_lora:  # this process stays, restarting vLLM for each promotion
            raise typer.Exit(model_server.supervise(settings, lambda: registry.active(sessions),
                                                    settings.finetune.poll_s))
    model_server.serve(settings, active)  # replaces this process; the API loads promotions at run time


@app.command()
@edge
def slack() -> None:
    """Answer in Slack over Socket Mode (no public URL): mentions, direct messages, reactions, corrections."""
    from lorag.app import slack as slack_app

    slack_app.run_socket_mode(cli_settings())


@app.command("backup")
@edge
def backup_command(path: Annotated[Path, typer.Argument(help="A new (or empty) folder for the backup.")]) -> None:
    """Back up the database, the adapter registry and (as the documents it is built from) the vector store.
    Safe while the server runs."""
    from lorag.app.cli import backup

    report = backup.backup(cli_settings(), path)
    for line in backup.describe(report):
        typer.echo(line)
    typer.echo(f"backup complete: {report.path}")


@app.command("restore")
@edge
def restore_command(path: Annotated[Path, typer.Argument(help="A folder written by `lorag backup`.")]) -> None:
    """Restore a backup into an empty LORAG_HOME / database, then rebuild the vector store from its documents.
    Exit code 1 if a document could not be indexed again."""
    from lorag.app.cli import backup

    report = backup.restore(cli_settings(), path)
    for line in backup.describe(report):
        typer.echo(line)
    raise typer.Exit(1 if report.failed else 0)
