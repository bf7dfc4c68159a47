"""The `lorag` command: every job is a subcommand. Errors print one clear line and exit non-zero."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from enum import Enum
from functools import wraps
from pathlib import Path
from types import UnionType
from typing import TYPE_CHECKING, Annotated, Any, Literal, ParamSpec, TypeVar, Union, get_args, get_origin

import typer

from lorag.core import db, models
from lorag.core.audience import Audience
from lorag.core.faults import as_lorag_error
from lorag.core.logs import configure_logging
from lorag.core.settings import Settings, load_settings, redacted

if TYPE_CHECKING:  # the ingestion stack imports torch and qdrant: only commands that need it load it
    from sqlalchemy.orm import Session, sessionmaker

    from lorag.app.adapters import AdapterRouter
    from lorag.ingest.pipeline import Outcome
    from lorag.ingest.service import SubmitReport
    from lorag.retrieval.generate import Generator

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
        except Exception as exc:  # the edge: a lorag error or a known fault is one line; a bug keeps its traceback
            error = as_lorag_error(exc)
            if error is None:
                raise
            typer.secho(f"error: {error.message}", fg=typer.colors.RED, err=True)
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
    """Print the resolved settings as JSON, secrets redacted; `*_resolved` fields show what an empty one means."""
    from lorag.app.wiring import tasks_location

    settings = _settings()
    shown = redacted(settings)
    shown["finetune"]["tasks_resolved"] = str(tasks_location(settings))
    shown["models"]["cache_dir_resolved"] = str(settings.models_dir.resolve())
    typer.echo(json.dumps(shown, indent=2, default=str))


SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "kb"
SAMPLE_KBS = (("support", "public"), ("experts", "internal"))


@cli.command()
@edge
def setup(
    samples: Annotated[bool, typer.Option(help="Also mirror the sample knowledge bases (support, experts).")] = True,
    adapters: Annotated[bool, typer.Option(help="Train short demo adapters for tasks that have none in service.")]
    = True,
) -> None:
    """Prepare LORAG_HOME: migrate, provision the models (offline), ingest the samples, train demo adapters.
    Idempotent."""
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
    if adapters:
        from lorag.app import finetune_cli

        finetune_cli.train_demo_adapters(settings)
    typer.echo(f"setup done in {time.perf_counter() - started:.1f}s (LORAG_HOME={settings.home.resolve()})")


def _ingest_samples(settings: Settings) -> None:
    from lorag.app import ingest_cli

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
    uvicorn.run("lorag.app.http.main:main_app", factory=True, host=host or settings.server.host,
                port=port or settings.server.port, log_config=None)


AudienceOption = typer.Option(help="Who may see these documents.")


@cli.command()
@edge
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders (folders are read recursively).")],
    kb: Annotated[str, typer.Option(help="Knowledge base to add them to.")],
    audience: Annotated[Audience, AudienceOption] = Audience.PUBLIC,
    wait: Annotated[bool, typer.Option(help="With a Redis queue: wait for the workers to finish.")] = True,
) -> None:
    """Add or update documents; unchanged ones cost nothing. Exit code 1 if any document failed."""
    from lorag.app import ingest_cli

    job_id, report, outcomes = ingest_cli.ingest_paths(_settings(), paths, kb=kb, audience=audience, wait=wait)
    _report(job_id, report, outcomes)


@cli.command()
@edge
def sync(
    folder: Annotated[Path, typer.Argument(help="Folder to mirror.")],
    kb: Annotated[str, typer.Option(help="Knowledge base that mirrors the folder.")],
    audience: Annotated[Audience, AudienceOption] = Audience.PUBLIC,
    wait: Annotated[bool, typer.Option(help="With a Redis queue: wait for the workers to finish.")] = True,
) -> None:
    """Mirror a folder into a knowledge base: add new files, update changed ones, delete removed ones."""
    from lorag.app import ingest_cli

    job_id, report, outcomes = ingest_cli.sync_path(_settings(), folder, kb=kb, audience=audience, wait=wait)
    _report(job_id, report, outcomes)


def _report(job_id: str, report: SubmitReport, outcomes: list[Outcome]) -> None:
    from lorag.app import ingest_cli

    line, code = ingest_cli.summarise(report, outcomes)
    typer.echo(f"{line} (job {job_id})")
    raise typer.Exit(code)


@cli.command()
@edge
def worker(threads: Annotated[int, typer.Option(min=1, help="Documents indexed at once.")] = 1) -> None:
    """Consume ingestion jobs (run several, on several machines, with a Redis queue)."""
    from lorag.app import ingest_cli

    ingest_cli.run_worker(_settings(), threads)


@cli.command()
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
    from lorag.retrieval.factory import build_answer_generator, build_answerer

    settings = _settings()
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
    from lorag.app.adapters import AdapterRouter
    from lorag.app.wiring import configured_tasks

    router = AdapterRouter(generator, sessions, configured_tasks(settings), poll_s=settings.finetune.poll_s,
                           drain_s=settings.finetune.drain_s)
    router.sync()
    return router


evaluation = typer.Typer(no_args_is_help=True, help="Measure retrieval and answers against gold questions.")
cli.add_typer(evaluation, name="eval")


@evaluation.command("retrieval")
@edge
def eval_retrieval(
    kb: Annotated[str, typer.Option(help="Knowledge base to search.")],
    qa: Annotated[Path, typer.Option(help="JSONL of questions with their gold document and section.")],
    audience: Annotated[Audience, typer.Option(help="Whose documents to search.")] = Audience.INTERNAL,
    out: Annotated[Path | None, typer.Option(help="Report folder; default LORAG_HOME/runs/eval.")] = None,
) -> None:
    """recall@k, MRR and nDCG@10 for dense, hybrid and (if configured) hybrid + reranker."""
    from lorag.app import wiring
    from lorag.retrieval import evaluate
    from lorag.retrieval.factory import build_reranker
    from lorag.retrieval.search import Retriever

    settings = _settings()
    items = evaluate.load_qa(qa)
    audiences = audience.visible
    with wiring.open_ingest(settings) as ctx:
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
    audience: Annotated[Audience, typer.Option(help="Whose documents to search.")] = Audience.INTERNAL,
    model: Annotated[str | None, typer.Option(help="Base model or adapter version.")] = None,
    limit: Annotated[int | None, typer.Option(help="Only the first N questions (generation is slow on a CPU).")] = None,
    out: Annotated[Path | None, typer.Option(help="Report folder; default LORAG_HOME/runs/eval.")] = None,
) -> None:
    """Token-F1, ROUGE-L, citation precision/recall and abstention, answerable and unanswerable."""
    from lorag.app import wiring
    from lorag.retrieval import evaluate
    from lorag.retrieval.factory import build_answer_generator, build_answerer

    settings = _settings()
    items = evaluate.load_qa(qa)[:limit]
    audiences = audience.visible
    with wiring.open_ingest(settings) as ctx:
        answerer = build_answerer(settings, ctx.store, ctx.embedder, build_answer_generator(settings))
        metrics = evaluate.answer_metrics(
            lambda question: answerer.ask(question, kb=kb, audiences=audiences, model=model), items)
    _save_eval("answers", {"metrics": metrics, "model": model or "base"}, settings, qa, kb, out)


@evaluation.command("tagging")
@edge
def eval_tagging(
    gold: Annotated[Path, typer.Option(help="Labelled items (JSONL, CSV or Parquet): a text column and tags.")],
    taxonomy: Annotated[Path | None, typer.Option(help="Taxonomy YAML (labels or fields) or task file.")] = None,
    task: Annotated[str | None, typer.Option(help="A configured classification task, instead of --taxonomy.")]
    = None,
    model: Annotated[str | None, typer.Option(help="Adapter version, task or base model; default: the task's "
                                              "adapter in service.")] = None,
    examples: Annotated[Path | None, typer.Option(help="Labelled items for the prompts' examples; default: the "
                                                  "task's training data.")] = None,
    shots: Annotated[int, typer.Option(min=0, help="Labelled neighbours shown per item.")] = 3,
    batch_size: Annotated[int, typer.Option(min=1, help="Items generated together (bench/tag.py).")] = 32,
    limit: Annotated[int | None, typer.Option(help="Only the first N gold items.")] = None,
    out: Annotated[Path | None, typer.Option(help="Report folder; default LORAG_HOME/runs/eval.")] = None,
) -> None:
    """Accuracy, macro-F1 per field and schema validity of `lorag tag` on a gold file."""
    from lorag.app import tagging_cli

    tagging_cli.eval_tagging(_settings(), gold, taxonomy=taxonomy, task=task, model=model, examples=examples,
                             text_field=None, tags_field=None, shots=shots, batch_size=batch_size, limit=limit,
                             out=out)


def _save_eval(name: str, report: dict[str, object], settings: Settings, qa: Path, kb: str, out: Path | None) -> None:
    import hashlib
    import importlib.metadata

    report["run"] = {"kb": kb, "qa_file": str(qa), "qa_sha256": hashlib.sha256(qa.read_bytes()).hexdigest(),
                     "lorag": importlib.metadata.version("lorag"), "settings": redacted(settings)}
    from lorag.retrieval.evaluate import write_report

    json_path, md_path = write_report(name, report, out or settings.runs_dir / "eval")
    typer.echo(md_path.read_text())
    typer.echo(f"reports: {json_path} {md_path}")


@cli.command("tag")
@edge
def tag(
    input_path: Annotated[Path, typer.Argument(metavar="INPUT", help="Items to tag: CSV, JSONL or Parquet.")],
    output: Annotated[Path, typer.Option(help="Tags, one row per item: CSV, JSONL or Parquet (by extension).")],
    taxonomy: Annotated[Path | None, typer.Option(help="Taxonomy YAML (labels or fields) or task file.")] = None,
    task: Annotated[str | None, typer.Option(help="A configured classification task, instead of --taxonomy.")]
    = None,
    model: Annotated[str | None, typer.Option(help="Adapter version, task or base model; default: the task's "
                                              "adapter in service.")] = None,
    examples: Annotated[Path | None, typer.Option(help="Labelled items for the prompts' examples; default: the "
                                                  "task's training data.")] = None,
    id_field: Annotated[str | None, typer.Option(help="Id column; default `id`, else the row number.")] = None,
    text_field: Annotated[str | None, typer.Option(help="Text column; default the first of item, text, "
                                                   "description, name.")] = None,
    shots: Annotated[int, typer.Option(min=0, help="Labelled neighbours shown per item.")] = 3,
    batch_size: Annotated[int | None, typer.Option(min=1, help="Items tagged together; default: as many as take "
                                                   "about 20 s at the speed measured on the first items.")] = None,
    retry_failed: Annotated[bool, typer.Option(help="On resume, tag the items that failed before again.")] = False,
    review_below: Annotated[float | None, typer.Option(min=0, max=1, help="Also write items whose confidence is "
                                                       "below this to OUTPUT's .review.jsonl (items that need "
                                                       "review always go there).")] = None,
) -> None:
    """Tag every item against a taxonomy. Resumable: run it again to continue where it stopped.
    Exit code 1 if any item got no valid tags (the output gives the reason)."""
    from lorag.app import tagging_cli

    raise typer.Exit(tagging_cli.tag_command(
        _settings(), input_path, output, taxonomy=taxonomy, task=task, model=model, examples=examples,
        id_field=id_field, text_field=text_field, shots=shots, batch_size=batch_size, retry_failed=retry_failed,
        review_below=review_below))


@cli.command("confirm-tags")
@edge
def confirm_tags(
    review_file: Annotated[Path, typer.Argument(metavar="REVIEW_FILE", help="Rows a person checked: `lorag tag`'s "
                                                ".review.jsonl (or CSV, Parquet) with text, tags and confirmed.")],
    task: Annotated[str | None, typer.Option(help="The configured classification task the tags are for.")] = None,
    taxonomy: Annotated[Path | None, typer.Option(help="Or the taxonomy file of a configured task.")] = None,
) -> None:
    """Store the rows marked "confirmed": true as the task's confirmed tags; the next nightly run trains on them.
    Every row is checked first: one bad row (a value outside the taxonomy, say) stores nothing."""
    from lorag.app import tagging_confirm

    raise typer.Exit(tagging_confirm.confirm_command(_settings(), review_file, taxonomy=taxonomy, task=task))


@cli.command()
@edge
def nightly(
    task: Annotated[list[str] | None, typer.Option(help="Only this task (repeatable); every task when omitted.")]
    = None,
    time_budget: Annotated[float | None, typer.Option(help="Seconds of training per task (default: unbounded).")]
    = None,
    max_eval: Annotated[int | None, typer.Option(help="Evaluate on at most this many test examples: a quick check, "
                                                     "whose gate decides on fewer examples (default: all).")]
    = None,
) -> None:
    """Retrain every task's adapter from the base model, evaluate it, promote it if at least as good.
    For cron or a Kubernetes CronJob. Exit code 1 if a task failed; a rejected candidate is not a failure."""
    from lorag.app import finetune_cli

    raise typer.Exit(finetune_cli.print_outcomes(
        finetune_cli.nightly(_settings(), task or [],
                             training={"time_budget_s": time_budget} if time_budget else None, max_eval=max_eval)))


@cli.command()
@edge
def scheduler() -> None:
    """Run the nightly job on LORAG_FINETUNE__SCHEDULE (cron, 02:00 UTC by default) until stopped."""
    from lorag.app import finetune_cli

    finetune_cli.run_scheduler(_settings())


@cli.command()
@edge
def slack() -> None:
    """Answer in Slack over Socket Mode (no public URL): mentions, direct messages, reactions, corrections."""
    from lorag.app import slack as slack_app

    slack_app.run_socket_mode(_settings())


adapters_cli = typer.Typer(no_args_is_help=True, help="The adapter registry: versions, promotion, rollback.")
cli.add_typer(adapters_cli, name="adapters")


@adapters_cli.command("list")
@edge
def adapters_list(task: Annotated[str | None, typer.Option(help="Only this task's versions.")] = None) -> None:
    """Every version, newest first, with its status and test metrics."""
    from lorag.app import finetune_cli, wiring
    from lorag.finetune import registry
    from lorag.finetune import status as run_status

    settings = _settings()
    for running in run_status.live(run_status.folder_of(settings.runs_dir)):
        if task is None or running["task"] == task:
            typer.echo(f"in progress: {run_status.describe(running)}")
    with wiring.open_registry(settings) as sessions:
        records = registry.versions(sessions, task)
    for record in records:
        typer.echo(finetune_cli.describe(record))
    if not records:
        typer.echo("no adapter versions yet: run `lorag nightly`")


@adapters_cli.command("show")
@edge
def adapters_show(version: Annotated[str, typer.Argument(help="A version, e.g. support@20261122T020000Z.")]) -> None:
    """One version: status, metrics, gate decision, data hash, code version, report."""
    from lorag.app import finetune_cli, wiring
    from lorag.finetune import registry

    with wiring.open_registry(_settings()) as sessions:
        typer.echo(finetune_cli.show(registry.get(sessions, version)))


@adapters_cli.command("promote")
@edge
def adapters_promote(
    version: Annotated[str, typer.Argument(help="The version to put in service.")],
    reason: Annotated[str, typer.Option(help="Recorded with the version.")] = "promoted by an operator",
) -> None:
    """Put a version in service now (running servers switch on their next poll); the current one is retired."""
    from lorag.app import wiring
    from lorag.finetune import registry

    with wiring.open_registry(_settings()) as sessions:
        record = registry.promote(sessions, version, reason)
    typer.echo(f"{record.name} is now in service for {record.task}")


@adapters_cli.command("rollback")
@edge
def adapters_rollback(task: Annotated[str, typer.Argument(help="The task whose adapter to roll back.")]) -> None:
    """Take the task's version out of service and restore the one that served before it."""
    from lorag.app import wiring
    from lorag.finetune import registry

    with wiring.open_registry(_settings()) as sessions:
        record = registry.rollback(sessions, task)
    typer.echo(f"{record.name} is back in service for {task}")


