"""Tagging items against a user's taxonomy: retrieved few-shot examples, batched generation, validation, retry.

    items → nearest labelled examples (ShotIndex) → classification prompts → Generator (adapter or base)
          → parse against the taxonomy → invalid ones retried once with more examples and the reason → TagResult

>>> tagger = Tagger(generator, load_taxonomy(Path("samples/menu/taxonomy.yaml")), model=None,
...                 shots=ShotIndex(embedder, [("Margherita pizza", {"cuisine": "italian", ...})]))
>>> tagger.tag([Item("1", "Pad thai with tofu")])[0].tags
{'cuisine': 'thai', 'dish_type': 'main', 'dietary': ['vegan'], 'spice_level': 'mild'}

The prompt of an item is `finetune.prompts.classification_messages`, the one the adapter was trained on, with
solved neighbours as earlier turns. Greedy decoding is deterministic, so the retry changes the prompt: two more
examples, the invalid reply and what was wrong with it. Through vLLM (`OpenAIGenerator.generate_json`) a fields
taxonomy's output is constrained to `finetune.prompts.json_schema` by guided decoding (`response_format`), so it
is valid by construction; the in-process backend validates and retries. A labels taxonomy is validated on both.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from pydantic import ValidationError

from lorag.core.errors import ConfigError, InvalidInput
from lorag.finetune.prompts import classification_messages, json_schema, parse_output
from lorag.finetune.tasks import TaskSpec, Taxonomy, load_task, read_mapping
from lorag.finetune.types import Record, stable_hash
from lorag.serving.protocol import Generation, Generator, Messages
from lorag.tagging.confidence import (
    CONFIDENCE_Z,
    Calibration,
    Distribution,
    Scorer,
    blend,
    decide,
    field_specs,
    fit_calibration,
    knn_distribution,
    one_hot,
)
from lorag.tagging.probe import LinearProbe

logger = logging.getLogger(__name__)

MAX_ITEM_CHARS = 2000  # longer texts are cut: a menu item or product line fits, and the prompt stays in context
RETRY_EXTRA_SHOTS = 2
BASE_SHOTS = 3  # neighbours shown to a model not trained on the task: examples teach it the format and the values
WINDOW_BATCHES = 4  # items are sorted by length within windows of this many batches, so a batch pads little
KNN_K = 10  # labelled neighbours voting on each item (more than the prompt shows: a vote needs a count)

Output = str | dict[str, Any]
Shot = tuple[str, Output]


@dataclass(frozen=True)
class Item:
    id: str
    text: str


@dataclass(frozen=True)
class TagResult:
    """One item's outcome: `tags` fit the taxonomy when `valid`; otherwise `error` says why there are none."""

    id: str
    text: str
    tags: Output | None
    valid: bool
    confidence: float | None  # the measured probability that every field is right (tagging.confidence.decide)
    model: str  # the adapter version, or the base model's name
    attempts: int
    error: str | None = None
    needs_review: bool = False  # a flagged value was held back or contradicted an implication: see `review`
    review: tuple[str, ...] = ()
    field_confidence: dict[str, float] | None = None

    def as_row(self) -> dict[str, Any]:
        row = asdict(self)
        row["confidence"] = None if self.confidence is None else round(self.confidence, 4)
        row["review"] = list(self.review)
        row["field_confidence"] = None if self.field_confidence is None else \
            {name: round(p, 4) for name, p in self.field_confidence.items()}
        return row


class Embeds(Protocol):
    def embed_batch(self, texts: Sequence[str]) -> np.ndarray: ...


