"""Measured confidence for tags, and the safety rules of a taxonomy.

    item → the model's probabilities over the allowed values (constrained decoding, `TransformersScorer`)
         + a vote of its labelled neighbours (`knn_distribution`, the embedder's vectors)
         → blended with the weights fitted on validation data (`fit_calibration`)
         → `decide`: implications enforced, a flagged value emitted only above the threshold that reached its
           precision floor on validation data, otherwise the item `needs_review`

A distribution is field → value → probability: a single field's values sum to 1, a multi field holds each
value's own probability of being present (a marginal), a labels taxonomy is the one field `label`.

>>> decide(taxonomy, {"dietary": {"vegan": 0.9, "vegetarian": 0.95, ...}, ...}, calibration).tags  # doctest: +SKIP
{'cuisine': 'thai', 'dish_type': 'main', 'dietary': ['vegetarian', 'vegan'], 'spice_level': 'mild'}
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from lorag.finetune.tasks import Taxonomy
from lorag.serving.protocol import Messages

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

LABEL = "label"  # the one field of a labels taxonomy (as finetune.evaluate scores it)
MAX_SUBSETS = 64  # a multi field's value sets scored whole; larger fields are scored up to the sizes that fit
KNN_ALPHA = 1.0  # the prior's weight in a neighbour vote, in units of one perfectly similar neighbour
WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)  # the model's share in the blend, tried on validation data
MIN_SUPPORT = 5  # a threshold is trusted only when at least this many validation items cleared it
CONFIDENCE_Z = 1.645  # one-sided 95%: a precision floor must hold at this confidence on validation data
NEVER = 1.01  # the threshold of a value no validation evidence lets through: it always goes to review

Distribution = dict[str, dict[str, float]]


def field_specs(taxonomy: Taxonomy) -> dict[str, tuple[bool, list[str]]]:
    """field → (is multi, values); a labels taxonomy is one single field named `label`."""
    if taxonomy.labels is not None:
        return {LABEL: (False, list(taxonomy.labels))}
    return {name: (spec.type == "multi", list(spec.values)) for name, spec in (taxonomy.fields or {}).items()}


def as_sets(taxonomy: Taxonomy, output: object) -> dict[str, set[str]]:
    """A label or a tags object as field → set of values (a missing field: empty)."""
    if taxonomy.labels is not None:
        return {LABEL: set() if output is None else {str(output)}}
    tags = output if isinstance(output, Mapping) else {}
    sets = {}
    for name, (multi, _values) in field_specs(taxonomy).items():
        value = tags.get(name)
        sets[name] = set(value or []) if multi else ({str(value)} if value is not None else set())
    return sets


def one_hot(taxonomy: Taxonomy, output: object) -> Distribution:
    """A generated (unscored) output as a distribution: what it chose gets all the mass."""
    sets = as_sets(taxonomy, output)
    return {name: {value: float(value in sets[name]) for value in values}
            for name, (_multi, values) in field_specs(taxonomy).items()}


# --- the model's probabilities under constrained decoding ----------------------------------------------------

@runtime_checkable
class Scorer(Protocol):
    """Constrained decoding with probabilities: the model may only write the taxonomy's values."""

    name: str  # the model it scores with, as results name it

    def score(self, messages: Messages, taxonomy: Taxonomy, fields: Collection[str] | None = None) -> Distribution:
        """Each field's distribution; with `fields`, scoring stops after the last of them in the output's order (an
        earlier field is still scored: the later ones are written after the value chosen for it)."""
        ...


