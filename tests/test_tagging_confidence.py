"""Measured confidence and the taxonomy's safety rules: the neighbours' vote, calibration, implications, floors.

Unit tests drive `decide` and `fit_calibration` with hand-made distributions; the slow test scores real items with
the base model under constrained decoding.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path

import pytest

from lorag.core.errors import ConfigError
from lorag.finetune.prompts import parse_output
from lorag.finetune.tasks import Taxonomy
from lorag.serving.protocol import Messages
from lorag.tagging.checkpoint import auto_batch_size, run_resumable
from lorag.tagging.confidence import (
    NEVER,
    Calibration,
    Distribution,
    blend,
    decide,
    enforce_implications,
    expected_calibration_error,
    fit_calibration,
    floor_threshold,
    knn_distribution,
)
from lorag.tagging.tables import read_table, write_review
from lorag.tagging.tagger import Item, Tagger, tagging_task

DIET = Taxonomy(fields={
    "course": {"type": "single", "values": ["starter", "main"]},
    "diet": {"type": "multi", "values": ["vegetarian", "vegan", "dairy-free"], "precision_floor": 0.9,
             "implies": {"vegan": ["vegetarian", "dairy-free"]}}})
SURE = Calibration(thresholds={"diet": {"vegetarian": 0.6, "vegan": 0.6, "dairy-free": 0.6}})


def dist(vegetarian: float, vegan: float, dairy_free: float, main: float = 0.8) -> Distribution:
    return {"course": {"starter": 1 - main, "main": main},
            "diet": {"vegetarian": vegetarian, "vegan": vegan, "dairy-free": dairy_free}}


def test_implications_are_checked_against_the_field() -> None:
    with pytest.raises(ValueError, match="implies names values the field does not have: meat"):
        Taxonomy(fields={"diet": {"type": "multi", "values": ["vegan", "vegetarian"], "implies": {"vegan": ["meat"]}}})


def test_a_contradiction_withholds_the_premise_and_asks_for_review() -> None:
    decision = decide(DIET, dist(vegetarian=0.2, vegan=0.9, dairy_free=0.9), SURE)
    assert decision.tags["diet"] == ["dairy-free"]  # vegan without vegetarian is never emitted
    assert decision.review and "vegan" in decision.review[0]
    assert enforce_implications(DIET, dist(0.2, 0.9, 0.9))["diet"]["vegan"] == 0.2


def test_a_flag_below_its_threshold_is_held_back_for_review() -> None:
    clear = decide(DIET, dist(vegetarian=0.95, vegan=0.9, dairy_free=0.97), SURE)
    assert clear.tags["diet"] == ["vegetarian", "vegan", "dairy-free"] and clear.review == ()
    doubtful = decide(DIET, dist(vegetarian=0.95, vegan=0.55, dairy_free=0.97), SURE)
    assert doubtful.tags["diet"] == ["vegetarian", "dairy-free"]
    assert len(doubtful.review) == 1 and "vegan" in doubtful.review[0]
    # each decision's probability of being right (vegan left out at p 0.55: 0.45), multiplied: every one right
    assert doubtful.fields["diet"] == pytest.approx(0.95 * 0.45 * 0.97)
    assert doubtful.confidence == pytest.approx(0.8 * 0.95 * 0.45 * 0.97)  # and the course, main at 0.8


def test_without_calibration_every_flag_goes_to_review() -> None:
    decision = decide(DIET, dist(vegetarian=0.99, vegan=0.01, dairy_free=0.01), None)
    assert decision.tags["diet"] == [] and len(decision.review) == 1


def test_the_threshold_is_the_least_whose_precision_reaches_the_floor_with_confidence() -> None:
    right = [(0.7 + 0.005 * i, True) for i in range(50)]  # 50 right answers between 0.70 and 0.95
    pairs = [(0.6, False)] * 5 + [*right, (0.2, True)]
    assert floor_threshold(pairs, 0.9) == (0.7, 1.0, 50)  # 50 of 50: the 95% lower bound is 0.948
    assert floor_threshold(pairs, 0.9)[0] > 0.6  # with the five wrong ones in, it is not reached
    assert floor_threshold(right[-4:], 0.5)[0] == NEVER  # fewer than MIN_SUPPORT items cleared any threshold
    # A precision of 1.0 over a handful of items is no evidence of a 0.95 floor: those flags go to review.
    assert floor_threshold(pairs[-8:], 0.9)[0] == NEVER
    assert floor_threshold(right, 0.95)[0] == NEVER  # 50 all right is not yet enough for 0.95; 52 would be


def test_calibration_weighs_the_better_source_and_sets_floors() -> None:
    gold = [{"course": "main", "diet": ["vegetarian"]}] * 60 + [{"course": "starter", "diet": []}] * 60
    model = [dist(0.9, 0.1, 0.1, main=0.9)] * 60 + [dist(0.1, 0.1, 0.1, main=0.1)] * 60  # right
    knn = [dist(0.5, 0.5, 0.5, main=0.5)] * 120  # uninformative
    calibration = fit_calibration(DIET, list(zip(model, knn, gold, strict=True)), "hash")
    assert calibration.weights == {"course": 1.0, "diet": 1.0}
    assert calibration.thresholds["diet"]["vegetarian"] == pytest.approx(0.9)
    assert calibration.thresholds["diet"]["vegan"] == NEVER  # never right when present: no threshold reaches it
    assert Calibration.from_dict(calibration.as_dict()) == calibration


def test_the_neighbours_vote_is_weighted_and_smoothed() -> None:
    vote = knn_distribution(DIET, [({"course": "main", "diet": ["vegetarian"]}, 0.9),
                                   ({"course": "starter", "diet": []}, 0.1)])
    assert vote["course"]["main"] == pytest.approx((0.9 + 0.5) / 2.0)
    assert vote["diet"]["vegetarian"] > 0.5 > vote["diet"]["vegan"]


def test_expected_calibration_error() -> None:
    assert expected_calibration_error([(0.9, True)] * 9 + [(0.9, False)]) == pytest.approx(0.0)
    assert expected_calibration_error([(1.0, False)] * 4) == pytest.approx(1.0)
    assert expected_calibration_error([]) is None


def test_auto_batch_size_follows_the_measured_speed() -> None:
    assert auto_batch_size(2.0) == 10 and auto_batch_size(0.01) == 32 and auto_batch_size(100.0) == 1


class FixedScorer:
    """Scores from a table by item text: a tool to drive the tagger, not what the feature test proves."""

    name = "scripted"

    def __init__(self, table: dict[str, Distribution]) -> None:
        self.table = table
        self.asked: list[set[str] | None] = []  # the fields each call asked for

    def score(self, messages: Messages, taxonomy: Taxonomy, fields: Collection[str] | None = None) -> Distribution:
        self.asked.append(None if fields is None else set(fields))
        scored = self.table[messages[-1]["content"].removeprefix("Item: ")]
        last = max(n for n, name in enumerate(scored) if fields is None or name in fields)
        return {name: values for n, (name, values) in enumerate(scored.items()) if n <= last}


def test_the_model_scores_only_the_fields_it_has_a_share_in() -> None:
    from lorag.tagging.tagger import ShotIndex
    from tests.test_tagging import WordEmbedder

    veg, meat = {"course": "main", "diet": ["vegetarian"]}, {"course": "starter", "diet": []}
    shots = ShotIndex(WordEmbedder(), [("tofu bowl with rice", veg), ("beef steak with fries", meat)])
    table = {"tofu bowl": dist(0.97, 0.2, 0.2, main=0.1)}  # the model says starter; the neighbours say main
    calibration = Calibration(weights={"course": 0.0, "diet": 1.0}, thresholds=SURE.thresholds)
    scorer = FixedScorer(table)
    [result] = Tagger(None, tagging_task(DIET), model=None, scorer=scorer, shots=shots, k_shots=0, knn_k=1,
                      calibration=calibration).tag([Item("1", "tofu bowl")])
    assert scorer.asked == [{"diet"}]  # diet comes after course, so course is scored too, and outweighed
    assert result.tags == {"course": "main", "diet": ["vegetarian"]}
    scorer.asked.clear()
    calibration = Calibration(weights={"course": 0.0, "diet": 0.0}, thresholds=SURE.thresholds)
    [result] = Tagger(None, tagging_task(DIET), model=None, scorer=scorer, shots=shots, k_shots=0, knn_k=1,
                      calibration=calibration).tag([Item("1", "tofu bowl")])
    assert scorer.asked == [] and result.tags["course"] == "main", "no share anywhere: the model is not run"
    [result] = Tagger(None, tagging_task(DIET), model=None, scorer=scorer, k_shots=0,
                      calibration=calibration).tag([Item("1", "tofu bowl")])
    assert scorer.asked == [None] and result.tags["course"] == "starter", "no labelled items: the model alone"


def test_a_field_the_model_was_not_scored_on_takes_the_vote() -> None:
    model = {"course": {"starter": 0.9, "main": 0.1}}
    vote = dist(0.9, 0.1, 0.8, main=0.7)
    blended = blend(model, vote, {"course": 0.5, "diet": 0.0})
    assert blended["course"]["main"] == pytest.approx(0.4) and blended["diet"] == vote["diet"]


def test_the_review_file_holds_doubtful_and_low_confidence_items(tmp_path: Path) -> None:
    table = {"tofu bowl": dist(0.97, 0.96, 0.98), "cheese toast": dist(0.97, 0.55, 0.2, main=0.6),
             "steak": dist(0.02, 0.01, 0.6, main=0.99)}
    tagger = Tagger(None, tagging_task(DIET), model=None, scorer=FixedScorer(table), calibration=SURE, batch_size=2)
    output = tmp_path / "tags.csv"
    counts = run_resumable(tagger, [Item(str(n), text) for n, text in enumerate(table)], output, show_progress=False,
                           auto_batch=True)
    assert counts["needs_review"] == 1 and counts["valid"] == 3  # cheese toast: vegan but not dairy-free
    path, count = write_review(output, None)
    assert path.name == "tags.review.jsonl" and count == 1
    path, count = write_review(output, 0.7)
    assert count == 2  # and steak: its weakest decision (dairy-free at 0.6) is below 0.7
    assert {row["id"] for row in read_table(path)} == {"1", "2"}


def test_a_tagger_needs_a_model() -> None:
    with pytest.raises(ConfigError, match="a generator or a scorer"):
        Tagger(None, tagging_task(DIET), model=None)


@pytest.mark.slow
def test_the_base_model_scores_only_allowed_values(models_dir: Path) -> None:
    from lorag.core import models
    from lorag.tagging.confidence import TransformersScorer

    model, tokenizer = models.load_causal_lm(models.resolve("packaged:smollm2-135m-instruct", models_dir), "cpu")
    scorer = TransformersScorer(model, tokenizer, name="base")
    task = tagging_task(DIET)
    results = Tagger(None, task, model=None, scorer=scorer, calibration=SURE).tag(
        [Item("1", "Tofu and vegetable stir fry"), Item("2", "Beef burger with cheddar")])
    for result in results:
        assert result.valid and parse_output(DIET, __import__("json").dumps(result.tags)).valid
        assert 0 < result.confidence <= 1 and result.field_confidence is not None
    single = scorer.score(_messages(task, "Lentil soup"), DIET)
    assert sum(single["course"].values()) == pytest.approx(1.0)
    assert all(0 <= p <= 1 for p in single["diet"].values())
    # Scoring stops after the last field asked for, and what it scores is what a full scoring gives.
    # (to rounding: a cached prefix is not computed again)
    first = scorer.score(_messages(task, "Lentil soup"), DIET, {"course"})
    assert first.keys() == {"course"} and first["course"] == pytest.approx(single["course"], abs=1e-4)
    both = scorer.score(_messages(task, "Lentil soup"), DIET, {"diet"})
    assert both.keys() == single.keys()
    assert all(both[name] == pytest.approx(single[name], abs=1e-4) for name in single)


def _messages(task: object, text: str) -> Sequence[dict[str, str]]:
    from lorag.finetune.prompts import classification_messages

    return classification_messages(task, text)  # type: ignore[arg-type]


def test_the_comparison_scores_the_tagger_and_the_knn_baseline() -> None:
    from lorag.finetune.types import Record
    from lorag.tagging.evaluate import compare
    from lorag.tagging.tagger import ShotIndex
    from tests.test_tagging import WordEmbedder

    veg = {"course": "main", "diet": ["vegetarian", "vegan", "dairy-free"]}
    meat = {"course": "main", "diet": []}
    pool = [("tofu curry bowl", veg), ("tofu noodle bowl", veg), ("beef steak plate", meat),
            ("beef burger plate", meat)]
    # the model is wrong on the steak (says vegan with confidence); the vote of the neighbours is right
    table = {"tofu rice bowl": dist(0.9, 0.9, 0.9, main=0.9), "beef steak sandwich": dist(0.9, 0.9, 0.9, main=0.9)}
    tagger = Tagger(None, tagging_task(DIET), model=None, scorer=FixedScorer(table), calibration=SURE,
                    shots=ShotIndex(WordEmbedder(), pool), k_shots=0, knn_k=2)
    records = [Record(prompt="tofu rice bowl", output=veg), Record(prompt="beef steak sandwich", output=meat)]
    results = compare(tagger, records)
    assert set(results) == {"tagger", "model alone", "kNN vote"}
    assert results["kNN vote"]["per_value"]["diet"]["vegan"]["precision"] == 1.0
    assert results["model alone"]["per_value"]["diet"]["vegan"]["precision"] == 0.5
    assert results["model alone"]["ece"]["diet"] is not None