class ShotIndex:
    """Already-labelled examples, embedded once; `nearest` finds each text's most similar ones by cosine."""

    def __init__(self, embedder: Embeds, examples: Sequence[Shot]) -> None:
        self.embedder = embedder
        self.examples = list(examples)
        self._keys = [_normal(text) for text, _output in self.examples]
        self._vectors = embedder.embed_batch([text for text, _output in self.examples])

    def __len__(self) -> int:
        return len(self.examples)

    def nearest(self, texts: Sequence[str], k: int) -> list[tuple[Shot, ...]]:
        """Per text, up to k examples, the most similar last (nearest the item in the prompt). An example with
        the item's own text is skipped, so an item never answers itself (an evaluation would leak)."""
        return [tuple(shot for shot, _similarity in reversed(found)) for found in self.neighbours(texts, k)]

    def neighbours(self, texts: Sequence[str], k: int) -> list[list[tuple[Shot, float]]]:
        """Per text, up to k (example, cosine similarity), the most similar first; never the text itself."""
        if k <= 0 or not self.examples or not texts:
            return [[] for _ in texts]
        similarities = self.embedder.embed_batch(list(texts)) @ self._vectors.T
        found = []
        for text, row in zip(texts, similarities, strict=True):
            own = _normal(text)
            order = [int(i) for i in np.argsort(-row, kind="stable") if self._keys[int(i)] != own][:k]
            found.append([(self.examples[i], float(row[i])) for i in order])
        return found


@dataclass(frozen=True)
class Raw:
    """One item before the taxonomy's rules: the model's distribution and the neighbours' vote, or the failure."""

    model: Distribution | None  # None: no tags (see `failure`)
    knn: Distribution | None  # None: no labelled examples to vote
    measured: bool  # the model's probabilities were measured (scored, or a scored generation)
    name: str  # the model that tagged it
    attempts: int
    failure: TagResult | None = None
    probe: Distribution | None = None  # the linear probe's; None: too few labelled items for one

    @property
    def vote(self) -> Distribution | None:
        """What the labelled items say, blended with the model: the probe's, else the neighbours' vote."""
        return self.probe if self.probe is not None else self.knn