class TransformersScorer:
    """Field by field in the output's own order, the log-probability of every allowed continuation (a value, or a
    multi field's whole sorted list) after the prompt and the values chosen so far; the best one is appended.

    Normalised over the allowed continuations, that is exactly the distribution of the next field under decoding
    constrained to the taxonomy, so the output is valid by construction and a multi field's marginals are sums
    over its value sets. The key-value cache is kept between calls and cut back to the tokens the next prompt
    shares (the system prompt), so only what differs is computed again.
    """

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, *, name: str,
                 max_subsets: int = MAX_SUBSETS, adapter_off: bool = False) -> None:
        self._model, self._tokenizer, self.name, self.max_subsets = model, tokenizer, name, max_subsets
        self.adapter_off = adapter_off  # a peft model scored as its base (the prompt-only baseline)
        self._ids: list[int] = []
        self._cache: Any = None

    def as_base(self, name: str) -> TransformersScorer | None:
        """The same network scored with its adapter off (the prompt-only baseline); None: it has no adapter."""
        if not hasattr(self._model, "disable_adapter"):
            return None
        return TransformersScorer(self._model, self._tokenizer, name=name, max_subsets=self.max_subsets,
                                  adapter_off=True)

    def score(self, messages: Messages, taxonomy: Taxonomy, fields: Collection[str] | None = None) -> Distribution:
        from contextlib import nullcontext

        import torch

        context = self._tokenizer.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=False)
        base = self._model.disable_adapter() if self.adapter_off else nullcontext()
        with torch.inference_mode(), base:
            if taxonomy.labels is not None:
                end = self._tokenizer.eos_token or ""
                probs = self._choose(context, [label + end for label in taxonomy.labels])
                return {LABEL: dict(zip(taxonomy.labels, probs, strict=True))}
            text, out = context + "{", {}
            specs = list(field_specs(taxonomy).items())
            last = max((index for index, (name, _spec) in enumerate(specs) if fields is None or name in fields),
                       default=-1)
            for index, (name, (multi, values)) in enumerate(specs[:last + 1]):
                head = f"{text}{', ' if index else ''}{_json(name)}: "
                options = _subsets(values, self.max_subsets) if multi else [[value] for value in values]
                written = [_json(option) if multi else _json(option[0]) for option in options]
                probs = self._choose(head, written)
                out[name] = {value: sum(p for option, p in zip(options, probs, strict=True) if value in option)
                             for value in values}
                text = head + written[max(range(len(probs)), key=probs.__getitem__)]
        return out

    def _choose(self, head: str, continuations: Sequence[str]) -> list[float]:
        """Each continuation's probability, normalised over them; tokens are those of head + continuation, so
        a token that spans the boundary is scored as the model would write it."""
        encode = self._tokenizer
        full = [encode(head + text, add_special_tokens=False)["input_ids"] for text in continuations]
        head_ids = encode(head, add_special_tokens=False)["input_ids"]
        shared = min(min(_common(head_ids, ids) for ids in full), min(len(ids) for ids in full) - 1)
        scores = self._tails(self._advance(head_ids[:shared]), [ids[shared:] for ids in full])
        top = max(scores)
        weights = [math.exp(score - top) for score in scores]
        return [weight / sum(weights) for weight in weights]

    def _advance(self, ids: list[int]) -> torch.Tensor:
        """Put `ids` in the cache, computing only what differs from the cached tokens; log-probs of the next."""
        import torch

        keep = min(_common(self._ids, ids), len(ids) - 1) if self._cache is not None else 0
        if self._cache is not None:
            _cut(self._cache, keep)
        out = self._model(input_ids=torch.tensor([ids[keep:]]), cache=self._cache, use_cache=True)
        self._cache, self._ids = out.cache, list(ids)
        return torch.log_softmax(out.logits[0, -1].float(), dim=-1)

    def _tails(self, first: torch.Tensor, tails: list[list[int]]) -> list[float]:
        """log p(tail | cached tokens) for every tail, in one batched forward over a copy of the cache (on a CPU a
        forward's fixed cost outweighs a few dozen tokens, so one per field, not one per value)."""
        import copy

        import torch

        totals = [float(first[tail[0]]) for tail in tails]
        width = max(len(tail) for tail in tails) - 1
        if width == 0:
            return totals
        pad = self._tokenizer.pad_token_id or 0
        # right-padded: a row's pads come after its tokens, so with a causal mask they change none of its scores
        rows = torch.tensor([tail[:-1] + [pad] * (width - len(tail) + 1) for tail in tails])
        cache = copy.deepcopy(self._cache)
        cache.batch_repeat_interleave(len(tails))
        logps = torch.log_softmax(self._model(input_ids=rows, cache=cache, use_cache=True).logits.float(),
                                  dim=-1)
        for row, tail in enumerate(tails):
            totals[row] += float(sum(logps[row, step, token] for step, token in enumerate(tail[1:])))
        return totals


class HoldsNetwork(Protocol):
    """A generator that lends its network between generations (`TransformersGenerator.network`)."""

    def network(self, model: str | None) -> AbstractContextManager[tuple[PreTrainedModel, PreTrainedTokenizerBase]]: ...


