"""`lorag tag`, `lorag confirm-tags` and `lorag eval tagging`: the tagging stage from the command line.

    lorag tag menu.csv --taxonomy samples/menu/taxonomy.yaml --output tags.jsonl
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from lorag.app.cli.base import cli_settings, edge
from lorag.core.errors import InvalidInput, NotFound
from lorag.core.settings import Settings
from lorag.finetune.tasks import TaskSpec
from lorag.finetune.types import stable_hash
from lorag.tagging.checkpoint import PROBE_ITEMS, Checkpoint, progress_bar, run_resumable
from lorag.tagging.confidence import TransformersScorer
from lorag.tagging.confirm import confirmations, store
from lorag.tagging.probe import LinearProbe
from lorag.tagging.tables import items_of, labelled_records, read_table, table_format, write_review
from lorag.tagging.tagger import (
    BASE_SHOTS,
    ShotIndex,
    Tagger,
    calibration_of,
    default_shots,
    load_taxonomy,
    matching_task,
    shot_pool,
)

if TYPE_CHECKING:  # the models and the database are loaded by the commands that need them
    from sqlalchemy.orm import Session, sessionmaker

    from lorag.finetune.registry import AdapterRecord

logger = logging.getLogger(__name__)

app = typer.Typer()

# The options `lorag tag` and `lorag eval tagging` share.
TaxonomyOption = Annotated[Path | None, typer.Option(help="Taxonomy YAML (labels or fields) or task file.")]
TaskOption = Annotated[str | None, typer.Option(help="A configured classification task, instead of --taxonomy.")]
ModelOption = Annotated[str | None, typer.Option(help="Adapter version, task or base model; default: the task's "
                                                 "adapter in service.")]
ExamplesOption = Annotated[Path | None, typer.Option(help="Labelled items for the prompts' examples; default: the "
                                                     "task's training data.")]


def tag_command(settings: Settings, input_path: Path, output: Path, *, taxonomy: Path | None, task: str | None,
                model: str | None, examples: Path | None, id_field: str | None, text_field: str | None,
                shots: int | None, batch_size: int | None, retry_failed: bool,
                review_below: float | None = None) -> int:
    """`lorag tag`; the exit code is 1 when any item has no valid tags (the output holds their reasons).
    `batch_size` None: chosen from the measured speed. Items below `review_below` confidence, and those marked
    needs_review, also go to OUTPUT's `.review.jsonl` sibling."""
    spec = tagging_spec(settings, taxonomy, task)
    items = items_of(read_table(input_path), input_path, id_field=id_field, text_field=text_field)
    table_format(output, "output")  # before the model loads: a bad name costs nothing, and nothing is written
    if not output.parent.is_dir():
        raise InvalidInput(f"output folder {output.parent} does not exist")
    if output.exists() and not Checkpoint(output, {}).path.exists():
        raise InvalidInput(f"{output} exists (a finished run); delete it or name another --output to tag again")
    tagger = build_tagger(settings, spec, model, examples, shots=shots, batch_size=batch_size or PROBE_ITEMS)
    typer.echo(f"tagging {len(items)} items of {input_path} with {tagger.model or 'the base model'} "
               f"({spec.name}, {len(tagger.shots or ())} labelled examples for the prompts and the vote)")
    counts = run_resumable(tagger, items, output, retry_failed=retry_failed, auto_batch=batch_size is None)
    typer.echo(f"tagged {counts['total']}: {counts['valid']} valid, {counts['failed']} failed with a reason, "
               f"{counts['needs_review']} need review, {counts['resumed']} from an earlier run -> {output}")
    if review_below is not None or counts["needs_review"]:
        path, count = write_review(output, review_below)
        why = "needs_review" if review_below is None else f"needs_review, or confidence below {review_below}"
        typer.echo(f"{count} item(s) to review ({why}) -> {path}")
    return 1 if counts["failed"] else 0