class Tagger:
    """Tags items in batches; each item gets a result, valid or with the reason it has no tags.

    With a `scorer` (constrained decoding with probabilities, in-process) every output is valid by construction and
    the probabilities are the model's; without one the generator writes and validation retries. Either way what the
    labelled items say (the linear `probe` fitted on them, else the vote of the `knn_k` nearest) is blended in with
    `calibration`'s weights, and `tagging.confidence.decide` applies the taxonomy's implications and precision
    floors.
    """

    def __init__(self, generator: Generator | None, task: TaskSpec, *, model: str | None,
                 shots: ShotIndex | None = None, k_shots: int = 3, batch_size: int = 16, max_new_tokens: int = 64,
                 scorer: Scorer | None = None, calibration: Calibration | None = None, knn_k: int = KNN_K,
                 probe: LinearProbe | None = None) -> None:
        if task.taxonomy is None:
            raise ConfigError(f"task {task.name} has no taxonomy to tag with")
        if batch_size < 1 or k_shots < 0 or max_new_tokens < 1 or knn_k < 0:
            raise InvalidInput("batch_size and max_new_tokens must be at least 1, k_shots and knn_k at least 0")
        if generator is None and scorer is None:
            raise ConfigError("a tagger needs a generator or a scorer")
        self.generator, self.task, self.taxonomy = generator, task, task.taxonomy
        self.model, self.shots, self.k_shots = model, shots, k_shots
        self.batch_size, self.max_new_tokens = batch_size, max_new_tokens
        self.scorer, self.calibration, self.knn_k, self.probe = scorer, calibration, knn_k, probe

    def tag(self, items: Sequence[Item]) -> list[TagResult]:
        """Results in the order of `items`; ids must be unique."""
        if len({item.id for item in items}) != len(items):
            raise InvalidInput("item ids must be unique: two items share an id")
        by_id = {result.id: result for batch in self.batches(items) for result in batch}
        return [by_id[item.id] for item in items]

    def batches(self, items: Sequence[Item]) -> Iterator[list[TagResult]]:
        """One list of results per generation batch, as soon as it is done (for checkpoints and progress);
        within a window of batches the items go shortest first, so rows of a batch pad little."""
        window = self.batch_size * WINDOW_BATCHES
        for start in range(0, len(items), window):
            chunk = sorted(items[start:start + window], key=lambda item: len(item.text))
            for offset in range(0, len(chunk), self.batch_size):
                yield self.tag_batch(chunk[offset:offset + self.batch_size])

    def tag_batch(self, items: Sequence[Item]) -> list[TagResult]:
        empty = [item for item in items if not item.text.strip()]
        todo = [Item(item.id, item.text[:MAX_ITEM_CHARS]) for item in items if item.text.strip()]
        results = {item.id: self._failed(item, "empty text: nothing to tag", attempts=0) for item in empty}
        for item, raw in zip(todo, self.raw(todo, fields=self.model_fields()), strict=True):
            results[item.id] = raw.failure or self._decided(item, raw)
        return [results[item.id] for item in items]

    def model_fields(self) -> set[str] | None:
        """The fields whose tags the model has a share in (`calibration`'s weight above 0): those the scorer needs.
        None (every field) before calibration."""
        if self.calibration is None:
            return None
        return {name for name in field_specs(self.taxonomy) if self.calibration.weights.get(name, 0.5) > 0}

    def raw(self, items: Sequence[Item], *, fields: set[str] | None = None) -> list[Raw]:
        """Per item (with text), the model's distribution and the neighbours' vote before any rule: what
        `tag_batch` decides on, and what calibration is fitted to. With `fields` (the ones the model has a share
        in) a scorer stops after the last of them: a later field would get the labelled items' vote alone anyway.
        With the base model on the sample menu (weights 0 on cuisine, dietary and spice level) that leaves the
        dietary subsets and spice level unscored, and the tags come out the same (bench/tag.py's `fields_scored`).
        With an empty set the model is not run; with no labelled items to vote, every field is scored."""
        found = self.shots.neighbours([item.text for item in items], max(self.k_shots + RETRY_EXTRA_SHOTS,
                                                                          self.knn_k)) \
            if self.shots else [[] for _ in items]
        votes = [knn_distribution(self.taxonomy, [(output, sim) for (_text, output), sim in near[:self.knn_k]])
                 if near and self.knn_k else None for near in found]
        shots = [tuple(shot for shot, _sim in reversed(near[:self.k_shots + RETRY_EXTRA_SHOTS])) for near in found]
        probed = self.probe.distributions([item.text for item in items]) if self.probe is not None \
            else [None] * len(items)
        if any(vote is None and probe is None for vote, probe in zip(votes, probed, strict=True)):
            fields = None  # nothing else to tag a field with
        if self.scorer is not None:
            scorer = self.scorer
            return [Raw(scorer.score(self.messages(item, shot[-self.k_shots:] if self.k_shots else ()),
                                     self.taxonomy, fields) if fields is None or fields else {},
                        vote, True, self.model or scorer.name, 1, probe=probe)
                    for item, shot, vote, probe in zip(items, shots, votes, probed, strict=True)]
        return [Raw(None, vote, False, result.model, result.attempts, result) if not result.valid else
                Raw(_soft(self.taxonomy, result.tags, result.confidence), vote, result.confidence is not None,
                    result.model, result.attempts, probe=probe)
                for result, vote, probe in zip(self._generated(items, shots), votes, probed, strict=True)]

    def _decided(self, item: Item, raw: Raw) -> TagResult:
        weights = self.calibration.weights if self.calibration is not None else {}
        decision = decide(self.taxonomy, blend(raw.model, raw.vote, weights), self.calibration)
        measured = raw.measured or raw.vote is not None  # a bare unscored generation has no probability
        return TagResult(item.id, item.text, decision.tags, True, decision.confidence if measured else None,
                         raw.name, raw.attempts, None, bool(decision.review), decision.review,
                         decision.fields if measured else None)

    def _generated(self, todo: Sequence[Item], shots: Sequence[tuple[Shot, ...]]) -> list[TagResult]:
        """Generate, validate, and retry the invalid ones once with more examples and the reason."""
        first = self._generate([self.messages(item, shot[-self.k_shots:] if self.k_shots else ())
                                for item, shot in zip(todo, shots, strict=True)])
        results, retry = {}, []
        for item, shot, generation in zip(todo, shots, first, strict=True):
            result = self._read(item, generation, attempts=1)
            results[item.id] = result
            if not result.valid and isinstance(generation, Generation):
                retry.append((item, self._retry_messages(item, shot, generation.text, result.error or "")))
        for (item, _messages), generation in zip(retry, self._generate([m for _i, m in retry]), strict=True):
            results[item.id] = self._read(item, generation, attempts=2)
        return [results[item.id] for item in todo]

    def messages(self, item: Item, shots: tuple[Shot, ...] = ()) -> list[dict[str, str]]:
        """The prompt of one item: the one the task's adapter was trained on, with `shots` as earlier turns."""
        return classification_messages(self.task, item.text, shots=shots)

    def _retry_messages(self, item: Item, shots: tuple[Shot, ...], reply: str, problem: str) -> list[dict[str, str]]:
        if self.taxonomy.labels is not None:
            rule = "Reply with one of the labels only."
        else:
            rule = f"Reply with one JSON object only, with exactly the keys {', '.join(self.taxonomy.fields or {})}" \
                   " and only the values listed."
        return [*self.messages(item, shots), {"role": "assistant", "content": reply[:400]},
                {"role": "user", "content": f"That reply is not valid: {problem}. {rule}"}]

    def _generate(self, requests: Sequence[Messages]) -> list[Generation | InvalidInput]:
        """One generation (or the InvalidInput it raised, e.g. a prompt too long) per request, in order.
        Other errors (the model server is down) end the run: nothing is recorded for items not tagged."""
        if not requests:
            return []
        try:
            return list(self._generate_all(requests))
        except InvalidInput as error:
            if len(requests) == 1:
                return [error]
        outcomes: list[Generation | InvalidInput] = []
        for messages in requests:  # one bad request fails the whole batch: find it, keep the others
            try:
                outcomes += self._generate_all([messages])
            except InvalidInput as error:
                outcomes.append(error)
        return outcomes

    def _generate_all(self, requests: Sequence[Messages]) -> list[Generation]:
        assert self.generator is not None, "without a scorer a tagger has a generator"
        if self.generator.capabilities.batch:
            batch = [(messages, self.model) for messages in requests]
            return self.generator.generate_batch(batch, max_new_tokens=self.max_new_tokens,  # type: ignore[attr-defined]
                                                 with_scores=True)

        schema = json_schema(self.taxonomy) if self.taxonomy.fields is not None else None
        generator = self.generator

        def one(messages: Messages) -> Generation:
            if schema is not None and generator.capabilities.json_schema:  # valid by construction
                return generator.generate_json(messages, model=self.model,  # type: ignore[attr-defined]
                                               max_new_tokens=self.max_new_tokens, schema=schema)
            return generator.generate(messages, model=self.model, max_new_tokens=self.max_new_tokens)

        # A server (vLLM) batches concurrent requests itself; a thread per row lets it.
        with ThreadPoolExecutor(max_workers=min(len(requests), self.batch_size)) as pool:
            return list(pool.map(one, requests))

    def _read(self, item: Item, generation: Generation | InvalidInput, *, attempts: int) -> TagResult:
        if isinstance(generation, InvalidInput):
            return self._failed(item, f"not generated: {generation.message}", attempts)
        parsed = parse_output(self.taxonomy, generation.text)
        if not parsed.valid:
            return TagResult(item.id, item.text, None, False, None, generation.model, attempts,
                             f"invalid output after {attempts} attempt(s): {parsed.problem}; "
                             f"the model wrote {generation.text[:120]!r}")
        return TagResult(item.id, item.text, parsed.value, True, generation.confidence, generation.model, attempts)

    def _failed(self, item: Item, reason: str, attempts: int) -> TagResult:
        # models() of a server is a request: asked only here, where no generation named the model
        name = self.model or (self.scorer.name if self.scorer is not None else None)
        return TagResult(item.id, item.text, None, False, None, name or self.generator.models()[0],  # type: ignore[union-attr]
                         attempts, reason)


