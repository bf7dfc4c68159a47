"""What the citation check's rules do to real answers: the same drafts verified by the rules that ship and by the
rules before them.

Three sets of rules, each run over the same drafts, sources and embedder:

- "shipped": `retrieval.citations` as it is, given the question;
- "without the question": the same, but not given the question and with no mid-sentence rule: the rules before
  either (a terse claim such as "10 minutes [1]" passes wherever the cited chunk says "10 minutes"), except that a
  line wrapping a sentence is joined to the next in all three;
- "previous": lexical 0.7 or cosine 0.82 with no word floor, and no bare-heading rule either (the rules chosen on
  the first labelled set's dev half, before the blind second set measured them).

Where the drafts come from:

- by default the base model answers held-out questions once: answerable ones from ../shared/data/python_faq_qa.jsonl
  over the Python FAQ pages, and the sample help centre's questions as unanswerable ones;
- with `--drafts REPORT`, the drafts a bench/uplift_qa.py report kept (its adapters' and the base model's), each
  over the sources retrieval finds for its question again (the report's source ids must match; the count that
  does not is reported).

Reported for each: token-F1, citation precision and recall, abstention on answerable and on unanswerable
questions, and how many answers differ. With `--terse`, also each QA file's gold answers checked beside their own
question against the chunk that holds them (what must pass), and beside another question of the same document
against that answer's own chunk (a true fact that does not answer what was asked: what must not; the first
OTHERS other questions of the document whose answer is in another chunk).

    .venv/bin/python bench/verifier_answers.py --out bench/results/verifier_answers.json
    .venv/bin/python bench/verifier_answers.py --drafts docs/reports/uplift_qa_support.json --terse \\
        --out bench/results/verifier_drafts_support.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
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
from lorag.retrieval.answer import Answerer, AnswerResult, Timings, caching_similarity
from lorag.retrieval.evaluate import QAItem, answer_metrics, is_relevant
from lorag.retrieval.factory import build_answerer
from lorag.retrieval.sentences import claim_words
from lorag.retrieval.types import ScoredChunk
from lorag.serving.factory import build_answer_generator

SUPPORT_QA = SAMPLES.parent / "kb" / "support_qa.jsonl"
QA_FILES = {"support": SUPPORT_QA, "python-faq": PYTHON_QA}
KB_DOCUMENTS = {"support": SAMPLES / "support", "python-faq": PYTHON_FAQ}
AUDIENCES = ("public",)
OTHERS = 3  # --terse: each question is paired with the answers of at most this many others from its document


@dataclass(frozen=True)
class Rules:
    thresholds: dict[str, float]
    question: bool  # the question is handed to the check
    mid_sentence: bool  # a sentence starting mid-way is junk
    bare_headings: bool


SHIPPED = {"lexical_threshold": citations.LEXICAL_THRESHOLD, "semantic_threshold": citations.SEMANTIC_THRESHOLD,
           "word_floor": citations.SEMANTIC_WORD_FLOOR}
RULES = {
    "shipped": Rules(SHIPPED, question=True, mid_sentence=True, bare_headings=True),
    "without the question": Rules(SHIPPED, question=False, mid_sentence=False, bare_headings=True),
    "previous": Rules({"lexical_threshold": 0.7, "semantic_threshold": 0.82, "word_floor": 0.0}, question=False,
                      mid_sentence=False, bare_headings=False),
}


@contextmanager
def rules_in_force(rules: Rules) -> Iterator[None]:
    """The module-level rules `rules` leaves out, switched off meanwhile (the thresholds are passed to `verify`)."""
    heading, mid = citations.is_bare_heading, citations.starts_mid_sentence
    if not rules.bare_headings:
        citations.is_bare_heading = lambda line, next_line: False
    if not rules.mid_sentence:
        citations.starts_mid_sentence = lambda sentence: False
    try:
        yield
    finally:
        citations.is_bare_heading, citations.starts_mid_sentence = heading, mid


def verified(draft: str, sources: Sequence[ScoredChunk], question: str, similarity: Any, rules: Rules) -> Any:
    with rules_in_force(rules):
        return citations.verify(draft, sources, similarity=similarity, attribute_uncited=True,
                                question=question if rules.question else "", **rules.thresholds)


def reverified(question: str, result: AnswerResult, similarity: Any, rules: Rules) -> AnswerResult:
    """The answer as `rules` would show its draft; an answer retrieval stopped before generation has no draft and
    stays as it is."""
    if not result.draft:
        return result
    checked = verified(result.draft, result.sources, question, similarity, rules)
    return replace(result, text=checked.text, citations=checked.citations, abstained=checked.abstained)


def compared(live: dict[str, AnswerResult], items: Sequence[QAItem], similarity: Any) -> dict[str, Any]:
    """Each set of rules over the same drafts: their metrics, and how many answers differ from the shipped ones."""
    shown = {name: {q: reverified(q, r, similarity, rules) for q, r in live.items()} for name, rules in RULES.items()}
    return {"metrics": {name: answer_metrics(lambda q, got=got: got[q], items) for name, got in shown.items()},
            "differ_from_shipped": {name: sum(got[q].text != shown["shipped"][q].text for q in live)
                                    for name, got in shown.items() if name != "shipped"},
            "items": [{"question": item.question, "gold": item.answer, "draft": live[item.question].draft,
                       **{name: got[item.question].text for name, got in shown.items()}} for item in items]}


def generated(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    """The base model's drafts for held-out Python FAQ questions and off-topic support ones."""
    answerable = sample(qa_records(PYTHON_QA), args.answerable)
    unanswerable = sample(qa_records(SUPPORT_QA, answerable=False), args.unanswerable)
    items = [QAItem(r.prompt, r.output, r.meta.get("doc") if r.output else None, r.meta.get("section"))
             for r in answerable + unanswerable]
    with wiring.open_ingest(settings) as ctx:
        answerer = build_answerer(settings, ctx.store, ctx.embedder, build_answer_generator(settings))
        live = {item.question: answerer.ask(item.question, kb="python-faq", audiences=AUDIENCES) for item in items}
        return {"model": "base (prompt only)", "kb": "python-faq", "drafts": compared(live, items,
                                                                                     caching_similarity(ctx.embedder))}


