"""What the citation check's rules do to real answers: the same drafts verified by the rules that ship and by the
rules before them.

The base model answers held-out questions once: answerable ones from ../shared/data/python_faq_qa.jsonl over the
Python FAQ pages, and the sample help centre's questions as unanswerable ones (the FAQ pages cannot answer them).
Each draft is then verified twice over the same sources with the same embedder:

- "shipped": `retrieval.citations` as it is;
- "previous": lexical 0.7 or cosine 0.82 with no word floor, and no bare-heading rule (the rules chosen on the first
  labelled set's dev half, before the blind second set measured them).

Reported for each: token-F1, citation precision and recall, abstention on answerable and on unanswerable
questions, and how many answers differ. The labelled pairs measure the check sentence by sentence; this measures
what a user sees.

    .venv/bin/python bench/verifier_answers.py --out bench/results/verifier_answers.json
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import common  # before lorag: the repository on sys.path, packaged models only
from uplift_qa import PYTHON_FAQ, PYTHON_QA, qa_records, sample

from lorag.app import wiring
from lorag.app.cli import documents
from lorag.app.cli.server import SAMPLES
from lorag.core import models
from lorag.core.settings import Settings
from lorag.retrieval import citations
from lorag.retrieval.answer import AnswerResult, cosine_similarity
from lorag.retrieval.evaluate import QAItem, answer_metrics
from lorag.retrieval.factory import build_answerer
from lorag.serving.factory import build_answer_generator

KB = "python-faq"
PREVIOUS = {"lexical_threshold": 0.7, "semantic_threshold": 0.82, "word_floor": 0.0}


@contextmanager
def previous_rules() -> Iterator[None]:
    """Without the bare-heading rule (the thresholds are passed to `verify`)."""
    heading = citations.is_bare_heading
    citations.is_bare_heading = lambda line, next_line: False
    try:
        yield
    finally:
        citations.is_bare_heading = heading


def reverified(result: AnswerResult, similarity: Any, thresholds: dict[str, Any]) -> AnswerResult:
    """The answer as `thresholds` (and the rules in force) would show its draft; an answer retrieval stopped
    before generation has no draft and stays as it is."""
    if not result.draft:
        return result
    checked = citations.verify(result.draft, result.sources, similarity=similarity, attribute_uncited=True,
                               **thresholds)
    return replace(result, text=checked.text, citations=checked.citations, abstained=checked.abstained)


def items_of(args: argparse.Namespace) -> list[QAItem]:
    answerable = sample(qa_records(PYTHON_QA), args.answerable)
    unanswerable = sample(qa_records(SAMPLES.parent / "kb" / "support_qa.jsonl", answerable=False), args.unanswerable)
    return [QAItem(r.prompt, r.output, r.meta.get("doc") if r.output else None, r.meta.get("section"))
            for r in answerable + unanswerable]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answerable", type=int, default=40)
    parser.add_argument("--unanswerable", type=int, default=20)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    items = items_of(args)
    with tempfile.TemporaryDirectory() as home:
        settings = Settings(home=Path(home), models={"cache_dir": common.MODELS})
        models.provision(settings.models.base, settings.models_dir)
        documents.sync_path(settings, PYTHON_FAQ, kb=KB, audience="public", wait=True)
        with wiring.open_ingest(settings) as ctx:
            answerer = build_answerer(settings, ctx.store, ctx.embedder, build_answer_generator(settings))
            live = {item.question: answerer.ask(item.question, kb=KB, audiences=("public",)) for item in items}
            similarity = cosine_similarity(ctx.embedder)
            shipped = {q: reverified(r, similarity, {"lexical_threshold": citations.LEXICAL_THRESHOLD,
                                                     "semantic_threshold": citations.SEMANTIC_THRESHOLD,
                                                     "word_floor": citations.SEMANTIC_WORD_FLOOR})
                       for q, r in live.items()}
            with previous_rules():
                previous = {q: reverified(r, similarity, PREVIOUS) for q, r in live.items()}
    answers = {"shipped": shipped, "previous": previous}
    report = {
        "benchmark": "verifier_answers", "model": "base (prompt only)", "kb": KB,
        "questions": {"answerable": args.answerable, "unanswerable": args.unanswerable},
        "data": {"qa_sha256": hashlib.sha256(PYTHON_QA.read_bytes()).hexdigest(),
                 "unanswerable_sha256": hashlib.sha256((SAMPLES.parent / "kb" / "support_qa.jsonl").read_bytes())
                 .hexdigest()},
        "rules": {"shipped": {"lexical": citations.LEXICAL_THRESHOLD, "semantic": citations.SEMANTIC_THRESHOLD,
                              "semantic_word_floor": citations.SEMANTIC_WORD_FLOOR, "bare_headings": True},
                  "previous": {"lexical": 0.7, "semantic": 0.82, "semantic_word_floor": 0.0, "bare_headings": False}},
        "metrics": {name: answer_metrics(lambda q, got=got: got[q], items) for name, got in answers.items()},
        "differ": sum(shipped[q].text != previous[q].text for q in live),
        "items": [{"question": q, "gold": item.answer, "draft": live[q].draft, "shipped": shipped[q].text,
                   "previous": previous[q].text} for item in items for q in [item.question]],
        "machine": common.machine(),
    }
    common.emit(report, args.out, shown={k: v for k, v in report.items() if k != "items"})


if __name__ == "__main__":
    main()
