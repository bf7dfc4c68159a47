"""A task's dataset: records from its files and from feedback, deduplicated, split by hash, reported.

    load_records(task) + feedback_records(task, sessions) → dedupe → split
        → train (+ general_records), validation, test → data_report

The split depends only on each record's key (its input) and the task's salt, so it is the same every night and
new data never moves an old test example into training.
"""

from __future__ import annotations

import csv
import json
import logging
import statistics
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from lorag.core.errors import ConfigError, InvalidInput
from lorag.core.tables import Feedback, FeedbackKind
from lorag.finetune.prompts import format_output, parse_output
from lorag.finetune.tasks import Source, SplitSpec, TaskSpec
from lorag.finetune.types import Record, Split, stable_hash

logger = logging.getLogger(__name__)

SPLITS: tuple[Split, ...] = ("train", "validation", "test")
# Which record wins when one input has two outputs: generated questions lose to every file and feedback.
ORIGIN_RANK = {"feedback": 3, "data": 2, "generated": 1, "general": 0}
MAX_PROBLEMS = 20  # bad rows listed in one error; the rest are counted


class RowError(ValueError):
    """A problem with one row; the reader adds the file and line."""


# --- files ------------------------------------------------------------------------------------------------------

def load_records(task: TaskSpec) -> list[Record]:
    """Every row of every `data.sources` file as a Record (origin "data"); all bad rows are reported at once."""
    records: list[Record] = []
    problems: list[str] = []
    for source in task.data.sources:
        path = task.resolve(source.path)
        found, bad = _collect(path, _row_parser(task, source), csv_allowed=source.format == "records")
        records += found
        problems += bad
        if not found and not bad:
            logger.warning("task %s: data file %s holds no rows", task.name, path)
    if problems:
        raise InvalidInput(_problem_list(f"task {task.name}: {len(problems)} bad row(s) in its data files", problems))
    return records


def _collect(path: Path, parse: Callable[[Mapping[str, Any]], Record],
             *, csv_allowed: bool) -> tuple[list[Record], list[str]]:
    """The file's records, and one "file F line N: problem" per bad row."""
    records: list[Record] = []
    problems: list[str] = []
    for where, row in _read_rows(path, csv_allowed=csv_allowed):
        try:
            if isinstance(row, RowError):
                raise row
            records.append(parse(row))
        except RowError as error:
            problems.append(f"{where}: {error}")
    return records, problems


def _row_parser(task: TaskSpec, source: Source) -> Callable[[Mapping[str, Any]], Record]:
    name = source.path.name

    def parse(row: Mapping[str, Any]) -> Record:
        if source.format == "alpaca":
            prompt, output, meta = _alpaca(row)
        elif source.format == "chat":
            prompt, output, meta = _chat(row)
        elif source.format == "qa":
            prompt, output, meta = _qa(row)
        else:
            prompt, output, meta = _text(row, source.text_field), row.get(source.output_field), {}
            if source.output_field not in row:
                raise RowError(f"no {source.output_field!r} field (output_field of this source)")
        return Record(prompt=prompt, output=_checked_output(task, output), source=name, meta=meta)

    return parse


def _read_rows(path: Path, *, csv_allowed: bool) -> Iterator[tuple[str, Mapping[str, Any] | RowError]]:
    """("file F line N", row) for each JSON line (a RowError when it is not an object) or CSV row."""
    if not path.is_file():
        raise ConfigError(f"data file {path} does not exist: fix data.sources / data.general in the task file "
                          "(paths are relative to the task file)")
    if path.suffix.lower() == ".csv" and not csv_allowed:
        raise ConfigError(f"data file {path}: CSV is only read for format: records; convert it to JSONL")
    try:
        if path.suffix.lower() == ".csv":
            yield from _csv_rows(path)
        else:
            yield from _json_rows(path)
    except UnicodeDecodeError as error:
        raise InvalidInput(f"file {path}: not UTF-8 text (byte {error.start}); save it as UTF-8") from None


