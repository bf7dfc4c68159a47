"""Task declarations: one YAML file per adapter, like a Ludwig / LoRA Land config.

    name: menu-tagging
    kind: classification
    data:
      sources:
        - {path: menu.jsonl, format: records, text_field: item, output_field: tags}
    taxonomy:
      fields:
        cuisine: {type: single, values: [italian, thai, ...]}
        dietary: {type: multi, values: [vegetarian, vegan, gluten-free]}
    gate: {macro_f1: 0.01, json_validity: 0.0}

Paths are relative to the YAML file. `load_tasks` reports every problem of every file at once.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from lorag.core.audience import Audience
from lorag.core.errors import ConfigError, LoragError, shown

Kind = Literal["grounded-qa", "classification", "chat"]
NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,47}$")

# The metrics each kind reports; a gate may only name these.
METRICS: dict[str, tuple[str, ...]] = {
    "grounded-qa": ("token_f1", "rouge_l", "citation_precision", "citation_recall", "citation_validity",
                    "abstention_on_answerable", "abstention_on_unanswerable"),
    "classification": ("accuracy", "macro_f1", "json_validity"),
    "chat": ("token_f1", "rouge_l"),
}
# Lower is better for these; every other metric is higher-is-better.
LOWER_IS_BETTER = frozenset({"abstention_on_answerable"})


class Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Source(Spec):
    path: Path = Field(description="JSONL (or CSV for format=records) file, relative to the task file.")
    format: Literal["alpaca", "chat", "qa", "records"] = Field(
        description="alpaca: instruction/input/output; chat: messages (the last assistant turn is the answer); "
        "qa: question/answer/doc/section; records: a text field and an output field you name."
    )
    text_field: str = Field("text", description="format=records: the field holding the item's text.")
    output_field: str = Field("label", description="format=records: the field holding the label or tags.")


class GeneralMix(Spec):
    path: Path = Field(description="General instruction data (alpaca or chat JSONL) mixed into training.")
    ratio: float = Field(0.1, ge=0, le=1, description="General examples per task example in the training split.")


class Documents(Spec):
    """grounded-qa: questions written from the knowledge base's own chunks (`finetune.synth`)."""

    max_examples: int = Field(400, ge=1, description="Generated questions kept, at most (QA files and feedback "
                              "come on top and win over a generated question with the same text).")
    questions: Literal["rules", "model", "both"] = Field("rules", description="rules: FAQ rows, headings and "
                                                         "table rows; model: the base model writes one question "
                                                         "per chunk through llama-index (slow on a CPU, see "
                                                         "finetune/synth.py); both.")
    round_trip_k: int = Field(3, ge=1, le=20, description="Keep a question only if the serving retriever ranks "
                              "its source chunk among the first this many.")
    unanswerable: float = Field(0.25, ge=0, lt=1, description="Share of generated training questions shown "
                                "without their source (hard distractors only), answered with the abstention.")
    max_sentences: int = Field(2, ge=1, le=5, description="Sentences copied from the chunk into a target.")


class Data(Spec):
    sources: list[Source] = Field(default_factory=list)
    documents: Documents | None = Field(None, description="grounded-qa: also write questions from the knowledge "
                                        "base's documents; a task may have no other data.")
    feedback: bool = Field(True, description="Also use rated answers, expert corrections and confirmed tags.")
    general: GeneralMix | None = None


class SplitSpec(Spec):
    validation: float = Field(0.1, ge=0, lt=1)
    test: float = Field(0.2, gt=0, lt=1)
    salt: str = Field("lorag", description="Changing it reshuffles the split; keep it fixed to keep the test set.")

    @model_validator(mode="after")
    def _fits(self) -> SplitSpec:
        if self.validation + self.test >= 1:
            raise ValueError("split.validation + split.test must leave room for training")
        return self


class Field_(Spec):
    type: Literal["single", "multi"] = "single"
    values: list[str] = Field(min_length=2)
    description: str = ""
    precision_floor: float | None = Field(None, gt=0, le=1, description="Safety-critical values (an allergen, a "
                                          "diet): one is emitted only when its probability clears the threshold "
                                          "that reached this precision on validation data; else needs review.")
    implies: dict[str, list[str]] = Field(default_factory=dict, description="multi fields: value → the values it "
                                          "implies (vegan: [vegetarian, dairy-free]); a contradiction is resolved "
                                          "by not emitting the premise.")

    @model_validator(mode="after")
    def _known_implications(self) -> Field_:
        unknown = sorted({v for premise, implied in self.implies.items() for v in [premise, *implied]}
                         - set(self.values))
        if unknown:
            raise ValueError(f"implies names values the field does not have: {', '.join(unknown)}")
        if self.implies and self.type != "multi":
            raise ValueError("implies needs a multi field: a single field holds one value, which implies no other")
        return self


class Taxonomy(Spec):
    """Labels (one field, the output is the bare label) or fields (the output is a JSON object)."""

    labels: list[str] | None = None
    fields: dict[str, Field_] | None = None
    description: str = ""
    precision_floor: float | None = Field(None, gt=0, le=1, description="labels taxonomies: as a field's "
                                          "precision_floor, for every label.")

    @model_validator(mode="after")
    def _one_shape(self) -> Taxonomy:
        if (self.labels is None) == (self.fields is None):
            raise ValueError("a taxonomy has either labels (one label per item) or fields (JSON tags), not both")
        if self.labels is not None and len(set(self.labels)) < 2:
            raise ValueError("a taxonomy needs at least two distinct labels")
        return self


class Lora(Spec):
    r: int = Field(16, ge=1, le=256)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])