def _soft(taxonomy: Taxonomy, tags: Output | None, confidence: float | None) -> Distribution:
    """A generated output as a distribution: its choices get the reply's probability (1 unmeasured), the rest
    share what is left."""
    c = 1.0 if confidence is None else confidence
    hard = one_hot(taxonomy, tags)
    return {name: {value: c if chosen else (1 - c) / (max(len(values) - 1, 1) if not multi else 1)
                   for value, chosen in hard[name].items()}
            for name, (multi, values) in ((n, field_specs(taxonomy)[n]) for n in hard)}


def _normal(text: str) -> str:
    return " ".join(text.split()).lower()


# --- taxonomies -------------------------------------------------------------------------------------------------

def tagging_task(taxonomy: Taxonomy, system: str | None = None, name: str = "tagging") -> TaskSpec:
    """A classification task around a bare taxonomy, so it renders the same prompts as a trained task."""
    return TaskSpec(name=name, kind="classification", taxonomy=taxonomy, system=system)


def taxonomy_task(raw: Mapping[str, Any], where: str) -> TaskSpec:
    """A taxonomy mapping (labels or fields, description, optionally system) as a task."""
    fields = dict(raw)
    system = fields.pop("system", None)
    if system is not None and not isinstance(system, str):
        raise InvalidInput(f"{where}: system must be a string (the instruction line of the prompt)")
    try:
        return tagging_task(Taxonomy(**fields), system)
    except ValidationError as error:
        lines = [f"- {'.'.join(str(p) for p in err['loc']) or 'taxonomy'}: {err['msg']}" for err in error.errors()]
        raise InvalidInput(f"{where} is not a valid taxonomy (labels: [...] or fields: {{name: {{type: single|"
                           f"multi, values: [...]}}}}):\n" + "\n".join(lines)) from None