class SharedScorer:
    """A `TransformersScorer` on the network a server already holds: every item is scored with the generator's
    lock held and `model`'s adapter on, so a tagging job needs no second copy of the model, a chat request waits
    one item at most, and the scores are those `lorag tag` gets from the same base and adapter."""

    def __init__(self, generator: HoldsNetwork, model: str | None, *, name: str) -> None:
        self.generator, self.model, self.name = generator, model, name
        self._scorer: TransformersScorer | None = None
        self._network: object = None

    def score(self, messages: Messages, taxonomy: Taxonomy, fields: Collection[str] | None = None) -> Distribution:
        with self.generator.network(self.model) as (network, tokenizer):
            if self._scorer is None or network is not self._network:  # its key-value cache is this network's
                self._scorer, self._network = TransformersScorer(network, tokenizer, name=self.name), network
            return self._scorer.score(messages, taxonomy, fields)


def _cut(cache: Any, length: int) -> None:
    """Keep the first `length` tokens of a key-value cache (transformers 5 crops by tokens removed)."""
    extra = cache.get_seq_length() - length
    if extra > 0:
        cache.crop(-extra)


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)  # as finetune.prompts.format_output writes it


def _common(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _subsets(values: Sequence[str], limit: int) -> list[list[str]]:
    """Value sets in the taxonomy's order, smallest first, as many whole sizes as fit in `limit`."""
    from itertools import combinations

    chosen: list[list[str]] = []
    for size in range(len(values) + 1):
        sets = [list(c) for c in combinations(values, size)]
        if chosen and len(chosen) + len(sets) > limit:
            break
        chosen += sets
    return chosen


# --- the neighbours' vote ------------------------------------------------------------------------------------

def knn_distribution(taxonomy: Taxonomy, neighbours: Sequence[tuple[object, float]]) -> Distribution:
    """A similarity-weighted vote of labelled neighbours (output, cosine), smoothed towards a flat prior so a
    few far neighbours do not make a certainty: p = (Σ w·[value] + α·prior) / (Σ w + α)."""
    weights = [max(similarity, 0.0) for _output, similarity in neighbours]
    sets = [as_sets(taxonomy, output) for output, _similarity in neighbours]
    total = sum(weights)
    out: Distribution = {}
    for name, (multi, values) in field_specs(taxonomy).items():
        prior = 0.5 if multi else 1 / len(values)
        out[name] = {value: (sum(w for w, s in zip(weights, sets, strict=True) if value in s[name])
                             + KNN_ALPHA * prior) / (total + KNN_ALPHA) for value in values}
    return out


def blend(model: Distribution | None, knn: Distribution | None, weights: Mapping[str, float]) -> Distribution:
    """w·model + (1 − w)·knn per field (w from `weights`, 0.5 unknown); either alone when the other is None, and
    the neighbours' alone on a field the model was not scored on (its weight there is 0: `Tagger.model_fields`)."""
    if model is None or knn is None:
        only = model if model is not None else knn
        assert only is not None, "a distribution needs the model, the neighbours or both"
        return only
    return {name: {value: weights.get(name, 0.5) * model[name][value] + (1 - weights.get(name, 0.5)) * p
                   for value, p in values.items()} if name in model else values for name, values in knn.items()}


# --- calibration on validation data --------------------------------------------------------------------------

@dataclass(frozen=True)
class Calibration:
    """What validation data taught: the model's share per field, and per flagged value the least probability
    whose emitted values reached the field's precision floor. Saved as JSON beside what made it."""

    weights: dict[str, float] = field(default_factory=dict)
    thresholds: dict[str, dict[str, float]] = field(default_factory=dict)
    fitted_on: dict[str, Any] = field(default_factory=dict)  # items, data hash, precision and support reached

    def as_dict(self) -> dict[str, Any]:
        return {"weights": self.weights, "thresholds": self.thresholds, "fitted_on": self.fitted_on}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Calibration:
        return cls(dict(raw["weights"]), {k: dict(v) for k, v in raw["thresholds"].items()}, dict(raw["fitted_on"]))


Scored = tuple[Distribution | None, Distribution | None, object]  # (model, neighbours, gold output)


def fit_calibration(taxonomy: Taxonomy, rows: Sequence[Scored], data_hash: str,
                    floor_rows: Sequence[Scored] | None = None) -> Calibration:
    """Blend weights by log-loss, then the precision-floor thresholds on the blended, implication-enforced
    probabilities: the same numbers `decide` will see.

    `floor_rows` (no model, the labelled items' own vote: the probe's cross-fitted probabilities over every labelled
    item) fit the thresholds instead of `rows`, which the model is scored on and are few: a field with a floor is
    then decided by that vote alone (weight 0), so its thresholds hold for the numbers `decide` sees."""
    floored = {name for name in field_specs(taxonomy) if precision_floor(taxonomy, name) is not None}
    blended = all(m is not None and k is not None for m, k, _g in rows)
    weights = {name: 0.0 if floor_rows is not None and name in floored else
               min(WEIGHTS, key=lambda w, name=name: _log_loss(taxonomy, rows, name, w))
               for name in field_specs(taxonomy) if blended}
    fit_rows = rows if floor_rows is None else floor_rows
    probs = [enforce_implications(taxonomy, blend(m, k, weights)) for m, k, _gold in fit_rows]
    golds = [as_sets(taxonomy, gold) for _m, _k, gold in fit_rows]
    thresholds: dict[str, dict[str, float]] = {}
    reached: dict[str, Any] = {}
    for name, (_multi, values) in field_specs(taxonomy).items():
        floor = precision_floor(taxonomy, name)
        if floor is None:
            continue
        thresholds[name] = {}
        for value in values:
            pairs = [(p[name][value], value in gold[name]) for p, gold in zip(probs, golds, strict=True)]
            threshold, precision, support = floor_threshold(pairs, floor)
            thresholds[name][value] = threshold
            reached[f"{name}={value}"] = {"threshold": threshold, "precision": precision, "support": support}
    return Calibration(weights, thresholds, {"items": len(rows), "floor_items": len(fit_rows), "data_sha256": data_hash,
                                             "floors": reached})


def floor_threshold(pairs: Sequence[tuple[float, bool]], floor: float) -> tuple[float, float | None, int]:
    """The least probability t (at least 0.5) such that the values with p ≥ t reach `floor` with 95% confidence:
    the one-sided Wilson lower bound of their precision, not the precision itself, must clear it, over at least
    MIN_SUPPORT of them; NEVER when none does. Returns (t, precision, support) reached.

    The bound is what makes a floor hold on new items: 5 right out of 5 on validation is a precision of 1.0, yet
    a flag fitted that way called a steak vegetarian on the sample menu. At a 0.95 floor at least 52 validation
    items must clear the threshold, all of them right; with less evidence the value always goes to review.

    >>> floor_threshold([(0.9, True)] * 5, 0.95)[0]  # too little evidence: NEVER
    1.01
    >>> floor_threshold([(0.9, True)] * 60 + [(0.6, False)], 0.95)
    (0.9, 1.0, 60)
    """
    for t in sorted({p for p, _right in pairs if p >= 0.5}):
        chosen = [right for p, right in pairs if p >= t]
        if len(chosen) < MIN_SUPPORT:
            break
        if wilson_lower(sum(chosen), len(chosen)) >= floor:
            return t, round(sum(chosen) / len(chosen), 4), len(chosen)
    return NEVER, None, 0


def wilson_lower(successes: int, n: int, z: float = CONFIDENCE_Z) -> float:
    """The one-sided lower confidence bound of a proportion (Wilson score interval).

    >>> round(wilson_lower(20, 20), 3)
    0.881
    """
    if n == 0:
        return 0.0
    p = successes / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - spread) / (1 + z * z / n)


