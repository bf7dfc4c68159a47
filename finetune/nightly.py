"""The nightly job: every task's adapter trained again from the base model, evaluated, gated, maybe promoted.

    data → split → examples → train (staging) → evaluate candidate, in service, base → gate → register → promote

A run writes only under `adapters/.staging/<task>/` until it registers the finished version with one rename, so a
failed or killed night leaves serving untouched; run it again and training resumes from its last checkpoint.
"""

from __future__ import annotations

import fcntl
import json
import logging
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from lorag.core import models
from lorag.core.errors import Conflict, InvalidInput, LoragError
from lorag.core.settings import Settings, redacted
from lorag.core.tables import AdapterStatus
from lorag.finetune import data, registry, synth
from lorag.finetune import status as run_status
from lorag.finetune.evaluate import EVAL_BATCH, Contender, evaluate_task, write_task_report
from lorag.finetune.examples import GroundingContext, build_examples
from lorag.finetune.gate import decide, gate_json
from lorag.finetune.paired import paired_differences
from lorag.finetune.tasks import TaskSpec, Training
from lorag.finetune.train import train_lora
from lorag.finetune.types import Example, GateResult, Record, TrainResult
from lorag.ingest.embed import Embedder
from lorag.ingest.store import VectorStore
from lorag.retrieval.factory import build_answerer
from lorag.retrieval.search import Retriever
from lorag.retrieval.types import ScoredChunk
from lorag.serving.local import TransformersGenerator
from lorag.tagging.confidence import SharedScorer
from lorag.tagging.evaluate import as_served
from lorag.tagging.probe import LinearProbe
from lorag.tagging.tagger import (
    MAX_CALIBRATION_ITEMS,
    ShotIndex,
    Tagger,
    calibration_of,
    default_shots,
    shot_examples,
)

logger = logging.getLogger(__name__)

PARITY_MAX_NEW_TOKENS = 48


@dataclass(frozen=True)
class Stack:
    """The serving pieces a run borrows: the metadata store, and for grounded-qa the vectors and embedder."""

    settings: Settings
    sessions: sessionmaker[Session]
    store: VectorStore | None = None
    embedder: Embedder | None = None


@dataclass(frozen=True)
class Outcome:
    task: str
    version: str | None
    status: str  # active | rejected | failed
    reason: str
    report: str | None = None


@dataclass(frozen=True)
class Prepared:
    splits: dict[str, list[Record]]
    train: list[Example]
    report: dict[str, Any]
    data_hash: str


def run_all(stack: Stack, tasks: list[TaskSpec], *, training: Mapping[str, Any] | None = None,
            max_eval: int | None = None, progress: bool = True) -> list[Outcome]:
    """Every task in turn; one task's failure is recorded and the others still run."""
    outcomes = []
    for task in tasks:
        try:
            outcomes.append(run_task(stack, task, training=training, max_eval=max_eval, progress=progress))
        except LoragError as error:
            logger.error("nightly %s failed: %s", task.name, error.message)
            outcomes.append(Outcome(task.name, None, "failed", error.message))
        except Exception as error:  # an edge: one task's bug must not cost the other tasks their night
            logger.exception("nightly %s failed", task.name)
            outcomes.append(Outcome(task.name, None, "failed", f"{type(error).__name__}: {error}"))
    return outcomes


def run_task(stack: Stack, task: TaskSpec, *, training: Mapping[str, Any] | None = None,
             max_eval: int | None = None, progress: bool = True) -> Outcome:
    """`training` (settings over the task's own, e.g. a time budget) and `max_eval` bound a demo run
    (`lorag setup`) or a hurried one (`lorag nightly --time-budget`); a real night leaves them unset."""
    settings = stack.settings
    if max_eval is not None:
        task = task.model_copy(update={"evaluation": task.evaluation.model_copy(update={"max_examples": max_eval})})
    if training:  # validated like the task file: a bad override is a clear error, not a strange run
        task = task.model_copy(update={"training": Training.model_validate({**task.training.model_dump(),
                                                                            **training})})
    with task_lock(settings.adapters_dir, task.name):
        try:
            return _run_locked(stack, task, progress)
        except BaseException as error:
            folder = run_status.folder_of(settings.runs_dir)
            run_status.write(folder, task.name, phase="failed", reason=str(error)[:300])
            raise