def load_taxonomy(path: Path) -> TaskSpec:
    """A taxonomy YAML file, or a classification task file (its taxonomy, prompt and data come along)."""
    raw = read_mapping(path, "taxonomy file", "with labels: or fields:", InvalidInput)
    if "kind" in raw and "taxonomy" in raw:
        task = load_task(path)
        if task.kind != "classification":
            raise InvalidInput(f"task file {path} is a {task.kind} task; tagging needs a classification task")
        return task
    return taxonomy_task(raw, f"taxonomy file {path}")


def same_taxonomy(a: Taxonomy, b: Taxonomy) -> bool:
    """The same labels, or the same fields with the same type and values (order and descriptions aside)."""
    if a.labels is not None or b.labels is not None:
        return a.labels is not None and b.labels is not None and set(a.labels) == set(b.labels)
    fields_a, fields_b = a.fields or {}, b.fields or {}
    return fields_a.keys() == fields_b.keys() and all(
        fields_a[name].type == fields_b[name].type and set(fields_a[name].values) == set(fields_b[name].values)
        for name in fields_a)


def matching_task(task: TaskSpec, configured: Sequence[TaskSpec]) -> TaskSpec | None:
    """The configured classification task with this taxonomy: its adapter, prompt and data serve the tagging."""
    assert task.taxonomy is not None
    for candidate in configured:
        if candidate.name == task.name and candidate.taxonomy is not None:
            return candidate
    for candidate in configured:
        if candidate.kind == "classification" and candidate.taxonomy is not None \
                and same_taxonomy(candidate.taxonomy, task.taxonomy):
            return candidate
    return None


def default_shots(adapter: bool, shots: int | None) -> int:
    """`shots`, else what the model saw in training: an adapter is trained on bare prompts (`finetune.examples`),
    and shots it never saw cost it accuracy (menu test split, cuisine 0.571 with none against 0.487 with 3); the
    base model needs them to learn the format and the values.

    >>> default_shots(True, None), default_shots(False, None), default_shots(True, 2)
    (0, 3, 2)
    """
    if shots is not None:
        return shots
    return 0 if adapter else BASE_SHOTS


def shot_examples(records: Sequence[Record]) -> list[Shot]:
    """(text, output) pairs of labelled records (`finetune.data` has put outputs in canonical form)."""
    return [(record.prompt, record.output) for record in records if record.output is not None]


# Validation items the model scores to fit the blend weights (the precision floors are fitted on the probe's
# cross-fitted scores of every labelled item). 30, not 60: on menu-tagging's 154-item test split the base model's
# weights and every figure came out the same either way (docs/reports/tagging-menu-cal30.json against
# tagging-menu-lbfgs-base.json), and the first `lorag tag` scores half as many items before its first row.
MAX_CALIBRATION_ITEMS = 30
Progress = Callable[[int], AbstractContextManager[Callable[[int], None]]]  # total → a context giving advance(n)


