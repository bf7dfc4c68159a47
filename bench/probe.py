"""The linear probe's features, side by side: the words (and number shapes) and the embedder's vector, with the
vector of each item's name alone offered per field (`tagging.probe.name`), against the same with the spelling of
the name offered too (`tagging.probe.spelling`); each field's choice and penalty by cross-validation, fitted on the
task's training split and scored on its test split. No model runs: a minute or two.

    .venv/bin/python bench/probe.py --out bench/results/probe-menu.json            # the sample menu
    .venv/bin/python bench/probe.py --usda --out bench/results/probe-usda.json     # USDA food groups
"""

from __future__ import annotations

import argparse
import hashlib
import time
from pathlib import Path
from typing import Any

import common  # before lorag: the repository on sys.path, packaged models only
from tag import USDA, splits_of, usda_task

from lorag.app.wiring import SAMPLE_TASKS
from lorag.core import models
from lorag.finetune.tasks import load_task
from lorag.ingest.embed import Embedder
from lorag.tagging import probe
from lorag.tagging.confidence import as_sets, field_specs
from lorag.tagging.tagger import shot_examples

VARIANTS = {"words + vector": 0, "+ spelling, chosen per field": probe.MAX_GRAMS}  # label → spelling n-grams kept


def accuracy(taxonomy: Any, dists: list[Any], golds: list[object]) -> dict[str, float]:
    """Per field: the most probable value (a single field) or the values above 0.5 (a multi field) exactly right."""
    out = {}
    for name, (multi, _values) in field_specs(taxonomy).items():
        right = 0
        for dist, gold in zip(dists, golds, strict=True):
            chosen = ({value for value, p in dist[name].items() if p >= 0.5} if multi
                      else {max(dist[name], key=dist[name].get)})
            right += chosen == as_sets(taxonomy, gold)[name]
        out[name] = round(right / max(len(golds), 1), 3)
    return out


def head_name(head: probe.Head) -> str:
    return head.field + (f":{head.value}" if head.value else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--usda", action="store_true", help="USDA food groups instead of the sample menu")
    parser.add_argument("--train-limit", type=int, default=600, help="training items, at most (bench/tag.py's)")
    parser.add_argument("--eval-items", type=int, default=300, help="test items, at most")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    task, records = usda_task(USDA) if args.usda else (load_task(SAMPLE_TASKS / "menu-tagging.yaml"), None)
    source = USDA if args.usda else SAMPLE_TASKS / "data" / "menu.jsonl"
    embedder = Embedder(models.load_embedder(models.resolve("packaged:all-minilm-l6-v2", common.MODELS), "cpu"), 64)
    splits = splits_of(task, records)
    pool = shot_examples(splits["train"])[: args.train_limit]
    test = splits["test"][: args.eval_items]
    report: dict[str, Any] = {"benchmark": "probe", "task": task.name, "data_sha256":
                              hashlib.sha256(source.read_bytes()).hexdigest(), "train": len(pool), "test": len(test)}
    for label, grams in VARIANTS.items():
        probe.MAX_GRAMS = grams  # 0: no spelling n-grams, so every field has the words and the vector only
        started = time.perf_counter()
        fitted = probe.LinearProbe.fit(embedder, task.taxonomy, pool)
        seconds = time.perf_counter() - started
        if fitted is None:
            raise SystemExit(f"fewer than {probe.MIN_ITEMS} training items")
        report[label] = {"accuracy": accuracy(task.taxonomy, fitted.distributions([r.prompt for r in test]),
                                              [r.output for r in test]),
                         "fit_seconds": round(seconds, 1),
                         "spelled": [head_name(head) for head in fitted.heads if head.spelled],
                         "named": [head_name(head) for head in fitted.heads if head.named]}
    report["machine"] = common.machine()
    common.emit(report, args.out)


if __name__ == "__main__":
    main()
