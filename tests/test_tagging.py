"""Tagging: file formats, the resumable run, validate-and-retry, the CLI and the API job.

The unit tests drive the engine with a scripted generator (replies chosen per item, failures on cue), which
is what lets them kill a run at a chosen item; the slow tests run the real base model through `lorag tag`
and `POST /v1/tagging/jobs`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from lorag.app.http.main import create_app
from lorag.core.errors import BackendUnavailable, InvalidInput
from lorag.core.settings import Settings
from lorag.finetune.prompts import parse_output
from lorag.finetune.tasks import Taxonomy, load_task
from lorag.serving.protocol import Generation, Messages
from lorag.tagging.checkpoint import run_resumable
from lorag.tagging.tables import items_of, labelled_records, read_table, write_table
from lorag.tagging.tagger import Item, ShotIndex, Tagger, load_taxonomy, matching_task, same_taxonomy, tagging_task
from tests.fakes import FakeBatchGenerator, FakeGenerator
from tests.test_cli import lorag_env, run_lorag

REPO = Path(__file__).resolve().parents[1]
MENU_TASK = REPO / "samples" / "tasks" / "menu-tagging.yaml"
MENU_TAXONOMY = REPO / "samples" / "menu" / "taxonomy.yaml"
MENU_CSV = REPO / "samples" / "menu" / "menu.csv"

TAXONOMY = Taxonomy(fields={"course": {"type": "single", "values": ["starter", "main", "dessert"]},
                            "diet": {"type": "multi", "values": ["vegan", "gluten-free"]}})
TASK = tagging_task(TAXONOMY)
GOOD = '{"course": "main", "diet": ["vegan"]}'


class ScriptedGenerator(FakeBatchGenerator):
    """Replies per item text (GOOD by default), batched like the in-process generator, failing on cue."""

    def __init__(self, replies: dict[str, list[str]] | None = None, *, die_after: int | None = None,
                 too_long: str | None = None) -> None:
        scripts = replies or {}

        def reply(messages: Messages, _model: str | None) -> str:
            script = scripts.get(_item(messages).removeprefix("Item: "), [GOOD])
            retry = messages[-1]["content"].startswith("That reply is not valid")
            return script[min(int(retry), len(script) - 1)]

        def before(requests: Sequence[tuple[Messages, str | None]]) -> None:
            texts = [messages[-1]["content"] for messages, _model in requests]
            if any(too_long and too_long in text for text in texts):  # an item whose prompt the model refuses
                raise InvalidInput("the prompt plus max_tokens exceeds the model's context")
            if die_after is not None and len(self.asked) + len(texts) > die_after:  # a killed run
                raise BackendUnavailable("the model server went away")

        super().__init__(reply=reply, score=0.9, on_batch=before)

    @property
    def asked(self) -> list[str]:
        return [_item(call.messages) for call in self.calls]


def _item(messages: Messages) -> str:
    return next(m["content"] for m in reversed(messages) if m["content"].startswith("Item: "))


def OneAtATime() -> FakeGenerator:  # noqa: N802
    """A generator without generate_batch, like the OpenAI client."""
    return FakeGenerator(reply=GOOD)


class WordEmbedder:
    """Bag-of-words vectors: texts sharing words are near."""

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        vectors = np.zeros((len(texts), 64), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().split():
                vectors[row, sum(map(ord, word)) % 64] += 1
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-9)


def items(count: int) -> list[Item]:
    return [Item(f"i{n}", f"dish number {n}") for n in range(count)]


def tagger(generator: object, **options: object) -> Tagger:
    return Tagger(generator, TASK, model=None, batch_size=3, **options)  # type: ignore[arg-type]


# --- files ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_output_round_trips_through_every_format(tmp_path: Path, suffix: str) -> None:
    rows = [Tagger(ScriptedGenerator({"b": ["nonsense"]}), TASK, model=None).tag([Item("a", "a"), Item("b", "b")])]
    written = [result.as_row() for result in rows[0]]
    path = tmp_path / f"tags{suffix}"
    write_table(path, written)
    read = read_table(path)
    assert [row["id"] for row in read] == ["a", "b"]
    tags = [row["tags"] if suffix == ".jsonl" else json.loads(row["tags"]) if row["tags"] else None for row in read]
    assert tags == [{"course": "main", "diet": ["vegan"]}, None]
    assert "nonsense" in read[1]["error"]
    assert not list(tmp_path.glob(".*tmp"))  # the temporary file was renamed away


def test_items_take_the_default_columns_and_number_rows_without_an_id(tmp_path: Path) -> None:
    rows = [{"name": "soup", "description": "Tomato soup"}, {"name": "cake", "description": "Carrot cake"}]
    found = items_of(rows, tmp_path / "x.csv", id_field=None, text_field=None)
    assert found == [Item("1", "Tomato soup"), Item("2", "Carrot cake")]  # description comes before name


def test_bad_input_is_refused_with_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="no text column.*columns are sku, price.*--text-field"):
        items_of([{"sku": "1", "price": "3"}], tmp_path / "x.csv", id_field=None, text_field=None)
    with pytest.raises(InvalidInput, match="(?s)unique.*'7' on rows 1 and 2"):
        items_of([{"id": "7", "item": "a"}, {"id": "7", "item": "b"}], tmp_path / "x.csv", id_field=None,
                 text_field=None)
    with pytest.raises(InvalidInput, match="unknown format '.xlsx'"):
        read_table(tmp_path / "menu.xlsx")
    (tmp_path / "bad.jsonl").write_text('{"item": "ok"}\n{"item": \n[1]\n')
    with pytest.raises(InvalidInput, match="(?s)line 2: not valid JSON.*line 3: a JSON list"):
        read_table(tmp_path / "bad.jsonl")


def test_labelled_rows_must_fit_the_taxonomy(tmp_path: Path) -> None:
    gold = tmp_path / "gold.csv"
    pd.DataFrame([{"text": "tofu curry", "tags": '{"course": "main", "diet": ["vegan"]}'},
                  {"text": "steak", "tags": '{"course": "grill", "diet": []}'}]).to_csv(gold, index=False)
    with pytest.raises(InvalidInput, match="row 2: tags does not fit the taxonomy: course must be one of"):
        labelled_records(gold, TASK, text_field=None, tags_field=None)
    pd.DataFrame([{"text": "tofu curry", "tags": '{"course": "main", "diet": ["vegan"]}'}]).to_csv(gold, index=False)
    assert labelled_records(gold, TASK, text_field=None, tags_field=None)[0].output == {"course": "main",
                                                                                       "diet": ["vegan"]}


def test_taxonomy_files_are_checked_and_matched_to_the_menu_task(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("fields:\n  cuisine: {type: several, values: [thai]}\n")
    with pytest.raises(InvalidInput, match="(?s)not a valid taxonomy.*fields.cuisine.type.*fields.cuisine.values"):
        load_taxonomy(bad)
    menu = load_taxonomy(MENU_TAXONOMY)
    task = load_task(MENU_TASK)
    assert same_taxonomy(menu.taxonomy, task.taxonomy)  # the sample taxonomy is the menu task's
    assert matching_task(menu, [task]) is task
    assert matching_task(TASK, [task]) is None


# --- the engine -------------------------------------------------------------------------------------------------

def test_an_invalid_reply_is_retried_then_recorded_with_its_reason() -> None:
    generator = ScriptedGenerator({"fixed": ["{oops", GOOD], "hopeless": ['{"course": "brunch", "diet": []}']})
    results = tagger(generator).tag([Item("1", "fixed"), Item("2", "hopeless"), Item("3", "fine"), Item("4", " ")])
    fixed, hopeless, fine, empty = results
    assert (fixed.valid, fixed.attempts, fixed.tags) == (True, 2, {"course": "main", "diet": ["vegan"]})
    assert (hopeless.valid, hopeless.attempts, hopeless.tags) == (False, 2, None)
    assert "course must be one of" in hopeless.error and "brunch" in hopeless.error
    # the reply's 0.9 stands for each of its 3 decisions (the course, each of the 2 diet values); all right: 0.9³
    assert (fine.valid, fine.attempts) == (True, 1) and fine.confidence == pytest.approx(0.9 ** 3)
    assert (empty.valid, empty.attempts, empty.error) == (False, 0, "empty text: nothing to tag")


def test_an_item_the_model_refuses_fails_alone() -> None:
    results = tagger(ScriptedGenerator(too_long="huge")).tag([Item("1", "soup"), Item("2", "huge"), Item("3", "pie")])
    assert [result.valid for result in results] == [True, False, True]
    assert "exceeds the model's context" in results[1].error
    (alone,) = tagger(ScriptedGenerator(too_long="huge")).tag([Item("1", "huge")])
    assert not alone.valid and "exceeds the model's context" in alone.error


def test_a_generator_without_batches_is_called_per_item_and_has_no_confidence() -> None:
    generator = OneAtATime()
    results = tagger(generator).tag(items(5))
    assert len(generator.calls) == 5 and all(r.valid and r.confidence is None for r in results)


def test_shots_are_the_nearest_labelled_items_never_the_item_itself() -> None:
    index = ShotIndex(WordEmbedder(), [("vegan tofu curry", "a"), ("chocolate cake", "b"), ("tofu stir fry", "c")])
    (shots,) = index.nearest(["vegan tofu curry"], 2)
    assert shots == (("chocolate cake", "b"), ("tofu stir fry", "c"))  # its own text skipped, the nearest last
    (closest,) = index.nearest(["spicy tofu stir fry"], 1)
    assert closest == (("tofu stir fry", "c"),)


def test_prompts_carry_the_retrieved_shots() -> None:
    generator = ScriptedGenerator()
    seen: list[Messages] = []
    original = generator.generate_batch

    def spy(requests: Sequence[tuple[Messages, str | None]], **options: object) -> list[Generation]:
        seen.extend(messages for messages, _ in requests)
        return original(requests, **options)  # type: ignore[arg-type]

    generator.generate_batch = spy  # type: ignore[method-assign]
    shots = ShotIndex(WordEmbedder(), [("tofu curry", {"course": "main", "diet": ["vegan"]}),
                                       ("lemon tart", {"course": "dessert", "diet": []})])
    tagger(generator, shots=shots, k_shots=1).tag([Item("1", "lemon cake")])
    assert [m["content"] for m in seen[0][1:]] == ["Item: lemon tart", '{"course": "dessert", "diet": []}',
                                                   "Item: lemon cake"]


# --- the resumable run ------------------------------------------------------------------------------------------

def test_a_killed_run_resumes_without_duplicates_or_drops(tmp_path: Path) -> None:
    output = tmp_path / "tags.jsonl"
    todo = items(10)
    replies = {"dish number 4": ["no json at all"]}
    with pytest.raises(BackendUnavailable):
        run_resumable(tagger(ScriptedGenerator(replies, die_after=7)), todo, output, show_progress=False)
    assert not output.exists()
    partial = output.with_name("tags.jsonl.partial.jsonl")
    done_before = [json.loads(line)["id"] for line in partial.read_text().splitlines()[1:]]
    assert len(done_before) == 6  # two batches of three made it to disk

    again = ScriptedGenerator(replies)
    counts = run_resumable(tagger(again), todo, output, show_progress=False)
    rows = read_table(output)
    assert [row["id"] for row in rows] == [item.id for item in todo]  # each once, in input order
    assert counts == {"total": 10, "valid": 9, "failed": 1, "resumed": 6, "needs_review": 0}
    assert sorted(again.asked) == sorted(f"Item: {item.text}" for item in todo if item.id not in done_before)
    failed = next(row for row in rows if row["id"] == "i4")
    assert failed["valid"] is False and "no JSON object" in failed["error"]
    assert not partial.exists()


def test_a_line_cut_short_by_a_kill_is_tagged_again(tmp_path: Path) -> None:
    output = tmp_path / "tags.csv"
    with pytest.raises(BackendUnavailable):
        run_resumable(tagger(ScriptedGenerator(die_after=3)), items(6), output, show_progress=False)
    partial = output.with_name("tags.csv.partial.jsonl")
    partial.write_bytes(partial.read_bytes()[:-20])  # the last row half written
    again = ScriptedGenerator()
    run_resumable(tagger(again), items(6), output, show_progress=False)
    assert len(again.asked) == 4  # the cut row and the three never tagged
    assert [row["id"] for row in read_table(output)] == [f"i{n}" for n in range(6)]


def test_failed_items_are_kept_on_resume_unless_asked_to_retry(tmp_path: Path) -> None:
    output = tmp_path / "tags.jsonl"
    todo = items(4)
    with pytest.raises(BackendUnavailable):
        run_resumable(tagger(ScriptedGenerator({"dish number 0": ["?"]}, die_after=4)), todo, output,
                      show_progress=False)
    kept = ScriptedGenerator()
    run_resumable(tagger(kept), todo, output, show_progress=False)
    assert kept.asked == ["Item: dish number 3"]
    assert read_table(output)[0]["valid"] is False

    output.unlink()
    with pytest.raises(BackendUnavailable):
        run_resumable(tagger(ScriptedGenerator({"dish number 0": ["?"]}, die_after=4)), todo, output,
                      show_progress=False)
    retried = ScriptedGenerator()
    counts = run_resumable(tagger(retried), todo, output, retry_failed=True, show_progress=False)
    assert sorted(retried.asked) == ["Item: dish number 0", "Item: dish number 3"]
    assert counts["failed"] == 0 and [row["id"] for row in read_table(output)] == ["i0", "i1", "i2", "i3"]


def test_resuming_with_another_taxonomy_is_refused(tmp_path: Path) -> None:
    output = tmp_path / "tags.jsonl"
    with pytest.raises(BackendUnavailable):
        run_resumable(tagger(ScriptedGenerator(die_after=3)), items(6), output, show_progress=False)
    other = Tagger(ScriptedGenerator(), tagging_task(Taxonomy(labels=["yes", "no"])), model=None)
    with pytest.raises(InvalidInput, match="another taxonomy"):
        run_resumable(other, items(6), output, show_progress=False)


def test_lorag_tag_refuses_bad_input_before_loading_anything(tmp_path: Path) -> None:
    (tmp_path / "menu.csv").write_text("sku,price\n1,3\n")
    output = tmp_path / "tags.jsonl"
    result = run_lorag(["tag", str(tmp_path / "menu.csv"), "--taxonomy", str(MENU_TAXONOMY), "--output",
                        str(output)], lorag_env(tmp_path), tmp_path)
    assert result.returncode == 1
    assert "no text column" in result.stderr and "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == [tmp_path / "menu.csv"]  # no output, no partial file, no LORAG_HOME


def test_a_finished_output_is_never_overwritten(tmp_path: Path, make_settings: Callable[..., Settings]) -> None:
    from lorag.app.cli.tagging import tag_command

    output = tmp_path / "tags.jsonl"
    output.write_text('{"id": "m01"}\n')
    with pytest.raises(InvalidInput, match="exists \\(a finished run\\)"):
        tag_command(make_settings(), MENU_CSV, output, taxonomy=MENU_TAXONOMY, task=None, model=None, examples=None,
                    id_field=None, text_field=None, shots=0, batch_size=4, retry_failed=False)
    assert output.read_text() == '{"id": "m01"}\n'


# --- the API ----------------------------------------------------------------------------------------------------

@pytest.fixture
def bare_app(make_settings: Callable[..., Settings]) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(server={"load_models": False}))) as client:
        yield client


def _wait(client: TestClient, job_id: str, timeout_s: float = 300) -> dict:
    started = time.monotonic()
    deadline = started + timeout_s
    while time.monotonic() < deadline:
        job = client.get(f"/v1/tagging/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed"):
            return job
        time.sleep(0.2 if time.monotonic() - started < 5 else 1.0)  # under the 120 requests a minute
    raise AssertionError(f"tagging job {job_id} not done in {timeout_s}s")


def test_a_tagging_job_runs_in_the_background(bare_app: TestClient) -> None:
    bare_app.app.state.resources.answer_generator = ScriptedGenerator({"mystery": ["???"]})
    body = {"taxonomy": TAXONOMY.model_dump(exclude_none=True), "shots": 0,
            "items": [{"id": "a", "text": "tofu curry"}, {"id": "b", "text": "mystery"}]}
    created = bare_app.post("/v1/tagging/jobs", json=body)
    assert created.status_code == 202
    job = _wait(bare_app, created.json()["id"])
    assert (job["status"], job["total"], job["done"], job["valid"], job["failed"]) == ("succeeded", 2, 2, 1, 1)
    assert job["results"][0]["tags"] == {"course": "main", "diet": ["vegan"]}
    assert "no JSON object" in job["results"][1]["error"]


def test_tagging_job_errors_use_the_envelope(bare_app: TestClient) -> None:
    unloaded = bare_app.post("/v1/tagging/jobs", json={"task": "menu-tagging", "items": [{"id": "1", "text": "x"}]})
    assert unloaded.status_code == 503
    bare_app.app.state.resources.answer_generator = ScriptedGenerator()
    both = bare_app.post("/v1/tagging/jobs", json={"task": "menu-tagging", "taxonomy": {"labels": ["a", "b"]},
                                                   "items": [{"id": "1", "text": "x"}]})
    assert both.status_code == 400 and both.json()["error"]["param"] == "taxonomy"
    bad = bare_app.post("/v1/tagging/jobs", json={"taxonomy": {"labels": ["a"]}, "items": [{"id": "1", "text": "x"}]})
    assert bad.status_code == 400 and "at least two distinct labels" in bad.json()["error"]["message"]
    twice = bare_app.post("/v1/tagging/jobs", json={"task": "menu-tagging", "items": [{"id": "1", "text": "x"}] * 2})
    assert twice.status_code == 400 and "unique" in twice.json()["error"]["message"]
    missing = bare_app.get("/v1/tagging/jobs/tag-nothing")
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found_error"


# --- the real model ---------------------------------------------------------------------------------------------

def _conforms(row: dict, taxonomy: Taxonomy) -> bool:
    tags = row["tags"] if not isinstance(row["tags"], str) else json.loads(row["tags"])
    return parse_output(taxonomy, json.dumps(tags)).valid if row["valid"] else bool(row["error"])


@pytest.mark.slow
def test_lorag_tag_with_the_base_model_writes_schema_valid_rows(tmp_path: Path, models_dir: Path) -> None:
    source = tmp_path / "menu.csv"
    source.write_text("".join(MENU_CSV.read_text().splitlines(keepends=True)[:5]))  # the header and 4 items
    output = tmp_path / "tags.parquet"
    # 24 of the task's labelled items as the examples: enough for the probe (20), and the calibration scores 24
    # items rather than the task's 30 validation items (two minutes on 2 quiet cores, five on busy ones).
    labelled = [json.loads(line) for line in (MENU_TASK.parent / "data" / "menu.jsonl").read_text().splitlines()]
    examples = tmp_path / "examples.jsonl"
    examples.write_text("".join(json.dumps({"text": row["item"], "tags": row["tags"]}) + "\n"
                                for row in labelled[::len(labelled) // 24][:24]))
    result = run_lorag(["tag", str(source), "--taxonomy", str(MENU_TAXONOMY), "--output", str(output),
                        "--examples", str(examples), "--shots", "2", "--batch-size", "4"], lorag_env(tmp_path),
                       tmp_path)
    assert result.returncode in (0, 1), result.stderr  # 1: some item failed, with its reason
    assert "items/s" in result.stdout and "task menu-tagging" in result.stdout
    assert "24 labelled examples" in result.stdout and "calibrating on 24 held-out items" in result.stdout
    rows = read_table(output)
    assert [row["id"] for row in rows] == ["m01", "m02", "m03", "m04"]
    taxonomy = load_task(MENU_TASK).taxonomy
    assert all(_conforms(row, taxonomy) for row in rows)
    assert any(row["valid"] for row in rows)
    assert {row["model"] for row in rows} == {"smollm2-135m-instruct"}  # no adapter trained in this home
    assert all(0 < row["confidence"] <= 1 for row in rows if row["valid"])


@pytest.mark.slow
def test_the_api_tags_a_job_with_the_real_models(make_settings: Callable[..., Settings], models_dir: Path) -> None:
    settings = make_settings(finetune={"in_process": False}, queue={"inline_workers": 0})
    with TestClient(create_app(settings)) as client:
        texts = [line.split(",", 1)[1].strip('"') for line in MENU_CSV.read_text().splitlines()[1:4]]
        # Nine of the task's labelled items as the examples: a job calibrates on its examples first, and on the
        # task's 30 validation items that takes minutes on a CPU.
        labelled = [json.loads(line) for line in (MENU_TASK.parent / "data" / "menu.jsonl").read_text().splitlines()]
        examples = [{"text": row["item"], "tags": row["tags"]} for row in labelled[::60]]
        body = {"task": "menu-tagging", "shots": 2, "items": [{"id": str(n), "text": t} for n, t in enumerate(texts)],
                "examples": examples}
        created = client.post("/v1/tagging/jobs", json=body)
        assert created.status_code == 202, created.text
        job = _wait(client, created.json()["id"], timeout_s=600)
    assert len(examples) == 9 and job["status"] == "succeeded" and job["done"] == 3, job
    taxonomy = load_task(MENU_TASK).taxonomy
    assert all(_conforms(row, taxonomy) for row in job["results"])
    assert job["valid"] == 3  # constrained scoring: valid by construction
    assert all(0 < row["confidence"] <= 1 and row["field_confidence"] for row in job["results"])
