"""decide: may a candidate adapter replace the model in service? One line of reasons per gated metric.

A task's `gate` maps metric → tolerance. A higher-is-better metric passes when the candidate reaches the
champion's value minus the tolerance; a lower-is-better one (`tasks.LOWER_IS_BETTER`) when it stays at or
below the champion's value plus the tolerance. Its `floor` maps metric → an absolute value the candidate must
reach whatever the champion scored. A taxonomy's safety-critical values (`precision_floor`) must each reach
their floor where the candidate emitted them. Every gated metric and floor must pass, and train/serve parity
must not have failed.

With `evidence` (the paired bootstrap of `finetune.paired`: candidate − champion on the same test examples, its
95% CI and n), which the nightly job always passes, a gated metric is weighed by its interval instead, the
tolerance serving as the non-inferiority margin (the most the candidate may lose and still ship):

- clearly worse (the whole CI below 0): rejected;
- clearly better (the whole CI above 0), or no difference on any resample: ok;
- fewer than `min_examples` examples (default `MIN_EXAMPLES`) and neither of those: too few to decide, rejected;
- otherwise ok only when the CI's low end is above −margin: not worse by more than the margin.

and a last line asks the candidate to be better somewhere: a positive difference on at least one gated metric,
and with fewer than `min_examples` examples a clearly better one. Replacing a model costs a change in service
(and a rollback if wrong), so a tie or a difference within the noise keeps the champion; on a small test split
only a clear improvement is let through, so a first adapter does not replace the base model on noise.

>>> decide(task, {"macro_f1": 0.712}, {"macro_f1": 0.65}, parity=None).reasons  # task.gate == {"macro_f1": 0.01}
('macro_f1 0.712 vs 0.650 in service (tolerance 0.010): ok',)
>>> decide(task, candidate, champion, parity=None, evidence=paired_differences(task, results, "candidate",
...        "in service")).reasons
('macro_f1 0.712 vs 0.650 in service: difference +0.062, 95% CI [+0.021, +0.104], n=90 (margin 0.010): clearly
better', 'better than in service on macro_f1')
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from lorag.finetune.tasks import LOWER_IS_BETTER, TaskSpec
from lorag.finetune.types import GateResult

if TYPE_CHECKING:  # only the type: the gate itself needs no numpy
    from lorag.finetune.paired import Paired

# Float noise must not reject a candidate that sits exactly at the tolerance (0.8 - 0.1 is 0.7000000000000001).
EPSILON = 1e-9
# Below this many paired examples a 95% CI of a difference in token-F1 or macro-F1 is wider than any margin a
# task would accept (with per-example differences of spread ~0.2, ±0.14 at n=8 and ±0.07 at n=30), so only a
# clear improvement decides there; a percentile bootstrap on very few examples also tends to be too narrow.
MIN_EXAMPLES = 30


def decide(task: TaskSpec, candidate: Mapping[str, Any], champion: Mapping[str, Any] | None, *,
           parity: bool | None, champion_label: str = "in service", evidence: Mapping[str, Paired] | None = None,
           min_examples: int = MIN_EXAMPLES) -> GateResult:
    """Promote only if every gated metric is ok and parity is not False.

    `champion` None means there is nothing to compare with (the caller passes the prompt-only base model's
    metrics when no adapter is in service yet), so only parity can stop the candidate. `champion_label` names
    the champion in the reasons. `evidence` (metric → paired difference): weigh each gated metric by its CI, as
    the module says; without it only the two aggregate values are compared, within the tolerance.
    """
    lines: list[tuple[str, bool]] = []
    if not task.gate:
        lines.append(("no gated metrics", True))
    elif champion is None:
        lines.append(("no metrics to compare against", True))
    elif evidence is None:
        lines += [_compare(metric, tolerance, candidate, champion, champion_label)
                  for metric, tolerance in task.gate.items()]
    else:
        lines += [_weigh(metric, margin, evidence.get(metric), champion_label, min_examples)
                  for metric, margin in task.gate.items()]
        lines.append(_improvement(task, evidence, champion_label, min_examples))
    lines += [_floor(metric, least, candidate) for metric, least in task.floor.items()]
    lines += _flag_floors(candidate)
    if parity is not None:
        lines.append(("train/serve parity ok", True) if parity else ("train/serve parity failed", False))
    return GateResult(promote=all(ok for _, ok in lines), reasons=tuple(line for line, _ in lines), parity=parity)


def _compare(metric: str, tolerance: float, candidate: Mapping[str, float], champion: Mapping[str, float],
             label: str) -> tuple[str, bool]:
    mine, theirs = _value(candidate, metric), _value(champion, metric)
    if mine is None or theirs is None:
        missing = [side for side, value in (("candidate", mine), (label, theirs)) if value is None]
        return f"{metric}: missing from the {' and '.join(missing)} metrics, cannot compare", False
    lower = metric in LOWER_IS_BETTER
    ok = mine <= theirs + tolerance + EPSILON if lower else mine >= theirs - tolerance - EPSILON
    direction = ", lower is better" if lower else ""
    return (f"{metric} {mine:.3f} vs {theirs:.3f} {label} (tolerance {tolerance:.3f}{direction}): "
            f"{'ok' if ok else 'worse'}"), ok


def _weigh(metric: str, margin: float, paired: Paired | None, label: str, least: int) -> tuple[str, bool]:
    """One gated metric by its paired difference: the line shows the difference, its 95% CI and n."""
    if paired is None:
        return f"{metric}: no paired examples to weigh it against the {label}, cannot decide", False
    lower = metric in LOWER_IS_BETTER
    _gain, low, high = _gain_of(paired, lower)
    if high < -EPSILON:
        verdict, ok = "clearly worse", False
    elif low > EPSILON:
        verdict, ok = "clearly better", True
    elif high <= EPSILON and low >= -EPSILON:
        verdict, ok = "no difference on any resample", True
    elif paired.n < least:
        verdict, ok = f"too few examples to decide (n={paired.n}, fewer than {least}), not clearly better", False
    elif low >= -margin - EPSILON:
        verdict, ok = "not worse by more than the margin", True
    else:
        verdict, ok = "could be worse by more than the margin", False
    low_end, high_end = paired.ci95
    direction = ", lower is better" if lower else ""
    return (f"{metric} {paired.candidate:.3f} vs {paired.baseline:.3f} {label}: difference "
            f"{paired.difference:+.3f}, 95% CI [{low_end:+.3f}, {high_end:+.3f}], n={paired.n} "
            f"(margin {margin:.3f}{direction}): {verdict}"), ok


def _improvement(task: TaskSpec, evidence: Mapping[str, Paired], label: str, least: int) -> tuple[str, bool]:
    """Not losing is not enough to replace a model: some gated metric must be better, clearly so on few examples."""
    better = []
    for metric in task.gate:
        paired = evidence.get(metric)
        if paired is None:
            continue
        gain, low, _high = _gain_of(paired, metric in LOWER_IS_BETTER)
        if gain > EPSILON and (paired.n >= least or low > EPSILON):
            better.append(metric)
    if better:
        return f"better than {label} on {', '.join(better)}", True
    few = sorted({paired.n for paired in evidence.values() if paired.n < least})
    why = f"; too few examples to decide (n={few[0]}, fewer than {least}) unless clearly better" if few else ""
    return f"not better than {label} on any gated metric{why}: no reason to replace it", False


def _gain_of(paired: Paired, lower: bool) -> tuple[float, float, float]:
    """(difference, CI low, CI high) turned so that a positive value is an improvement."""
    low, high = paired.ci95
    return (-paired.difference, -high, -low) if lower else (paired.difference, low, high)


def gate_json(gate: GateResult, evidence: Mapping[str, Paired], label: str,
              min_examples: int = MIN_EXAMPLES) -> dict[str, Any]:
    """The gate as the report and run.json store it: the decision, its reasons, and the evidence it weighed."""
    return {"promote": gate.promote, "reasons": list(gate.reasons), "parity": gate.parity, "against": label,
            "min_examples": min_examples, "evidence": {metric: paired.as_dict() for metric, paired in evidence.items()}}


def _floor(metric: str, least: float, candidate: Mapping[str, float]) -> tuple[str, bool]:
    mine = _value(candidate, metric)
    if mine is None:
        return f"{metric}: missing from the candidate metrics, cannot check its floor", False
    lower = metric in LOWER_IS_BETTER
    ok = mine <= least + EPSILON if lower else mine >= least - EPSILON
    bound = "at most" if lower else "at least"
    return f"{metric} {mine:.3f}, floor {bound} {least:.3f}: {'ok' if ok else 'below the floor'}", ok


def _flag_floors(candidate: Mapping[str, object]) -> list[tuple[str, bool]]:
    """Every safety-critical value the candidate emitted on the test split must reach its precision floor there
    (a wrong vegan flag on a meat dish is an incident); a value it never emitted made no claim to check."""
    flags = candidate.get("flag_precision")
    if not isinstance(flags, Mapping):
        return []
    lines = []
    for name, seen in flags.items():
        if seen["precision"] is None:
            continue
        ok = seen["precision"] >= seen["floor"] - EPSILON
        lines.append((f"{name} precision {seen['precision']:.3f} over {seen['emitted']} emitted, floor "
                      f"{seen['floor']:.3f}: {'ok' if ok else 'below the floor'}", ok))
    return lines


def _value(metrics: Mapping[str, float], metric: str) -> float | None:
    """The metric as a number; None when absent or not a number (a NaN would compare False both ways)."""
    value = metrics.get(metric)
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        return None
    return float(value)
