"""Confirmed tags: the review rows a person checked, which the next night trains on (`lorag confirm-tags`,
`POST /v1/tagging/confirmations`).

    lorag tag menu.csv --task menu-tagging --output tags.jsonl --review-below 0.8
    # in tags.review.jsonl: correct each row's tags, and set "confirmed": true on every row you checked
    lorag confirm-tags tags.review.jsonl --task menu-tagging

A confirmed row is stored as feedback of kind `tag` (the item's text and its tags) for the task; the nightly job
reads it through `finetune.data.feedback_records` (origin "feedback", which outranks the task's data file when both
label the same item). Every row is checked before anything is stored: a value outside the taxonomy, a missing text,
a contradicted implication or an unreadable `confirmed` is named with its row, and nothing is stored. Confirming an
item again replaces its earlier confirmation (the stored row's id is derived from the task and the item's text).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lorag.core.errors import InvalidInput
from lorag.finetune.prompts import parse_output
from lorag.finetune.tasks import TaskSpec, Taxonomy
from lorag.tagging.confidence import implications

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

MAX_PROBLEMS = 20
YES = frozenset({"true", "yes", "1"})
NO = frozenset({"false", "no", "0", ""})
NAMESPACE = uuid.UUID("6f1c3f5e-1f0a-4f7e-9a53-2b8c0d9e7a41")  # confirmed tags' ids: uuid5(task, text)


@dataclass(frozen=True)
class Confirmation:
    """An item's text and the tags a person confirmed for it (canonical: a label, or fields in taxonomy order)."""

    text: str
    tags: str | dict[str, Any]
    model: str | None  # the model whose tags were reviewed, when the row names it


def confirmations(rows: Sequence[Mapping[str, Any]], task: TaskSpec,
                  where: str | Path) -> tuple[list[Confirmation], int]:
    """The rows marked confirmed, checked against the task's taxonomy, and how many rows were not marked.
    Raises InvalidInput naming every bad row (a row not marked confirmed is not checked beyond its mark)."""
    confirmed: dict[str, Confirmation] = {}
    problems: list[str] = []
    for number, row in enumerate(rows, start=1):
        name = f"row {number}" + (f" (id {row['id']})" if row.get("id") not in (None, "") else "")
        try:
            if not _marked(row.get("confirmed")):
                continue
            found = _confirmation(row, task)
        except ValueError as error:
            problems.append(f"{name}: {error}")
            continue
        earlier = confirmed.setdefault(_key(found.text), found)
        if earlier.tags != found.tags:
            problems.append(f"{name}: the same item as an earlier row, with other tags; keep one of them")
    if problems:
        more = f"\n- ... and {len(problems) - MAX_PROBLEMS} more" if len(problems) > MAX_PROBLEMS else ""
        raise InvalidInput(f"{where}: {len(problems)} bad row(s), nothing was stored; fix them and run again:\n"
                           + "\n".join(f"- {p}" for p in problems[:MAX_PROBLEMS]) + more)
    if not confirmed:
        raise InvalidInput(f'{where}: no row is marked "confirmed": true; set it on each row whose tags you '
                           "checked (and corrected), then run again")
    marked = sum(1 for row in rows if _marked(row.get("confirmed")))
    return list(confirmed.values()), len(rows) - marked


def store(sessions: sessionmaker[Session], task: TaskSpec, confirmed: Sequence[Confirmation]) -> None:
    """All or nothing: one transaction; an item confirmed before gets the new tags (the newest decision wins)."""
    from lorag.core.db import transaction
    from lorag.core.tables import Feedback, FeedbackKind, utcnow

    with transaction(sessions) as session:
        for item in confirmed:
            key = str(uuid.uuid5(NAMESPACE, f"{task.name}\n{_key(item.text)}"))
            tags = json.dumps(item.tags, ensure_ascii=False) if isinstance(item.tags, dict) else item.tags
            row = session.get(Feedback, key)
            if row is None:
                session.add(Feedback(id=key, kind=FeedbackKind.TAG, task=task.name, audience=task.audiences[0],
                                     question=item.text, correction=tags, model=item.model, channel="tagging"))
            else:
                row.question, row.correction, row.model, row.created_at = item.text, tags, item.model, utcnow()


def _confirmation(row: Mapping[str, Any], task: TaskSpec) -> Confirmation:
    assert task.taxonomy is not None
    text = row.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"no item text: `text` must be the item's text, got {_show(text)}")
    tags = row.get("tags")
    if task.taxonomy.labels is None and isinstance(tags, str):  # a CSV cell holds the object as JSON text
        tags = _json_cell(tags)
    if task.taxonomy.labels is None and not isinstance(tags, dict):
        raise ValueError(f"`tags` must be an object with keys {list(task.taxonomy.fields or {})}, got {_show(tags)}")
    if task.taxonomy.labels is not None and not isinstance(tags, str):
        raise ValueError(f"`tags` must be one of the labels {task.taxonomy.labels}, got {_show(tags)}")
    parsed = parse_output(task.taxonomy, tags if isinstance(tags, str) else json.dumps(tags))
    if not parsed.valid or parsed.value is None:
        raise ValueError(f"tags do not fit the taxonomy: {parsed.problem}")
    _check_implications(task.taxonomy, parsed.value)
    model = row.get("model")
    return Confirmation(text.strip(), parsed.value, model if isinstance(model, str) and model else None)


def _check_implications(taxonomy: Taxonomy, tags: str | dict[str, Any]) -> None:
    """A confirmed vegan dish that is not vegetarian is a slip, and the model would learn it: refused."""
    if not isinstance(tags, dict):
        return
    missing = [f"{name} {value} implies {', '.join(implied)}, which {'is' if len(implied) == 1 else 'are'} missing"
               for name, rules in implications(taxonomy).items() for value, needs in rules.items()
               if value in tags.get(name, []) and (implied := [v for v in needs if v not in tags.get(name, [])])]
    if missing:
        raise ValueError("; ".join(missing) + ": add them or remove the value")


def _marked(value: object) -> bool:
    if isinstance(value, bool) or value is None:
        return bool(value)
    text = str(value).strip().lower()
    if text in YES | NO:
        return text in YES
    raise ValueError(f"`confirmed` must be true or false, got {_show(value)}")


def _json_cell(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise ValueError(f"`tags` is not a JSON object: {_show(text)}") from None


def _key(text: str) -> str:
    return " ".join(text.split()).lower()  # as finetune.types.Record.key compares inputs


def _show(value: object) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