def replayed(report_path: Path, settings: Settings) -> dict[str, Any]:
    """An uplift_qa report's drafts, per KB and contender, over the sources retrieval finds for them again."""
    report = json.loads(report_path.read_text(encoding="utf-8"))
    out: dict[str, Any] = {"report": str(report_path), "report_sha256": sha256(report_path), "kbs": {}}
    with wiring.open_ingest(settings) as ctx:
        answerer = build_answerer(settings, ctx.store, ctx.embedder, build_answer_generator(settings))
        similarity = caching_similarity(ctx.embedder)
        for row in report["kbs"]:
            gold = qa_index()
            for contender, rows in row["items"].items():
                items = [QAItem(r["prompt"], r["gold"], *(gold.get(r["prompt"], (None, None)) if r["gold"] else
                                                          (None, None))) for r in rows]
                live, moved = {}, 0
                for r in rows:
                    live[r["prompt"]], same = replay(answerer, row["kb"], r)
                    moved += not same
                out["kbs"].setdefault(row["kb"], {})[contender] = {
                    "sources_not_found_again": moved, **compared(live, items, similarity)}
    return out


def replay(answerer: Answerer, kb: str, row: dict[str, Any]) -> tuple[AnswerResult, bool]:
    """The report's draft over its question's sources found again, and whether they are the report's."""
    sources = answerer.sources(row["prompt"], kb=kb, audiences=AUDIENCES)
    result = AnswerResult(row["output"], (), row["abstained"], row["abstained"], "replayed", sources,
                          Timings(0.0, 0.0, 0.0, 0.0, 0.0), draft=row["draft"] or "")
    return result, [chunk.id for chunk in sources] == row["sources"]


def qa_index() -> dict[str, tuple[str, str | None]]:
    """Question → (document, section) of every answerable row of both QA files."""
    return {r.prompt: (r.meta["doc"], r.meta.get("section")) for path in QA_FILES.values()
            for r in qa_records(path) if r.output is not None and r.meta.get("doc")}


