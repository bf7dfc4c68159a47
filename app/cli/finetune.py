"""`lorag nightly`, `lorag scheduler`, `lorag adapters ...` and the demo adapters of `lorag setup`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from lorag.app.cli.base import cli_settings, edge
from lorag.core.settings import Settings

if TYPE_CHECKING:
    from lorag.ingest.pipeline import Outcome
import json
import logging
from collections.abc import Mapping
from typing import Any

from lorag.app.wiring import configured_tasks, open_stack
from lorag.finetune import demo, registry
from lorag.finetune.nightly import Outcome, run_all
from lorag.finetune.registry import AdapterRecord
from lorag.finetune.schedule import Scheduler
from lorag.finetune.tasks import find_task

logger = logging.getLogger(__name__)

def run_nightly(settings: Settings, task_names: list[str], *, training: Mapping[str, Any] | None = None,
            max_eval: int | None = None) -> list[Outcome]:
    tasks = configured_tasks(settings)
    chosen = [find_task(tasks, name) for name in task_names] if task_names else tasks
    with open_stack(settings, chosen) as stack:
        return run_all(stack, chosen, training=training, max_eval=max_eval)


def print_outcomes(outcomes: list[Outcome]) -> int:
    """One line per task; exit code 1 if any task failed (a rejected candidate is not a failure)."""
    for outcome in outcomes:
        colour = {"active": typer.colors.GREEN, "rejected": typer.colors.YELLOW}.get(outcome.status,
                                                                                 typer.colors.RED)
        typer.secho(f"{outcome.task}: {outcome.status} {outcome.version or ''} — {outcome.reason}", fg=colour)
        if outcome.report:
            typer.echo(f"  report: {outcome.report}")
    return 1 if any(outcome.status == "failed" for outcome in outcomes) else 0


def train_demo_adapters(settings: Settings) -> None:
    """`lorag setup --adapters`: a short training run, now, for each task that has no active adapter yet."""
    tasks = configured_tasks(settings)
    with open_stack(settings, tasks) as stack:
        todo = demo.missing(stack, tasks)
        if not todo:
            typer.echo("adapters in service: " + ", ".join(r.name for r in registry.active(stack.sessions).values()))
            return
        typer.echo(f"training demo adapters for {', '.join(task.name for task in todo)} ({demo.STEPS} steps each; "
                   "the nightly job trains them fully)")
        print_outcomes(demo.train_first(stack, todo, progress=True))


def run_scheduler(settings: Settings) -> None:
    """A process that runs the nightly job on the schedule, until SIGTERM / Ctrl-C."""
    scheduler = Scheduler(settings.finetune.schedule, settings.finetune.timezone,
                          lambda: print_outcomes(nightly(settings, [])))
    typer.echo(f"scheduler: nightly runs at '{settings.finetune.schedule}' ({settings.finetune.timezone})")
    try:
        scheduler.run_forever()
    except KeyboardInterrupt:
        scheduler.stop()


def describe(record: AdapterRecord) -> str:
    metrics = ", ".join(f"{key} {value:.3f}" for key, value in record.metrics.items()
                        if isinstance(value, int | float))
    return f"{record.name:40} {record.status.value:9} {record.created_at:%Y-%m-%d %H:%M} {metrics}"


def show(record: AdapterRecord) -> str:
    run = record.path / "run.json"
    details = json.loads(run.read_text()) if run.is_file() else {}
    return json.dumps({**record.as_json(), "gate": details.get("gate"), "data_hash": record.data_hash,
                       "code": details.get("code"), "report": str(record.path / "report.md")}, indent=2)


app = typer.Typer()
adapters = typer.Typer(no_args_is_help=True, help="The adapter registry: versions, promotion, rollback.")


@app.command()
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


    raise typer.Exit(print_outcomes(
        run_nightly(cli_settings(), task or [],
                             training={"time_budget_s": time_budget} if time_budget else None, max_eval=max_eval)))


@app.command()
@edge
def scheduler() -> None:
    """Run the nightly job on LORAG_FINETUNE__SCHEDULE (cron, 02:00 UTC by default) until stopped."""


    run_scheduler(cli_settings())


@adapters.command("list")
@edge
def adapters_list(task: Annotated[str | None, typer.Option(help="Only this task's versions.")] = None) -> None:
    """Every version, newest first, with its status and test metrics."""
    from lorag.app import wiring
    from lorag.finetune import registry
    from lorag.finetune import status as run_status

    settings = cli_settings()
    for running in run_status.live(run_status.folder_of(settings.runs_dir)):
        if task is None or running["task"] == task:
            typer.echo(f"in progress: {run_status.describe(running)}")
    with wiring.open_registry(settings) as sessions:
        records = registry.versions(sessions, task)
    for record in records:
        typer.echo(describe(record))
    if not records:
        typer.echo("no adapter versions yet: run `lorag nightly`")


@adapters.command("show")
@edge
def adapters_show(version: Annotated[str, typer.Argument(help="A version, e.g. support@20261122T020000Z.")]) -> None:
    """One version: status, metrics, gate decision, data hash, code version, report."""
    from lorag.app import wiring
    from lorag.finetune import registry

    with wiring.open_registry(cli_settings()) as sessions:
        typer.echo(show(registry.get(sessions, version)))


@adapters.command("promote")
@edge
def adapters_promote(
    version: Annotated[str, typer.Argument(help="The version to put in service.")],
    reason: Annotated[str, typer.Option(help="Recorded with the version.")] = "promoted by an operator",
) -> None:
    """Put a version in service now (running servers switch on their next poll); the current one is retired."""
    from lorag.app import wiring
    from lorag.finetune import registry

    with wiring.open_registry(cli_settings()) as sessions:
        record = registry.promote(sessions, version, reason)
    typer.echo(f"{record.name} is now in service for {record.task}")


@adapters.command("rollback")
@edge
def adapters_rollback(task: Annotated[str, typer.Argument(help="The task whose adapter to roll back.")]) -> None:
    """Take the task's version out of service and restore the one that served before it."""
    from lorag.app import wiring
    from lorag.finetune import registry

    with wiring.open_registry(cli_settings()) as sessions:
        record = registry.rollback(sessions, task)
    typer.echo(f"{record.name} is back in service for {task}")
