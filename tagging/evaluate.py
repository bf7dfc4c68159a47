"""The shipped tagger against the strongest cheap baselines on labelled items, all from one pass of the model.

    "tagger"                      the model's constrained probabilities and the neighbours' vote, blended with the
                                  calibrated weights, under the taxonomy's implications and precision floors
    "model alone"                 the same model, prompt and shots, constrained decoding, no vote, no rules
    "kNN vote"                    the labelled neighbours' similarity-weighted vote over the embedder's vectors
    "linear probe"                the probe fitted on the labelled items (`tagging.probe`), alone, no rules
    "base + shots (constrained)"  the prompt-only base model, same shots and constrained decoding (when the model is
                                  an adapter): it always writes valid tags, so it is a fair baseline

Each reports macro-F1 and accuracy per field, precision/recall/F1 per value of a multi field (the dietary flags),
expected calibration error per field, and how many items the tagger sent to review.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from lorag.finetune.evaluate import classification_metrics
from lorag.finetune.tasks import Taxonomy
from lorag.finetune.types import Record
from lorag.tagging.confidence import (
    Calibration,
    Decision,
    Distribution,
    Scorer,
    as_sets,
    blend,
    decide,
    expected_calibration_error,
    field_specs,
)
from lorag.tagging.tagger import Item, Raw, Tagger


def compare(tagger: Tagger, records: Sequence[Record], base: Scorer | None = None, *,
            base_shots: int | None = None) -> dict[str, dict[str, Any]]:
    """contender → metrics on `records` (their `output` is the gold); the base model is shown `base_shots`
    neighbours (default: the tagger's)."""
    items = [Item(str(number), record.prompt) for number, record in enumerate(records)]
    raws = _raw(tagger, items)
    weights = tagger.calibration.weights if tagger.calibration is not None else {}
    bare = without_rules(tagger.taxonomy)
    contenders: dict[str, list[Decision | None]] = {
        "tagger": [_decide(tagger.taxonomy, _blend(raw, weights), tagger.calibration) for raw in raws],
        "model alone": [_decide(bare, raw.model, None) for raw in raws],
    }
    if all(raw.knn is not None for raw in raws):
        contenders["kNN vote"] = [_decide(bare, raw.knn, None) for raw in raws]
    if all(raw.probe is not None for raw in raws):
        contenders["linear probe"] = [_decide(bare, raw.probe, None) for raw in raws]
    if base is not None:
        shown = tagger.k_shots if base_shots is None else base_shots
        baseline = Tagger(None, tagger.task, model=None, shots=tagger.shots, k_shots=shown, scorer=base,
                          knn_k=0, batch_size=tagger.batch_size)
        contenders["base + shots (constrained)"] = [_decide(bare, raw.model, None) for raw in _raw(baseline, items)]
    golds = [record.output for record in records]
    return {label: metrics(tagger.taxonomy, golds, decisions) for label, decisions in contenders.items()}


def metrics(taxonomy: Taxonomy, golds: Sequence[object], decisions: Sequence[Decision | None]) -> dict[str, Any]:
    """classification_metrics, plus per-value scores of multi fields, ECE per field and the review share."""
    rows = [{"gold": gold, "parsed": None if d is None else d.tags, "valid": d is not None}
            for gold, d in zip(golds, decisions, strict=True)]
    out = classification_metrics(taxonomy, rows)
    gold_sets = [as_sets(taxonomy, gold) for gold in golds]
    pred_sets = [as_sets(taxonomy, None if d is None else d.tags) for d in decisions]
    out["per_value"] = {name: {value: _value_scores(value, name, gold_sets, pred_sets) for value in values}
                        for name, (multi, values) in field_specs(taxonomy).items() if multi}
    out["ece"] = {name: expected_calibration_error([(d.fields[name], g[name] == p[name])
                                                    for d, g, p in zip(decisions, gold_sets, pred_sets, strict=True)
                                                    if d is not None]) for name in field_specs(taxonomy)}
    out["ece_item"] = expected_calibration_error([(d.confidence, g == p) for d, g, p in
                                                  zip(decisions, gold_sets, pred_sets, strict=True) if d is not None])
    out["needs_review"] = round(sum(bool(d and d.review) for d in decisions) / max(len(decisions), 1), 4)
    return out


def as_served(tagger: Tagger, records: Sequence[Record]) -> dict[str, Any]:
    """{"metrics", "items"} of the tagger on labelled `records` (their `output` is the gold), as `lorag tag` would
    tag them: what the nightly gate weighs for a classification task. A value held back for review counts as not
    emitted, so a precision floor is judged on the flags a catalogue actually receives.

    metrics: `classification_metrics`, plus needs_review (share of items) and ece_item (the item confidence
    against every field being right)."""
    results = tagger.tag([Item(str(number), record.prompt) for number, record in enumerate(records)])
    items = [{"key": record.key, "prompt": record.prompt, "gold": record.output, "output": result.tags,
              "parsed": result.tags, "valid": result.valid, "problem": result.error,
              "confidence": result.confidence, "review": list(result.review)}
             for record, result in zip(records, results, strict=True)]
    out = classification_metrics(tagger.taxonomy, items)
    out["needs_review"] = round(sum(result.needs_review for result in results) / max(len(results), 1), 4)
    out["ece_item"] = expected_calibration_error([
        (result.confidence, as_sets(tagger.taxonomy, record.output) == as_sets(tagger.taxonomy, result.tags))
        for record, result in zip(records, results, strict=True) if result.valid and result.confidence is not None])
    return {"metrics": out, "items": items}


def without_rules(taxonomy: Taxonomy) -> Taxonomy:
    """The taxonomy without precision floors and implications: how a baseline that knows no rules answers."""
    if taxonomy.fields is None:
        return taxonomy.model_copy(update={"precision_floor": None})
    return taxonomy.model_copy(update={"fields": {name: spec.model_copy(update={"precision_floor": None,
                                                                                 "implies": {}})
                                                  for name, spec in taxonomy.fields.items()}})


def _value_scores(value: str, name: str, golds: Sequence[dict[str, set[str]]],
                  preds: Sequence[dict[str, set[str]]]) -> dict[str, Any]:
    tp = sum(value in g[name] and value in p[name] for g, p in zip(golds, preds, strict=True))
    predicted = sum(value in p[name] for p in preds)
    actual = sum(value in g[name] for g in golds)
    precision = tp / predicted if predicted else None
    recall = tp / actual if actual else None
    f1 = 2 * tp / (predicted + actual) if predicted + actual else None
    return {"precision": _round(precision), "recall": _round(recall), "f1": _round(f1), "predicted": predicted,
            "support": actual}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _raw(tagger: Tagger, items: Sequence[Item]) -> list[Raw]:
    raws: list[Raw] = []
    for start in range(0, len(items), tagger.batch_size):
        raws += tagger.raw(items[start:start + tagger.batch_size])
    return raws


def _blend(raw: Raw, weights: dict[str, float]) -> Distribution | None:
    return None if raw.model is None else blend(raw.model, raw.vote, weights)


def _decide(taxonomy: Taxonomy, dist: Distribution | None, calibration: Calibration | None) -> Decision | None:
    return None if dist is None else decide(taxonomy, dist, calibration)


def report_markdown(report: Mapping[str, Any]) -> str:
    """`lorag eval tagging`'s report as a person reads it: one column per contender, one row per figure.

    >>> contender = {"accuracy": 0.5, "macro_f1": 0.4, "json_validity": 1.0, "examples": 2, "needs_review": 0.5,
    ...              "per_field": {"course": {"accuracy": 0.5, "macro_f1": 0.4}}, "ece_item": 0.1,
    ...              "per_value": {"diet": {"vegan": {"precision": None, "recall": 0.0, "predicted": 0}}}}
    >>> print(report_markdown({"task": "t", "model": "base", "examples": 2, "contenders": {"tagger": contender}}))
    # tagging: t, base, 2 items
    <BLANKLINE>
    | | tagger |
    |---|---|
    | accuracy (all fields right) | 0.500 |
    | macro-F1 | 0.400 |
    | schema-valid | 1.000 |
    | course: accuracy | 0.500 |
    | course: macro-F1 | 0.400 |
    | diet = vegan: precision (emitted) | – (0) |
    | diet = vegan: recall | 0.000 |
    | ECE per item | 0.100 |
    | needs review | 0.500 |
    <BLANKLINE>
    """
    contenders: Mapping[str, Mapping[str, Any]] = report.get("contenders") or {}
    labels = list(contenders)
    first = next(iter(contenders.values()), {})
    rows: list[tuple[str, list[str]]] = [
        ("accuracy (all fields right)", [_number(c.get("accuracy")) for c in contenders.values()]),
        ("macro-F1", [_number(c.get("macro_f1")) for c in contenders.values()]),
        ("schema-valid", [_number(c.get("json_validity")) for c in contenders.values()]),
    ]
    for name in first.get("per_field") or {}:
        for key, shown in (("accuracy", "accuracy"), ("macro_f1", "macro-F1")):
            rows.append((f"{name}: {shown}", [_number((c.get("per_field") or {}).get(name, {}).get(key))
                                              for c in contenders.values()]))
    for name, values in (first.get("per_value") or {}).items():
        for value in values:
            cells = [(c.get("per_value") or {}).get(name, {}).get(value, {}) for c in contenders.values()]
            rows.append((f"{name} = {value}: precision (emitted)",
                         [f"{_number(cell.get('precision'))} ({cell.get('predicted', 0)})" for cell in cells]))
            rows.append((f"{name} = {value}: recall", [_number(cell.get("recall")) for cell in cells]))
    rows.append(("ECE per item", [_number(c.get("ece_item")) for c in contenders.values()]))
    rows.append(("needs review", [_number(c.get("needs_review")) for c in contenders.values()]))
    title = f"# tagging: {report.get('task')}, {report.get('model')}, {report.get('examples')} items"
    lines = [title, "", "| | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
    lines += [f"| {label} | " + " | ".join(cells) + " |" for label, cells in rows]
    run = report.get("run") or {}
    lines += ["", *(f"- {key}: {value}" for key, value in run.items())]
    return "\n".join(lines) + "\n"


def _number(value: object) -> str:
    return "–" if value is None else f"{float(value):.3f}"  # type: ignore[arg-type]