def terse(settings: Settings) -> dict[str, Any]:
    """Per QA file, its gold answers beside their own question and beside another question of the same document."""
    out: dict[str, Any] = {}
    with wiring.open_ingest(settings) as ctx:
        answerer = build_answerer(settings, ctx.store, ctx.embedder, build_answer_generator(settings))
        similarity = caching_similarity(ctx.embedder)
        for kb, path in QA_FILES.items():
            rows = [r for r in qa_records(path) if r.output is not None and r.meta.get("doc")]
            held = {}
            for r in rows:
                item = QAItem(r.prompt, r.output, r.meta["doc"], r.meta.get("section"))
                found = [c for c in answerer.sources(r.prompt, kb=kb, audiences=AUDIENCES) if is_relevant(c, item)]
                if found:
                    held[r.prompt] = (str(r.output), r.meta["doc"], found[0])
            own = [(q, answer, chunk) for q, (answer, _doc, chunk) in held.items()]
            other = [(q, answer, chunk) for q, (_a, doc, mine) in held.items()
                     for (answer, _doc, chunk) in [v for v in held.values()
                                                   if v[1] == doc and v[2].id != mine.id][:OTHERS]]
            out[kb] = {"qa_sha256": sha256(path), "gold_chunk_found": len(held), "rows": len(rows),
                       "own_question": kept_share(own, similarity), "another_question": kept_share(other, similarity)}
    return out


def kept_share(triples: Sequence[tuple[str, str, ScoredChunk]], similarity: Any) -> dict[str, Any]:
    """Per set of rules, the share of answers kept: all of them, and the terse ones."""
    short = [t for t in triples if len(claim_words(t[1])) <= citations.TERSE_WORDS]
    share = {}
    for name, rules in RULES.items():
        def kept(group: Sequence[tuple[str, str, ScoredChunk]], rules: Rules = rules) -> float:
            shown = [not verified(f"{answer.rstrip('.')} [1].", [chunk], q, similarity, rules).abstained
                     for q, answer, chunk in group]
            return round(sum(shown) / max(len(shown), 1), 3)
        share[name] = {"all": kept(triples), "terse": kept(short)}
    return {"pairs": len(triples), "terse_pairs": len(short), "kept": share}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answerable", type=int, default=40)
    parser.add_argument("--unanswerable", type=int, default=20)
    parser.add_argument("--drafts", type=Path, default=None, help="a bench/uplift_qa.py report: replay its drafts")
    parser.add_argument("--terse", action="store_true", help="also check the QA files' gold answers (see above)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    report: dict[str, Any] = {"benchmark": "verifier_answers",
                              "rules": {name: {**rules.thresholds, "question": rules.question,
                                               "mid_sentence": rules.mid_sentence,
                                               "bare_headings": rules.bare_headings}
                                        for name, rules in RULES.items()},
                              "terse_words": citations.TERSE_WORDS, "question_share": citations.QUESTION_SHARE,
                              "data": {"python_qa_sha256": sha256(PYTHON_QA), "support_qa_sha256": sha256(SUPPORT_QA)}}
    with tempfile.TemporaryDirectory() as home:
        settings = Settings(home=Path(home), models={"cache_dir": common.MODELS})
        models.provision(settings.models.base, settings.models_dir)
        kbs = ["support", "python-faq"] if args.drafts or args.terse else ["python-faq"]
        for kb in kbs:
            documents.sync_path(settings, KB_DOCUMENTS[kb], kb=kb, audience="public", wait=True)
        if args.drafts:
            report["replayed"] = replayed(args.drafts, settings)
        else:
            report["generated"] = generated(args, settings)
        if args.terse:
            report["terse"] = terse(settings)
    report["machine"] = common.machine()
    common.emit(report, args.out, shown=without_items(report))


def without_items(value: Any) -> Any:
    """The report with every answer left out: what the terminal shows."""
    if isinstance(value, dict):
        return {k: without_items(v) for k, v in value.items() if k != "items"}
    return value


if __name__ == "__main__":
    main()
