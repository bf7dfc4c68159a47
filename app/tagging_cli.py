"""`lorag tag` and `lorag eval tagging`: a file of items in, a file of tags out, resumable.

    lorag tag menu.csv --taxonomy samples/menu/taxonomy.yaml --output tags.jsonl

Input and output are CSV, JSONL or Parquet, by extension. Each finished batch is appended to
`OUTPUT.partial.jsonl` (flushed and fsynced), so a run that is killed loses at most one batch; running the same
command again skips every id already there and tags the rest. When all items are done, OUTPUT is written whole
(a temporary file renamed over it) in the input's order and the partial file is removed.

An item that could not be tagged is written with `valid: false` and its `error`. It is not retried on resume:
decoding is greedy, so the same model would write the same reply; `--retry-failed` tags those items again
(after a new adapter, say), and the newer row replaces the older one, so no item appears twice.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from lorag.app.tagging import (
    Item,
    ShotIndex,
    Tagger,
    TagResult,
    calibration_of,
    load_taxonomy,
    matching_task,
    shot_pool,
)
from lorag.app.tagging_confidence import TransformersScorer
from lorag.core.errors import InvalidInput, NotFound
from lorag.core.settings import Settings
from lorag.finetune.prompts import parse_output
from lorag.finetune.tasks import TaskSpec
from lorag.finetune.types import Record, stable_hash

if TYPE_CHECKING:  # the models and the database are loaded by the commands that need them
    from sqlalchemy.orm import Session, sessionmaker

    from lorag.finetune.registry import AdapterRecord
    from lorag.ingest.embed import Embedder

logger = logging.getLogger(__name__)

FORMATS = (".csv", ".jsonl", ".parquet")
TEXT_FIELDS = ("item", "text", "description", "name")
TAG_FIELDS = ("tags", "label", "labels")
MAX_PROBLEMS = 20
JSON_COLUMNS = frozenset({"tags", "review", "field_confidence"})
PROBE_ITEMS = 2  # tagged first to measure the speed that sets an automatic batch size
BATCH_SECONDS = 20.0  # an automatic batch takes about this long, so the first rows are on disk within a minute
MAX_AUTO_BATCH = 32


# --- files ------------------------------------------------------------------------------------------------------

def read_table(path: Path) -> list[dict[str, Any]]:
    """The rows of a CSV (every cell a string), JSONL (one object a line) or Parquet file."""
    suffix = _format(path, "input")
    if not path.is_file():
        raise InvalidInput(f"input file {path} does not exist")
    import pandas as pd

    try:
        if suffix == ".jsonl":
            return _jsonl_rows(path)
        frame = (pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig") if suffix == ".csv"
                 else pd.read_parquet(path))
    except (ValueError, OSError, UnicodeDecodeError) as error:  # pandas' parser errors are ValueErrors
        raise InvalidInput(f"cannot read {path} as {suffix[1:].upper()}: {error}") from None
    return frame.astype(object).where(frame.notna(), None).to_dict(orient="records")


def _jsonl_rows(path: Path) -> list[dict[str, Any]]:
    rows, problems = [], []
    for number, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            problems.append(f"line {number}: not valid JSON ({error.msg})")
            continue
        if not isinstance(row, dict):
            problems.append(f"line {number}: a JSON {type(row).__name__}, not an object")
        rows.append(row)
    _raise_problems(f"{path}: {len(problems)} bad line(s); each line must hold one JSON object", problems)
    return rows


def items_of(rows: Sequence[Mapping[str, Any]], where: Path, *, id_field: str | None,
             text_field: str | None) -> list[Item]:
    """Items from rows: ids from `id_field` (default `id`; absent: the 1-based row number), text from
    `text_field` (default: the first of item, text, description, name that the rows have)."""
    columns = dict.fromkeys(key for row in rows for key in row)
    text_field = text_field or next((name for name in TEXT_FIELDS if name in columns), None)
    if text_field is None or text_field not in columns:
        raise InvalidInput(f"{where}: no text column ({text_field or ' / '.join(TEXT_FIELDS)}); its columns are "
                           f"{', '.join(map(str, columns)) or 'none'}: name one with --text-field")
    if id_field is not None and id_field not in columns:
        raise InvalidInput(f"{where}: no id column {id_field!r}; its columns are {', '.join(map(str, columns))}")
    id_field = id_field or ("id" if "id" in columns else None)
    items = [Item(_cell(row.get(id_field)) if id_field else str(number), _cell(row.get(text_field)))
             for number, row in enumerate(rows, start=1)]
    seen: dict[str, int] = {}
    problems = [f"id {item.id!r} on rows {seen[item.id]} and {n}" for n, item in enumerate(items, start=1)
                if seen.setdefault(item.id, n) != n or not item.id]
    _raise_problems(f"{where}: item ids must be unique and non-empty (--id-field names the column)", problems)
    return items


def labelled_records(path: Path, task: TaskSpec, *, text_field: str | None, tags_field: str | None) -> list[Record]:
    """Labelled items (gold, or examples for the prompt): a text column and the tags (an object, or JSON in a
    CSV cell; a label for a labels taxonomy). Every row must fit the taxonomy; all problems are listed."""
    assert task.taxonomy is not None
    rows = read_table(path)
    tags_field = tags_field or next((name for name in TAG_FIELDS if rows and name in rows[0]), "tags")
    items = items_of(rows, path, id_field=None, text_field=text_field)
    records, problems = [], []
    for number, (item, row) in enumerate(zip(items, rows, strict=True), start=1):
        tags = row.get(tags_field)
        # a label, a JSON object, or (in a CSV cell) the object as JSON text
        parsed = parse_output(task.taxonomy, tags if isinstance(tags, str) else json.dumps(tags))
        if not parsed.valid:
            problems.append(f"row {number}: {tags_field} does not fit the taxonomy: {parsed.problem}")
        else:
            records.append(Record(prompt=item.text, output=parsed.value, source=path.name))
    _raise_problems(f"{path}: {len(problems)} row(s) without valid {tags_field!r}", problems)
    return records


def write_table(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    """Write whole or not at all: a temporary file beside `path`, fsynced, renamed over it."""
    import pandas as pd

    suffix = _format(path, "output")
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        if suffix == ".jsonl":
            temporary.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows),
                                 encoding="utf-8")
        else:
            frame = pd.DataFrame(list(rows), columns=list(rows[0]) if rows else list(TagResult.__dataclass_fields__))
            # Tags are JSON text in a table cell: a labels taxonomy's string and a fields taxonomy's object alike;
            # so are the review reasons and the per-field confidences.
            for column in JSON_COLUMNS & set(frame.columns):
                frame[column] = [None if value is None else json.dumps(value, ensure_ascii=False)
                                 for value in frame[column]]
            frame.to_csv(temporary, index=False) if suffix == ".csv" else frame.to_parquet(temporary, index=False)
        _fsync(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _format(path: Path, role: str) -> str:
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise InvalidInput(f"{role} file {path}: unknown format {suffix or '(no extension)'!r}; "
                           f"use {', '.join(FORMATS)}")
    return suffix


def _cell(value: object) -> str:
    return "" if value is None else str(value).strip() if not isinstance(value, float) or value == value else ""


def _fsync(path: Path) -> None:
    with path.open("rb") as handle:
        os.fsync(handle.fileno())


def _raise_problems(title: str, problems: Sequence[str]) -> None:
    if problems:
        more = f"\n- ... and {len(problems) - MAX_PROBLEMS} more" if len(problems) > MAX_PROBLEMS else ""
        raise InvalidInput(title + ":\n" + "\n".join(f"- {p}" for p in problems[:MAX_PROBLEMS]) + more)


# --- the resumable run ------------------------------------------------------------------------------------------

class Checkpoint:
    """`OUTPUT.partial.jsonl`: a header naming the taxonomy and model, then one result row a line."""

    def __init__(self, output: Path, header: Mapping[str, Any]) -> None:
        self.path = output.with_name(output.name + ".partial.jsonl")
        self.header = dict(header)

    def load(self) -> dict[str, dict[str, Any]]:
        """id → its latest row; a last line cut short by a kill is dropped (its batch is tagged again)."""
        if not self.path.exists():
            return {}
        data = self.path.read_bytes()
        whole = data[: data.rfind(b"\n") + 1]
        if len(whole) != len(data):
            with self.path.open("r+b") as handle:
                handle.truncate(len(whole))
        try:
            lines = [json.loads(line) for line in whole.decode("utf-8").splitlines() if line.strip()]
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise InvalidInput(f"{self.path} is damaged (not JSON lines); delete it to start over") from None
        header = lines[0].get("_run", {}) if lines else {}
        if header and header.get("taxonomy") != self.header["taxonomy"]:
            raise InvalidInput(f"{self.path} holds tags of another taxonomy; use the same --taxonomy to resume, "
                               "or delete it to start over")
        if header and header.get("model") != self.header["model"]:
            logger.warning("resuming %s with %s; its earlier rows were tagged with %s (each row names its model)",
                           self.path, self.header["model"] or "the base model", header.get("model") or "the base model")
        return {row["id"]: row for row in lines[1:]}

    def append(self, rows: Sequence[Mapping[str, Any]]) -> None:
        new = not self.path.exists() or self.path.stat().st_size == 0
        with self.path.open("a", encoding="utf-8") as handle:
            if new:
                handle.write(json.dumps({"_run": self.header}) + "\n")
            handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
            handle.flush()
            os.fsync(handle.fileno())


def run_resumable(tagger: Tagger, items: Sequence[Item], output: Path, *, retry_failed: bool = False,
                  show_progress: bool = True, auto_batch: bool = False) -> dict[str, int]:
    """Tag what the checkpoint lacks, then write OUTPUT whole. Returns counts: total, valid, failed, resumed,
    needs_review. `auto_batch`: the batch size is set from the speed of the first PROBE_ITEMS items."""
    header = {"taxonomy": stable_hash(tagger.taxonomy.model_dump()), "model": tagger.model}
    checkpoint = Checkpoint(output, header)
    done = checkpoint.load()
    keep = {key: row for key, row in done.items() if row["valid"] or not retry_failed}
    todo = [item for item in items if item.id not in keep]
    resumed = len(items) - len(todo)

    def save(batch: list[TagResult]) -> None:
        rows = [result.as_row() for result in batch]
        checkpoint.append(rows)
        keep.update((row["id"], row) for row in rows)
        advance(len(rows))

    with _progress(len(items), len(items) - len(todo), show_progress) as advance:
        if auto_batch and todo:
            started = time.perf_counter()
            save(tagger.tag_batch(todo[:PROBE_ITEMS]))
            tagger.batch_size = auto_batch_size((time.perf_counter() - started) / len(todo[:PROBE_ITEMS]))
            logger.info("%.1fs per item: batches of %d", (time.perf_counter() - started) / PROBE_ITEMS,
                        tagger.batch_size)
            todo = todo[PROBE_ITEMS:]
        for batch in tagger.batches(todo):
            save(batch)
    rows = [keep[item.id] for item in items]
    write_table(output, rows)
    checkpoint.path.unlink()
    valid = sum(row["valid"] for row in rows)
    return {"total": len(rows), "valid": valid, "failed": len(rows) - valid, "resumed": resumed,
            "needs_review": sum(bool(row.get("needs_review")) for row in rows)}


def auto_batch_size(seconds_per_item: float) -> int:
    """As many items as take about BATCH_SECONDS at the measured speed, 1 to MAX_AUTO_BATCH.

    >>> auto_batch_size(2.0), auto_batch_size(0.1), auto_batch_size(60.0)
    (10, 32, 1)
    """
    return max(1, min(MAX_AUTO_BATCH, int(BATCH_SECONDS / max(seconds_per_item, 1e-9))))


@contextmanager
def _progress(total: int, already: int, show: bool) -> Iterator[Callable[[int], None]]:
    """A bar of items with the rate of this run (items/s) and the time left at it, skipped items counted as done."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("{task.fields[rate]}"), TextColumn("left"), TimeRemainingColumn())
    started, tagged = time.perf_counter(), 0
    with Progress(*columns, disable=not show) as progress:
        bar = progress.add_task("tagging", total=total, completed=already, rate="")

        def advance(count: int) -> None:
            nonlocal tagged
            tagged += count
            rate = f"{tagged / max(time.perf_counter() - started, 1e-9):.2f} items/s"
            progress.update(bar, advance=count, rate=rate)

        yield advance


