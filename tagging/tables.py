"""Tables of items and tags: CSV, JSONL or Parquet in and out (by extension), the review file, labelled records.

Every problem with an input file is reported by row and column, up to MAX_PROBLEMS of them, before anything is
tagged; an output is written whole to a temporary file and renamed over its name, so a reader never sees half.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lorag.core.errors import InvalidInput
from lorag.finetune.prompts import parse_output
from lorag.finetune.tasks import TaskSpec
from lorag.finetune.types import Record
from lorag.tagging.tagger import Item, TagResult

FORMATS = (".csv", ".jsonl", ".parquet")
TEXT_FIELDS = ("item", "text", "description", "name")
TAG_FIELDS = ("tags", "label", "labels")
MAX_PROBLEMS = 20
JSON_COLUMNS = frozenset({"tags", "review", "field_confidence"})


def read_table(path: Path) -> list[dict[str, Any]]:
    """The rows of a CSV (every cell a string), JSONL (one object a line) or Parquet file."""
    suffix = table_format(path, "input")
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

    suffix = table_format(path, "output")
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


def table_format(path: Path, role: str) -> str:
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
