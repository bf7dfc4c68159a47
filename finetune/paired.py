"""Paired bootstrap: a metric's difference candidate − baseline on the same test examples, with its 95% CI.

Both contenders answered the same test examples, so resampling examples (never models) keeps the pairing: each
resample draws n examples with replacement and recomputes the metric for both contenders on that one draw. A
metric is rebuilt from per-example columns whose totals give its value (a mean is Σscore / Σ1, citation
precision Σrelevant / Σcited, macro-F1 comes from per-class Σtp, Σfp, Σfn), so it is exactly the metric the
report shows, and all resamples are one matrix product.

>>> paired_differences(task, results, "candidate", "base (prompt only)")["token_f1"].as_dict()  # doctest: +SKIP
{'candidate': 0.236, 'baseline': 0.166, 'difference': 0.07, 'ci95': [0.012, 0.131], 'n': 40, ...}
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lorag.core.errors import InvalidInput
from lorag.finetune.evaluate import tag_sets, taxonomy_classes
from lorag.finetune.tasks import TaskSpec, Taxonomy

RESAMPLES = 2000
SEED = 0  # fixed: the same report gives the same interval, so a gate decision can be re-run and audited
LEVEL = 0.95
BLOCK = 250  # resamples drawn at a time: a test split of 10,000 examples then needs 20 MB, not 160 MB

Item = Mapping[str, Any]
Value = Callable[[np.ndarray], np.ndarray]  # column totals (..., k) → the metric (...)


@dataclass(frozen=True)
class Columns:
    """Per-example columns of both contenders (rows aligned: row i is the same test example) and the metric."""

    candidate: np.ndarray  # (n, k)
    baseline: np.ndarray  # (n, k)
    value: Value


@dataclass(frozen=True)
class Paired:
    """candidate − baseline for one metric; `ci95` is the 2.5th and 97.5th percentile of resampled differences."""

    metric: str
    candidate: float
    baseline: float
    difference: float
    ci95: tuple[float, float]
    n: int  # test examples the metric is computed over (grounded-qa: the answerable ones, for most metrics)
    resamples: int = RESAMPLES
    seed: int = SEED

    def as_dict(self) -> dict[str, Any]:
        return {"candidate": self.candidate, "baseline": self.baseline, "difference": self.difference,
                "ci95": list(self.ci95), "n": self.n, "resamples": self.resamples, "seed": self.seed}


def paired_differences(task: TaskSpec, results: Mapping[str, Mapping[str, Any]], candidate: str,
                       baseline: str) -> dict[str, Paired]:
    """metric → Paired for each metric in the task's gate; a metric with no examples to compute it on is left out.

    `results` is `evaluate_task`'s: label → {"metrics", "items"}; both contenders' items must be the same records.
    """
    mine, theirs = results[candidate]["items"], results[baseline]["items"]
    if [item["key"] for item in mine] != [item["key"] for item in theirs]:
        raise InvalidInput(f"{candidate} and {baseline} were scored on different test examples: cannot pair them")
    shown = {}
    for metric in task.gate:
        columns = metric_columns(task, metric, mine, theirs)
        if len(columns.candidate):
            shown[metric] = bootstrap(metric, columns)
    return shown


def bootstrap(metric: str, columns: Columns, *, resamples: int = RESAMPLES, seed: int = SEED) -> Paired:
    """The metric's difference on the examples, and its percentile interval over `resamples` paired resamples."""
    n = len(columns.candidate)
    rng = np.random.default_rng(seed)
    blocks = []
    for start in range(0, resamples, BLOCK):
        # counts[b, i]: how often resample b drew example i; the same counts weigh both contenders (the pairing).
        counts = rng.multinomial(n, np.full(n, 1.0 / n), size=min(BLOCK, resamples - start)).astype(float)
        blocks.append(columns.value(counts @ columns.candidate) - columns.value(counts @ columns.baseline))
    differences = np.concatenate(blocks)
    tail = (1 - LEVEL) / 2
    low, high = np.quantile(differences, [tail, 1 - tail])
    mine, theirs = (float(columns.value(rows.sum(axis=0))) for rows in (columns.candidate, columns.baseline))
    return Paired(metric, _shown(mine), _shown(theirs), _shown(mine - theirs), (_shown(low), _shown(high)), n,
                  resamples, seed)


def _shown(value: float) -> float:
    """Rounded as the report rounds metrics; + 0.0 turns a float-noise -0.0 into 0.0, so a tie never reads "-0"."""
    return round(float(value), 4) + 0.0