# --- the commands -----------------------------------------------------------------------------------------------

def tag_command(settings: Settings, input_path: Path, output: Path, *, taxonomy: Path | None, task: str | None,
                model: str | None, examples: Path | None, id_field: str | None, text_field: str | None,
                shots: int, batch_size: int | None, retry_failed: bool, review_below: float | None = None) -> int:
    """`lorag tag`; the exit code is 1 when any item has no valid tags (the output holds their reasons).
    `batch_size` None: chosen from the measured speed. Items below `review_below` confidence, and those marked
    needs_review, also go to OUTPUT's `.review.jsonl` sibling."""
    spec = tagging_spec(settings, taxonomy, task)
    items = items_of(read_table(input_path), input_path, id_field=id_field, text_field=text_field)
    _format(output, "output")  # before the model loads: a bad name costs nothing, and nothing is written
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


def write_review(output: Path, below: float | None) -> tuple[Path, int]:
    """OUTPUT.review.jsonl: the rows marked needs_review, and those whose confidence is below `below`, each with
    `confirmed: false` for a person to set once the row's tags are right (`lorag confirm-tags` stores those)."""
    rows = read_table(output)
    if output.suffix.lower() != ".jsonl":  # a table cell holds the review reasons as JSON text
        rows = [{**row, "needs_review": row.get("needs_review") in (True, "True", "true")} for row in rows]
    chosen = [{**row, "confirmed": False} for row in rows if row["valid"] in (True, "True") and (
        row.get("needs_review") or (below is not None and _float(row.get("confidence")) < below))]
    path = output.with_name(output.stem + ".review.jsonl")
    write_table(path, chosen)
    return path, len(chosen)