@cli.command("backup")
@edge
def backup_command(path: Annotated[Path, typer.Argument(help="A new (or empty) folder for the backup.")]) -> None:
    """Back up the database, the adapter registry and (as the documents it is built from) the vector store.
    Safe while the server runs."""
    from lorag.app import backup

    report = backup.backup(_settings(), path)
    for line in backup.describe(report):
        typer.echo(line)
    typer.echo(f"backup complete: {report.path}")


@cli.command("restore")
@edge
def restore_command(path: Annotated[Path, typer.Argument(help="A folder written by `lorag backup`.")]) -> None:
    """Restore a backup into an empty LORAG_HOME / database, then rebuild the vector store from its documents.
    Exit code 1 if a document could not be indexed again."""
    from lorag.app import backup

    report = backup.restore(_settings(), path)
    for line in backup.describe(report):
        typer.echo(line)
    raise typer.Exit(1 if report.failed else 0)


@cli.command("serve-model")
@edge
def serve_model() -> None:
    """Run vLLM (OpenAI-compatible) with the base model and the active adapter versions (LORAG_VLLM__*)."""
    from lorag.app import model_server, wiring
    from lorag.finetune import registry

    settings = _settings()
    models.provision(settings.models.base, settings.models_dir)
    with wiring.open_registry(settings) as sessions:
        active = registry.active(sessions)
        typer.echo(f"vLLM on http://{settings.vllm.host}:{settings.vllm.port}/v1 with "
                   f"{', '.join(record.name for record in active.values()) or 'no adapters yet'}", err=True)
        if not settings.vllm.runtime_lora:  # this process stays, restarting vLLM for each promotion
            raise typer.Exit(model_server.supervise(settings, lambda: registry.active(sessions),
                                                    settings.finetune.poll_s))
    model_server.serve(settings, active)  # replaces this process; the API loads promotions at run time