def _json_rows(path: Path) -> Iterator[tuple[str, Mapping[str, Any] | RowError]]:
    # split("\n"), not splitlines(): JSON strings may hold U+2028 and friends, which splitlines() breaks on.
    for number, line in enumerate(path.read_text(encoding="utf-8-sig").split("\n"), start=1):
        if not line.strip():
            continue
        where = f"file {path} line {number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            yield where, RowError(f"not valid JSON ({error.msg} at column {error.colno}); "
                                  "each line must hold one JSON object")
            continue
        yield where, row if isinstance(row, dict) else RowError(f"a JSON {type(row).__name__}, not an object")


def _csv_rows(path: Path) -> Iterator[tuple[str, Mapping[str, Any]]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        _ = reader.fieldnames  # reads the header, so line_num counts from it
        line = reader.line_num + 1
        for row in reader:
            yield f"file {path} line {line}", row
            line = reader.line_num + 1  # a quoted field may span lines: the next row starts after this one


def _text(row: Mapping[str, Any], name: str) -> str:
    value = row.get(name)
    if not isinstance(value, str) or not value.strip():
        raise RowError(f"{name!r} must be a non-empty string, got {_show(value)}")
    return value


def _alpaca(row: Mapping[str, Any]) -> tuple[str, Any, dict[str, Any]]:
    prompt = _text(row, "instruction")
    extra = row.get("input") or ""
    if not isinstance(extra, str):
        raise RowError(f"'input' must be a string, got {_show(extra)}")
    if extra.strip():
        prompt = f"{prompt}\n\n{extra}"
    return prompt, _text(row, "output"), {}


def _chat(row: Mapping[str, Any]) -> tuple[str, Any, dict[str, Any]]:
    """The last assistant turn is the answer, the user turn before it the prompt, earlier turns the history."""
    messages = row.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RowError("'messages' must be a non-empty list of {role, content}")
    for index, message in enumerate(messages):
        if (not isinstance(message, dict) or message.get("role") not in ("system", "user", "assistant")
                or not isinstance(message.get("content"), str)):
            raise RowError(f"messages[{index}] must be {{role: system|user|assistant, content: string}}")
    answers = [i for i, message in enumerate(messages) if message["role"] == "assistant"]
    asks = [i for i in range(answers[-1] if answers else 0) if messages[i]["role"] == "user"]
    if not answers or not asks:
        raise RowError("'messages' needs a user turn followed by an assistant turn (the answer to learn)")
    answer, ask = answers[-1], asks[-1]
    history = [{"role": m["role"], "content": m["content"]} for m in messages[:ask]]
    meta = {"history": history} if history else {}
    return _text(messages[ask], "content"), _text(messages[answer], "content"), meta


def _qa(row: Mapping[str, Any]) -> tuple[str, Any, dict[str, Any]]:
    # The key must be there: a misspelt "answer" would otherwise turn every question unanswerable.
    if "answer" not in row:
        raise RowError("no 'answer' field (use null for a question the knowledge base cannot answer)")
    answer = row["answer"]
    if answer is not None and (not isinstance(answer, str) or not answer.strip()):
        raise RowError(f"'answer' must be a non-empty string or null, got {_show(answer)}")
    return _text(row, "question"), answer, {"doc": row.get("doc"), "section": row.get("section")}


def _checked_output(task: TaskSpec, output: Any) -> str | dict[str, Any] | None:
    """The output in canonical form; for a classification task it must fit the taxonomy."""
    if task.kind != "classification" or task.taxonomy is None:
        if output is None and task.kind == "grounded-qa":
            return None
        if not isinstance(output, str) or not output.strip():
            raise RowError(f"the output must be a non-empty string, got {_show(output)}")
        return output
    taxonomy = task.taxonomy
    if taxonomy.labels is not None:
        if not isinstance(output, str):
            raise RowError(f"the label must be a string, got {_show(output)}")
        parsed = parse_output(taxonomy, output)
    else:
        if isinstance(output, str):  # a CSV cell (or a JSON string) holding the tags
            try:
                output = json.loads(output)
            except json.JSONDecodeError:
                raise RowError(f"the tags must be a JSON object, got {_show(output)}") from None
        if not isinstance(output, dict):
            raise RowError(f"the tags must be a JSON object with keys {list(taxonomy.fields or {})}, "
                           f"got {_show(output)}")
        parsed = parse_output(taxonomy, json.dumps(output))
    if not parsed.valid or parsed.value is None:
        raise RowError(f"does not fit the taxonomy: {parsed.problem}")
    if isinstance(parsed.value, str):
        return parsed.value
    return json.loads(format_output(taxonomy, parsed.value))  # multi-label values in the taxonomy's order


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _problem_list(title: str, problems: Sequence[str]) -> str:
    lines = [f"- {problem}" for problem in problems[:MAX_PROBLEMS]]
    if len(problems) > MAX_PROBLEMS:
        lines.append(f"- ... and {len(problems) - MAX_PROBLEMS} more")
    return f"{title}; fix or remove them:\n" + "\n".join(lines)


# --- feedback ---------------------------------------------------------------------------------------------------

def feedback_records(task: TaskSpec, sessions: sessionmaker[Session]) -> list[Record]:
    """What people taught us: corrections, positively rated answers and confirmed tags (origin "feedback")."""
    if not task.data.feedback:
        return []
    query = select(Feedback).where(Feedback.audience.in_(task.audiences)).order_by(Feedback.created_at, Feedback.id)
    if task.kind == "classification":
        query = query.where(Feedback.kind == FeedbackKind.TAG, Feedback.task == task.name)
    else:
        query = query.where(Feedback.kind.in_([FeedbackKind.CORRECTION, FeedbackKind.RATING]))
        query = query.where(Feedback.kb == task.kb) if task.kind == "grounded-qa" else \
            query.where(Feedback.task == task.name)
    with sessions() as session:
        rows = session.scalars(query).all()
    records = [record for row in rows if (record := _feedback_record(task, row)) is not None]
    logger.info("task %s: %d feedback records from %d feedback rows", task.name, len(records), len(rows))
    return records


def _feedback_record(task: TaskSpec, row: Feedback) -> Record | None:
    output: Any
    if row.kind == FeedbackKind.TAG:
        output = _feedback_tags(task, row)
    elif row.kind == FeedbackKind.CORRECTION:
        output = row.correction
    else:  # a thumbs-down answer is not something to learn; an unrated one neither
        output = row.answer if (row.rating or 0) > 0 else None
    if output is None or (isinstance(output, str) and not output.strip()) or not row.question.strip():
        return None
    created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC)  # SQLite drops tz
    meta: dict[str, Any] = {"created_at": created.isoformat(), "feedback_id": row.id, "kind": str(row.kind)}
    if row.citations:
        meta["citations"] = _citations(row)
    return Record(prompt=row.question, output=output, origin="feedback", source="feedback", meta=meta)