def _float(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0  # no measured confidence: review it


def eval_tagging(settings: Settings, gold: Path, *, taxonomy: Path | None, task: str | None, model: str | None,
                 examples: Path | None, text_field: str | None, tags_field: str | None, shots: int,
                 batch_size: int, limit: int | None, out: Path | None) -> dict[str, Any]:
    """`lorag eval tagging`: the tagger against the kNN vote and the base model with the same shots and constrained
    decoding (`app.tagging_eval`): macro-F1 per field, per-value precision and recall, calibration error."""
    from lorag.app.tagging_eval import compare
    from lorag.retrieval.evaluate import write_report

    spec = tagging_spec(settings, taxonomy, task)
    records = labelled_records(gold, spec, text_field=text_field, tags_field=tags_field)[:limit]
    tagger = build_tagger(settings, spec, model, examples, shots=shots, batch_size=batch_size)
    base = tagger.scorer.as_base("base") if isinstance(tagger.scorer, TransformersScorer) else None
    results = compare(tagger, records, base)
    report: dict[str, Any] = {
        "contenders": results, "examples": len(records), "model": tagger.model or "base", "task": spec.name,
        "shots": shots, "calibration": tagger.calibration.as_dict() if tagger.calibration else None,
        "run": {"gold": str(gold), "gold_sha256": stable_hash([[r.prompt, r.output] for r in records])}}
    json_path, md_path = write_report("tagging", report, out or settings.runs_dir / "eval")
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


def build_tagger(settings: Settings, spec: TaskSpec, model: str | None, examples: Path | None, *, shots: int,
                 batch_size: int, calibrate: bool = True) -> Tagger:
    """The in-process model scores the taxonomy's values (constrained decoding with probabilities); a model server
    (vLLM) generates under its JSON schema. Labelled examples serve the prompts and the neighbours' vote, and held-out
    ones fit the calibration (cached per model, taxonomy and data)."""
    from lorag.app import wiring
    from lorag.retrieval.factory import build_answer_generator

    with wiring.open_registry(settings) as sessions:
        adapter = _adapter(sessions, spec, model)
    name = adapter.name if adapter is not None else model
    labelled = labelled_records(examples, spec, text_field=None, tags_field=None) if examples is not None else None
    pool, held_out = shot_pool(spec, labelled)
    index = ShotIndex(_embedder(settings), pool) if pool else None
    scorer, generator = None, None
    if settings.generator.backend == "transformers":
        scorer = _scorer(settings, adapter, model)
    else:
        generator = build_answer_generator(settings)
        if adapter is not None and hasattr(generator, "add_adapter"):  # vLLM serves its adapters by name already
            generator.add_adapter(adapter.name, adapter.path)
    tagger = Tagger(generator, spec, model=name, shots=index, k_shots=shots, batch_size=batch_size,
                    max_new_tokens=spec.evaluation.max_new_tokens, scorer=scorer)
    if calibrate:
        tagger.calibration = calibration_of(tagger, held_out, settings.runs_dir / "calibration", say=typer.echo,
                                            progress=lambda total: _progress(total, 0, True))
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


def _embedder(settings: Settings) -> Embedder:
    from lorag.core import models
    from lorag.ingest.factory import build_embedder

    ref = models.resolve(settings.models.embedder, settings.models_dir)
    return build_embedder(settings, models.load_embedder(ref, settings.models.device))