def _run_locked(stack: Stack, task: TaskSpec, progress: bool) -> Outcome:
    settings = stack.settings
    folder = run_status.folder_of(settings.runs_dir)
    started = datetime.now(UTC)
    run_status.write(folder, task.name, phase="preparing", started_at=started.timestamp())
    prepared = prepare(stack, task)
    staged = registry.staging_dir(settings.adapters_dir, task.name)
    parity_messages = parity_prompts(task, prepared, settings.finetune.parity_prompts, stack)
    run_status.write(folder, task.name, phase="training", step=0, total_steps=None)
    trained = train_lora(models.resolve(settings.models.base, settings.models_dir).location, prepared.train,
                         lora=task.lora, training=task.training, out_dir=staged, device=settings.models.device,
                         parity_prompts=parity_messages,
                         parity_max_new_tokens=PARITY_MAX_NEW_TOKENS, progress=progress,
                         on_step=lambda step, total: run_status.write(folder, task.name, phase="training",
                                                                      step=step, total_steps=total))
    run_status.write(folder, task.name, phase="evaluating")
    name = registry.version_name(task.name, stack.sessions, settings.adapters_dir, started)
    results, parity = evaluate_candidate(stack, task, prepared, staged, name, parity_messages, trained)
    gate, shown = gate_of(task, results, parity)
    extra = {"gate": shown, "data": prepared.report, "training": asdict(trained)}
    _json, markdown = write_task_report(task, results, staged, extra)
    write_run_json(staged, stack, task, name, prepared, trained, results, shown, started)
    status = AdapterStatus.CANDIDATE if gate.promote else AdapterStatus.REJECTED
    record = registry.register(stack.sessions, settings.adapters_dir, staged, name=name, task=task.name,
                               base_model=settings.models.base, data_hash=prepared.data_hash,
                               metrics=results["candidate"]["metrics"], status=status, reason=gate.summary())
    if gate.promote:
        registry.promote(stack.sessions, record.name, gate.summary())
    logger.info("nightly %s: %s %s (%s)", task.name, record.name, "promoted" if gate.promote else "rejected",
                gate.summary())
    report = str(record.path / markdown.name)
    run_status.write(folder, task.name, phase="done", version=record.name, promoted=gate.promote)
    return Outcome(task.name, record.name, "active" if gate.promote else "rejected", gate.summary(), report)


def prepare(stack: Stack, task: TaskSpec, held_out: Sequence[Record] = ()) -> Prepared:
    """Records → splits → training examples. `held_out`: records evaluated elsewhere (a bench's test file); like
    the test and validation splits, their gold chunks give no generated training question."""
    records = data.load_records(task)
    if task.data.feedback:
        records += data.feedback_records(task, stack.sessions)
    generated, chunks, synth_report = documents_records(stack, task)
    kept, dropped = data.dedupe([*records, *generated])
    splits = data.split(kept, task.split)
    if generated:
        outside = [*splits["test"], *splits["validation"], *held_out]
        splits["train"], overlapping = synth.without_held_out_chunks(splits["train"], outside, chunks)
        synth_report.filtered["held_out_chunk"] += overlapping
        splits["train"] = synth.with_unanswerable(splits["train"], task.data.documents.unanswerable, task.split.salt)
    general = data.general_records(task, len(splits["train"]))
    report = data.data_report(task, splits, general, dropped)
    if task.data.documents is not None:
        report["documents"] = synth_report.as_dict()
    train, skipped = build_examples(task, [*splits["train"], *general], grounding_of(stack, task))
    report["examples"] = {"train": len(train), "skipped": len(skipped), "skipped_reasons": skipped[:20]}
    logger.info("nightly %s: %d train / %d validation / %d test records, %d general, %d training examples",
                task.name, len(splits["train"]), len(splits["validation"]), len(splits["test"]), len(general),
                len(train))
    return Prepared(splits, train, report, data.data_hash(splits))


def documents_records(stack: Stack, task: TaskSpec) -> tuple[list[Record], list[ScoredChunk], synth.SynthReport]:
    """Questions written from the task's knowledge base (`data.documents`); nothing when it does not opt in."""
    spec = task.data.documents
    if spec is None or task.kb is None:
        return [], [], synth.SynthReport()
    if stack.store is None or stack.embedder is None:
        raise Conflict(f"task {task.name} writes questions from its documents: it needs the vector store and embedder")
    ingest = stack.settings.ingest
    chunks = synth.kb_chunks(stack.sessions, stack.store, stack.embedder, kb=task.kb, audiences=task.audiences,
                             chunk_tokens=ingest.chunk_tokens, overlap_tokens=ingest.overlap_tokens)
    writer = question_writer(stack.settings) if spec.questions != "rules" else None
    records, report = synth.synthesize(task, chunks, Retriever(stack.store, stack.embedder), stack.embedder, writer)
    return records, chunks, report


