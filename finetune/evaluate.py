"""Contenders (candidate adapter, adapter in service, prompt-only base) side by side on a task's test split.

Every contender goes through the serving path with greedy decoding: the prompts of `finetune.prompts` and
`finetune.examples` for classification and chat, and for grounded-qa the whole `Answerer` (retrieve → prompt →
generate → verify citations), so a score is what a user of that model would get.

>>> results = evaluate_task(task, test, [Contender("candidate", "menu-tagging@4"),
...                                      Contender("base (prompt only)", None)], generator=generator, answerer=None)
>>> write_task_report(task, results, Path("adapters/staging/menu-tagging@4"), {"gate": gate})
(PosixPath('.../report.json'), PosixPath('.../report.md'))
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import Any

from lorag.core.errors import ConfigError, InvalidInput
from lorag.finetune.examples import chat_messages
from lorag.finetune.prompts import classification_messages, parse_output
from lorag.finetune.tasks import METRICS, TaskSpec, Taxonomy
from lorag.finetune.types import GateResult, Record
from lorag.retrieval.answer import Answerer, AnswerResult
from lorag.retrieval.citations import split_answer
from lorag.retrieval.evaluate import QAItem, answer_metrics, is_relevant, rouge_l, token_f1
from lorag.serving.protocol import Generator

logger = logging.getLogger(__name__)

# answer_metrics' names → the names tasks.METRICS declares; the one place they are adapted.
GROUNDED_NAMES = {"abstention_rate_answerable": "abstention_on_answerable",
                  "abstention_rate_unanswerable": "abstention_on_unanswerable"}
LABEL = "label"  # the one field a labels taxonomy is scored as
EVAL_BATCH = 8  # prompts per batched generation (bench/tag.py measures what batching gains)


@dataclass(frozen=True)
class Contender:
    """One model evaluated side by side."""

    label: str  # "candidate", "in service", "base (prompt only)"
    model: str | None  # the name the Generator knows: an adapter version, or None for the base model


def evaluate_task(task: TaskSpec, records: Sequence[Record], contenders: Sequence[Contender], *,
                  generator: Generator, answerer: Answerer | None) -> dict[str, dict[str, Any]]:
    """label → {"metrics", "items"}; at most `task.evaluation.max_examples` records, the first by key."""
    chosen = sorted(records, key=lambda record: record.key)[: task.evaluation.max_examples]
    if not chosen:
        raise InvalidInput(f"task {task.name}: no test records to evaluate; add data or raise split.test")
    labels = [contender.label for contender in contenders]
    if len(set(labels)) != len(labels):
        raise InvalidInput(f"contender labels must be unique, got {labels}")
    if task.kind == "grounded-qa" and answerer is None:
        raise ConfigError(f"task {task.name} is grounded-qa: evaluating it needs the answering stack "
                          f"(vector store, embedder) for knowledge base {task.kb!r}")
    results: dict[str, dict[str, Any]] = {}
    for contender in contenders:
        started = time.perf_counter()
        if task.kind == "classification":
            results[contender.label] = evaluate_classification(task, chosen, generator, contender.model)
        elif task.kind == "chat":
            results[contender.label] = evaluate_chat(task, chosen, generator, contender.model)
        else:
            assert answerer is not None
            results[contender.label] = evaluate_grounded(task, chosen, answerer, contender.model)
        logger.info("evaluated %s (%s) on %s: %d examples in %.1fs", contender.label, contender.model or "base",
                    task.name, len(chosen), time.perf_counter() - started)
    return results


def evaluate_classification(task: TaskSpec, records: Sequence[Record], generator: Generator,
                            model: str | None) -> dict[str, Any]:
    """accuracy, macro_f1, json_validity (and per_field for a fields taxonomy); see `classification_metrics`."""
    taxonomy = task.taxonomy
    if taxonomy is None:
        raise ConfigError(f"task {task.name} is a classification task without a taxonomy")
    items = []
    for record, text in zip(records, _greedy_texts(task, records, generator, model), strict=True):
        parsed = parse_output(taxonomy, text)
        items.append({"key": record.key, "prompt": record.prompt, "gold": record.output, "output": text,
                      "parsed": parsed.value, "valid": parsed.valid, "problem": parsed.problem})
    return {"metrics": classification_metrics(taxonomy, items), "items": items}


def _greedy_texts(task: TaskSpec, records: Sequence[Record], generator: Generator, model: str | None) -> list[str]:
    """Greedy outputs for the records' prompts, in batches where the backend batches (same outputs, less time)."""
    prompts = [classification_messages(task, record.prompt) for record in records]
    limit = task.evaluation.max_new_tokens
    if not generator.capabilities.batch:
        return [generator.generate(messages, model=model, max_new_tokens=limit, temperature=0.0).text
                for messages in prompts]
    texts: list[str] = []
    for start in range(0, len(prompts), EVAL_BATCH):
        chunk = prompts[start:start + EVAL_BATCH]
        batch = [(messages, model) for messages in chunk]
        texts += [generation.text for generation in generator.generate_batch(batch,  # type: ignore[attr-defined]
                                                                             max_new_tokens=limit)]
    return texts


