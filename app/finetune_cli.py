"""`lorag nightly`, `lorag scheduler`, `lorag adapters ...` and the demo adapters of `lorag setup`."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

import typer

from lorag.app.scheduler import Scheduler
from lorag.app.wiring import configured_tasks, open_stack
from lorag.core.settings import Settings
from lorag.finetune import demo, registry
from lorag.finetune.nightly import Outcome, run_all
from lorag.finetune.registry import AdapterRecord
from lorag.finetune.tasks import find_task

logger = logging.getLogger(__name__)

def nightly(settings: Settings, task_names: list[str], *, training: Mapping[str, Any] | None = None,
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