class Training(Spec):
    epochs: float = Field(2.0, gt=0)
    max_steps: int | None = Field(None, ge=1, description="Stop after this many optimizer steps.")
    time_budget_s: float | None = Field(None, gt=0, description="Stop (and save) after this many seconds.")
    learning_rate: float = Field(2e-4, gt=0)
    batch_tokens: int = Field(2048, ge=64, description="Tokens per micro-batch (packed or length-grouped).")
    grad_accum: int = Field(1, ge=1)
    max_seq_len: int = Field(1024, ge=32)
    packing: bool = True
    warmup_ratio: float = Field(0.05, ge=0, lt=1)
    seed: int = 0


class Evaluation(Spec):
    max_examples: int | None = Field(None, ge=1, description="Evaluate at most this many test examples.")
    max_new_tokens: int = Field(96, ge=1)


class TaskSpec(Spec):
    name: str
    kind: Kind
    description: str = ""
    kb: str | None = Field(None, description="grounded-qa: the knowledge base whose chunks form the context.")
    audiences: list[Audience] = Field(default_factory=lambda: [Audience.PUBLIC])
    context_chunks: int = Field(3, ge=1, le=20, description="grounded-qa: gold chunk plus distractors per example.")
    system: str | None = Field(None, description="System prompt (classification, chat); grounded-qa uses the "
                               "answering rules of the serving path.")
    taxonomy: Taxonomy | None = None
    data: Data = Field(default_factory=Data)
    split: SplitSpec = Field(default_factory=SplitSpec)
    lora: Lora = Field(default_factory=Lora)
    training: Training = Field(default_factory=Training)
    evaluation: Evaluation = Field(default_factory=Evaluation)
    gate: dict[str, float] = Field(default_factory=dict, description="metric → tolerance: the candidate must "
                                   "reach the adapter in service's value minus the tolerance.")
    floor: dict[str, float] = Field(default_factory=dict, description="metric → the least value (the most, for "
                                    "a lower-is-better metric) a candidate must reach, whatever it is compared "
                                    "with: two bad models tying is no reason to ship one.")
    path: Path | None = Field(None, description="The YAML file it was read from (set by load_task).")

    @model_validator(mode="after")
    def _consistent(self) -> TaskSpec:
        problems = []
        if not NAME.match(self.name):
            problems.append(f"name {self.name!r} must be lowercase letters, digits and '-' (at most 48)")
        if self.kind == "grounded-qa" and not self.kb:
            problems.append("a grounded-qa task needs kb: the knowledge base to retrieve from")
        if self.data.documents is not None and self.kind != "grounded-qa":
            problems.append("data.documents writes questions from a knowledge base: only a grounded-qa task has one")
        if self.kind == "classification" and self.taxonomy is None:
            problems.append("a classification task needs a taxonomy (labels or fields)")
        unknown = sorted(set(self.gate) - set(METRICS[self.kind]))
        if unknown:
            problems.append(f"gate names metrics a {self.kind} task does not report: {', '.join(unknown)} "
                            f"(known: {', '.join(METRICS[self.kind])})")
        unknown = sorted(set(self.floor) - set(METRICS[self.kind]))
        if unknown:
            problems.append(f"floor names metrics a {self.kind} task does not report: {', '.join(unknown)} "
                            f"(known: {', '.join(METRICS[self.kind])})")
        if any(tolerance < 0 for tolerance in self.gate.values()):
            problems.append("gate tolerances must be 0 or more")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def resolve(self, path: Path) -> Path:
        """A path from the task file, relative to that file's folder."""
        base = self.path.parent if self.path else Path.cwd()
        return path if path.is_absolute() else base / path


def read_mapping(path: Path, what: str, shape: str, error: type[LoragError] = ConfigError) -> dict[str, Any]:
    """A YAML file that must hold a mapping; `error` says what was wrong: unreadable, not YAML, not a mapping."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as problem:
        raise error(f"cannot read {what} {path}: {problem.strerror}") from None
    except yaml.YAMLError as problem:
        raise error(f"{what} {path} is not valid YAML: {problem}") from None
    if not isinstance(raw, dict):
        raise error(f"{what} {path} must hold a mapping {shape}")
    return raw


def load_task(path: Path) -> TaskSpec:
    raw = read_mapping(path, "task file", "(name, kind, data, ...)")
    try:
        return TaskSpec(**_with_path(raw, path))
    except ValidationError as error:
        lines = [f"- {'.'.join(str(p) for p in err['loc']) or 'task'}: {err['msg']}" for err in error.errors()]
        raise ConfigError(f"task file {path} is invalid:\n" + "\n".join(lines)) from None


def load_tasks(location: Path) -> list[TaskSpec]:
    """Every `*.yaml` task in a folder (sorted by name), or the one file given; names must be unique."""
    files = sorted(location.glob("*.yaml")) if location.is_dir() else [location]
    if not files or not files[0].exists():
        raise ConfigError(f"no task files at {location} (LORAG_FINETUNE__TASKS): write one <name>.yaml per adapter")
    problems, tasks = [], []
    for file in files:
        try:
            tasks.append(load_task(file))
        except ConfigError as error:
            problems.append(error.message)
    names = [task.name for task in tasks]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        problems.append(f"task names must be unique: {', '.join(duplicates)} declared twice")
    if problems:
        raise ConfigError("\n".join(problems))
    return sorted(tasks, key=lambda task: task.name)


def find_task(tasks: list[TaskSpec], name: str) -> TaskSpec:
    for task in tasks:
        if task.name == name:
            return task
    raise ConfigError(f"unknown task {shown(name)}; declared: {', '.join(t.name for t in tasks) or 'none'}")


def _with_path(raw: dict[str, Any], path: Path) -> dict[str, Any]:
    return {**raw, "path": path.resolve()}