keys_cli = typer.Typer(no_args_is_help=True, help="API keys: scopes, knowledge bases, adapters, origins.")
cli.add_typer(keys_cli, name="keys")


@keys_cli.command("create")
@edge
def keys_create(
    name: Annotated[str, typer.Option(help="Who or what uses the key, e.g. 'support widget'.")],
    scope: Annotated[list[str], typer.Option(help="chat:public, chat:internal, ingest, tag or admin (repeatable).")],
    kb: Annotated[list[str] | None, typer.Option(help="Only these knowledge bases (repeatable); any if omitted.")]
    = None,
    adapter: Annotated[list[str] | None, typer.Option(help="Only these tasks or adapter versions (repeatable).")]
    = None,
    origin: Annotated[list[str] | None, typer.Option(help="Web origins a browser may call from (repeatable).")]
    = None,
    rate: Annotated[int | None, typer.Option(help="Requests a minute; default LORAG_SERVER__RATE_PER_MINUTE.")]
    = None,
) -> None:
    """Create a key. It is printed once: store it now, lorag keeps only its hash."""
    from lorag.app import wiring
    from lorag.core import keys

    with wiring.open_registry(_settings()) as sessions:
        key, info = keys.create(sessions, name=name, scopes=scope, kbs=kb, adapters=adapter, origins=origin or (),
                                rate_per_minute=rate)
    typer.echo(key)
    typer.echo(f"key {info.id} ({info.name}): scopes {', '.join(info.scopes)}", err=True)


