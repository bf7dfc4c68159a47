"""`lorag confirm-tags`: review rows a person checked are stored whole or not at all, and the next night trains on them.

No model: the rows are checked against the taxonomy, stored in SQLite, and read back by the nightly job's own data
step (`finetune.nightly.prepare`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from lorag.app import wiring
from lorag.app.cli.tagging import confirm_command
from lorag.app.wiring import configured_tasks
from lorag.core.errors import InvalidInput
from lorag.core.settings import Settings
from lorag.core.tables import Feedback, FeedbackKind
from lorag.finetune.data import split_of
from lorag.finetune.nightly import Stack, prepare
from lorag.finetune.tasks import find_task
from lorag.tagging.tables import read_table, write_review
from tests.test_cli import lorag_env, run_lorag

TASK = """\
name: dishes
kind: classification
system: Tag the dish. Reply with one JSON object only.
taxonomy:
  fields:
    course: {type: single, values: [starter, main, dessert]}
    diet:
      type: multi
      values: [vegetarian, vegan]
      implies: {vegan: [vegetarian]}
data:
  sources:
    - {path: dishes.jsonl, format: records, text_field: item, output_field: tags}
"""
DATA = [("Tomato soup", {"course": "starter", "diet": ["vegetarian", "vegan"]}),
        ("Mushroom risotto with parmesan", {"course": "main", "diet": []}),  # wrong: the review corrects it
        ("Steak and chips", {"course": "main", "diet": []}),
        ("Lemon tart", {"course": "dessert", "diet": ["vegetarian"]})]
CONFIRMED = [("Mushroom risotto with parmesan", {"course": "main", "diet": ["vegetarian"]}),
             ("Lentil dal with rice", {"course": "main", "diet": ["vegan", "vegetarian"]}),
             ("Prawn cocktail", {"course": "starter", "diet": []}),
             ("Mango sorbet", {"course": "dessert", "diet": ["vegan", "vegetarian"]}),
             ("Chicken tikka masala", {"course": "main", "diet": []}),
             ("Halloumi fries", {"course": "starter", "diet": ["vegetarian"]})]
UNCHECKED = ("Beef burger", {"course": "main", "diet": ["vegan", "vegetarian"]})  # the model's guess, not confirmed


@pytest.fixture
def settings(tmp_path: Path, make_settings: Callable[..., Settings]) -> Settings:
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "dishes.yaml").write_text(TASK)
    (tasks / "dishes.jsonl").write_text("".join(json.dumps({"item": text, "tags": tags}) + "\n"
                                                for text, tags in DATA))
    return make_settings(finetune={"tasks": tasks})


def review_file(path: Path, rows: Sequence[dict[str, Any]]) -> Path:
    """Rows as `lorag tag --review-below` writes them, after a person edited tags and `confirmed`."""
    base = {"valid": True, "confidence": 0.61, "model": "smollm2-135m-instruct", "attempts": 1, "error": None,
            "needs_review": True, "review": ["diet vegetarian: below the threshold"], "confirmed": False}
    path.write_text("".join(json.dumps({"id": f"m{n}", **base, **row}) + "\n" for n, row in enumerate(rows)))
    return path


def stored(settings: Settings) -> list[Feedback]:
    with wiring.open_registry(settings) as sessions, sessions() as session:
        return list(session.scalars(select(Feedback).order_by(Feedback.question)))


def test_confirmed_rows_are_in_the_next_nights_training_data(settings: Settings, tmp_path: Path) -> None:
    rows = [{"text": text, "tags": tags, "confirmed": True} for text, tags in CONFIRMED]
    path = review_file(tmp_path / "tags.review.jsonl", [*rows, {"text": UNCHECKED[0], "tags": UNCHECKED[1]}])
    assert confirm_command(settings, path, taxonomy=None, task="dishes") == 0

    task = find_task(configured_tasks(settings), "dishes")
    with wiring.open_registry(settings) as sessions:
        prepared = prepare(Stack(settings, sessions), task)
    records = {record.prompt: record for split in prepared.splits.values() for record in split}
    for text, tags in CONFIRMED:  # canonical: multi values in the taxonomy's order
        record = records[text]
        assert (record.origin, record.output["diet"]) == ("feedback", [v for v in ("vegetarian", "vegan")
                                                                        if v in tags["diet"]])
        assert record in prepared.splits[split_of(record, task.split)]
    assert records["Mushroom risotto with parmesan"].output["diet"] == ["vegetarian"]  # outranks the data file
    assert UNCHECKED[0] not in records  # a row not marked confirmed is not learnt
    trained = {example.key for example in prepared.train}
    in_train = [records[text] for text, _tags in CONFIRMED if split_of(records[text], task.split) == "train"]
    assert in_train and all(record.key in trained for record in in_train)


def test_confirming_again_replaces_the_earlier_decision(settings: Settings, tmp_path: Path) -> None:
    first = review_file(tmp_path / "a.jsonl", [{"text": "Halloumi fries", "tags": CONFIRMED[5][1], "confirmed": True}])
    confirm_command(settings, first, taxonomy=None, task="dishes")
    fixed = {"course": "starter", "diet": []}
    again = review_file(tmp_path / "b.jsonl", [{"text": " Halloumi  fries", "tags": fixed, "confirmed": "true"}])
    confirm_command(settings, again, taxonomy=None, task="dishes")
    (row,) = stored(settings)
    assert (row.kind, row.task, row.channel, json.loads(row.correction)) == (FeedbackKind.TAG, "dishes", "tagging",
                                                                             fixed)


def test_bad_rows_are_named_and_nothing_is_stored(settings: Settings, tmp_path: Path) -> None:
    good = review_file(tmp_path / "good.jsonl", [{"text": "Prawn cocktail", "tags": CONFIRMED[2][1],
                                                  "confirmed": True}])
    confirm_command(settings, good, taxonomy=None, task="dishes")
    bad = review_file(tmp_path / "bad.jsonl", [
        {"text": "Lentil dal", "tags": CONFIRMED[1][1], "confirmed": True},  # fine, but must not be stored
        {"text": "Pho", "tags": {"course": "main", "diet": ["halal"]}, "confirmed": True},
        {"text": "Vegan brownie", "tags": {"course": "dessert", "diet": ["vegan"]}, "confirmed": True},
        {"text": "", "tags": CONFIRMED[0][1], "confirmed": True},
        {"text": "Salad", "tags": {"course": "starter", "diet": []}, "confirmed": "maybe"},
        {"text": "Lentil dal", "tags": {"course": "starter", "diet": []}, "confirmed": True},
        {"text": "Nachos", "tags": "{not json", "confirmed": True},
        {"text": "Soup", "tags": {"course": "brunch", "diet": []}, "confirmed": False},  # unchecked: not judged
    ])
    with pytest.raises(InvalidInput) as raised:
        confirm_command(settings, bad, taxonomy=None, task="dishes")
    message = raised.value.message
    assert "6 bad row(s), nothing was stored" in message  # rows 2 to 7; row 8 is not marked confirmed
    assert "row 2 (id m1): tags do not fit the taxonomy: diet must be a list of ['vegetarian', 'vegan']" in message
    assert "row 3 (id m2): diet vegan implies vegetarian, which is missing" in message
    assert "row 4 (id m3): no item text" in message
    assert "row 5 (id m4): `confirmed` must be true or false, got 'maybe'" in message
    assert "row 6 (id m5): the same item as an earlier row, with other tags" in message
    assert "row 7 (id m6): `tags` is not a JSON object" in message
    assert [row.question for row in stored(settings)] == ["Prawn cocktail"]  # as before the bad file


def test_a_file_with_nothing_confirmed_or_for_no_configured_task_is_refused(settings: Settings,
                                                                           tmp_path: Path) -> None:
    path = review_file(tmp_path / "r.jsonl", [{"text": "Prawn cocktail", "tags": CONFIRMED[2][1]}])
    with pytest.raises(InvalidInput, match='no row is marked "confirmed": true'):
        confirm_command(settings, path, taxonomy=None, task="dishes")
    taxonomy = tmp_path / "other.yaml"
    taxonomy.write_text("labels: [spicy, mild]\n")
    with pytest.raises(InvalidInput, match="no configured task's; name one with --task \\(dishes\\)"):
        confirm_command(settings, path, taxonomy=taxonomy, task=None)
    assert stored(settings) == []


def test_lorag_confirm_tags_stores_rows_and_reports_bad_ones_in_one_line(settings: Settings, tmp_path: Path) -> None:
    env = lorag_env(tmp_path, LORAG_FINETUNE__TASKS=str(settings.finetune.tasks))
    bad = review_file(tmp_path / "bad.jsonl", [{"text": "Pho", "tags": {"course": "lunch", "diet": []},
                                                "confirmed": True}])
    refused = run_lorag(["confirm-tags", str(bad), "--task", "dishes"], env, tmp_path)
    assert refused.returncode == 1 and "row 1 (id m0): tags do not fit" in refused.stderr
    assert "Traceback" not in refused.stderr
    good = review_file(tmp_path / "good.jsonl", [{"text": "Pho", "tags": {"course": "main", "diet": []},
                                                  "confirmed": True}, {"text": "Nachos", "tags": CONFIRMED[2][1]}])
    done = run_lorag(["confirm-tags", str(good), "--task", "dishes"], env, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "stored 1 confirmed item(s) for task dishes; 1 row(s) not marked confirmed" in done.stdout
    assert [row.question for row in stored(settings)] == ["Pho"]


def test_a_review_file_from_lorag_tag_is_confirmed_by_flipping_confirmed(settings: Settings, tmp_path: Path) -> None:
    output = review_file(tmp_path / "tags.jsonl", [
        {"text": "Halloumi fries", "tags": {"course": "starter", "diet": []}, "confidence": 0.4},
        {"text": "Prawn cocktail", "tags": CONFIRMED[2][1], "confidence": 0.99, "needs_review": False}])
    path, count = write_review(output, 0.9)
    rows = read_table(path)
    assert count == 1 and rows[0]["confirmed"] is False  # a person flips it once the tags are right
    with pytest.raises(InvalidInput, match="no row is marked"):
        confirm_command(settings, path, taxonomy=None, task="dishes")
    rows[0].update(tags=CONFIRMED[5][1], confirmed=True)
    path.write_text(json.dumps(rows[0]) + "\n")
    confirm_command(settings, path, taxonomy=None, task="dishes")
    assert [(row.question, json.loads(row.correction)) for row in stored(settings)] == [
        ("Halloumi fries", CONFIRMED[5][1])]


def test_the_api_stores_confirmations_for_a_keys_own_tasks(make_settings: Callable[..., Settings],
                                                           settings: Settings) -> None:
    from fastapi.testclient import TestClient

    from lorag.app.http.main import create_app
    from lorag.core import keys

    app_settings = make_settings(finetune={"tasks": settings.finetune.tasks},
                                 server={"load_models": False, "require_keys": True})
    with TestClient(create_app(app_settings)) as client:
        sessions = client.app.state.resources.sessions
        mine = {"Authorization": f"Bearer {keys.create(sessions, name='cat', scopes=['tag'], adapters=['dishes'])[0]}"}
        other = {"Authorization": f"Bearer {keys.create(sessions, name='x', scopes=['tag'], adapters=['support'])[0]}"}
        items = [{"id": "7", "text": "Halloumi fries", "tags": CONFIRMED[5][1]},
                 {"text": "Pho", "tags": {"course": "main", "diet": ["halal"]}}]
        bad = client.post("/v1/tagging/confirmations", headers=mine, json={"task": "dishes", "items": items})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "items"
        assert "row 2: tags do not fit the taxonomy" in bad.json()["error"]["message"]
        forbidden = client.post("/v1/tagging/confirmations", headers=other, json={"task": "dishes",
                                                                                 "items": items[:1]})
        assert forbidden.status_code == 403
        assert stored(app_settings) == []  # nothing from either refused request
        done = client.post("/v1/tagging/confirmations", headers=mine, json={"task": "dishes", "items": items[:1]})
        assert done.status_code == 201 and done.json() == {"task": "dishes", "stored": 1}
    assert [(row.question, row.task) for row in stored(app_settings)] == [("Halloumi fries", "dishes")]