def _log_loss(taxonomy: Taxonomy, rows: Sequence[Scored], name: str, weight: float) -> float:
    multi = field_specs(taxonomy)[name][0]
    total = 0.0
    for model, knn, gold in rows:
        p = blend(model, knn, {name: weight})[name]
        right = as_sets(taxonomy, gold)[name]
        if multi:
            total -= sum(math.log(max(p[v] if v in right else 1 - p[v], 1e-6)) for v in p)
        else:
            total -= math.log(max(sum(p[v] for v in right), 1e-6))
    return total / max(len(rows), 1)


# --- the taxonomy's rules ------------------------------------------------------------------------------------

def precision_floor(taxonomy: Taxonomy, name: str) -> float | None:
    if taxonomy.labels is not None:
        return taxonomy.precision_floor
    return (taxonomy.fields or {})[name].precision_floor


def implications(taxonomy: Taxonomy) -> dict[str, dict[str, list[str]]]:
    """field → premise → the values it implies (within the field)."""
    return {name: dict(spec.implies) for name, spec in (taxonomy.fields or {}).items() if spec.implies}


def enforce_implications(taxonomy: Taxonomy, dist: Distribution) -> Distribution:
    """A premise is never more probable than what it implies (vegan ⇒ vegetarian: p(vegan) ≤ p(vegetarian)):
    a contradiction lowers the premise, the conservative side for a dietary claim."""
    out = {name: dict(values) for name, values in dist.items()}
    for name, rules in implications(taxonomy).items():
        for _ in rules:  # chains (a ⇒ b ⇒ c) settle within as many passes as there are rules
            for premise, implied in rules.items():
                out[name][premise] = min([out[name][premise], *(out[name][v] for v in implied)])
    return out


