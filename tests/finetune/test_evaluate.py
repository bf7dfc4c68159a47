"""Task evaluation: classification, chat and grounded-qa metrics on hand-computed cases, the cap, the report.

A fake Generator (canned text per user message) and a stub Answerer (canned AnswerResults, their text and
citations produced by the real `verify`) stand in for models: these are unit tests of the scoring.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from lorag.core.errors import ConfigError, InvalidInput
from lorag.finetune.evaluate import (
    Contender,
    evaluate_chat,
    evaluate_classification,
    evaluate_grounded,
    evaluate_task,
    macro_f1,
    marker_counts,
    write_task_report,
)
from lorag.finetune.gate import decide, gate_json
from lorag.finetune.paired import paired_differences
from lorag.finetune.tasks import METRICS, TaskSpec
from lorag.finetune.types import Record
from lorag.retrieval.answer import AnswerResult, Timings
from lorag.retrieval.citations import LEXICAL_THRESHOLD, SEMANTIC_THRESHOLD, verify
from lorag.retrieval.types import ABSTENTION, ScoredChunk
from tests.fakes import FakeGenerator as Fake


def FakeGenerator(outputs: dict[str, str],  # noqa: N802 - the scripted model these tests were written with
                  by_model: dict[str | None, dict[str, str]] | None = None) -> Fake:
    """Canned outputs keyed by (model, last user message); records every call."""
    table = by_model or {}
    return Fake(reply=lambda messages, model: table.get(model, outputs).get(messages[-1]["content"], ""),
                adapters={"candidate@1": Path("candidate@1")}, pieces=lambda text: [text])


LABELS = TaskSpec.model_validate({"name": "spam", "kind": "classification", "gate": {"macro_f1": 0.01},
                                  "taxonomy": {"labels": ["spam", "ham", "eggs"]},
                                  "evaluation": {"max_new_tokens": 8}})
LABEL_RECORDS = [Record("buy now", "spam"), Record("hello friend", "ham"), Record("lunch", "ham"),
                 Record("weird", "eggs")]
LABEL_OUTPUTS = {"Item: buy now": "spam", "Item: hello friend": "Spam", "Item: lunch": "ham\n",
                 "Item: weird": "banana"}

FIELDS = TaskSpec.model_validate({"name": "menu", "kind": "classification", "taxonomy": {"fields": {
    "cuisine": {"type": "single", "values": ["italian", "thai"]},
    "dietary": {"type": "multi", "values": ["vegan", "vegetarian", "gluten-free"]}}}})
FIELD_RECORDS = [Record("pasta", {"cuisine": "italian", "dietary": ["vegetarian"]}),
                 Record("curry", {"cuisine": "thai", "dietary": ["vegan", "gluten-free"]}),
                 Record("pizza", {"cuisine": "italian", "dietary": []}),
                 Record("satay", {"cuisine": "thai", "dietary": []})]
FIELD_OUTPUTS = {"Item: pasta": '{"cuisine": "italian", "dietary": ["vegetarian"]}',
                 "Item: curry": '{"cuisine": "thai", "dietary": ["vegan"]}',
                 "Item: pizza": "not json at all",
                 "Item: satay": 'Sure! {"cuisine": "italian", "dietary": []}'}


def test_labels_taxonomy_metrics_are_hand_computed() -> None:
    generator = FakeGenerator(LABEL_OUTPUTS)
    result = evaluate_classification(LABELS, LABEL_RECORDS, generator, "candidate@1")
    metrics = result["metrics"]
    assert metrics["accuracy"] == 0.5  # buy now, lunch
    assert metrics["json_validity"] == 0.75  # "banana" is no label
    # spam: tp 1 fp 1 fn 0 → 2/3; ham: tp 1 fn 1 → 2/3; eggs: fn 1 → 0
    assert metrics["macro_f1"] == pytest.approx(4 / 9, abs=1e-4)
    assert "per_field" not in metrics
    weird = result["items"][3]
    assert weird["output"] == "banana" and weird["parsed"] is None and not weird["valid"]
    assert "not one of the labels" in weird["problem"]
    assert set(weird) == {"key", "prompt", "gold", "output", "parsed", "valid", "problem"}
    messages, model, max_new_tokens, temperature, _avoid = generator.calls[0]
    assert messages[0]["role"] == "system" and "spam; ham; eggs" in messages[0]["content"]
    assert (model, max_new_tokens, temperature) == ("candidate@1", 8, 0.0)


def test_fields_taxonomy_metrics_count_invalid_output_as_wrong_on_every_field() -> None:
    metrics = evaluate_classification(FIELDS, FIELD_RECORDS, FakeGenerator(FIELD_OUTPUTS), None)["metrics"]
    assert metrics["accuracy"] == 0.25  # only pasta has every field right
    assert metrics["json_validity"] == 0.75
    cuisine, dietary = metrics["per_field"]["cuisine"], metrics["per_field"]["dietary"]
    assert cuisine["accuracy"] == 0.5  # pasta, curry
    # italian: tp 1 (pasta) fp 1 (satay) fn 1 (pizza) → 1/2; thai: tp 1 fn 1 → 2/3
    assert cuisine["macro_f1"] == pytest.approx((1 / 2 + 2 / 3) / 2, abs=1e-4)
    # pizza's gold dietary is [] and the invalid output predicts nothing, yet it counts as wrong
    assert dietary["accuracy"] == 0.5  # pasta, satay
    # vegetarian 1, vegan 1, gluten-free 0 (missed on curry)
    assert dietary["macro_f1"] == pytest.approx(2 / 3, abs=1e-4)
    assert metrics["macro_f1"] == pytest.approx((cuisine["macro_f1"] + dietary["macro_f1"]) / 2, abs=1e-4)


def test_macro_f1_ignores_classes_nobody_used_and_is_perfect_when_nothing_occurs() -> None:
    a, b, none = frozenset({"a"}), frozenset({"b"}), frozenset()
    assert macro_f1([(a, a), (a, a)], ["a", "b", "c"]) == 1.0
    assert macro_f1([(a, b)], ["a", "b"]) == 0.0
    assert macro_f1([(none, none)], ["a", "b"]) == 1.0


def test_chat_sends_system_history_and_prompt_and_scores_the_reply() -> None:
    task = TaskSpec.model_validate({"name": "chat", "kind": "chat", "system": "Be brief."})
    history = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]
    records = [Record("How long do refunds take?", "refunds take 5 days", meta={"history": history}),
               Record("Can I tip?", "yes you can tip")]
    generator = FakeGenerator({"How long do refunds take?": "refunds take 5 working days",
                               "Can I tip?": "yes you can tip"})
    result = evaluate_chat(task, records, generator, "candidate@1")
    first = generator.calls[0][0]
    assert [m["role"] for m in first] == ["system", "user", "assistant", "user"]
    assert first[0]["content"] == "Be brief." and first[-1]["content"] == "How long do refunds take?"
    # first reply: precision 4/5, recall 1 → 8/9 for both; second is exact
    assert result["metrics"]["token_f1"] == pytest.approx((8 / 9 + 1) / 2, abs=1e-4)
    assert result["metrics"]["rouge_l"] == pytest.approx((8 / 9 + 1) / 2, abs=1e-4)
    assert result["items"][0]["output"] == "refunds take 5 working days"


def test_evaluate_task_caps_records_stably_and_runs_every_contender() -> None:
    task = LABELS.model_copy(update={"evaluation": LABELS.evaluation.model_copy(update={"max_examples": 2})})
    generator = FakeGenerator(LABEL_OUTPUTS, by_model={"candidate@1": {p: "ham" for p in LABEL_OUTPUTS}})
    contenders = [Contender("candidate", "candidate@1"), Contender("base (prompt only)", None)]
    results = evaluate_task(task, list(reversed(LABEL_RECORDS)), contenders, generator=generator, answerer=None)
    assert list(results) == ["candidate", "base (prompt only)"]
    expected = sorted(record.key for record in LABEL_RECORDS)[:2]
    for result in results.values():
        assert [item["key"] for item in result["items"]] == expected
    assert len(generator.calls) == 4
    assert [call[1] for call in generator.calls] == ["candidate@1", "candidate@1", None, None]
    assert all(item["parsed"] == "ham" for item in results["candidate"]["items"])


def test_evaluate_task_refuses_what_it_cannot_score() -> None:
    generator = FakeGenerator({})
    with pytest.raises(InvalidInput, match="no test records"):
        evaluate_task(LABELS, [], [Contender("candidate", None)], generator=generator, answerer=None)
    with pytest.raises(InvalidInput, match="unique"):
        evaluate_task(LABELS, LABEL_RECORDS, [Contender("a", None), Contender("a", "x")], generator=generator,
                      answerer=None)
    with pytest.raises(ConfigError, match="grounded-qa"):
        evaluate_task(GROUNDED, GROUNDED_RECORDS, [Contender("candidate", None)], generator=generator,
                      answerer=None)


def chunk(chunk_id: str, text: str, section: str) -> ScoredChunk:
    return ScoredChunk(id=chunk_id, score=0.8, doc_id=f"doc-{chunk_id}", kb="support", audience="public",
                       title=section, source=f"{chunk_id}.md", section=(section,), page=None, start=0,
                       end=len(text), text=text)


REFUNDS = chunk("refunds", "Refunds take 5 days after we receive the item.", "Refunds")
GIFTS = chunk("gifts", "Gift cards cannot be refunded.", "Gift cards")
TIMINGS = Timings(0.0, 0.0, 0.0, 0.0, 0.0)


def answered(draft: str, sources: Sequence[ScoredChunk]) -> AnswerResult:
    """What the Answerer returns for this draft: the real verifier decides what the user sees."""
    checked = verify(draft, sources, similarity=None, lexical_threshold=LEXICAL_THRESHOLD,
                     semantic_threshold=SEMANTIC_THRESHOLD, attribute_uncited=True)
    return AnswerResult(checked.text, checked.citations, checked.abstained, checked.handoff, "m", tuple(sources),
                        TIMINGS, draft=draft)


GROUNDED = TaskSpec.model_validate({"name": "support", "kind": "grounded-qa", "kb": "support",
                                    "audiences": ["public", "internal"]})
GROUNDED_RECORDS = [
    Record("How long do refunds take?", "Refunds take 5 days.", meta={"doc": "refunds.md", "section": "Refunds"}),
    Record("Is shipping free?", "Shipping is free over 20 euros.", meta={"doc": "shipping.md"}),
    Record("Who founded the company?", None),
]
ANSWERS = {
    # [1] supported, [2] is not (the source says gift cards cannot be refunded): 1 of 2 markers kept
    "How long do refunds take?": answered("Refunds take 5 days [1]. Gift cards can be swapped for cash [2].",
                                          [REFUNDS, GIFTS]),
    # a marker beyond the sources: written, never kept; nothing survives, so it abstains
    "Is shipping free?": answered("Shipping is free over 20 euros [3].", [REFUNDS, GIFTS]),
    # retrieval found nothing: abstained before generation, no draft
    "Who founded the company?": AnswerResult(ABSTENTION, (), True, True, "m", (), TIMINGS),
}


class StubAnswerer:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def ask(self, question: str, *, kb: str | None, audiences: tuple[str, ...],
            history: Sequence[dict[str, str]] = (), model: str | None = None) -> AnswerResult:
        self.calls.append({"question": question, "kb": kb, "audiences": audiences, "model": model})
        return ANSWERS[question]


def test_grounded_metrics_use_the_task_names_and_count_kept_markers() -> None:
    answerer = StubAnswerer()
    result = evaluate_grounded(GROUNDED, GROUNDED_RECORDS, answerer, "candidate@1")  # type: ignore[arg-type]
    metrics = result["metrics"]
    assert set(METRICS["grounded-qa"]) <= set(metrics)
    assert metrics["citation_validity"] == pytest.approx(1 / 3, abs=1e-4)
    assert metrics["abstention_on_answerable"] == 0.5
    assert metrics["abstention_on_unanswerable"] == 1.0
    assert metrics["citation_precision"] == 1.0 and metrics["citation_recall"] == 0.5
    assert len(answerer.calls) == 3  # one generation per question, reused for the per-item rows
    assert answerer.calls[0] == {"question": "How long do refunds take?", "kb": "support",
                                 "audiences": ("public", "internal"), "model": "candidate@1"}
    first = result["items"][0]
    assert (first["markers_kept"], first["markers_written"]) == (1, 2)
    assert first["citations"] == ["refunds"] and first["output"].startswith("Refunds take 5 days")
    assert result["items"][2]["gold"] is None and result["items"][2]["abstained"]


def test_citation_validity_is_one_without_markers_and_ignores_attributed_citations() -> None:
    uncited = answered("Refunds take 5 days.", [REFUNDS])  # the verifier attributes it to [1] itself
    assert uncited.citations and marker_counts(uncited) == (0, 0)
    answerer = StubAnswerer()
    answerer.ask = lambda question, **_: uncited  # type: ignore[method-assign]
    metrics = evaluate_grounded(GROUNDED, GROUNDED_RECORDS[:1], answerer, None)["metrics"]  # type: ignore[arg-type]
    assert metrics["citation_validity"] == 1.0


def test_report_has_every_metric_row_every_contender_and_the_gate(tmp_path: Path) -> None:
    generator = FakeGenerator(LABEL_OUTPUTS, by_model={"candidate@1": {p: "ham" for p in LABEL_OUTPUTS}})
    contenders = [Contender("candidate", "candidate@1"), Contender("base (prompt only)", None)]
    results = evaluate_task(LABELS, LABEL_RECORDS, contenders, generator=generator, answerer=None)
    gate = decide(LABELS, results["candidate"]["metrics"], results["base (prompt only)"]["metrics"], parity=True)
    json_path, md_path = write_task_report(LABELS, results, tmp_path / "out", {"gate": gate, "data": {"test": 4}})
    markdown = md_path.read_text()
    assert "| metric | candidate | base (prompt only) |" in markdown
    for metric in METRICS["classification"]:
        assert f"| {metric} |" in markdown
    assert "| accuracy | 0.500 | 0.500 |" in markdown
    assert "| json_validity | 1.000 | 0.750 |" in markdown
    assert all(f"- {reason}" in markdown for reason in gate.reasons)
    report = json.loads(json_path.read_text())
    assert report["task"] == "spam" and report["data"] == {"test": 4}
    assert report["gate"]["promote"] == gate.promote and report["gate"]["reasons"] == list(gate.reasons)
    assert len(report["results"]["candidate"]["items"]) == 4


def test_report_of_grounded_and_fields_tasks_lists_their_rows(tmp_path: Path) -> None:
    grounded = {"candidate": evaluate_grounded(GROUNDED, GROUNDED_RECORDS, StubAnswerer(), None)}  # type: ignore[arg-type]
    _, md_path = write_task_report(GROUNDED, grounded, tmp_path / "qa")
    markdown = md_path.read_text()
    assert all(f"| {metric} | " in markdown for metric in METRICS["grounded-qa"])
    assert "| citation_validity | 0.333 |" in markdown and "Gate" not in markdown
    fields = {"base": evaluate_classification(FIELDS, FIELD_RECORDS, FakeGenerator(FIELD_OUTPUTS), None)}
    _, md_path = write_task_report(FIELDS, fields, tmp_path / "menu", {"gate": {"promote": False, "reasons": ["x"]}})
    markdown = md_path.read_text()
    assert "| dietary: accuracy | 0.500 |" in markdown and "| cuisine: macro_f1 | 0.583 |" in markdown
    assert "keep the adapter in service" in markdown and "- x" in markdown
    with pytest.raises(InvalidInput, match="results"):
        write_task_report(FIELDS, fields, tmp_path / "bad", {"results": 1})


def test_the_report_carries_the_paired_difference_the_gate_acted_on(tmp_path: Path) -> None:
    generator = FakeGenerator(LABEL_OUTPUTS, by_model={"candidate@1": {p: "ham" for p in LABEL_OUTPUTS}})
    contenders = [Contender("candidate", "candidate@1"), Contender("base (prompt only)", None)]
    results = evaluate_task(LABELS, LABEL_RECORDS, contenders, generator=generator, answerer=None)
    evidence = paired_differences(LABELS, results, "candidate", "base (prompt only)")
    gate = decide(LABELS, results["candidate"]["metrics"], results["base (prompt only)"]["metrics"], parity=True,
                  champion_label="base (prompt only)", evidence=evidence)
    json_path, md_path = write_task_report(LABELS, results, tmp_path / "out",
                                           {"gate": gate_json(gate, evidence, "base (prompt only)")})
    shown = json.loads(json_path.read_text())["gate"]["evidence"]["macro_f1"]
    assert shown["n"] == 4 and shown["difference"] == pytest.approx(
        results["candidate"]["metrics"]["macro_f1"] - results["base (prompt only)"]["metrics"]["macro_f1"], abs=1e-4)
    assert shown["ci95"][0] <= shown["difference"] <= shown["ci95"][1]
    assert not gate.promote, "4 examples are too few to promote anything but a clearly better candidate"
    assert "- macro_f1 " in md_path.read_text() and "95% CI [" in gate.reasons[0] and "n=4" in gate.reasons[0]
