"""`lorag ingest`, `lorag sync` and `lorag worker`: documents in, from the command line."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from lorag.app.cli.base import AudienceOption, cli_settings, edge
from lorag.core.audience import Audience
from lorag.core.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from lorag.ingest.pipeline import Outcome
    from lorag.ingest.service import SubmitReport
import logging
import signal
from collections.abc import Sequence

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy.orm import Session, sessionmaker

from lorag.app.wiring import IngestContext, open_ingest, open_registry
from lorag.ingest import registry, service
from lorag.ingest.factory import build_indexer, build_queue
from lorag.ingest.pipeline import Indexer, Outcome
from lorag.ingest.service import SubmitReport
from lorag.ingest.worker import Worker

logger = logging.getLogger(__name__)


def ingest_paths(settings: Settings, paths: Sequence[Path], *, kb: str, audience: str,
                 wait: bool) -> tuple[str, SubmitReport, list[Outcome]]:
    """Embedded default: index here and now. Redis queue: hand over to workers (and follow them)."""
    service.check_target(kb, audience)
    files = service.collect(paths)
    if settings.queue.backend == "embedded":
        with open_ingest(settings) as ctx:
            job_id = registry.create_job(ctx.sessions, "ingest", kb)
            report = service.submit_files(ctx.sessions, files, kb=kb, audience=audience,
                                          max_bytes=settings.ingest.max_bytes, job_id=job_id)
            return job_id, report, run_inline(ctx, report.queued)
    with open_registry(settings) as sessions:
        job_id = registry.create_job(sessions, "ingest", kb)
        report = service.submit_files(sessions, files, kb=kb, audience=audience,
                                      max_bytes=settings.ingest.max_bytes, job_id=job_id)
        return job_id, report, hand_over(settings, sessions, report.queued, wait)


def sync_path(settings: Settings, folder: Path, *, kb: str, audience: str,
              wait: bool) -> tuple[str, SubmitReport, list[Outcome]]:
    """Mirror a folder; deletions reach the store from here, additions and updates go through workers."""
    service.check_target(kb, audience)
    with open_ingest(settings) as ctx:
        job_id = registry.create_job(ctx.sessions, "sync", kb)
        report = service.sync_folder(ctx.sessions, ctx.store, folder, kb=kb, audience=audience,
                                     max_bytes=settings.ingest.max_bytes, job_id=job_id)
        if settings.queue.backend == "embedded":
            return job_id, report, run_inline(ctx, report.queued)
        return job_id, report, hand_over(settings, ctx.sessions, report.queued, wait)


def hand_over(settings: Settings, sessions: sessionmaker[Session], doc_ids: Sequence[str],
              wait: bool) -> list[Outcome]:
    """Enqueue for `lorag worker`s; with `wait`, follow the documents until they are done."""
    build_queue(settings, None).enqueue(doc_ids)
    return wait_for_workers(sessions, doc_ids) if wait else []


def run_inline(ctx: IngestContext, doc_ids: Sequence[str]) -> list[Outcome]:
    """Index queued documents in this process, with a progress bar of documents/s and chunks/s."""
    indexer = build_indexer(ctx.settings, ctx.sessions, ctx.store, ctx.embedder)
    return _with_progress(indexer, doc_ids)


def _with_progress(indexer: Indexer, doc_ids: Sequence[str]) -> list[Outcome]:
    outcomes: list[Outcome] = []
    started, chunks = time.perf_counter(), 0
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("{task.fields[rate]}"))
    with Progress(*columns, transient=False) as progress:
        bar = progress.add_task("indexing", total=len(doc_ids), rate="")
        for outcome in indexer.run_many(doc_ids):
            outcomes.append(outcome)
            chunks += outcome.chunks
            elapsed = max(time.perf_counter() - started, 1e-9)
            rate = f"{len(outcomes) / elapsed:.1f} docs/s {chunks / elapsed:.0f} chunks/s"
            progress.update(bar, advance=1, rate=rate)
    return outcomes


def wait_for_workers(sessions: sessionmaker[Session], doc_ids: Sequence[str], poll_s: float = 0.5) -> list[Outcome]:
    """Follow documents handed to `lorag worker` processes until none is queued or processing."""
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()) as bar:
        task = bar.add_task("waiting for workers", total=len(doc_ids))
        while True:
            rows = [registry.get(sessions, doc_id) for doc_id in doc_ids]
            finished = [row for row in rows if row.status not in ("queued", "processing")]
            bar.update(task, completed=len(finished))
            if len(finished) == len(rows):
                return [Outcome(row.id, str(row.status), row.chunk_count, row.error) for row in rows]
            time.sleep(poll_s)


def summarise(report: SubmitReport, outcomes: Sequence[Outcome]) -> tuple[str, int]:
    """One line for the user, and the exit code: 1 when any document failed."""
    failed = {o.doc_id: o.reason for o in outcomes if o.status == "failed"}
    for source, reason in report.rejected.items():
        typer.secho(f"failed: {source}: {reason}", fg=typer.colors.RED, err=True)
    for reason in failed.values():
        typer.secho(f"failed: {reason}", fg=typer.colors.RED, err=True)
    indexed = sum(o.status == "indexed" for o in outcomes)
    chunks = sum(o.chunks for o in outcomes)
    line = (f"indexed {indexed} ({chunks} chunks), unchanged {len(report.unchanged)}, "
            f"deleted {len(report.deleted)}, failed {len(report.rejected) + len(failed)}")
    return line, int(bool(report.rejected or failed))


def run_worker(settings: Settings, threads: int) -> None:
    """Consume ingestion jobs until SIGTERM/SIGINT; documents in flight are finished first."""
    with open_ingest(settings) as ctx:
        indexer = build_indexer(settings, ctx.sessions, ctx.store, ctx.embedder)
        queue = build_queue(settings, indexer)
        workers = [Worker(queue, ctx.sessions, settings.queue.lease_s) for _ in range(threads)]
        stopping: list[int] = []
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda number, _frame: stopping.append(number))
        for worker in workers:
            worker.start()
        logger.info("worker %s consuming (%d threads, queue=%s)", indexer.owner, threads, settings.queue.backend)
        while not stopping:
            time.sleep(0.2)
        for worker in workers:
            worker.stop()


app = typer.Typer()


@app.command()
@edge
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders (folders are read recursively).")],
    kb: Annotated[str, typer.Option(help="Knowledge base to add them to.")],
    audience: Annotated[Audience, AudienceOption] = Audience.PUBLIC,
    wait: Annotated[bool, typer.Option(help="With a Redis queue: wait for the workers to finish.")] = True,
) -> None:
    """Add or update documents; unchanged ones cost nothing. Exit code 1 if any document failed."""


    job_id, report, outcomes = ingest_paths(cli_settings(), paths, kb=kb, audience=audience, wait=wait)
    _report(job_id, report, outcomes)


@app.command()
@edge
def sync(
    folder: Annotated[Path, typer.Argument(help="Folder to mirror.")],
    kb: Annotated[str, typer.Option(help="Knowledge base that mirrors the folder.")],
    audience: Annotated[Audience, AudienceOption] = Audience.PUBLIC,
    wait: Annotated[bool, typer.Option(help="With a Redis queue: wait for the workers to finish.")] = True,
) -> None:
    """Mirror a folder into a knowledge base: add new files, update changed ones, delete removed ones."""


    job_id, report, outcomes = sync_path(cli_settings(), folder, kb=kb, audience=audience, wait=wait)
    _report(job_id, report, outcomes)


def _report(job_id: str, report: SubmitReport, outcomes: list[Outcome]) -> None:


    line, code = summarise(report, outcomes)
    typer.echo(f"{line} (job {job_id})")
    raise typer.Exit(code)


@app.command()
@edge
def worker(threads: Annotated[int, typer.Option(min=1, help="Documents indexed at once.")] = 1) -> None:
    """Consume ingestion jobs (run several, on several machines, with a Redis queue)."""


    run_worker(cli_settings(), threads)