@dataclass(frozen=True)
class Decision:
    tags: str | dict[str, Any]
    confidence: float  # the probability that every field is right: the product of `fields`, as if independent
    fields: dict[str, float]  # field → probability its value (a multi field: its every yes/no) is right
    review: tuple[str, ...]  # why a person should look; empty: nothing flagged is in doubt


def decide(taxonomy: Taxonomy, dist: Distribution, calibration: Calibration | None) -> Decision:
    """The tags of a distribution under the taxonomy's rules; see the module docstring."""
    probs = enforce_implications(taxonomy, dist)
    review = _contradictions(taxonomy, dist)
    tags: dict[str, Any] = {}
    confidences: dict[str, float] = {}
    for name, (multi, values) in field_specs(taxonomy).items():
        p, floor = probs[name], precision_floor(taxonomy, name)
        thresholds = calibration.thresholds.get(name, {}) if calibration is not None else {}
        if not multi:
            best = max(values, key=p.__getitem__)
            tags[name], confidences[name] = best, p[best]
            if floor is not None and p[best] < thresholds.get(best, NEVER):
                review.append(f"{name} {best}: probability {p[best]:.2f} is below the threshold that reached "
                              f"precision {floor} on validation data")
            continue
        chosen = [value for value in values if p[value] >= 0.5]
        if floor is not None:
            held = [value for value in chosen if p[value] < thresholds.get(value, NEVER)]
            review += [f"{name} {value}: probability {p[value]:.2f} is below the threshold that reached precision "
                       f"{floor} on validation data; not emitted" for value in held]
            chosen = [value for value in chosen if value not in held]
        chosen = _closed(chosen, implications(taxonomy).get(name, {}), review, name)
        tags[name] = chosen
        confidences[name] = math.prod(p[v] if v in chosen else 1 - p[v] for v in values)
    result = tags[LABEL] if taxonomy.labels is not None else tags
    return Decision(result, math.prod(confidences.values()), confidences, tuple(review))


def _closed(chosen: list[str], rules: Mapping[str, list[str]], review: list[str], name: str) -> list[str]:
    """Drop a premise whose implied values were not emitted (held back above): never 'vegan' without
    'vegetarian'."""
    kept = list(chosen)
    changed = True
    while changed:
        changed = False
        for premise in [v for v in kept if any(x not in kept for x in rules.get(v, []))]:
            kept.remove(premise)
            review.append(f"{name} {premise}: not emitted, since what it implies was not")
            changed = True
    return kept


def _contradictions(taxonomy: Taxonomy, dist: Distribution) -> list[str]:
    problems = []
    for name, rules in implications(taxonomy).items():
        for premise, implied in rules.items():
            against = [v for v in implied if dist[name][premise] >= 0.5 > dist[name][v]]
            if against:
                problems.append(f"{name}: {premise} ({dist[name][premise]:.2f}) without {', '.join(against)}, "
                                "which it implies; resolved by not emitting it")
    return problems


def expected_calibration_error(pairs: Sequence[tuple[float, bool]], bins: int = 10) -> float | None:
    """Σ over equal-width confidence bins of |accuracy − mean confidence| × share of items; None when empty."""
    if not pairs:
        return None
    total = 0.0
    for index in range(bins):
        low, high = index / bins, (index + 1) / bins
        inside = [(c, right) for c, right in pairs if low < c <= high or (index == 0 and c == 0)]
        if inside:
            gap = abs(sum(right for _c, right in inside) / len(inside) - sum(c for c, _r in inside) / len(inside))
            total += gap * len(inside) / len(pairs)
    return round(total, 4)