def classification_metrics(taxonomy: Taxonomy, items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Scores of parsed outputs against gold; an invalid output is wrong on every field.

    - accuracy: share of items whose every field (the label, for a labels taxonomy) is exactly right.
    - macro_f1: labels: `macro_f1` over the labels. fields: the mean over fields of each field's `macro_f1`
      (a single field over its values; a multi field over its values, each scored as a binary F1).
    - json_validity: share of outputs valid against the taxonomy (a labels taxonomy: exactly one label).
    - per_field (fields taxonomies): {field: {accuracy, macro_f1}}, accuracy being exact match (sets for multi).
    """
    classes = taxonomy_classes(taxonomy)
    golds = [tag_sets(taxonomy, item["gold"]) for item in items]
    preds = [tag_sets(taxonomy, item["parsed"] if item["valid"] else None) for item in items]
    valid = [bool(item["valid"]) for item in items]
    n = max(len(items), 1)
    per_field = {}
    for name, values in classes.items():
        pairs = [(gold[name], pred[name]) for gold, pred in zip(golds, preds, strict=True)]
        right = sum(ok and gold == pred for ok, (gold, pred) in zip(valid, pairs, strict=True))
        per_field[name] = {"accuracy": round(right / n, 4), "macro_f1": round(macro_f1(pairs, values), 4)}
    exact = sum(ok and gold == pred for ok, gold, pred in zip(valid, golds, preds, strict=True))
    metrics: dict[str, Any] = {
        "accuracy": round(exact / n, 4),
        "macro_f1": round(sum(field["macro_f1"] for field in per_field.values()) / max(len(per_field), 1), 4),
        "json_validity": round(sum(valid) / n, 4),
        "examples": len(items),
    }
    if taxonomy.fields is not None:
        metrics["per_field"] = per_field
    floors = flagged_values(taxonomy)
    if floors:
        metrics["flag_precision"] = flag_precision(floors, golds, preds)
    return metrics


def flagged_values(taxonomy: Taxonomy) -> dict[str, dict[str, float]]:
    """field → {value: its precision floor} for the safety-critical values (`precision_floor`)."""
    if taxonomy.labels is not None:
        floor = taxonomy.precision_floor
        return {LABEL: dict.fromkeys(taxonomy.labels, floor)} if floor else {}
    return {name: dict.fromkeys(spec.values, spec.precision_floor)
            for name, spec in (taxonomy.fields or {}).items() if spec.precision_floor}


def flag_precision(floors: Mapping[str, Mapping[str, float]], golds: Sequence[Mapping[str, frozenset[str]]],
                   preds: Sequence[Mapping[str, frozenset[str]]]) -> dict[str, dict[str, Any]]:
    """`field:value` → precision of the value where the model emitted it, how often, and its floor.

    >>> flag_precision({"diet": {"vegan": 0.95}}, [{"diet": frozenset()}], [{"diet": frozenset({"vegan"})}])
    {'diet:vegan': {'precision': 0.0, 'emitted': 1, 'floor': 0.95}}
    """
    shown = {}
    for field, values in floors.items():
        for value, floor in values.items():
            emitted = [value in gold[field] for gold, pred in zip(golds, preds, strict=True) if value in pred[field]]
            precision = round(sum(emitted) / len(emitted), 4) if emitted else None
            shown[f"{field}:{value}"] = {"precision": precision, "emitted": len(emitted), "floor": floor}
    return shown


def macro_f1(pairs: Sequence[tuple[frozenset[str], frozenset[str]]], classes: Sequence[str]) -> float:
    """Mean per-class F1 = 2TP / (2TP + FP + FN) over the classes that occur in gold or predictions.

    Each side is a set: one element for a single-label field (so this is ordinary multi-class macro-F1),
    any number for a multi-label field (per-value binary F1). 1.0 when no class occurs at all: every
    gold and every prediction was empty, so there was nothing to miss and nothing wrongly tagged.

    >>> macro_f1([(frozenset({"a"}), frozenset({"a"})), (frozenset({"b"}), frozenset({"a"}))], ["a", "b"])
    0.3333333333333333
    """
    scores = []
    for name in classes:
        tp = sum(name in gold and name in pred for gold, pred in pairs)
        fp = sum(name in pred and name not in gold for gold, pred in pairs)
        fn = sum(name in gold and name not in pred for gold, pred in pairs)
        if tp + fp + fn:
            scores.append(2 * tp / (2 * tp + fp + fn))
    return sum(scores) / len(scores) if scores else 1.0


def taxonomy_classes(taxonomy: Taxonomy) -> dict[str, list[str]]:
    if taxonomy.labels is not None:
        return {LABEL: taxonomy.labels}
    return {name: spec.values for name, spec in (taxonomy.fields or {}).items()}


def tag_sets(taxonomy: Taxonomy, output: object) -> dict[str, frozenset[str]]:
    """An output (gold or parsed) as field → set of values; None (invalid) gives empty sets."""
    if taxonomy.labels is not None:
        return {LABEL: frozenset() if output is None else frozenset({str(output).strip()})}
    tags = output if isinstance(output, Mapping) else {}
    sets = {}
    for name in taxonomy.fields or {}:
        value = tags.get(name)
        if value is None:
            sets[name] = frozenset()
        else:
            sets[name] = frozenset(map(str, value) if isinstance(value, list | tuple | set) else [str(value)])
    return sets


def evaluate_grounded(task: TaskSpec, records: Sequence[Record], answerer: Answerer,
                      model: str | None) -> dict[str, Any]:
    """The metrics of `retrieval.evaluate.answer_metrics` (named as `tasks.METRICS`), and citation_validity.

    citation_validity: of the [n] markers the model wrote in its drafts (one per sentence and marker), the share
    the verifier kept, i.e. that cite a retrieved source supporting the sentence; counted over all answers.
    It is 1.0 when no draft had a marker (nothing was cited wrongly); the items show the counts.
    """
    answers: dict[str, AnswerResult] = {}

    def ask(question: str) -> AnswerResult:
        # Recorded so the per-item rows need no second generation.
        answers[question] = answerer.ask(question, kb=task.kb, audiences=tuple(task.audiences), model=model)
        return answers[question]

    measured = answer_metrics(ask, [qa_item(record) for record in records])
    metrics: dict[str, Any] = {GROUNDED_NAMES.get(name, name): value for name, value in measured.items()}
    items, kept, written = [], 0, 0
    for record in records:
        result = answers[record.prompt]
        record_kept, record_written = marker_counts(result)
        kept, written = kept + record_kept, written + record_written
        items.append(_grounded_item(record, result, record_kept, record_written))
    metrics["citation_validity"] = round(kept / written, 4) if written else 1.0
    metrics["examples"] = len(records)
    return {"metrics": metrics, "items": items}


def qa_item(record: Record) -> QAItem:
    """Answerable when the record has a gold answer. Without a gold doc (doc "") any document may hold it, and
    citations are judged by the gold section or the answer passage alone (`retrieval.evaluate.is_relevant`)."""
    if not isinstance(record.output, str):
        return QAItem(record.prompt, None, None, None)
    return QAItem(record.prompt, record.output, record.meta.get("doc") or "", record.meta.get("section"))


def marker_counts(result: AnswerResult) -> tuple[int, int]:
    """(kept, written): the draft's (sentence, cited chunk) pairs, and how many the shown answer still has.

    Markers are renumbered by the verifier, so pairs are compared by chunk id; a marker outside 1..k is
    written but never kept, and a citation the verifier attributed to an uncited sentence is not counted.
    """
    def chunk_of(marker: int) -> str:
        return result.sources[marker - 1].id if 1 <= marker <= len(result.sources) else f"out of range {marker}"

    written = {(s.text, chunk_of(m)) for s in split_answer(result.draft) for m in s.markers}
    if result.abstained:
        return 0, len(written)
    shown_ids = {citation.marker: citation.chunk_id for citation in result.citations}
    shown = {(s.text, shown_ids[m]) for s in split_answer(result.text) for m in s.markers if m in shown_ids}
    return len(written & shown), len(written)


def _grounded_item(record: Record, result: AnswerResult, kept: int, written: int) -> dict[str, Any]:
    """One answer's row; its scores are counted as `answer_metrics` counts them, so the gate's paired bootstrap
    (`finetune.paired`) rebuilds the reported metrics from these rows (token_f1 and rouge_l None: abstained)."""
    gold = record.output if isinstance(record.output, str) else None
    scored = gold if gold is not None and not result.abstained else None
    chunks = {chunk.id: chunk for chunk in result.sources}
    hits = [is_relevant(chunks[c.chunk_id], qa_item(record)) for c in result.citations if c.chunk_id in chunks]
    return {"key": record.key, "prompt": record.prompt, "gold": gold, "output": result.text, "draft": result.draft,
            "abstained": result.abstained, "citations": [citation.chunk_id for citation in result.citations],
            "sources": [chunk.id for chunk in result.sources], "markers_kept": kept, "markers_written": written,
            "token_f1": round(token_f1(result.text, scored), 4) if scored is not None else None,
            "rouge_l": round(rouge_l(result.text, scored), 4) if scored is not None else None,
            "cited": len(hits), "relevant_cited": sum(hits)}


def evaluate_chat(task: TaskSpec, records: Sequence[Record], generator: Generator,
                  model: str | None) -> dict[str, Any]:
    """token_f1 and rouge_l of the reply against the gold reply, averaged over records."""
    items = []
    for record in records:
        text = generator.generate(chat_messages(task, record), model=model,
                                  max_new_tokens=task.evaluation.max_new_tokens, temperature=0.0).text
        gold = "" if record.output is None else str(record.output)
        items.append({"key": record.key, "prompt": record.prompt, "gold": gold, "output": text,
                      "token_f1": round(token_f1(text, gold), 4), "rouge_l": round(rouge_l(text, gold), 4)})
    n = max(len(items), 1)
    metrics = {"token_f1": round(sum(item["token_f1"] for item in items) / n, 4),
               "rouge_l": round(sum(item["rouge_l"] for item in items) / n, 4), "examples": len(items)}
    return {"metrics": metrics, "items": items}


def write_task_report(task: TaskSpec, results: Mapping[str, Mapping[str, Any]], out_dir: Path,
                      extra: Mapping[str, Any] = {}) -> tuple[Path, Path]:
    """out_dir/report.json (everything: `extra`'s keys at the top, per-item rows) and out_dir/report.md."""
    reserved = sorted({"task", "kind", "results"} & set(extra))
    if reserved:
        raise InvalidInput(f"extra report entries may not be named {reserved}: the report uses those keys")
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / "report.json", out_dir / "report.md"
    report = {"task": task.name, "kind": task.kind, **extra, "results": results}
    json_path.write_text(json.dumps(report, indent=2, ensure_ascii=False, default=_jsonable) + "\n",
                         encoding="utf-8")
    md_path.write_text(report_markdown(task, results, extra), encoding="utf-8")
    return json_path, md_path


def report_markdown(task: TaskSpec, results: Mapping[str, Mapping[str, Any]], extra: Mapping[str, Any]) -> str:
    """One row per metric of the task's kind (then per-field rows), one column per contender."""
    labels = list(results)
    metrics = {label: result.get("metrics", {}) for label, result in results.items()}
    rows = [(name, [metrics[label].get(name) for label in labels]) for name in METRICS[task.kind]]
    fields = dict.fromkeys(field for label in labels for field in metrics[label].get("per_field", {}))
    for field in fields:
        cells = [metrics[label].get("per_field", {}).get(field, {}) for label in labels]
        rows += [(f"{field}: {name}", [cell.get(name) for cell in cells]) for name in ("accuracy", "macro_f1")]
    rows.append(("examples", [metrics[label].get("examples") for label in labels]))
    lines = [f"# {task.name} ({task.kind})", "", "| metric | " + " | ".join(labels) + " |",
             "|---" * (len(labels) + 1) + "|"]
    lines += [f"| {name} | " + " | ".join(_cell(value) for value in values) + " |" for name, values in rows]
    if "gate" in extra:
        lines += ["", *_gate_lines(extra["gate"])]
    return "\n".join(lines) + "\n"


def _gate_lines(gate: GateResult | Mapping[str, Any]) -> list[str]:
    promote, reasons = ((gate.promote, gate.reasons) if isinstance(gate, GateResult)
                        else (bool(gate.get("promote")), gate.get("reasons", ())))
    return [f"Gate: {'promote' if promote else 'keep the adapter in service'}", "",
            *(f"- {reason}" for reason in reasons)]


def _cell(value: object) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _jsonable(value: object) -> object:
    """json.dumps' fallback: dataclasses (a GateResult) as dicts, sets as sorted lists, the rest as text."""
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    return str(value)
