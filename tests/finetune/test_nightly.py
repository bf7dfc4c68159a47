"""The nightly job end to end on the real base model: train, evaluate, gate, register, promote, roll back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lorag.core import db
from lorag.core.errors import Conflict
from lorag.core.tables import AdapterStatus
from lorag.finetune import registry
from lorag.finetune.nightly import Stack, run_all, run_task, task_lock
from lorag.finetune.tasks import load_task

pytestmark = pytest.mark.slow

SWEET = ["chocolate cake", "vanilla ice cream", "apple pie", "honey cookies", "caramel flan", "strawberry tart",
         "maple pancakes", "lemon sorbet", "cherry crumble", "sugar doughnut", "toffee pudding", "fudge brownie"]
SAVOURY = ["beef burger", "cheese pizza", "chicken curry", "garlic bread", "tomato soup", "ham sandwich",
           "lamb kebab", "fish and chips", "mushroom risotto", "pork dumplings", "egg fried rice", "bean chilli"]

TASK = """
name: taste
kind: classification
system: Is the dish sweet or savoury? Reply with the label only.
taxonomy: {labels: [sweet, savoury]}
data:
  sources: [{path: items.jsonl, format: records, text_field: item, output_field: label}]
  feedback: false
split: {validation: 0.0, test: 0.25}
training: {max_steps: 4, learning_rate: 0.001, batch_tokens: 1024, max_seq_len: 256}
evaluation: {max_examples: 4, max_new_tokens: 8}
gate: {json_validity: 0.0}
"""


@pytest.fixture
def stack(tmp_path: Path, make_settings, models_dir: Path):
    (tmp_path / "tasks").mkdir()
    rows = [{"item": item, "label": "sweet"} for item in SWEET] + [{"item": item, "label": "savoury"}
                                                                    for item in SAVOURY]
    (tmp_path / "tasks" / "items.jsonl").write_text("\n".join(json.dumps(row) for row in rows))
    (tmp_path / "tasks" / "taste.yaml").write_text(TASK)
    settings = make_settings(finetune={"parity_prompts": 1})
    engine = db.build_engine(settings.database_url)
    db.migrate(engine)
    yield Stack(settings, db.build_sessions(engine))
    engine.dispose()


def test_a_night_registers_a_complete_version_and_gates_it(stack: Stack, tmp_path: Path) -> None:
    task = load_task(tmp_path / "tasks" / "taste.yaml")
    outcome = run_task(stack, task, progress=False)
    assert outcome.status in ("active", "rejected") and outcome.version and outcome.version.startswith("taste@")
    record = registry.get(stack.sessions, outcome.version)
    assert record.status == (AdapterStatus.ACTIVE if outcome.status == "active" else AdapterStatus.REJECTED)
    files = {path.name for path in record.path.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "run.json", "report.json", "report.md"} <= files
    assert "checkpoint" not in files  # nothing half-written is left in a registered version
    run = json.loads((record.path / "run.json").read_text())
    assert run["data_hash"] == record.data_hash and run["code"]["lorag"] and run["task"]["name"] == "taste"
    assert set(run["metrics"]) == {"candidate", "base (prompt only)"}  # nothing was in service yet
    assert "needs_review" in run["metrics"]["candidate"]  # judged through the tagger, as `lorag tag` serves it
    assert run["gate"]["parity"] is True, "the saved adapter must answer as the trained model did"
    assert run["data"]["examples"]["train"] == run["training"]["examples"] > 0
    assert not any((stack.settings.adapters_dir / registry.STAGING).glob("taste/*"))


def test_the_next_night_is_compared_with_the_version_in_service(stack: Stack, tmp_path: Path) -> None:
    task = load_task(tmp_path / "tasks" / "taste.yaml")
    first = run_task(stack, task, progress=False)
    if first.status != "active":
        registry.promote(stack.sessions, first.version, "test: put a version in service")
    second = run_all(stack, [task], progress=False)[0]
    run = json.loads((registry.get(stack.sessions, second.version).path / "run.json").read_text())
    assert set(run["metrics"]) == {"candidate", "in service", "base (prompt only)"}
    assert second.version != first.version
    active = registry.active(stack.sessions)["taste"].name
    assert active == (second.version if second.status == "active" else first.version)


def test_one_run_per_task_at_a_time(stack: Stack) -> None:
    with task_lock(stack.settings.adapters_dir, "taste"), pytest.raises(Conflict, match="already in progress"), \
            task_lock(stack.settings.adapters_dir, "taste"):
        pass


def test_a_failed_task_is_reported_and_the_others_still_run(stack: Stack, tmp_path: Path) -> None:
    good = load_task(tmp_path / "tasks" / "taste.yaml")
    broken = good.model_copy(update={"name": "broken", "data": good.data.model_copy(
        update={"sources": [good.data.sources[0].model_copy(update={"path": Path("missing.jsonl")})]})})
    outcomes = run_all(stack, [broken, good], progress=False)
    assert [outcome.status for outcome in outcomes][0] == "failed" and "missing.jsonl" in outcomes[0].reason
    assert outcomes[1].status in ("active", "rejected")
    assert [record.task for record in registry.versions(stack.sessions)] == ["taste"]
