"""An API tagging job and `lorag tag` give the same tags for the same items, examples and model.

Both run the real base model and embedder: the job on the network the app serves (`SharedScorer`), the command on a
copy of its own. A two-field taxonomy with a precision floor and an implication keeps the scoring to seconds.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient

from lorag.app.cli.tagging import tag_command
from lorag.app.http.main import create_app
from lorag.app.http.routes.tagging import JobRequest
from lorag.core.settings import Settings
from lorag.finetune.data import dedupe, load_records, split
from lorag.finetune.tasks import load_task
from lorag.tagging.jobs import JobBoard, TaggingJob
from lorag.tagging.tables import read_table
from lorag.tagging.tagger import taxonomy_task
from tests.test_tagging import MENU_TASK, WordEmbedder

TAXONOMY = {"fields": {
    "course": {"type": "single", "values": ["starter", "main", "dessert"]},
    "diet": {"type": "multi", "values": ["vegetarian", "vegan"], "precision_floor": 0.9,
             "implies": {"vegan": ["vegetarian"]}}}}
EXAMPLES = [
    ("Tomato bruschetta with basil and olive oil", {"course": "starter", "diet": ["vegetarian", "vegan"]}),
    ("Prawn cocktail with marie rose sauce", {"course": "starter", "diet": []}),
    ("Mozzarella sticks with marinara dip", {"course": "starter", "diet": ["vegetarian"]}),
    ("Grilled ribeye steak with pepper sauce", {"course": "main", "diet": []}),
    ("Chickpea and spinach curry with rice", {"course": "main", "diet": ["vegetarian", "vegan"]}),
    ("Mushroom risotto with parmesan", {"course": "main", "diet": ["vegetarian"]}),
    ("Roast chicken with gravy and potatoes", {"course": "main", "diet": []}),
    ("Chocolate fudge cake with cream", {"course": "dessert", "diet": ["vegetarian"]}),
    ("Mango sorbet", {"course": "dessert", "diet": ["vegetarian", "vegan"]}),
    ("Sticky toffee pudding with custard", {"course": "dessert", "diet": ["vegetarian"]}),
]
ITEMS = [("a", "Lentil soup with crusty bread"), ("b", "Beef burger with cheddar and fries"),
         ("c", "Lemon tart with raspberries")]


def _wait(client: TestClient, job_id: str, timeout_s: float = 600) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = client.get(f"/v1/tagging/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed"):
            return job
        time.sleep(1.0)  # under the API's 120 requests a minute
    raise AssertionError(f"tagging job {job_id} not done in {timeout_s}s")


@pytest.mark.slow
def test_an_api_job_tags_as_lorag_tag_does(tmp_path: Path, make_settings: Callable[..., Settings],
                                          models_dir: Path) -> None:
    settings = make_settings(finetune={"in_process": False}, queue={"inline_workers": 0})
    body = {"taxonomy": TAXONOMY, "shots": 1, "items": [{"id": key, "text": text} for key, text in ITEMS],
            "examples": [{"text": text, "tags": tags} for text, tags in EXAMPLES]}
    with TestClient(create_app(settings)) as client:
        created = client.post("/v1/tagging/jobs", json=body)
        assert created.status_code == 202, created.text
        job = _wait(client, created.json()["id"])
    assert job["status"] == "succeeded" and job["valid"] == len(ITEMS), job

    (tmp_path / "taxonomy.yaml").write_text(json.dumps(TAXONOMY))  # JSON is YAML
    (tmp_path / "examples.jsonl").write_text("".join(json.dumps({"text": t, "tags": g}) + "\n" for t, g in EXAMPLES))
    (tmp_path / "items.jsonl").write_text("".join(json.dumps({"id": k, "text": t}) + "\n" for k, t in ITEMS))
    code = tag_command(settings, tmp_path / "items.jsonl", tmp_path / "tags.jsonl", taxonomy=tmp_path / "taxonomy.yaml",
                       task=None, model=None, examples=tmp_path / "examples.jsonl", id_field=None, text_field=None,
                       shots=1, batch_size=None, retry_failed=False)
    assert code == 0
    # the job fitted the calibration and the command found it: one file, keyed by model, taxonomy and data
    assert len(list((settings.runs_dir / "calibration").glob("*.json"))) == 1

    exact = ("id", "tags", "valid", "model", "needs_review", "review")
    cli_rows = read_table(tmp_path / "tags.jsonl")
    assert [{key: row[key] for key in exact} for row in job["results"]] == \
        [{key: row[key] for key in exact} for row in cli_rows]
    for api_row, cli_row in zip(job["results"], cli_rows, strict=True):
        assert 0 < api_row["confidence"] <= 1  # measured, not a constant
        assert api_row["confidence"] == pytest.approx(cli_row["confidence"], abs=1e-3)
        assert api_row["field_confidence"] == pytest.approx(cli_row["field_confidence"], abs=1e-3)
    assert {row["model"] for row in cli_rows} == {"smollm2-135m-instruct"}


def test_a_job_draws_on_the_examples_lorag_tag_would() -> None:
    """No examples: the task's training split votes and its validation split calibrates, as `lorag tag --task`."""
    task = load_task(MENU_TASK)
    board = JobBoard(SimpleNamespace(embedder=WordEmbedder()))  # type: ignore[arg-type]
    request = JobRequest(task=task.name, items=[{"id": "1", "text": "Pad thai"}])
    index, probe, held_out = board._pool(TaggingJob("tag-1", task, request, None, 3))
    splits = split(dedupe(load_records(task))[0], task.split)
    assert index is not None and [text for text, _tags in index.examples] == [r.prompt for r in splits["train"]]
    assert probe is not None and probe.texts == [r.prompt for r in splits["train"]]  # fitted on the same items
    assert held_out == splits["validation"]  # never the test split
    assert board._pool(TaggingJob("tag-2", task, request, None, 3))[0] is index  # embedded once per task

    given = [{"text": text, "tags": tags} for text, tags in EXAMPLES]
    small = taxonomy_task(TAXONOMY, "taxonomy")
    index, _probe, held_out = board._pool(TaggingJob("tag-3", small, JobRequest(
        taxonomy=TAXONOMY, items=request.items, examples=given), None, 3))
    assert index is not None and len(index) == len(held_out) == len(EXAMPLES)  # calibrated leave-one-out
