"""decide: the promotion rule, one reason per gated metric, parity, the cases with nothing to compare, and the
decisions on paired evidence (clearly better, clearly worse, a tie in the noise, too few examples)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from lorag.finetune.gate import MIN_EXAMPLES, decide, gate_json
from lorag.finetune.paired import Paired, paired_differences
from lorag.finetune.tasks import TaskSpec
from lorag.finetune.types import GateResult


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


# --- decisions on paired evidence: synthetic per-example scores, bootstrapped as the nightly job does ----------

CHAT = TaskSpec.model_validate({"name": "reply", "kind": "chat", "gate": {"token_f1": 0.02}})
BASE = "base (prompt only)"


def weighed(mine: list[float], theirs: list[float], *, parity: bool | None = None,
            min_examples: int = MIN_EXAMPLES) -> GateResult:
    """The gate on per-example token-F1 scores of a candidate and the base over the same test examples."""
    results = {label: {"metrics": {"token_f1": sum(scores) / len(scores)},
                       "items": [{"key": str(i), "token_f1": score} for i, score in enumerate(scores)]}
               for label, scores in (("candidate", mine), (BASE, theirs))}
    evidence = paired_differences(CHAT, results, "candidate", BASE)
    return decide(CHAT, results["candidate"]["metrics"], results[BASE]["metrics"], parity=parity,
                  champion_label=BASE, evidence=evidence, min_examples=min_examples)


def scores(n: int, level: float, spread: float) -> list[float]:
    """n scores around `level`, alternately `spread` above and below it (deterministic noise)."""
    return [level + (spread if i % 2 else -spread) for i in range(n)]


SHOWN = re.compile(r"^token_f1 (\d\.\d{3}) vs (\d\.\d{3}) base \(prompt only\): difference ([+-]\d\.\d{3}), "
                   r"95% CI \[([+-]\d\.\d{3}), ([+-]\d\.\d{3})\], n=(\d+) \(margin 0\.020\): (.+)$")


def test_a_clearly_better_candidate_is_promoted_and_the_reason_shows_the_interval() -> None:
    result = weighed(scores(40, 0.5, 0.1), scores(40, 0.3, 0.05)[::-1])
    assert result.promote
    mine, theirs, difference, low, high, n, verdict = SHOWN.match(result.reasons[0]).groups()  # type: ignore[union-attr]
    assert (mine, theirs, difference, n, verdict) == ("0.500", "0.300", "+0.200", "40", "clearly better")
    assert 0 < float(low) < 0.2 < float(high)
    assert result.reasons[1] == "better than base (prompt only) on token_f1"


def test_a_clearly_worse_candidate_is_rejected() -> None:
    result = weighed(scores(40, 0.3, 0.05), scores(40, 0.5, 0.1))
    assert not result.promote
    assert result.reasons[0].endswith("): clearly worse")
    assert float(SHOWN.match(result.reasons[0]).group(5)) < 0  # type: ignore[union-attr]  # the CI's high end
    assert result.reasons[1].startswith("not better than base (prompt only) on any gated metric")


def test_a_tie_within_the_noise_keeps_the_champion() -> None:
    """Same mean, large per-example noise: the CI spans ±0.1, so the candidate could be much worse."""
    result = weighed(scores(40, 0.4, 0.3), [0.4] * 40)
    assert not result.promote
    low = float(SHOWN.match(result.reasons[0]).group(4))  # type: ignore[union-attr]
    assert low < -0.02 and result.reasons[0].endswith("could be worse by more than the margin")
    assert result.reasons[1] == ("not better than base (prompt only) on any gated metric: no reason to "
                                 "replace it")


def test_identical_scores_lose_nothing_but_gain_nothing() -> None:
    result = weighed([0.4] * 40, [0.4] * 40)
    assert result.reasons[0].endswith("difference +0.000, 95% CI [+0.000, +0.000], n=40 (margin 0.020): "
                                      "no difference on any resample")
    assert not result.promote and result.reasons[1].startswith("not better")


def test_a_small_gain_whose_interval_stays_above_the_margin_is_promoted() -> None:
    """+0.005 on average, ±0.1 per example, n=200: not clearly better, but not worse by more than 0.02."""
    mine = [0.5 + d for d in scores(200, 0.005, 0.1)]
    result = weighed(mine, [0.5] * 200)
    low, high = (float(SHOWN.match(result.reasons[0]).group(i)) for i in (4, 5))  # type: ignore[union-attr]
    assert -0.02 < low < 0 < high
    assert result.reasons[0].endswith("not worse by more than the margin")
    assert result.promote and result.reasons[1] == "better than base (prompt only) on token_f1"
    # The minimum is a setting: below it, the same evidence is too little for anything but a clear gain.
    assert not weighed(mine, [0.5] * 200, min_examples=300).promote


def test_too_few_examples_promote_only_a_clearly_better_candidate() -> None:
    """The same +0.1 gain, ±0.2 per example: undecided on 8 examples, decided on 40."""
    few = weighed(scores(8, 0.5, 0.2), [0.4] * 8)
    assert not few.promote
    assert few.reasons[0].endswith("n=8 (margin 0.020): too few examples to decide (n=8, fewer than 30), "
                                   "not clearly better")
    assert few.reasons[1] == ("not better than base (prompt only) on any gated metric; too few examples to "
                              "decide (n=8, fewer than 30) unless clearly better: no reason to replace it")
    assert weighed(scores(40, 0.5, 0.2), [0.4] * 40).promote
    clear = weighed(scores(8, 0.7, 0.05), [0.4] * 8)  # a first adapter far above the base on every example
    assert clear.promote and clear.reasons[0].endswith("n=8 (margin 0.020): clearly better")


def test_parity_floors_and_missing_evidence_still_stop_a_clearly_better_candidate() -> None:
    assert not weighed(scores(40, 0.5, 0.1), [0.3] * 40, parity=False).promote
    floored = CHAT.model_copy(update={"floor": {"token_f1": 0.6}})
    clear = Paired("token_f1", 0.5, 0.3, 0.2, (0.15, 0.25), 40)
    result = decide(floored, {"token_f1": 0.5}, {"token_f1": 0.3}, parity=None, evidence={"token_f1": clear})
    assert not result.promote and result.reasons[-1] == "token_f1 0.500, floor at least 0.600: below the floor"
    unweighed = decide(CHAT, {"token_f1": 0.5}, {"token_f1": 0.3}, parity=None, evidence={})
    assert not unweighed.promote
    assert unweighed.reasons[0] == "token_f1: no paired examples to weigh it against the in service, cannot decide"


def test_a_lower_is_better_metric_is_weighed_the_other_way() -> None:
    task = grounded({"abstention_on_answerable": 0.02})
    fewer = Paired("abstention_on_answerable", 0.05, 0.15, -0.10, (-0.15, -0.05), 40)
    result = decide(task, {}, {}, parity=None, evidence={"abstention_on_answerable": fewer})
    assert result.promote
    assert result.reasons == ("abstention_on_answerable 0.050 vs 0.150 in service: difference -0.100, 95% CI "
                              "[-0.150, -0.050], n=40 (margin 0.020, lower is better): clearly better",
                              "better than in service on abstention_on_answerable")
    more = Paired("abstention_on_answerable", 0.15, 0.05, 0.10, (0.05, 0.15), 40)
    assert not decide(task, {}, {}, parity=None, evidence={"abstention_on_answerable": more}).promote


def test_the_gate_json_carries_the_difference_its_interval_and_n() -> None:
    evidence = {"token_f1": Paired("token_f1", 0.5, 0.3, 0.2, (0.15, 0.25), 40)}
    gate = decide(CHAT, {"token_f1": 0.5}, {"token_f1": 0.3}, parity=True, champion_label=BASE, evidence=evidence)
    shown = gate_json(gate, evidence, BASE)
    assert shown["promote"] is True and shown["reasons"] == list(gate.reasons) and shown["against"] == BASE
    assert shown["evidence"]["token_f1"] == {"candidate": 0.5, "baseline": 0.3, "difference": 0.2,
                                             "ci95": [0.15, 0.25], "n": 40, "resamples": 2000, "seed": 0}
    assert shown["min_examples"] == MIN_EXAMPLES == 30