def calibration_of(tagger: Tagger, held_out: Sequence[Record], cache_dir: Path, *,
                   say: Callable[[str], None] = logger.info, progress: Progress | None = None) -> Calibration | None:
    """Fitted on held-out labelled items (at most MAX_CALIBRATION_ITEMS) and saved in `cache_dir`, so it is
    measured once per model, taxonomy, data and prompt, and `lorag tag` and the API's tagging jobs share it; None
    without held-out items. `say` and `progress` tell a person at a terminal; a server leaves them to the log."""
    chosen = sorted(held_out, key=lambda record: record.key)[:MAX_CALIBRATION_ITEMS]
    if not chosen:
        say("no held-out labelled items to calibrate on: values with a precision floor go to review")
        return None
    data_hash = stable_hash([[record.prompt, record.output] for record in chosen])
    key = stable_hash({"model": tagger.model, "scorer": tagger.scorer.name if tagger.scorer else None,
                       "taxonomy": tagger.taxonomy.model_dump(), "data": data_hash, "shots": tagger.k_shots,
                       "knn": tagger.knn_k, "pool": len(tagger.shots or ()),
                       "probe": None if tagger.probe is None else stable_hash([tagger.probe.texts,
                                                                                tagger.probe.outputs]),
                       "floors": f"wilson-z{CONFIDENCE_Z}-cross-fitted-tempered"})[:16]  # an older rule's is refitted
    path = cache_dir / f"{key}.json"
    if path.exists():
        return Calibration.from_dict(json.loads(path.read_text(encoding="utf-8")))
    say(f"calibrating on {len(chosen)} held-out items (once per model, taxonomy and data)")
    items = [Item(str(number), record.prompt) for number, record in enumerate(chosen)]
    raws: list[Raw] = []
    with (progress or _silent)(len(items)) as advance:
        for start in range(0, len(items), tagger.batch_size):
            raws += tagger.raw(items[start:start + tagger.batch_size])
            advance(len(raws) - start)
    calibration = calibrate(tagger, list(zip(raws, chosen, strict=True)), held_out, data_hash)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # whole or never: a server and `lorag tag` share it
    temporary.write_text(json.dumps({**calibration.as_dict(), "key": key, "model": tagger.model}, indent=2) + "\n",
                         encoding="utf-8")
    os.replace(temporary, path)
    return calibration


def calibrate(tagger: Tagger, scored: Sequence[tuple[Raw, Record]], held_out: Sequence[Record],
              data_hash: str) -> Calibration:
    """The calibration of `tagger` from held-out items its model scored (`scored`: raw, labelled record): blend
    weights on those, precision floors on the probe's honest probabilities over every labelled item when it has a
    probe (`fit_calibration`'s floor_rows), else on those."""
    floor_rows, honest = _probe_rows(tagger.probe, held_out)
    rows = [(raw.model, honest.get(record.prompt, raw.vote), record.output)
            for raw, record in scored if raw.failure is None]
    return fit_calibration(tagger.taxonomy, rows, data_hash, floor_rows)


def _probe_rows(probe: LinearProbe | None, held_out: Sequence[Record]
                ) -> tuple[list[tuple[None, Distribution, object]] | None, dict[str, Distribution]]:
    """(rows to fit the precision floors on, text → the probe's probability for a labelled item it was fitted on):
    every item the probe was fitted on, cross-fitted (from a probe that did not see it), and every held-out item it
    was not fitted on. None and {} without a probe: the floors are fitted on the model's rows."""
    if probe is None:
        return None, {}
    honest = dict(zip(probe.texts, probe.cross_fitted(), strict=True))
    rows: list[tuple[None, Distribution, object]] = [(None, honest[text], output)
                                                     for text, output in zip(probe.texts, probe.outputs, strict=True)]
    unseen = [record for record in held_out if record.prompt not in honest]
    rows += [(None, dist, record.output)
             for dist, record in zip(probe.distributions([r.prompt for r in unseen]), unseen, strict=True)]
    return rows, honest


@contextmanager
def _silent(_total: int) -> Iterator[Callable[[int], None]]:
    yield lambda _count: None


def shot_pool(spec: TaskSpec, examples: Sequence[Record] | None) -> tuple[list[tuple[str, Any]], list[Record]]:
    """(examples for the prompts and the vote, held-out items to calibrate on): labelled `examples` (calibrated
    leave-one-out: an item never sees itself), else the task's training split and its validation split (never its
    test split)."""
    from lorag.finetune.data import dedupe, load_records, split

    if examples is not None:
        return shot_examples(examples), list(examples)
    if not spec.data.sources:
        return [], []
    records, _dropped = dedupe(load_records(spec))
    splits = split(records, spec.split)
    return shot_examples(splits["train"]), splits["validation"]
