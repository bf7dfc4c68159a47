"""The `lorag` command: every job is a subcommand. Errors print one clear line and exit non-zero."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, ParamSpec, TypeVar

import typer

from core import db, models
from core.errors import InvalidInput, LoragError
from core.logs import configure_logging
from core.settings import Settings, load_settings, redacted

if TYPE_CHECKING:  # the ingestion stack imports torch and qdrant: only commands that need it load it
    from ingest.pipeline import Outcome
    from ingest.service import SubmitReport

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


SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "kb"
SAMPLE_KBS = (("support", "public"), ("experts", "internal"))


@cli.command()
@edge
def setup(
    samples: Annotated[bool, typer.Option(help="Also mirror the sample knowledge bases (support, experts).")] = True,
) -> None:
    """Prepare LORAG_HOME: migrate the database, provision the models (offline), ingest the samples. Idempotent."""
    settings = _settings()
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
    typer.echo(f"setup done in {time.perf_counter() - started:.1f}s (LORAG_HOME={settings.home.resolve()})")


def _ingest_samples(settings: Settings) -> None:
    from app import ingest_cli

    if not SAMPLES.is_dir():
        typer.echo(f"no sample knowledge bases at {SAMPLES}; skipped")
        return
    for kb, audience in SAMPLE_KBS:
        job_id, report, outcomes = ingest_cli.sync_path(settings, SAMPLES / kb, kb=kb, audience=audience, wait=True)
        line, _code = ingest_cli.summarise(report, outcomes)
        typer.echo(f"knowledge base {kb} ({audience}): {line}")


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


Audience = typer.Option(help="Who may see these documents: public or internal.")


@cli.command()
@edge
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders (folders are read recursively).")],
    kb: Annotated[str, typer.Option(help="Knowledge base to add them to.")],
    audience: Annotated[str, Audience] = "public",
    wait: Annotated[bool, typer.Option(help="With a Redis queue: wait for the workers to finish.")] = True,
) -> None:
    """Add or update documents; unchanged ones cost nothing. Exit code 1 if any document failed."""
    from app import ingest_cli

    job_id, report, outcomes = ingest_cli.ingest_paths(_settings(), paths, kb=kb, audience=audience, wait=wait)
    _report(job_id, report, outcomes)


@cli.command()
@edge
def sync(
    folder: Annotated[Path, typer.Argument(help="Folder to mirror.")],
    kb: Annotated[str, typer.Option(help="Knowledge base that mirrors the folder.")],
    audience: Annotated[str, Audience] = "public",
    wait: Annotated[bool, typer.Option(help="With a Redis queue: wait for the workers to finish.")] = True,
) -> None:
    """Mirror a folder into a knowledge base: add new files, update changed ones, delete removed ones."""
    from app import ingest_cli

    job_id, report, outcomes = ingest_cli.sync_path(_settings(), folder, kb=kb, audience=audience, wait=wait)
    _report(job_id, report, outcomes)


def _report(job_id: str, report: SubmitReport, outcomes: list[Outcome]) -> None:
    from app import ingest_cli

    line, code = ingest_cli.summarise(report, outcomes)
    typer.echo(f"{line} (job {job_id})")
    raise typer.Exit(code)


@cli.command()
@edge
def worker(threads: Annotated[int, typer.Option(min=1, help="Documents indexed at once.")] = 1) -> None:
    """Consume ingestion jobs (run several, on several machines, with a Redis queue)."""
    from app import ingest_cli

    ingest_cli.run_worker(_settings(), threads)


@cli.command()
@edge
def ask(
    question: Annotated[str, typer.Argument(help="The question.")],
    kb: Annotated[str | None, typer.Option(help="Knowledge base to search; all when omitted.")] = None,
    audience: Annotated[str, typer.Option(help="Answer from public, or public and internal, documents.")] = "public",
    model: Annotated[str | None, typer.Option(help="Base model or adapter version.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole answer as JSON.")] = False,
) -> None:
    """Answer a question from the knowledge base and print its sources."""
    from app import ingest_cli
    from retrieval.factory import build_answer_generator, build_answerer

    settings = _settings()
    audiences = {"public": ("public",), "internal": ("public", "internal")}.get(audience)
    if audiences is None:
        raise InvalidInput(f"audience {audience!r} must be public or internal", param="audience")
    with ingest_cli.open_ingest(settings) as ctx:
        answerer = build_answerer(settings, ctx.store, ctx.embedder, build_answer_generator(settings))
        result = answerer.ask(question, kb=kb, audiences=audiences, model=model)
    if as_json:
        from app.routes.answers import to_response

        typer.echo(to_response(result).model_dump_json(indent=2))
        return
    typer.echo(result.text)
    for citation in result.citations:
        where = " > ".join(citation.section) or citation.title
        page = f", page {citation.page}" if citation.page else ""
        typer.echo(f"  [{citation.marker}] {citation.source}: {where}{page}")
    if result.abstained:
        typer.echo("  (no supported answer: hand over to a person)")


evaluation = typer.Typer(no_args_is_help=True, help="Measure retrieval and answers against gold questions.")
cli.add_typer(evaluation, name="eval")


@evaluation.command("retrieval")
@edge
def eval_retrieval(
    kb: Annotated[str, typer.Option(help="Knowledge base to search.")],
    qa: Annotated[Path, typer.Option(help="JSONL of questions with their gold document and section.")],
    audience: Annotated[str, typer.Option(help="public or internal.")] = "internal",
    out: Annotated[Path | None, typer.Option(help="Report folder; default LORAG_HOME/runs/eval.")] = None,
) -> None:
    """recall@k, MRR and nDCG@10 for dense, hybrid and (if configured) hybrid + reranker."""
    from app import ingest_cli
    from retrieval import evaluate
    from retrieval.factory import build_reranker
    from retrieval.search import Retriever

    settings = _settings()
    items = evaluate.load_qa(qa)
    audiences = ("public",) if audience == "public" else ("public", "internal")
    with ingest_cli.open_ingest(settings) as ctx:
        plain = Retriever(ctx.store, ctx.embedder)
        report: dict[str, object] = {
            mode: evaluate.retrieval_metrics(plain, items, kb=kb, audiences=audiences, mode=mode)
            for mode in ("dense", "sparse", "hybrid")
        }
        reranker = build_reranker(settings)
        if reranker is not None:
            reranked = Retriever(ctx.store, ctx.embedder, reranker)
            report["hybrid+reranker"] = evaluate.retrieval_metrics(reranked, items, kb=kb, audiences=audiences,
                                                                   mode="hybrid")
        else:
            report["reranker"] = "none configured (LORAG_RETRIEVAL__RERANKER)"
    _save_eval("retrieval", report, settings, qa, kb, out)


@evaluation.command("answers")
@edge
def eval_answers(
    kb: Annotated[str, typer.Option(help="Knowledge base to search.")],
    qa: Annotated[Path, typer.Option(help="JSONL of questions, gold answers, documents; answer null: unanswerable.")],
    audience: Annotated[str, typer.Option(help="public or internal.")] = "internal",
    model: Annotated[str | None, typer.Option(help="Base model or adapter version.")] = None,
    limit: Annotated[int | None, typer.Option(help="Only the first N questions (generation is slow on a CPU).")] = None,
    out: Annotated[Path | None, typer.Option(help="Report folder; default LORAG_HOME/runs/eval.")] = None,
) -> None:
    """Token-F1, ROUGE-L, citation precision/recall and abstention, answerable and unanswerable."""
    from app import ingest_cli
    from retrieval import evaluate
    from retrieval.factory import build_answer_generator, build_answerer

    settings = _settings()
    items = evaluate.load_qa(qa)[:limit]
    audiences = ("public",) if audience == "public" else ("public", "internal")
    with ingest_cli.open_ingest(settings) as ctx:
        answerer = build_answerer(settings, ctx.store, ctx.embedder, build_answer_generator(settings))
        metrics = evaluate.answer_metrics(
            lambda question: answerer.ask(question, kb=kb, audiences=audiences, model=model), items)
    _save_eval("answers", {"metrics": metrics, "model": model or "base"}, settings, qa, kb, out)


def _save_eval(name: str, report: dict[str, object], settings: Settings, qa: Path, kb: str, out: Path | None) -> None:
    import hashlib
    import importlib.metadata

    report["run"] = {"kb": kb, "qa_file": str(qa), "qa_sha256": hashlib.sha256(qa.read_bytes()).hexdigest(),
                     "lorag": importlib.metadata.version("lorag"), "settings": redacted(settings)}
    from retrieval.evaluate import write_report

    json_path, md_path = write_report(name, report, out or settings.runs_dir / "eval")
    typer.echo(md_path.read_text())
    typer.echo(f"reports: {json_path} {md_path}")


def main() -> None:
    sys.exit(cli())