def eval_tagging(settings: Settings, gold: Path, *, taxonomy: Path | None, task: str | None, model: str | None,
                 examples: Path | None, text_field: str | None, tags_field: str | None, shots: int | None,
                 batch_size: int, limit: int | None, out: Path | None) -> dict[str, Any]:
    """`lorag eval tagging`: the tagger against the kNN vote and the base model with the same shots and constrained
    decoding (`tagging.evaluate`): macro-F1 per field, per-value precision and recall, calibration error."""
    from lorag.retrieval.evaluate import write_report
    from lorag.tagging.evaluate import compare, report_markdown

    spec = tagging_spec(settings, taxonomy, task)
    records = labelled_records(gold, spec, text_field=text_field, tags_field=tags_field)[:limit]
    tagger = build_tagger(settings, spec, model, examples, shots=shots, batch_size=batch_size)
    base = tagger.scorer.as_base("base") if isinstance(tagger.scorer, TransformersScorer) else None
    results = compare(tagger, records, base, base_shots=max(tagger.k_shots, BASE_SHOTS))
    report: dict[str, Any] = {
        "contenders": results, "examples": len(records), "model": tagger.model or "base", "task": spec.name,
        "shots": tagger.k_shots, "base_shots": max(tagger.k_shots, BASE_SHOTS),
        "calibration": tagger.calibration.as_dict() if tagger.calibration else None,
        "run": {"gold": str(gold), "gold_sha256": stable_hash([[r.prompt, r.output] for r in records])}}
    json_path, md_path = write_report("tagging", report, out or settings.runs_dir / "eval", report_markdown(report))
    typer.echo(md_path.read_text())
    typer.echo(f"reports: {json_path} {md_path}")
    return report


def tagging_spec(settings: Settings, taxonomy: Path | None, task: str | None) -> TaskSpec:
    """The task to tag with: `--task`, else the configured task with the taxonomy's fields (its prompt, data and
    adapter were made together), else the taxonomy file on its own."""
    from lorag.app.wiring import configured_tasks
    from lorag.finetune.tasks import find_task

    if task is not None:
        found = find_task(configured_tasks(settings), task)
        if found.kind != "classification":
            raise InvalidInput(f"task {task} is a {found.kind} task; tagging needs a classification task")
        return found
    if taxonomy is None:
        raise InvalidInput("say what to tag with: --taxonomy FILE.yaml or --task NAME")
    spec = load_taxonomy(taxonomy)
    match = matching_task(spec, configured_tasks(settings))
    if match is not None and match is not spec:
        typer.echo(f"the taxonomy is task {match.name}'s: its prompt, labelled data and adapter are used")
    return match or spec


def build_tagger(settings: Settings, spec: TaskSpec, model: str | None, examples: Path | None, *,
                 shots: int | None, batch_size: int, calibrate: bool = True) -> Tagger:
    """The in-process model scores the taxonomy's values (constrained decoding with probabilities); a model server
    (vLLM) generates under its JSON schema. Labelled examples serve the prompts, the neighbours' vote and the linear
    probe, and held-out ones fit the calibration (cached per model, taxonomy and data). `shots` None: as many as
    the model was trained with (`default_shots`)."""
    from lorag.app import wiring
    from lorag.ingest.factory import load_embedder
    from lorag.serving.factory import build_answer_generator

    with wiring.open_registry(settings) as sessions:
        adapter = _adapter(sessions, spec, model)
    name = adapter.name if adapter is not None else model
    labelled = labelled_records(examples, spec, text_field=None, tags_field=None) if examples is not None else None
    pool, held_out = shot_pool(spec, labelled)
    index = ShotIndex(load_embedder(settings), pool) if pool else None
    probe = LinearProbe.fit(index.embedder, spec.taxonomy, pool) if index is not None else None
    scorer, generator = None, None
    if settings.generator.backend == "transformers":
        scorer = _scorer(settings, adapter, model)
    else:
        generator = build_answer_generator(settings)
        if adapter is not None and generator.capabilities.runtime_adapters:
            generator.add_adapter(adapter.name, adapter.path)
    tagger = Tagger(generator, spec, model=name, shots=index, k_shots=default_shots(adapter is not None, shots),
                    batch_size=batch_size, max_new_tokens=spec.evaluation.max_new_tokens, scorer=scorer,
                    probe=probe)
    if calibrate:
        tagger.calibration = calibration_of(tagger, held_out, settings.runs_dir / "calibration", say=typer.echo,
                                            progress=lambda total: progress_bar(total, 0, True))
    return tagger


def _scorer(settings: Settings, adapter: AdapterRecord | None, model: str | None) -> TransformersScorer:
    from lorag.core import models

    base = models.served_name(settings.models.base)
    if adapter is None and model not in (None, base):
        raise NotFound(f"unknown model {model!r}: not an adapter version or task in the registry, nor the base "
                       f"model {base}", param="model")
    network, tokenizer = models.load_causal_lm(models.resolve(settings.models.base, settings.models_dir),
                                               settings.models.device)
    if adapter is not None:
        from peft import PeftModel

        network = PeftModel.from_pretrained(network, str(adapter.path), is_trainable=False).eval()
    return TransformersScorer(network, tokenizer, name=adapter.name if adapter is not None else base)


