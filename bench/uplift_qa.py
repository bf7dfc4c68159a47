"""Grounded-QA uplift: an adapter trained on questions written from the documents alone, against the prompt-only base.

Two knowledge bases, each through the nightly job's own steps (`nightly.prepare` → `train_lora` → `evaluate_task`
through the serving `Answerer`):

- `support`: the sample help centre; training data from `data.documents` (rules) plus the task's QA file, tested on
  the QA file's test split (human questions only; the generated test records are left out of the score).
- `python-faq`: the Python FAQ pages in ../shared/data/python-faq-html; training data from the documents alone,
  tested on a sample of ../shared/data/python_faq_qa.jsonl. The sampled questions' gold chunks give no training
  question; the FAQ's other entries do (holding out the whole file left 12 training examples, since nearly every
  chunk answers one of its 175 questions).

Unanswerable test questions: the KB's own (support has a few) plus questions of the other KB, which the documents
cannot answer. Reported per KB: token-F1, citation precision and recall, abstention on answerable and unanswerable
questions, the number of questions, training time, the data hashes.

    .venv/bin/python bench/uplift_qa.py --kbs support python-faq --max-steps 60 --out docs/reports/uplift_qa.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import common  # before lorag: the repository on sys.path, packaged models only

from lorag.app import wiring
from lorag.app.cli import documents
from lorag.app.cli.server import SAMPLES
from lorag.app.wiring import SAMPLE_TASKS
from lorag.core import models
from lorag.core.settings import Settings
from lorag.finetune import data, nightly
from lorag.finetune.evaluate import Contender, evaluate_task
from lorag.finetune.tasks import Data, Documents, Evaluation, TaskSpec, load_task
from lorag.finetune.train import train_lora
from lorag.finetune.types import Record, stable_hash
from lorag.retrieval import citations
from lorag.retrieval.factory import build_answerer
from lorag.serving.local import TransformersGenerator

SHARED = common.REPO.parent / "shared" / "data"
PYTHON_FAQ, PYTHON_QA = SHARED / "python-faq-html", SHARED / "python_faq_qa.jsonl"
TRAINED = "lorag-trained.json"  # beside a saved adapter: how it was trained
METRICS = ("token_f1", "citation_precision", "citation_recall", "abstention_on_answerable",
           "abstention_on_unanswerable", "answerable", "unanswerable")


def qa_records(path: Path, *, answerable: bool = True) -> list[Record]:
    """A QA file's rows as records; `answerable=False` keeps the questions and drops the answers."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [Record(row["question"], row.get("answer") if answerable else None,
                   meta={"doc": row.get("doc") if answerable else None, "section": row.get("section")})
            for row in rows]


def python_task(args: argparse.Namespace) -> TaskSpec:
    return TaskSpec(name="python-faq", kind="grounded-qa", kb="python-faq", path=PYTHON_FAQ / "task.yaml",
                    data=Data(documents=Documents(questions="rules", max_examples=args.max_examples), feedback=False),
                    evaluation=Evaluation(max_new_tokens=96))


def test_set(kb: str, prepared: nightly.Prepared | None, args: argparse.Namespace) -> list[Record]:
    """Answerable: the KB's human questions; unanswerable: its own null rows and the other KB's questions.
    `support` draws them from its task's test split (`prepared`); `python-faq` from its QA file, before training."""
    support = qa_records(SAMPLES.parent / "kb" / "support_qa.jsonl")
    if kb == "support":
        assert prepared is not None
        own = [r for r in prepared.splits["test"] if r.origin != "generated"]
        other = qa_records(PYTHON_QA, answerable=False)
    else:
        own = qa_records(PYTHON_QA)
        other = [replace(r, output=None, meta={"doc": None, "section": None}) for r in support]
    answerable = sample([r for r in own if r.output is not None], args.answerable)
    unanswerable = sample([r for r in own if r.output is None] + other, args.unanswerable)
    return answerable + unanswerable


def sample(records: Sequence[Record], count: int) -> list[Record]:
    return sorted(records, key=lambda r: stable_hash({"bench": r.key}))[:count]


