"""decide: may a candidate adapter replace the model in service? One line of reasons per gated metric.

A task's `gate` maps metric → tolerance. A higher-is-better metric passes when the candidate reaches the
champion's value minus the tolerance; a lower-is-better one (`tasks.LOWER_IS_BETTER`) when it stays at or
below the champion's value plus the tolerance. Its `floor` maps metric → an absolute value the candidate must
reach whatever the champion scored. A taxonomy's safety-critical values (`precision_floor`) must each reach
their floor where the candidate emitted them. Every gated metric and floor must pass, and train/serve parity
must not have failed.

>>> decide(task, {"macro_f1": 0.712}, {"macro_f1": 0.65}, parity=None).reasons  # task.gate == {"macro_f1": 0.01}
('macro_f1 0.712 vs 0.650 in service (tolerance 0.010): ok',)
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from lorag.finetune.tasks import LOWER_IS_BETTER, TaskSpec
from lorag.finetune.types import GateResult

# Float noise must not reject a candidate that sits exactly at the tolerance (0.8 - 0.1 is 0.7000000000000001).
EPSILON = 1e-9


def decide(task: TaskSpec, candidate: Mapping[str, float], champion: Mapping[str, float] | None, *,
           parity: bool | None, champion_label: str = "in service") -> GateResult:
    """Promote only if every gated metric is ok and parity is not False.

    `champion` None means there is nothing to compare with (the caller passes the prompt-only base model's
    metrics when no adapter is in service yet), so only parity can stop the candidate. `champion_label` names
    the champion in the reasons.
    """
    lines: list[tuple[str, bool]] = []
    if not task.gate:
        lines.append(("no gated metrics", True))
    elif champion is None:
        lines.append(("no metrics to compare against", True))
    else:
        lines += [_compare(metric, tolerance, candidate, champion, champion_label)
                  for metric, tolerance in task.gate.items()]
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
