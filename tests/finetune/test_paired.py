"""The paired bootstrap: it rebuilds each reported metric from the per-example rows, pairs the contenders example
by example, and gives the same interval every time for the same rows."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from lorag.core.errors import InvalidInput
from lorag.finetune.evaluate import evaluate_classification, evaluate_grounded
from lorag.finetune.paired import RESAMPLES, Columns, bootstrap, metric_columns, paired_differences
from lorag.finetune.tasks import METRICS, TaskSpec
from tests.finetune.test_evaluate import (
    FIELD_OUTPUTS,
    FIELD_RECORDS,
    FIELDS,
    GROUNDED,
    GROUNDED_RECORDS,
    LABEL_OUTPUTS,
    LABEL_RECORDS,
    LABELS,
    FakeGenerator,
    StubAnswerer,
)


def mean(values: list[float]) -> Columns:
    """Columns of a plain mean, the same scores for both contenders unless the test changes one side."""
    rows = np.column_stack([values, np.ones(len(values))])
    return Columns(rows, rows.copy(), lambda totals: totals[..., 0] / totals[..., 1])


def test_the_interval_is_seeded_paired_and_shrinks_with_more_examples() -> None:
    rng = np.random.default_rng(1)
    base = rng.uniform(0, 1, 40)
    columns = mean(list(base))
    candidate = np.column_stack([base + 0.1 + rng.normal(0, 0.05, 40), np.ones(40)])
    columns = Columns(candidate, columns.baseline, columns.value)
    first, again = bootstrap("token_f1", columns), bootstrap("token_f1", columns)
    assert first == again and first.resamples == RESAMPLES and first.n == 40
    assert first.difference == pytest.approx(float(np.mean(candidate[:, 0] - base)), abs=1e-4)
    low, high = first.ci95
    # Paired: the per-example differences vary by ~0.05 although the scores vary by ~0.3, so the CI is narrow.
    assert 0.07 < low < first.difference < high < 0.13
    assert bootstrap("token_f1", columns, seed=7).ci95 != first.ci95
    unpaired = Columns(candidate, columns.baseline[rng.permutation(40)], columns.value)
    assert np.diff(bootstrap("token_f1", unpaired).ci95)[0] > 3 * (high - low)


def test_identical_contenders_differ_by_exactly_zero() -> None:
    paired = bootstrap("json_validity", mean([1.0, 0.0, 1.0, 1.0]))
    assert (paired.difference, paired.ci95, paired.n) == (0.0, (0.0, 0.0), 4)


def results_of(task: TaskSpec, mine: dict[str, Any], theirs: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {"candidate": mine, "base": theirs}


@pytest.mark.parametrize(("task", "records", "outputs"), [(LABELS, LABEL_RECORDS, LABEL_OUTPUTS),
                                                          (FIELDS, FIELD_RECORDS, FIELD_OUTPUTS)])
def test_classification_metrics_are_rebuilt_from_the_items(task: TaskSpec, records: Any, outputs: Any) -> None:
    gated = task.model_copy(update={"gate": dict.fromkeys(METRICS["classification"], 0.0)})
    scored = evaluate_classification(gated, records, FakeGenerator(outputs), None)
    perfect = {**scored, "items": [{**item, "parsed": item["gold"], "valid": True} for item in scored["items"]]}
    shown = paired_differences(gated, results_of(gated, scored, perfect), "candidate", "base")
    for metric in METRICS["classification"]:
        assert shown[metric].candidate == pytest.approx(scored["metrics"][metric], abs=1e-4), metric
        assert shown[metric].baseline == 1.0 and shown[metric].n == len(records)
        assert shown[metric].difference == pytest.approx(scored["metrics"][metric] - 1.0, abs=1e-4)


def test_grounded_metrics_are_rebuilt_from_the_items_over_the_questions_they_count() -> None:
    gated = GROUNDED.model_copy(update={"gate": dict.fromkeys(METRICS["grounded-qa"], 0.0)})
    scored = evaluate_grounded(gated, GROUNDED_RECORDS, StubAnswerer(), None)  # type: ignore[arg-type]
    refunds = scored["items"][0]
    assert (refunds["cited"], refunds["relevant_cited"]) == (1, 1) and refunds["rouge_l"] is not None
    assert scored["items"][1]["token_f1"] is None  # abstained: no score, counted as 0 like answer_metrics does
    shown = paired_differences(gated, results_of(gated, scored, scored), "candidate", "base")
    for metric, paired in shown.items():
        assert paired.candidate == pytest.approx(scored["metrics"][metric], abs=1e-4), metric
        assert paired.difference == 0.0
    assert shown["token_f1"].n == 2 and shown["abstention_on_unanswerable"].n == 1
    assert shown["citation_validity"].n == 3


def test_a_grounded_metric_with_no_questions_to_count_is_left_out() -> None:
    gated = GROUNDED.model_copy(update={"gate": {"abstention_on_unanswerable": 0.0, "token_f1": 0.0}})
    scored = evaluate_grounded(gated, GROUNDED_RECORDS[:2], StubAnswerer(), None)  # type: ignore[arg-type]
    assert set(paired_differences(gated, results_of(gated, scored, scored), "candidate", "base")) == {"token_f1"}


def test_citation_precision_pools_the_citations_of_the_answerable_questions() -> None:
    """2 relevant of 4 citations is 0.5, not the mean of 1/3 and 1; the unanswerable question's do not count."""
    gated = GROUNDED.model_copy(update={"gate": {"citation_precision": 0.02}})
    mine = [{"key": "a", "gold": "x", "cited": 3, "relevant_cited": 1},
            {"key": "b", "gold": "y", "cited": 1, "relevant_cited": 1},
            {"key": "c", "gold": None, "cited": 2, "relevant_cited": 0}]
    theirs = [{**item, "cited": 0, "relevant_cited": 0} for item in mine]  # cites nothing: precision 0
    paired = paired_differences(gated, results_of(gated, {"items": mine}, {"items": theirs}), "candidate",
                                "base")["citation_precision"]
    assert (paired.candidate, paired.baseline, paired.difference, paired.n) == (0.5, 0.0, 0.5, 2)
    columns = metric_columns(gated, "citation_precision", mine, theirs)
    assert columns.candidate.tolist() == [[1.0, 3.0], [1.0, 1.0]]


def test_contenders_scored_on_different_examples_cannot_be_paired() -> None:
    scored = evaluate_classification(LABELS, LABEL_RECORDS, FakeGenerator(LABEL_OUTPUTS), None)
    other = {**scored, "items": scored["items"][::-1]}
    with pytest.raises(InvalidInput, match="different test examples"):
        paired_differences(LABELS, results_of(LABELS, scored, other), "candidate", "base")