def _citations(row: Feedback) -> Any:
    # Only a hint for building the example's context: a malformed list must not stop the nightly job.
    try:
        return json.loads(row.citations or "[]")
    except json.JSONDecodeError:
        logger.warning("feedback %s: citations are not JSON, ignored: %s", row.id, _show(row.citations))
        return []


def _feedback_tags(task: TaskSpec, row: Feedback) -> str | dict[str, Any] | None:
    # Skipped, not raised: the taxonomy may have changed since a person confirmed these tags.
    raw = row.correction or ""
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw  # a bare label
    try:
        return _checked_output(task, value)
    except RowError as error:
        logger.warning("task %s: feedback %s skipped, its tags %s %s", task.name, row.id, _show(raw), error)
        return None


# --- dedupe and split -------------------------------------------------------------------------------------------

def dedupe(records: Sequence[Record]) -> tuple[list[Record], int]:
    """One record per key (input): feedback over data over general, then the newest, then the smallest hash.

    The winner does not depend on the input order; the kept records stay in the order their keys first appear.
    Returns the records and how many were dropped (exact duplicates and outvoted outputs).
    """
    best: dict[str, Record] = {}
    for record in records:
        current = best.get(record.key)
        if current is None or _preference(record) > _preference(current):
            best[record.key] = record
    kept = list(best.values())
    return kept, len(records) - len(kept)