@keys_cli.command("list")
@edge
def keys_list() -> None:
    """Every key: id, name, scopes, limits, and whether it is revoked (never the key itself)."""
    from lorag.app import wiring
    from lorag.core import keys

    with wiring.open_registry(_settings()) as sessions:
        for info in keys.listing(sessions):
            state = f"revoked {info.revoked_at:%Y-%m-%d}" if info.revoked_at else "live"
            typer.echo(f"{info.id}  {state:18} {info.name!r} scopes={','.join(info.scopes)} "
                       f"kbs={','.join(info.kbs or ('*',))} adapters={','.join(info.adapters or ('*',))} "
                       f"origins={','.join(info.origins) or '-'} rate={info.rate_per_minute or 'default'}")


@keys_cli.command("revoke")
@edge
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key's id (the part after lorag_).")]) -> None:
    """Revoke a key at once; requests with it get 401 from then on."""
    from lorag.app import wiring
    from lorag.core import keys

    with wiring.open_registry(_settings()) as sessions:
        info = keys.revoke(sessions, key_id)
    typer.echo(f"key {info.id} ({info.name}) revoked")


def main() -> None:
    command = typer.main.get_command(cli)
    plain_metavars(command)
    sys.exit(command())


def plain_metavars(command: Any) -> None:
    """Help in the words a user types: `QUESTION`, `--kb TEXT`, `--audience [public|internal]`, and no value after
    a flag (typer 0.29 shows `{question}`, `<str>` and `<bool>`)."""
    for param in command.params:
        if param.metavar is None:
            param.metavar = _metavar(param)
        if param.param_type_name == "argument":
            param.display_type_rich = lambda ctx: None  # its name says it: no `<str>` beside QUESTION
    made = command.get_help_option

    def help_option(ctx: Any) -> Any:
        option = made(ctx)
        if option is not None:
            option.metavar = ""
        return option

    command.get_help_option = help_option
    for child in getattr(command, "commands", {}).values():
        plain_metavars(child)


def _metavar(param: Any) -> str:
    if param.param_type_name == "argument":
        return (param.name or "value").upper() + ("..." if param.nargs == -1 else "")
    return _type_word(param.type_descriptor.annotation)


def _type_word(annotation: Any) -> str:
    if get_origin(annotation) is Literal:
        return "[" + "|".join(map(str, get_args(annotation))) + "]"
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return "[" + "|".join(str(member.value) for member in annotation) + "]"
    if get_origin(annotation) in (Union, UnionType):
        return _type_word(next(arg for arg in get_args(annotation) if arg is not type(None)))
    if get_origin(annotation) is list:
        return _type_word(get_args(annotation)[0]) + "..."
    return {bool: "", str: "TEXT", Path: "PATH", int: "INTEGER", float: "NUMBER"}.get(annotation, "VALUE")