def _adapter(sessions: sessionmaker[Session], spec: TaskSpec, model: str | None) -> AdapterRecord | None:
    """The registry's version for `model` (a version or a task name), or the task's active one; None: base."""
    from lorag.finetune import registry

    active = registry.active(sessions)
    if model is None:
        return active.get(spec.name)
    if model in active:
        return active[model]
    try:
        return registry.get(sessions, model)
    except NotFound:
        return None  # the base model's name, or a name the model server knows; the generator checks it


def confirm_command(settings: Settings, review_file: Path, *, taxonomy: Path | None, task: str | None) -> int:
    """`lorag confirm-tags`: check every row, then store the confirmed ones in one transaction."""
    from lorag.app import wiring
    from lorag.app.wiring import configured_tasks

    spec = tagging_spec(settings, taxonomy, task)
    names = [configured.name for configured in configured_tasks(settings)]
    if spec.name not in names:
        raise InvalidInput(f"confirmed tags train a configured task, and this taxonomy is no configured task's; "
                           f"name one with --task ({', '.join(names) or 'none'})")
    confirmed, unmarked = confirmations(read_table(review_file), spec, review_file)
    with wiring.open_registry(settings) as sessions:
        store(sessions, spec, confirmed)
    typer.echo(f"stored {len(confirmed)} confirmed item(s) for task {spec.name}; {unmarked} row(s) not marked "
               "confirmed were left out")
    if spec.data.feedback:
        typer.echo("the next nightly run trains on them")
    else:
        typer.echo(f"note: task {spec.name} has data.feedback: false, so its nightly runs ignore confirmed tags")
    return 0


@app.command("tag")
@edge
def tag(
    input_path: Annotated[Path, typer.Argument(metavar="INPUT", help="Items to tag: CSV, JSONL or Parquet.")],
    output: Annotated[Path, typer.Option(help="Tags, one row per item: CSV, JSONL or Parquet (by extension).")],
    taxonomy: TaxonomyOption = None,
    task: TaskOption = None,
    model: ModelOption = None,
    examples: ExamplesOption = None,
    id_field: Annotated[str | None, typer.Option(help="Id column; default `id`, else the row number.")] = None,
    text_field: Annotated[str | None, typer.Option(help="Text column; default the first of item, text, "
                                                   "description, name.")] = None,
    shots: Annotated[int | None, typer.Option(min=0, help="Labelled neighbours shown per item; default: 0 with an "
                                              "adapter (trained on bare prompts), 3 with the base model.")] = None,
    batch_size: Annotated[int | None, typer.Option(min=1, help="Items tagged together; default: as many as take "
                                                   "about 20 s at the speed measured on the first items.")] = None,
    retry_failed: Annotated[bool, typer.Option(help="On resume, tag the items that failed before again.")] = False,
    review_below: Annotated[float | None, typer.Option(min=0, max=1, help="Also write items whose confidence is "
                                                       "below this to OUTPUT's .review.jsonl (items that need "
                                                       "review always go there).")] = None,
) -> None:
    """Tag every item against a taxonomy. Resumable: run it again to continue where it stopped.
    Exit code 1 if any item got no valid tags (the output gives the reason)."""
    raise typer.Exit(tag_command(
        cli_settings(), input_path, output, taxonomy=taxonomy, task=task, model=model, examples=examples,
        id_field=id_field, text_field=text_field, shots=shots, batch_size=batch_size, retry_failed=retry_failed,
        review_below=review_below))


@app.command("confirm-tags")
@edge
def confirm_tags(
    review_file: Annotated[Path, typer.Argument(metavar="REVIEW_FILE", help="Rows a person checked: `lorag tag`'s "
                                                ".review.jsonl (or CSV, Parquet) with text, tags and confirmed.")],
    task: Annotated[str | None, typer.Option(help="The configured classification task the tags are for.")] = None,
    taxonomy: Annotated[Path | None, typer.Option(help="Or the taxonomy file of a configured task.")] = None,
) -> None:
    """Store the rows marked "confirmed": true as the task's confirmed tags; the next nightly run trains on them.
    Every row is checked first: one bad row (a value outside the taxonomy, say) stores nothing."""


    raise typer.Exit(confirm_command(cli_settings(), review_file, taxonomy=taxonomy, task=task))