def _preference(record: Record) -> tuple[int, datetime, str]:
    created = record.meta.get("created_at")
    try:
        when = datetime.fromisoformat(created) if isinstance(created, str) else datetime.min.replace(tzinfo=UTC)
    except ValueError:
        when = datetime.min.replace(tzinfo=UTC)
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    # The inverted hash makes the smallest content hash win a full tie, whatever the order.
    inverted = "".join(f"{15 - int(c, 16):x}" for c in record.content_hash)
    return ORIGIN_RANK[record.origin], when, inverted


def split_of(record: Record, spec: SplitSpec) -> Split:
    """test / validation / train from the key's hash alone: stable, and growing data never moves a test record.

    A record may name a split group (generated questions: their source chunk), so a group never straddles splits.
    """
    u = int(stable_hash({"key": record.meta.get("group") or record.key, "salt": spec.salt})[:15], 16) / 16**15
    if u < spec.test:
        return "test"
    if u < spec.test + spec.validation:
        return "validation"
    return "train"


def split(records: Sequence[Record], spec: SplitSpec) -> dict[str, list[Record]]:
    splits: dict[str, list[Record]] = {name: [] for name in SPLITS}
    for record in records:
        splits[split_of(record, spec)].append(record)
    return {name: sorted(items, key=lambda r: (r.key, r.content_hash)) for name, items in splits.items()}


# --- general instruction mix ------------------------------------------------------------------------------------

def general_records(task: TaskSpec, train_count: int) -> list[Record]:
    """round(ratio × train_count) general examples (alpaca or chat rows), the same ones every night.

    They keep the adapter's general ability; the caller adds them to training only, never to validation or test.
    """
    mix = task.data.general
    if mix is None or train_count <= 0:
        return []
    path = task.resolve(mix.path)

    def parse(row: Mapping[str, Any]) -> Record:
        prompt, output, meta = _chat(row) if "messages" in row else _alpaca(row)
        return Record(prompt=prompt, output=output, origin="general", source=path.name, meta=meta)

    records, problems = _collect(path, parse, csv_allowed=False)
    if problems:
        raise InvalidInput(_problem_list(f"task {task.name}: {len(problems)} bad row(s) in {path} (rows are "
                                         "alpaca {instruction, input, output} or chat {messages})", problems))
    wanted = round(mix.ratio * train_count)
    if wanted > len(records):
        logger.info("task %s: %d general examples wanted, %s holds %d", task.name, wanted, path, len(records))
    ordered = sorted(records, key=lambda r: stable_hash({"key": r.content_hash, "salt": task.split.salt}))
    return ordered[:wanted]


def data_hash(splits: Mapping[str, Sequence[Record]]) -> str:
    """What the adapter was trained and tested on, as one hash (stored with the adapter)."""
    return stable_hash({name: sorted(record.content_hash for record in records) for name, records in splits.items()})


# --- report -----------------------------------------------------------------------------------------------------

def data_report(task: TaskSpec, splits: Mapping[str, Sequence[Record]], general: Sequence[Record],
                dropped_duplicates: int) -> dict[str, Any]:
    """What the adapter learns from, as JSON: sizes, origins, lengths, label balance, the data hash."""
    records = [record for name in splits for record in splits[name]]
    outputs = [_output_text(task, r) for r in records if r.output is not None]
    report: dict[str, Any] = {
        "task": task.name,
        "kind": task.kind,
        "counts": {**{name: len(items) for name, items in splits.items()}, "general": len(general)},
        "origins": {name: dict(sorted(Counter(r.origin for r in items).items())) for name, items in splits.items()},
        "lengths": {"prompt": _lengths([r.prompt for r in records]), "output": _lengths(outputs)},
        "dropped_duplicates": dropped_duplicates,
        "data_hash": data_hash(splits),
    }
    report["origins"]["general"] = len(general)
    if task.kind == "classification" and task.taxonomy is not None:
        report["label_balance"] = {name: _balance(task, items) for name, items in splits.items()}
    if task.kind == "grounded-qa":
        report["unanswerable"] = {name: sum(r.output is None for r in items) for name, items in splits.items()}
    return report


