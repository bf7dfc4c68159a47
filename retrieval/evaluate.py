"""Offline evaluation of retrieval and of cited answers against a gold question file.

A QA file is JSONL with `question`, `answer` (null: unanswerable), `doc` (the gold document: a file name or
a path ending in the document's source) and either `section` (the gold heading) or `answer` as the gold
passage (the Python FAQ set: the section text). A retrieved chunk is relevant when it comes from the gold
document and lies in the gold section: its section path contains the heading, or (no heading given) most of
its words appear in the gold passage.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from lorag.core.errors import InvalidInput
from lorag.retrieval.answer import AnswerResult
from lorag.retrieval.search import Mode, Retriever
from lorag.retrieval.types import ScoredChunk

WORD = re.compile(r"\w+")
PASSAGE_OVERLAP = 0.6  # share of a chunk's words found in the gold passage for it to count as inside it


@dataclass(frozen=True)
class QAItem:
    question: str
    answer: str | None
    doc: str | None
    section: str | None

    @property
    def answerable(self) -> bool:
        return self.doc is not None


def load_qa(path: Path) -> list[QAItem]:
    items = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            items.append(QAItem(str(row["question"]), row.get("answer"), row.get("doc"), row.get("section")))
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise InvalidInput(f"{path.name}, line {number}: not a QA row with a 'question' ({exc})") from exc
    if not items:
        raise InvalidInput(f"{path.name}: no questions")
    return items


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def is_relevant(chunk: ScoredChunk, item: QAItem) -> bool:
    if item.doc is None or not (item.doc.endswith(chunk.source) or chunk.source.endswith(item.doc)):
        return False
    if item.section:
        return any(item.section.lower() in heading.lower() for heading in chunk.section)
    if not item.answer:
        return True
    gold, mine = set(words(item.answer)), words(chunk.text)
    return bool(mine) and sum(word in gold for word in mine) / len(mine) >= PASSAGE_OVERLAP


def rank_of_first_relevant(chunks: Sequence[ScoredChunk], item: QAItem) -> int | None:
    return next((rank for rank, chunk in enumerate(chunks, start=1) if is_relevant(chunk, item)), None)


def retrieval_metrics(retriever: Retriever, items: Sequence[QAItem], *, kb: str, audiences: tuple[str, ...],
                      mode: Mode, ks: Sequence[int] = (1, 3, 5, 10)) -> dict[str, float]:
    """recall@k, MRR and nDCG@10 (one gold section per question, so the ideal DCG is 1)."""
    ranks = []
    for item in items:
        if item.answerable:
            found = retriever.search(item.question, kb=kb, audiences=audiences, top_k=max(ks), mode=mode)
            ranks.append(rank_of_first_relevant(found.chunks, item))
    n = max(len(ranks), 1)
    metrics = {f"recall@{k}": sum(r is not None and r <= k for r in ranks) / n for k in ks}
    metrics["mrr"] = sum(1 / r for r in ranks if r) / n
    metrics["ndcg@10"] = sum(1 / math.log2(r + 1) for r in ranks if r and r <= 10) / n
    metrics["questions"] = len(ranks)
    return {key: round(value, 4) for key, value in metrics.items()}


def token_f1(prediction: str, gold: str) -> float:
    predicted, expected = words(prediction), words(gold)
    common = sum(min(predicted.count(w), expected.count(w)) for w in set(predicted))
    if not common:
        return 0.0
    precision, recall = common / len(predicted), common / len(expected)
    return 2 * precision * recall / (precision + recall)


def rouge_l(prediction: str, gold: str) -> float:
    a, b = words(prediction), words(gold)
    if not a or not b:
        return 0.0
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b, start=1):
            current.append(previous[j - 1] + 1 if x == y else max(previous[j], current[-1]))
        previous = current
    lcs = previous[-1]
    if not lcs:
        return 0.0
    precision, recall = lcs / len(a), lcs / len(b)
    return 2 * precision * recall / (precision + recall)


def answer_metrics(ask: Callable[[str], AnswerResult], items: Sequence[QAItem]) -> dict[str, float]:
    """Answer quality on answerable questions, abstention on both kinds, citation precision and recall."""
    answerable = [item for item in items if item.answerable]
    unanswerable = [item for item in items if not item.answerable]
    f1, rouge, abstained, cited, relevant_cited, with_relevant = [], [], 0, 0, 0, 0
    for item in answerable:
        result = ask(item.question)
        abstained += result.abstained
        f1.append(0.0 if result.abstained else token_f1(result.text, item.answer or ""))
        rouge.append(0.0 if result.abstained else rouge_l(result.text, item.answer or ""))
        chunks = {chunk.id: chunk for chunk in result.sources}
        hits = [is_relevant(chunks[c.chunk_id], item) for c in result.citations if c.chunk_id in chunks]
        cited += len(hits)
        relevant_cited += sum(hits)
        with_relevant += any(hits)
    wrongly_answered = sum(not ask(item.question).abstained for item in unanswerable)
    n = max(len(answerable), 1)
    return {
        "answerable": len(answerable), "unanswerable": len(unanswerable),
        "token_f1": round(sum(f1) / n, 4), "rouge_l": round(sum(rouge) / n, 4),
        "citation_precision": round(relevant_cited / cited, 4) if cited else 0.0,
        "citation_recall": round(with_relevant / n, 4),
        "abstention_rate_answerable": round(abstained / n, 4),
        "abstention_rate_unanswerable": round(1 - wrongly_answered / max(len(unanswerable), 1), 4)
        if unanswerable else 0.0,
    }


def write_report(name: str, metrics: dict[str, object], out: Path, markdown: str | None = None) -> tuple[Path, Path]:
    """The JSON report and a Markdown table beside it (`markdown`, else one row per flat dict of numbers)."""
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / f"{name}.json", out / f"{name}.md"
    json_path.write_text(json.dumps(metrics, indent=2) + "\n")
    md_path.write_text(markdown if markdown is not None else markdown_table(name, metrics))
    return json_path, md_path


def markdown_table(name: str, metrics: dict[str, object]) -> str:
    rows = {key: value for key, value in metrics.items()
            if isinstance(value, dict) and all(isinstance(v, int | float) for v in value.values())}
    lines = [f"# {name}", ""]
    if rows:
        columns = sorted({column for row in rows.values() for column in row})
        lines += ["| | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
        lines += [f"| {label} | " + " | ".join(str(row.get(c, "")) for c in columns) + " |"
                  for label, row in rows.items()]
    lines += ["", *(f"- {k}: {v}" for k, v in metrics.items() if not isinstance(v, dict))]
    run = metrics.get("run")
    if isinstance(run, dict):
        lines += [f"- {k}: {v}" for k, v in run.items() if k != "settings"]
    return "\n".join(lines) + "\n"