def metric_columns(task: TaskSpec, metric: str, mine: Sequence[Item], theirs: Sequence[Item]) -> Columns:
    """The per-example columns of `metric` for the task's kind, computed the way `finetune.evaluate` scores it."""
    if task.kind == "classification":
        if task.taxonomy is None:
            raise InvalidInput(f"task {task.name} is a classification task without a taxonomy")
        return _classification_columns(task.taxonomy, metric, mine, theirs)
    if task.kind == "grounded-qa":
        return _grounded_columns(metric, mine, theirs)
    return Columns(*(_stack([[item[metric], 1.0] for item in items]) for items in (mine, theirs)), _ratio(0.0))


def _grounded_columns(metric: str, mine: Sequence[Item], theirs: Sequence[Item]) -> Columns:
    """As `retrieval.evaluate.answer_metrics`: answer quality and citations over the answerable questions (an
    abstention scores 0), abstention on unanswerable ones over those, citation validity over every draft."""
    def row(item: Item) -> list[float]:
        if metric in ("token_f1", "rouge_l"):
            return [item[metric] or 0.0, 1.0]  # None: the model abstained, which answer_metrics scores as 0
        if metric == "citation_precision":
            return [item["relevant_cited"], item["cited"]]
        if metric == "citation_recall":
            return [float(item["relevant_cited"] > 0), 1.0]
        if metric in ("abstention_on_answerable", "abstention_on_unanswerable"):
            return [float(item["abstained"]), 1.0]
        return [item["markers_kept"], item["markers_written"]]  # citation_validity

    if metric == "citation_validity":
        rows = list(range(len(mine)))
    else:
        answerable = metric != "abstention_on_unanswerable"
        rows = [i for i, item in enumerate(mine) if (item["gold"] is not None) == answerable]
    # Empty totals give what evaluate reports then: no citations is precision 0, no markers is validity 1.
    default = 1.0 if metric == "citation_validity" else 0.0
    return Columns(_stack([row(mine[i]) for i in rows]), _stack([row(theirs[i]) for i in rows]), _ratio(default))


def _classification_columns(taxonomy: Taxonomy, metric: str, mine: Sequence[Item],
                            theirs: Sequence[Item]) -> Columns:
    """accuracy and json_validity are shares of examples; macro_f1 needs every field's per-class tp, fp, fn."""
    classes = taxonomy_classes(taxonomy)

    def rows(items: Sequence[Item]) -> np.ndarray:
        table = []
        for item in items:
            gold = tag_sets(taxonomy, item["gold"])
            pred = tag_sets(taxonomy, item["parsed"] if item["valid"] else None)
            if metric == "macro_f1":
                table.append([count for name, values in classes.items() for value in values
                              for count in _confusion(value, gold[name], pred[name])])
            elif metric == "accuracy":
                table.append([float(item["valid"] and gold == pred), 1.0])
            else:  # json_validity
                table.append([float(item["valid"]), 1.0])
        return _stack(table)

    value = _macro_f1([len(values) for values in classes.values()]) if metric == "macro_f1" else _ratio(0.0)
    return Columns(rows(mine), rows(theirs), value)


def _confusion(value: str, gold: frozenset[str], pred: frozenset[str]) -> tuple[float, float, float]:
    """(tp, fp, fn) of one class on one example."""
    return (float(value in gold and value in pred), float(value in pred and value not in gold),
            float(value in gold and value not in pred))


def _macro_f1(sizes: Sequence[int]) -> Value:
    """Totals laid out field by field, class by class, as (tp, fp, fn) → the mean over fields of each field's
    macro-F1 over the classes that occur (1.0 for a field where none does), as `evaluate.macro_f1`."""
    def value(totals: np.ndarray) -> np.ndarray:
        fields, start = [], 0
        for size in sizes:
            counts = totals[..., start:start + 3 * size].reshape(*totals.shape[:-1], size, 3)
            start += 3 * size
            tp, fp, fn = counts[..., 0], counts[..., 1], counts[..., 2]
            occurs = (tp + fp + fn) > 0
            f1 = np.where(occurs, 2 * tp / np.where(occurs, 2 * tp + fp + fn, 1.0), 0.0)
            seen = occurs.sum(axis=-1)
            fields.append(np.where(seen > 0, f1.sum(axis=-1) / np.maximum(seen, 1), 1.0))
        return np.mean(fields, axis=0)

    return value


def _ratio(default: float) -> Value:
    """Σ numerator / Σ denominator, `default` where the denominator is 0."""
    def value(totals: np.ndarray) -> np.ndarray:
        numerator, denominator = totals[..., 0], totals[..., 1]
        return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1.0), default)

    return value


def _stack(rows: Sequence[Sequence[float]]) -> np.ndarray:
    """Rows as an (n, k) array; no rows is (0, 0), which `paired_differences` leaves out."""
    return np.asarray(rows, dtype=float).reshape(len(rows), -1) if rows else np.zeros((0, 0))