def _output_text(task: TaskSpec, record: Record) -> str:
    output = record.output
    return output if isinstance(output, str) else format_output(task.taxonomy, output or {})


def _lengths(texts: Sequence[str]) -> dict[str, dict[str, float]]:
    return {"chars": _stats([len(text) for text in texts]), "words": _stats([len(text.split()) for text in texts])}


def _stats(values: Sequence[int]) -> dict[str, float]:
    if not values:
        return {"min": 0, "median": 0, "p95": 0, "max": 0}
    ordered = sorted(values)
    p95 = ordered[max(0, -(-95 * len(ordered) // 100) - 1)]  # nearest rank
    return {"min": ordered[0], "median": statistics.median(ordered), "p95": p95, "max": ordered[-1]}


def _balance(task: TaskSpec, records: Sequence[Record]) -> dict[str, Any]:
    """label → count, or field → value → count (a multi-label record counts once per value); zeros included."""
    taxonomy = task.taxonomy
    assert taxonomy is not None
    if taxonomy.labels is not None:
        counts = Counter(str(r.output) for r in records)
        return {label: counts[label] for label in taxonomy.labels}
    balance: dict[str, dict[str, int]] = {}
    for name, spec in (taxonomy.fields or {}).items():
        counts: Counter[str | None] = Counter()
        for record in records:
            value = record.output.get(name) if isinstance(record.output, Mapping) else None
            counts.update(value if isinstance(value, list) else [value])
        balance[name] = {value: counts[value] for value in spec.values}
    return balance


def render_report_markdown(report: Mapping[str, Any]) -> str:
    """The data report for people: a few tables, same numbers as the JSON."""
    names = [name for name in report["counts"] if name != "general"]
    lines = [f"# Data for {report['task']} ({report['kind']})", "",
             "| split | records | origins |", "|---|---:|---|"]
    for name in names:
        origins = ", ".join(f"{origin} {count}" for origin, count in report["origins"][name].items()) or "-"
        lines.append(f"| {name} | {report['counts'][name]} | {origins} |")
    lines.append(f"| general mix (train only) | {report['counts']['general']} | general |")
    lines += ["", "| length | min | median | p95 | max |", "|---|---:|---:|---:|---:|"]
    for side, units in report["lengths"].items():
        for unit, stats in units.items():
            lines.append(f"| {side} {unit} | {stats['min']} | {stats['median']} | {stats['p95']} | {stats['max']} |")
    if "label_balance" in report:
        flat = {name: _flat(report["label_balance"][name]) for name in names}
        lines += ["", "| label | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
        lines += [f"| {label} | " + " | ".join(str(flat[n][label]) for n in names) + " |" for label in flat[names[0]]]
    if "unanswerable" in report:
        lines += ["", "Unanswerable: " + ", ".join(f"{n} {report['unanswerable'][n]}" for n in names)]
    lines += ["", f"Dropped duplicates: {report['dropped_duplicates']}  ", f"Data hash: `{report['data_hash']}`"]
    return "\n".join(lines) + "\n"


def _flat(balance: Mapping[str, Any]) -> dict[str, int]:
    """{label: n} as is; {field: {value: n}} as {"field: value": n}."""
    flat: dict[str, int] = {}
    for label, count in balance.items():
        if isinstance(count, Mapping):
            flat.update({f"{label}: {value}": n for value, n in count.items()})
        else:
            flat[label] = count
    return flat
