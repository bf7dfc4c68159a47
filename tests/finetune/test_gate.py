"""decide: the promotion rule, one reason per gated metric, parity, and the cases with nothing to compare."""

from __future__ import annotations

from typing import Any

import pytest
from lorag.finetune.gate import decide
from lorag.finetune.tasks import TaskSpec


def classification(gate: dict[str, float]) -> TaskSpec:
    return TaskSpec.model_validate({"name": "menu", "kind": "classification",
                                    "taxonomy": {"labels": ["a", "b"]}, "gate": gate})


def grounded(gate: dict[str, float]) -> TaskSpec:
    return TaskSpec.model_validate({"name": "support", "kind": "grounded-qa", "kb": "docs", "gate": gate})


TASK = classification({"macro_f1": 0.01, "json_validity": 0.0})
CHAMPION: dict[str, Any] = {"macro_f1": 0.650, "json_validity": 0.9}


def test_a_better_candidate_is_promoted_with_one_reason_per_metric() -> None:
    result = decide(TASK, {"macro_f1": 0.712, "json_validity": 0.95}, CHAMPION, parity=None)
    assert result.promote
    assert result.reasons == ("macro_f1 0.712 vs 0.650 in service (tolerance 0.010): ok",
                              "json_validity 0.950 vs 0.900 in service (tolerance 0.000): ok")
    assert result.parity is None


def test_equal_metrics_pass() -> None:
    assert decide(TASK, dict(CHAMPION), CHAMPION, parity=True).promote


def test_within_tolerance_passes_even_at_the_exact_boundary() -> None:
    assert decide(TASK, {"macro_f1": 0.64, "json_validity": 0.9}, CHAMPION, parity=None).promote
    # 0.8 - 0.1 is 0.7000000000000001 in floats: exactly at the tolerance must still pass.
    wide = classification({"macro_f1": 0.1})
    assert decide(wide, {"macro_f1": 0.7}, {"macro_f1": 0.8}, parity=None).promote
    assert decide(TASK, {"macro_f1": 0.645, "json_validity": 0.9}, CHAMPION, parity=None).promote


def test_outside_tolerance_is_rejected_and_says_which_metric() -> None:
    result = decide(TASK, {"macro_f1": 0.62, "json_validity": 0.9}, CHAMPION, parity=None)
    assert not result.promote
    assert result.reasons[0] == "macro_f1 0.620 vs 0.650 in service (tolerance 0.010): worse"
    assert result.reasons[1].endswith(": ok")
    assert "keep the adapter in service" in result.summary()


def test_lower_is_better_metric_compares_the_other_way() -> None:
    task = grounded({"abstention_on_answerable": 0.02})
    champion = {"abstention_on_answerable": 0.10}
    assert decide(task, {"abstention_on_answerable": 0.05}, champion, parity=None).promote
    assert decide(task, {"abstention_on_answerable": 0.12}, champion, parity=None).promote
    rejected = decide(task, {"abstention_on_answerable": 0.13}, champion, parity=None)
    assert not rejected.promote
    assert rejected.reasons == ("abstention_on_answerable 0.130 vs 0.100 in service (tolerance 0.020, "
                                "lower is better): worse",)


def test_a_missing_metric_rejects_and_names_the_side() -> None:
    result = decide(TASK, {"macro_f1": 0.9}, CHAMPION, parity=None)
    assert not result.promote
    assert result.reasons[1] == "json_validity: missing from the candidate metrics, cannot compare"
    champion_lacks = decide(TASK, {"macro_f1": 0.9, "json_validity": 1.0}, {"macro_f1": 0.5}, parity=None)
    assert not champion_lacks.promote and "missing from the in service metrics" in champion_lacks.reasons[1]
    not_a_number = decide(TASK, {"macro_f1": float("nan"), "json_validity": 1.0}, CHAMPION, parity=None)
    assert not not_a_number.promote and "missing from the candidate" in not_a_number.reasons[0]


def test_failed_parity_rejects_even_a_better_candidate() -> None:
    result = decide(TASK, {"macro_f1": 0.9, "json_validity": 1.0}, CHAMPION, parity=False)
    assert not result.promote
    assert result.reasons[-1] == "train/serve parity failed"
    assert result.parity is False
    passed = decide(TASK, {"macro_f1": 0.9, "json_validity": 1.0}, CHAMPION, parity=True)
    assert passed.promote and passed.reasons[-1] == "train/serve parity ok"