def run_kb(kb: str, settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    task = (load_task(SAMPLE_TASKS / "support.yaml") if kb == "support" else python_task(args))
    if task.data.documents is None:  # the sample task leaves it out (unmeasured for the demo); this bench measures it
        documents = Documents(questions="rules", max_examples=args.max_examples)
        task = task.model_copy(update={"data": task.data.model_copy(update={"documents": documents})})
    task = task.model_copy(update={"lora": task.lora.model_copy(update={"r": args.rank, "alpha": 2 * args.rank}),
                                   "training": task.training.model_copy(update=training_of(args)),
                                   "context_chunks": args.context_chunks or task.context_chunks})
    with wiring.open_ingest(settings) as ctx:
        stack = nightly.Stack(settings, ctx.sessions, ctx.store, ctx.embedder)
        if kb == "python-faq":  # the tested questions' chunks give no training question; the other FAQ entries do
            test = test_set(kb, None, args)
            prepared = nightly.prepare(stack, task, held_out=[r for r in test if r.output is not None])
        else:
            prepared = nightly.prepare(stack, task)
            test = test_set(kb, prepared, args)
        base = models.resolve(settings.models.base, settings.models_dir)
        with tempfile.TemporaryDirectory() as scratch:
            out = args.save_adapter / kb if args.save_adapter else Path(scratch)
            started = time.perf_counter()
            if args.adapter:  # trained by an earlier run with --save-adapter: evaluate it again, no training
                out, trained = args.adapter / kb, json.loads((args.adapter / kb / TRAINED).read_text())
            else:
                trained = vars(train_lora(base.location, prepared.train, lora=task.lora, training=task.training,
                                          out_dir=out, progress=False))
                (out / TRAINED).write_text(json.dumps(trained, default=str))
            train_s = time.perf_counter() - started
            results = evaluate(task, test, settings, ctx, base, out, with_base=not args.no_base)
    return row(kb, task, prepared, test, results, trained, train_s)


def training_of(args: argparse.Namespace) -> dict[str, Any]:
    return {"max_steps": args.max_steps, "learning_rate": args.lr, "batch_tokens": args.batch_tokens,
            "epochs": args.epochs, "max_seq_len": 1536, "warmup_ratio": 0.1}


def evaluate(task: TaskSpec, test: list[Record], settings: Settings, ctx: Any, base: Any,
             adapter: Path, *, with_base: bool = True) -> dict[str, dict[str, Any]]:
    model, tokenizer = models.load_causal_lm(base, "cpu")
    generator = TransformersGenerator(model, tokenizer, base_name="base", adapters={"candidate": adapter})
    answerer = build_answerer(settings, ctx.store, ctx.embedder, generator)
    answerer.policy = replace(answerer.policy, max_new_tokens=task.evaluation.max_new_tokens)
    contenders = [Contender("candidate", "candidate"), *([Contender("base (prompt only)", None)] if with_base else [])]
    return evaluate_task(task, test, contenders,
                         generator=generator, answerer=answerer)


def row(kb: str, task: TaskSpec, prepared: nightly.Prepared, test: list[Record], results: dict[str, Any],
        trained: Any, train_s: float) -> dict[str, Any]:
    candidate = results["candidate"]["metrics"]
    base = results.get("base (prompt only)", {"metrics": {"token_f1": float("nan")}})["metrics"]
    return {
        "kb": kb, "task": task.name, "recipe": {"lora": task.lora.model_dump(), "training": task.training.model_dump(),
                                                "context_chunks": task.context_chunks,
                                                "unanswerable_share": task.data.documents.unanswerable},
        "candidate": {k: candidate.get(k) for k in METRICS}, "base": {k: base.get(k) for k in METRICS},
        "token_f1_uplift": round(candidate["token_f1"] - base["token_f1"], 4),
        "questions": len(test), "train_examples": len(prepared.train),
        "training": {"seconds": round(trained["seconds"] if train_s < 1 else train_s, 1), "steps": trained["steps"],
                     "final_loss": round(trained["final_loss"], 4), "tokens": trained["tokens"],
                     "stopped_by": trained["stopped_by"], "reused": train_s < 1},
        "data": {"data_hash": prepared.data_hash, "test_hash": data.data_hash({"test": test}),
                 "documents": prepared.report.get("documents"), "counts": prepared.report["counts"],
                 "unanswerable_train": prepared.report.get("unanswerable", {}).get("train")},
        "targets_met": {"token_f1_plus_0.15": candidate["token_f1"] >= base["token_f1"] + 0.15,
                        "citation_precision_0.90": candidate["citation_precision"] >= 0.90,
                        "abstention_unanswerable_0.90": candidate["abstention_on_unanswerable"] >= 0.90,
                        "abstention_answerable_0.15": candidate["abstention_on_answerable"] <= 0.15},
        "items": {label: result["items"] for label, result in results.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kbs", nargs="+", default=["support", "python-faq"], choices=["support", "python-faq"])
    parser.add_argument("--max-steps", type=int, default=60)
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--batch-tokens", type=int, default=2048)
    parser.add_argument("--max-examples", type=int, default=400, help="python-faq: generated questions kept")
    parser.add_argument("--context-chunks", type=int, default=None,
                        help="sources per training prompt (default: the task's); serving shows LORAG_RETRIEVAL__TOP_K")
    parser.add_argument("--answerable", type=int, default=24, help="answerable test questions per KB, at most")
    parser.add_argument("--unanswerable", type=int, default=12, help="unanswerable test questions per KB, at most")
    parser.add_argument("--save-adapter", type=Path, default=None, help="keep each KB's adapter in DIR/<kb>")
    parser.add_argument("--adapter", type=Path, default=None,
                        help="evaluate the adapters an earlier --save-adapter run kept in DIR/<kb>; no training")
    parser.add_argument("--no-base", action="store_true", help="evaluate the adapter only (uplift: NaN)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as home:
        settings = Settings(home=Path(home), models={"cache_dir": common.MODELS})
        models.provision(settings.models.base, settings.models_dir)
        documents.sync_path(settings, SAMPLES / "support", kb="support", audience="public", wait=True)
        documents.sync_path(settings, PYTHON_FAQ, kb="python-faq", audience="public", wait=True)
        for kb in args.kbs:
            rows.append(run_kb(kb, settings, args))
            rows[-1]["recipe"]["serving_top_k"] = settings.retrieval.top_k
            print(json.dumps({k: v for k, v in rows[-1].items() if k != "items"}), file=sys.stderr, flush=True)
    report = {"benchmark": "uplift_qa", "targets": "token-F1 >= base + 0.15, citation precision >= 0.90, "
              "abstention on unanswerable >= 0.90, on answerable <= 0.15", "kbs": rows,
              "verifier": {"lexical": citations.LEXICAL_THRESHOLD, "semantic": citations.SEMANTIC_THRESHOLD,
                           "semantic_word_floor": citations.SEMANTIC_WORD_FLOOR},
              "machine": common.machine(), "code": nightly.code_version()}
    brief = {**report, "kbs": [{k: v for k, v in r.items() if k != "items"} for r in rows]}  # without every answer
    common.emit(report, args.out, shown=brief)


if __name__ == "__main__":
    main()
