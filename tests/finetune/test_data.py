"""finetune/data.py: reading task data, feedback, dedupe, the hash split, the general mix and the data report."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from lorag.core import db
from lorag.core.errors import ConfigError, InvalidInput
from lorag.core.tables import Feedback, FeedbackKind
from lorag.finetune.data import (
    data_hash,
    data_report,
    dedupe,
    feedback_records,
    general_records,
    load_records,
    render_report_markdown,
    split,
    split_of,
)
from lorag.finetune.tasks import SplitSpec, TaskSpec, load_tasks
from lorag.finetune.types import Record

REPO = Path(__file__).resolve().parents[2]
FIELDS = {
    "cuisine": {"type": "single", "values": ["thai", "italian"]},
    "dietary": {"type": "multi", "values": ["vegetarian", "vegan", "gluten-free"]},
}


def write(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows),
                    encoding="utf-8")
    return path


def make_task(tmp_path: Path, kind: str = "chat", sources: list[dict[str, Any]] | None = None,
              **extra: Any) -> TaskSpec:
    if kind == "classification":
        extra.setdefault("taxonomy", {"fields": FIELDS})
    if kind == "grounded-qa":
        extra.setdefault("kb", "support")
    return TaskSpec(name="demo", kind=kind, path=tmp_path / "demo.yaml",
                    data={"sources": sources or [], **extra.pop("data", {})}, **extra)


# --- formats ----------------------------------------------------------------------------------------------------

def test_alpaca_rows_join_instruction_and_input(tmp_path: Path) -> None:
    write(tmp_path / "a.jsonl", [{"instruction": "Translate.", "input": "Hallo", "output": "Hello"},
                                 {"instruction": "Say hi.", "input": "  ", "output": "Hi"},
                                 {"instruction": "Say bye.", "output": "Bye"},
                                 # a raw line separator inside a string must not split the JSON line
                                 json.dumps({"instruction": "Keep\u2028this", "output": "Kept"}, ensure_ascii=False)])
    records = load_records(make_task(tmp_path, sources=[{"path": "a.jsonl", "format": "alpaca"}]))
    assert [(r.prompt, r.output) for r in records] == [("Translate.\n\nHallo", "Hello"), ("Say hi.", "Hi"),
                                                      ("Say bye.", "Bye"), ("Keep\u2028this", "Kept")]
    assert {(r.origin, r.source) for r in records} == {("data", "a.jsonl")}


def test_chat_rows_learn_the_last_assistant_turn_with_earlier_turns_as_history(tmp_path: Path) -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Menu?"},
                {"role": "assistant", "content": "Pizza and pasta."}]
    write(tmp_path / "c.jsonl", [{"messages": messages}])
    [record] = load_records(make_task(tmp_path, sources=[{"path": "c.jsonl", "format": "chat"}]))
    assert (record.prompt, record.output) == ("Menu?", "Pizza and pasta.")
    assert record.meta["history"] == messages[:3]
    # The history is part of the key: the same question in another conversation is another example.
    assert record.key != Record(prompt="Menu?", output="Pizza and pasta.").key


def test_qa_rows_keep_doc_and_section_and_null_answers(tmp_path: Path) -> None:
    write(tmp_path / "qa.jsonl", [{"question": "Fee?", "answer": "€2", "doc": "fees.md", "section": "Fees"},
                                  {"question": "CEO?", "answer": None}])
    task = make_task(tmp_path, "grounded-qa", [{"path": "qa.jsonl", "format": "qa"}])
    first, second = load_records(task)
    assert (first.prompt, first.output, dict(first.meta)) == ("Fee?", "€2", {"doc": "fees.md", "section": "Fees"})
    assert (second.output, dict(second.meta)) == (None, {"doc": None, "section": None})


def test_records_in_jsonl_and_csv_are_validated_and_made_canonical(tmp_path: Path) -> None:
    write(tmp_path / "items.jsonl", [{"item": "Pad thai", "tags": {"cuisine": "thai",
                                                                    "dietary": ["gluten-free", "vegetarian"]}}])
    (tmp_path / "items.csv").write_text('name,tags\n"Margherita, thin crust","{""cuisine"": ""italian"", '
                                        '""dietary"": [""vegetarian""]}"\n', encoding="utf-8")
    task = make_task(tmp_path, "classification", [
        {"path": "items.jsonl", "format": "records", "text_field": "item", "output_field": "tags"},
        {"path": "items.csv", "format": "records", "text_field": "name", "output_field": "tags"}])
    thai, pizza = load_records(task)
    assert thai.output == {"cuisine": "thai", "dietary": ["vegetarian", "gluten-free"]}  # the taxonomy's order
    assert (pizza.prompt, pizza.output) == ("Margherita, thin crust", {"cuisine": "italian", "dietary": ["vegetarian"]})
    assert pizza.source == "items.csv"


def test_labels_are_matched_to_the_taxonomy_spelling(tmp_path: Path) -> None:
    write(tmp_path / "l.jsonl", [{"text": "win money now", "label": "SPAM"}])
    task = make_task(tmp_path, "classification", [{"path": "l.jsonl", "format": "records"}],
                     taxonomy={"labels": ["spam", "ham"]})
    assert load_records(task)[0].output == "spam"


# --- bad input --------------------------------------------------------------------------------------------------

def test_every_bad_row_is_reported_with_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "items.jsonl", [
        {"item": "Pad thai", "tags": {"cuisine": "thai", "dietary": []}},
        "{not json",
        {"item": "Sushi", "tags": {"cuisine": "japanese", "dietary": []}},
        {"item": "", "tags": {"cuisine": "thai", "dietary": []}},
        {"item": "Soup", "tags": {"cuisine": "thai", "dietary": ["keto"]}},
        "[1, 2]",
    ])
    task = make_task(tmp_path, "classification",
                     [{"path": "items.jsonl", "format": "records", "text_field": "item", "output_field": "tags"}])
    with pytest.raises(InvalidInput) as raised:
        load_records(task)
    message = raised.value.message
    assert "5 bad row(s)" in message
    assert f"file {path} line 2: not valid JSON" in message
    assert f"file {path} line 3: does not fit the taxonomy: cuisine must be one of" in message
    assert f"file {path} line 4: 'item' must be a non-empty string" in message
    assert f"file {path} line 5: does not fit the taxonomy: dietary must be a list of" in message
    assert f"file {path} line 6: a JSON list, not an object" in message
    assert "line 1:" not in message


def test_csv_errors_name_the_line_of_the_row(tmp_path: Path) -> None:
    path = tmp_path / "l.csv"
    path.write_text('text,label\n"two\nlines",nope\nhello,maybe\nbye,ham\n', encoding="utf-8")
    task = make_task(tmp_path, "classification", [{"path": "l.csv", "format": "records"}],
                     taxonomy={"labels": ["spam", "ham"]})
    with pytest.raises(InvalidInput) as raised:
        load_records(task)
    assert f"file {path} line 2: does not fit the taxonomy: 'nope'" in raised.value.message
    assert f"file {path} line 4: does not fit the taxonomy: 'maybe'" in raised.value.message
    assert "line 5" not in raised.value.message


@pytest.mark.parametrize(("fmt", "row", "problem"), [
    ("alpaca", {"instruction": "Hi"}, "'output' must be a non-empty string"),
    ("chat", {"messages": [{"role": "assistant", "content": "Hi"}]}, "'messages' needs a user turn followed by"),
    ("chat", {"messages": [{"role": "bot", "content": "Hi"}]}, r"messages\[0\] must be"),
    ("qa", {"question": "Fee?", "anwser": "€2"}, "no 'answer' field"),
    ("records", {"text": "x"}, "no 'label' field"),
])
def test_each_format_names_what_is_missing(tmp_path: Path, fmt: str, row: dict[str, Any], problem: str) -> None:
    write(tmp_path / "d.jsonl", [row])
    with pytest.raises(InvalidInput, match=rf"d.jsonl line 1: {problem}"):
        load_records(make_task(tmp_path, "grounded-qa", [{"path": "d.jsonl", "format": fmt}]))


def test_a_missing_file_is_a_config_error_naming_the_path(tmp_path: Path) -> None:
    task = make_task(tmp_path, sources=[{"path": "nowhere.jsonl", "format": "alpaca"}])
    with pytest.raises(ConfigError, match=str(tmp_path / "nowhere.jsonl")):
        load_records(task)


# --- split ------------------------------------------------------------------------------------------------------

def synthetic(count: int, start: int = 0) -> list[Record]:
    return [Record(prompt=f"question number {i}", output=f"answer {i}") for i in range(start, start + count)]


def test_the_split_is_stable_and_adding_data_never_moves_a_record() -> None:
    spec = SplitSpec(validation=0.1, test=0.2)
    before = split(synthetic(500), spec)
    assert split(list(reversed(synthetic(500))), spec) == before
    after = split(synthetic(1000), spec)
    for name in before:
        assert {r.key for r in before[name]} <= {r.key for r in after[name]}
    assert all(items == sorted(items, key=lambda r: r.key) for items in after.values())


def test_the_split_fractions_follow_the_spec_and_the_salt_reshuffles() -> None:
    records = synthetic(2000)
    counts = Counter(split_of(r, SplitSpec(validation=0.1, test=0.25)) for r in records)
    assert abs(counts["test"] / 2000 - 0.25) < 0.03
    assert abs(counts["validation"] / 2000 - 0.1) < 0.03
    other = [split_of(r, SplitSpec(validation=0.1, test=0.25, salt="other")) for r in records]
    assert other != [split_of(r, SplitSpec(validation=0.1, test=0.25)) for r in records]


def test_the_split_depends_on_the_input_only() -> None:
    spec = SplitSpec()
    assert split_of(Record("Where is my order?", "a"), spec) == split_of(Record(" where is  MY order? ", "b"), spec)


# --- dedupe -----------------------------------------------------------------------------------------------------

def feedback(prompt: str, output: str, created: str) -> Record:
    return Record(prompt=prompt, output=output, origin="feedback", meta={"created_at": created})


def test_dedupe_prefers_feedback_then_the_newest_whatever_the_order() -> None:
    old_data = Record("Fee?", "€3")
    old_fix = feedback("Fee?", "€2.50", "2024-01-01T00:00:00+00:00")
    new_fix = feedback("fee?", "€2", "2024-06-01T00:00:00+00:00")
    other = Record("Tip?", "Yes")
    for records in ([old_data, old_fix, new_fix, other], [new_fix, other, old_fix, old_data]):
        kept, dropped = dedupe(records)
        assert {r.output for r in kept} == {"€2", "Yes"}
        assert dropped == 2
    assert dedupe([old_data, old_fix])[0] == [old_fix]


def test_dedupe_drops_exact_duplicates_and_breaks_ties_deterministically() -> None:
    kept, dropped = dedupe([Record("a", "x"), Record("a", "x"), Record("b", "y")])
    assert ([r.prompt for r in kept], dropped) == (["a", "b"], 1)
    first, _ = dedupe([Record("q", "one"), Record("q", "two")])
    second, _ = dedupe([Record("q", "two"), Record("q", "one")])
    assert first == second and len(first) == 1


# --- feedback ---------------------------------------------------------------------------------------------------

def add_feedback(sessions: Any, **values: Any) -> None:
    values.setdefault("audience", "public")
    values.setdefault("question", "q")
    with db.transaction(sessions) as session:
        session.add(Feedback(id=str(uuid.uuid4()), **values))


def test_feedback_records_pick_exactly_the_teachable_rows(database_url: str, tmp_path: Path) -> None:
    engine = db.build_engine(database_url)
    db.migrate(engine)
    sessions = db.build_sessions(engine)
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    add_feedback(sessions, kind=FeedbackKind.RATING, kb="support", question="Fee?", answer="€2", rating=1,
                 created_at=t0, citations='[{"index": 1}]')
    add_feedback(sessions, kind=FeedbackKind.RATING, kb="support", question="Tip?", answer="No", rating=-1)
    add_feedback(sessions, kind=FeedbackKind.CORRECTION, kb="support", question="Refund?", answer="Never",
                 correction="Within 14 days.", created_at=t0 + timedelta(days=1))
    add_feedback(sessions, kind=FeedbackKind.RATING, kb="other", question="Other kb?", answer="x", rating=1)
    add_feedback(sessions, kind=FeedbackKind.CORRECTION, kb="support", audience="internal",
                 question="Runbook?", correction="Page on-call.")
    add_feedback(sessions, kind=FeedbackKind.TAG, task="demo", question="Pad thai",
                 correction=json.dumps({"dietary": ["gluten-free"], "cuisine": "thai"}))
    add_feedback(sessions, kind=FeedbackKind.TAG, task="demo", question="Old taxonomy", correction='{"cuisine": "x"}')
    add_feedback(sessions, kind=FeedbackKind.TAG, task="other-task", question="Pizza",
                 correction='{"cuisine": "italian", "dietary": []}')

    qa = feedback_records(make_task(tmp_path, "grounded-qa"), sessions)
    assert sorted((r.prompt, r.output) for r in qa) == [("Fee?", "€2"), ("Refund?", "Within 14 days.")]
    assert {r.origin for r in qa} == {"feedback"}
    fee = next(r for r in qa if r.prompt == "Fee?")
    assert datetime.fromisoformat(fee.meta["created_at"]) == t0
    assert fee.meta["citations"] == [{"index": 1}]

    internal = feedback_records(make_task(tmp_path, "grounded-qa", audiences=["public", "internal"]), sessions)
    assert "Runbook?" in {r.prompt for r in internal}

    tags = feedback_records(make_task(tmp_path, "classification"), sessions)
    assert [(r.prompt, r.output) for r in tags] == [("Pad thai", {"cuisine": "thai", "dietary": ["gluten-free"]})]

    assert feedback_records(make_task(tmp_path, "grounded-qa", data={"feedback": False}), sessions) == []
    engine.dispose()


def test_chat_feedback_is_chosen_by_task_not_kb(database_url: str, tmp_path: Path) -> None:
    engine = db.build_engine(database_url)
    db.migrate(engine)
    sessions = db.build_sessions(engine)
    add_feedback(sessions, kind=FeedbackKind.RATING, task="demo", question="Hi?", answer="Hello", rating=1)
    add_feedback(sessions, kind=FeedbackKind.RATING, task="elsewhere", question="Yo?", answer="Hey", rating=1)
    add_feedback(sessions, kind=FeedbackKind.CORRECTION, task="demo", kb="support", question="Bye?",
                 answer="Ciao", correction="Goodbye")
    records = feedback_records(make_task(tmp_path, "chat"), sessions)
    assert sorted((r.prompt, r.output) for r in records) == [("Bye?", "Goodbye"), ("Hi?", "Hello")]
    engine.dispose()


# --- general mix ------------------------------------------------------------------------------------------------

def test_the_general_mix_is_sized_by_the_ratio_and_stays_out_of_evaluation(tmp_path: Path) -> None:
    rows: list[Any] = [{"instruction": f"Task {i}", "output": f"Done {i}"} for i in range(30)]
    rows.append({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]})
    write(tmp_path / "general.jsonl", rows)
    task = make_task(tmp_path, data={"general": {"path": "general.jsonl", "ratio": 0.1}})
    records = synthetic(200)
    splits = split(records, task.split)
    mix = general_records(task, len(splits["train"]))
    assert len(mix) == round(0.1 * len(splits["train"]))
    assert {r.origin for r in mix} == {"general"}
    assert mix == general_records(task, len(splits["train"]))  # the same rows every night
    assert len(general_records(task, 10_000)) == 31  # never more than the file holds
    assert all(r.origin != "general" for name in ("validation", "test") for r in splits[name])
    assert general_records(make_task(tmp_path), 100) == []


def test_a_bad_general_row_names_its_line(tmp_path: Path) -> None:
    write(tmp_path / "general.jsonl", [{"instruction": "ok", "output": "fine"}, {"prompt": "?"}])
    task = make_task(tmp_path, data={"general": {"path": "general.jsonl", "ratio": 1}})
    with pytest.raises(InvalidInput, match="general.jsonl line 2"):
        general_records(task, 10)


# --- report -----------------------------------------------------------------------------------------------------

def test_the_report_counts_origins_labels_and_lengths(tmp_path: Path) -> None:
    task = make_task(tmp_path, "classification")
    splits = {
        "train": [Record("one two", {"cuisine": "thai", "dietary": ["vegan", "gluten-free"]}),
                  Record("three", {"cuisine": "thai", "dietary": []}, origin="feedback")],
        "validation": [],
        "test": [Record("four five six", {"cuisine": "italian", "dietary": ["vegan"]})],
    }
    general = [Record("hi", "hello", origin="general")]
    report = data_report(task, splits, general, dropped_duplicates=3)
    json.dumps(report)  # JSON-serialisable
    assert report["counts"] == {"train": 2, "validation": 0, "test": 1, "general": 1}
    assert report["origins"]["train"] == {"data": 1, "feedback": 1}
    assert report["label_balance"]["train"]["cuisine"] == {"thai": 2, "italian": 0}
    assert report["label_balance"]["train"]["dietary"] == {"vegetarian": 0, "vegan": 1, "gluten-free": 1}
    assert report["lengths"]["prompt"]["words"] == {"min": 1, "median": 2, "p95": 3, "max": 3}
    assert (report["dropped_duplicates"], report["data_hash"]) == (3, data_hash(splits))
    markdown = render_report_markdown(report)
    assert "| dietary: vegan | 1 | 0 | 1 |" in markdown and "Dropped duplicates: 3" in markdown


def test_the_report_counts_unanswerable_questions(tmp_path: Path) -> None:
    task = make_task(tmp_path, "grounded-qa")
    splits = {"train": [Record("a", None), Record("b", "x")], "validation": [], "test": [Record("c", None)]}
    report = data_report(task, splits, [], 0)
    assert report["unanswerable"] == {"train": 1, "validation": 0, "test": 1}
    assert "label_balance" not in report
    assert "Unanswerable: train 1, validation 0, test 1" in render_report_markdown(report)


def test_the_data_hash_follows_content_not_order() -> None:
    a, b = Record("a", "x"), Record("b", "y")
    assert data_hash({"train": [a, b]}) == data_hash({"train": [b, a]})
    assert data_hash({"train": [a]}) != data_hash({"train": [Record("a", "z")]})
    assert data_hash({"train": [a], "test": [b]}) != data_hash({"train": [b], "test": [a]})


# --- the sample tasks -------------------------------------------------------------------------------------------

def test_the_sample_tasks_load_and_their_data_validates() -> None:
    tasks = {task.name: task for task in load_tasks(REPO / "samples" / "tasks")}
    assert set(tasks) == {"menu-tagging", "support"}
    support = load_records(tasks["support"])
    assert (len(support), sum(r.output is None for r in support)) == (66, 6)
    assert len(general_records(tasks["support"], 800)) == 80  # the whole general file at this size

    menu = load_records(tasks["menu-tagging"])
    assert len(menu) >= 400 and len({r.key for r in menu}) == len(menu)
    tags = [r.output for r in menu if isinstance(r.output, dict)]
    counts = Counter(value for t in tags for value in (t["cuisine"], t["dish_type"], t["spice_level"]))
    fields = tasks["menu-tagging"].taxonomy.fields
    assert all(counts[c] >= 25 for c in fields["cuisine"].values)
    assert all(counts[d] >= 20 for d in fields["dish_type"].values)
    assert counts["hot"] and counts["none"]
    for t in tags:
        if "vegan" in t["dietary"]:
            assert {"vegetarian", "dairy-free"} <= set(t["dietary"])
        if t["dish_type"] == "dessert":
            assert t["spice_level"] == "none"