def test_no_champion_promotes_unless_parity_failed() -> None:
    result = decide(TASK, {"macro_f1": 0.1}, None, parity=None)
    assert result.promote and result.reasons == ("no metrics to compare against",)
    assert not decide(TASK, {"macro_f1": 0.1}, None, parity=False).promote


def test_empty_gate_promotes_unless_parity_failed() -> None:
    task = classification({})
    result = decide(task, {"macro_f1": 0.1}, {"macro_f1": 0.9}, parity=True)
    assert result.promote and result.reasons == ("no gated metrics", "train/serve parity ok")
    rejected = decide(task, {"macro_f1": 0.1}, {"macro_f1": 0.9}, parity=False)
    assert not rejected.promote and rejected.reasons == ("no gated metrics", "train/serve parity failed")


def test_the_champion_can_be_named_in_the_reasons() -> None:
    result = decide(TASK, {"macro_f1": 0.7, "json_validity": 0.9}, CHAMPION, parity=None,
                    champion_label="base (prompt only)")
    assert result.reasons[0] == "macro_f1 0.700 vs 0.650 base (prompt only) (tolerance 0.010): ok"


def test_a_floor_rejects_a_candidate_that_only_ties_a_bad_champion() -> None:
    task = TaskSpec.model_validate({"name": "menu", "kind": "classification", "taxonomy": {"labels": ["a", "b"]},
                                    "gate": {"macro_f1": 0.0}, "floor": {"macro_f1": 0.2}})
    tie = decide(task, {"macro_f1": 0.0}, {"macro_f1": 0.0}, parity=None)
    assert not tie.promote
    assert tie.reasons[-1] == "macro_f1 0.000, floor at least 0.200: below the floor"
    first = decide(task, {"macro_f1": 0.1}, None, parity=None)  # nothing to compare with: the floor still holds
    assert not first.promote
    assert decide(task, {"macro_f1": 0.3}, {"macro_f1": 0.0}, parity=None).promote


def test_a_floor_on_an_unknown_metric_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="floor names metrics"):
        TaskSpec.model_validate({"name": "menu", "kind": "classification", "taxonomy": {"labels": ["a", "b"]},
                                 "floor": {"bleu": 0.2}})


def flagged() -> TaskSpec:
    return TaskSpec.model_validate({
        "name": "menu", "kind": "classification", "gate": {"macro_f1": 0.01},
        "taxonomy": {"fields": {"dietary": {"type": "multi", "values": ["vegan", "vegetarian", "dairy-free"],
                                            "precision_floor": 0.95,
                                            "implies": {"vegan": ["vegetarian", "dairy-free"]}}}}})


def test_a_safety_flag_below_its_floor_stops_a_better_candidate() -> None:
    """Better macro-F1 is not enough: one wrong vegan flag in ten on the test split rejects the adapter."""
    from lorag.finetune.evaluate import classification_metrics

    task = flagged()
    gold = [{"dietary": ["vegan", "vegetarian", "dairy-free"]}] * 9 + [{"dietary": []}]  # the tenth is a steak
    wrong = [{"gold": g, "parsed": {"dietary": ["vegan", "vegetarian", "dairy-free"]}, "valid": True} for g in gold]
    metrics = classification_metrics(task.taxonomy, wrong)
    assert metrics["flag_precision"]["dietary:vegan"] == {"precision": 0.9, "emitted": 10, "floor": 0.95}
    result = decide(task, metrics, {**metrics, "macro_f1": 0.0}, parity=None)
    assert not result.promote
    assert "dietary:vegan precision 0.900 over 10 emitted, floor 0.950: below the floor" in result.reasons

    right = [{**item, "parsed": item["gold"]} for item in wrong]
    assert decide(task, classification_metrics(task.taxonomy, right), None, parity=None).promote


def test_a_flag_never_emitted_makes_no_claim() -> None:
    from lorag.finetune.evaluate import classification_metrics

    task = flagged()
    items = [{"gold": {"dietary": ["vegan"]}, "parsed": {"dietary": []}, "valid": True}]
    metrics = classification_metrics(task.taxonomy, items)
    assert metrics["flag_precision"]["dietary:vegan"]["precision"] is None
    assert decide(task, metrics, None, parity=None).promote