def question_writer(settings: Settings) -> synth.LlamaIndexWriter:
    """The base model behind llama-index's LLM interface; llama-index counts tokens with the same tokenizer
    (its default, tiktoken, would download an encoding)."""
    from llama_index.core import Settings as LlamaSettings

    from lorag.finetune.llm import GeneratorLLM

    ref = models.resolve(settings.models.base, settings.models_dir)
    model, tokenizer = models.load_causal_lm(ref, settings.models.device)
    LlamaSettings.tokenizer = lambda text: tokenizer(text, add_special_tokens=False)["input_ids"]
    generator = TransformersGenerator(model, tokenizer, base_name=models.served_name(settings.models.base),
                                      adapters={})
    return synth.LlamaIndexWriter(GeneratorLLM(generator, max_new_tokens=synth.QUESTION_TOKENS))


def grounding_of(stack: Stack, task: TaskSpec) -> GroundingContext | None:
    if task.kind != "grounded-qa":
        return None
    if stack.store is None or stack.embedder is None:
        raise Conflict(f"task {task.name} is grounded-qa: it needs the vector store and embedder")
    from transformers import AutoTokenizer

    ref = models.resolve(stack.settings.models.base, stack.settings.models_dir)
    tokenizer = AutoTokenizer.from_pretrained(ref.location, local_files_only=ref.local)
    return GroundingContext(Retriever(stack.store, stack.embedder),
                            lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"]),
                            stack.settings.retrieval.context_tokens)


def parity_prompts(task: TaskSpec, prepared: Prepared, count: int, stack: Stack) -> list[list[dict[str, str]]]:
    """Prompts from the test split (rendered as for training) whose greedy outputs must match after serving."""
    if count == 0:
        return []
    examples, _skipped = build_examples(task, prepared.splits["test"][: count * 2], grounding_of(stack, task))
    return [[dict(message) for message in example.messages] for example in examples[:count]]


def evaluate_candidate(stack: Stack, task: TaskSpec, prepared: Prepared, staged: Path, name: str,
                       parity_messages: list[list[dict[str, str]]],
                       trained: TrainResult) -> tuple[dict[str, dict[str, Any]], bool | None]:
    """Candidate, the version in service and the prompt-only base on the test split, through the serving path."""
    settings = stack.settings
    ref = models.resolve(settings.models.base, settings.models_dir)
    model, tokenizer = models.load_causal_lm(ref, settings.models.device)
    champion = registry.active(stack.sessions).get(task.name)
    adapters = {name: staged, **({champion.name: champion.path} if champion else {})}
    generator = TransformersGenerator(model, tokenizer, base_name=models.served_name(settings.models.base),
                                      adapters=adapters)
    contenders = [Contender("candidate", name), *([Contender("in service", champion.name)] if champion else []),
                  Contender("base (prompt only)", None)]
    answerer = (build_answerer(settings, stack.store, stack.embedder, generator)
                if task.kind == "grounded-qa" and stack.store is not None and stack.embedder is not None else None)
    if answerer is not None:  # the task decides how long an evaluated answer may be
        answerer.policy = replace(answerer.policy, max_new_tokens=task.evaluation.max_new_tokens)
    started = time.perf_counter()
    if task.kind == "classification" and shot_examples(prepared.splits["train"]):
        results = evaluate_tagging(stack, task, prepared, generator, contenders)
    else:
        results = evaluate_task(task, prepared.splits["test"], contenders, generator=generator, answerer=answerer)
    logger.info("nightly %s: evaluated %d contenders in %.0fs", task.name, len(contenders),
                time.perf_counter() - started)
    return results, check_parity(generator, name, parity_messages, trained)


def evaluate_tagging(stack: Stack, task: TaskSpec, prepared: Prepared, generator: TransformersGenerator,
                     contenders: Sequence[Contender]) -> dict[str, dict[str, Any]]:
    """Each contender as `lorag tag` serves it (`tagging.evaluate.as_served`): the model's constrained probabilities,
    the training split's examples, vote and linear probe, calibrated on the validation split, under the taxonomy's
    implications and precision floors. A full night's calibrations go where `lorag tag` and the API's jobs look for
    them, so the version promoted tonight tags without calibrating again.

    A tagging adapter serves through the tagger, so that is what the gate weighs. Its free generation flagged
    dietary values the tagger never emits (the menu adapter's raw vegetarian precision was 0.729) and was rejected
    on them every night, while under the tagger it lifted cuisine accuracy from 0.649 to 0.734."""
    from lorag.ingest.factory import load_embedder

    assert task.taxonomy is not None
    embedder = stack.embedder or load_embedder(stack.settings)
    pool = shot_examples(prepared.splits["train"])
    index, probe = ShotIndex(embedder, pool), LinearProbe.fit(embedder, task.taxonomy, pool)
    chosen = sorted(prepared.splits["test"], key=lambda record: record.key)[: task.evaluation.max_examples]
    if not chosen:
        raise InvalidInput(f"task {task.name}: no test records to evaluate; add data or raise split.test")
    # A bounded run (the demo, `--max-eval`) calibrates on no more items than it tests; a full night on
    # MAX_CALIBRATION_ITEMS, the same items `lorag tag` chooses, so the two share the calibration.
    calibration_items = sorted(prepared.splits["validation"], key=lambda record: record.key)[
        : min(MAX_CALIBRATION_ITEMS, task.evaluation.max_examples or MAX_CALIBRATION_ITEMS)]
    results = {}
    for contender in contenders:
        scorer = SharedScorer(generator, contender.model, name=contender.model or generator.base_name)
        tagger = Tagger(None, task, model=contender.model, shots=index, scorer=scorer, probe=probe,
                        k_shots=default_shots(contender.model is not None, None), batch_size=EVAL_BATCH,
                        max_new_tokens=task.evaluation.max_new_tokens)
        tagger.calibration = calibration_of(tagger, calibration_items, stack.settings.runs_dir / "calibration")
        results[contender.label] = as_served(tagger, chosen)
    return results


def check_parity(generator: TransformersGenerator, name: str, prompts: list[list[dict[str, str]]],
                 trained: TrainResult) -> bool | None:
    """Greedy outputs of the saved adapter through the serving backend equal the trained model's own."""
    if not prompts:
        return None
    served = [generator.generate(messages, model=name, max_new_tokens=PARITY_MAX_NEW_TOKENS).text
              for messages in prompts]
    mismatches = [index for index, (a, b) in enumerate(zip(served, trained.parity_outputs, strict=True)) if a != b]
    if mismatches:
        logger.warning("train/serve parity failed on prompts %s: %r vs %r", mismatches,
                       served[mismatches[0]], trained.parity_outputs[mismatches[0]])
    return not mismatches


def gate_of(task: TaskSpec, results: dict[str, dict[str, Any]],
            parity: bool | None) -> tuple[GateResult, dict[str, Any]]:
    """Against the version in service; with none yet, against the prompt-only base model. Each gated metric is
    weighed by its paired difference on the same test examples (95% CI, n); the second value is the gate's JSON."""
    label = "in service" if "in service" in results else "base (prompt only)"
    evidence = paired_differences(task, results, "candidate", label)
    gate = decide(task, results["candidate"]["metrics"], results[label]["metrics"], parity=parity,
                  champion_label=label, evidence=evidence)
    return gate, gate_json(gate, evidence, label)


def write_run_json(staged: Path, stack: Stack, task: TaskSpec, name: str, prepared: Prepared, trained: TrainResult,
                   results: dict[str, dict[str, Any]], gate: Mapping[str, Any], started: datetime) -> None:
    run = {"version": name, "task": json.loads(task.model_dump_json()), "data_hash": prepared.data_hash,
           "data": prepared.report, "training": asdict(trained),
           "metrics": {label: result["metrics"] for label, result in results.items()},
           "gate": dict(gate), "code": code_version(), "settings": redacted(stack.settings),
           "started_at": started.isoformat(), "finished_at": datetime.now(UTC).isoformat()}
    (staged / "run.json").write_text(json.dumps(run, indent=2, default=str), encoding="utf-8")


def code_version() -> dict[str, str | None]:
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=5, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = None  # an installed package, not a checkout
    return {"lorag": metadata.version("lorag"), "git_commit": commit}


@contextmanager
def task_lock(adapters_dir: Path, task: str) -> Iterator[None]:
    """One run per task at a time on this machine; a second one is refused rather than queued."""
    lock_dir = adapters_dir / registry.STAGING
    lock_dir.mkdir(parents=True, exist_ok=True)
    with open(lock_dir / f"{task}.lock", "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Conflict(f"a nightly run of {task} is already in progress") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
