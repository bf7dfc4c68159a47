"""The relevance floor: how question–chunk cosines part the chunks that answer a question from off-topic ones.

`LORAG_RETRIEVAL__MIN_RELEVANCE` decides which retrieved chunks are sources (`Answerer._plan`). A floor too high
hides the chunk that answers; too low, it shows the model a chunk that only shares a word with an off-topic
question, which the model copies and the citation check passes. Over two knowledge bases (the sample support help
centre, the Python FAQ pages in ../shared/data), with the embedder that serves:

- answerable human questions: the cosine of the best chunk that answers the question (`retrieval.evaluate
  .is_relevant`: the gold document and section), which any floor above it would hide;
- every question asked of the other knowledge base: its best chunk's cosine, which a floor at or below it lets
  reach the model.

For each floor: how many answering chunks it hides and how many off-topic questions it lets through.

    .venv/bin/python bench/relevance.py --out docs/reports/relevance-floor.json
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
from pathlib import Path
from typing import Any

import common  # before lorag: the repository on sys.path, packaged models only

from lorag.app import wiring
from lorag.app.cli import documents
from lorag.app.cli.server import SAMPLES
from lorag.core.settings import Settings
from lorag.retrieval.evaluate import QAItem, is_relevant, load_qa
from lorag.retrieval.search import Retriever

SHARED = common.REPO.parent / "shared" / "data"
KBS = {"support": (SAMPLES / "support", SAMPLES.parent / "kb" / "support_qa.jsonl"),
       "python-faq": (SHARED / "python-faq-html", SHARED / "python_faq_qa.jsonl")}
FLOORS = (0.25, 0.30, 0.35, 0.40, 0.45)


def cosines(retriever: Retriever, item: QAItem, kb: str, own: bool) -> tuple[float, float | None]:
    """(the best chunk's cosine, the best answering chunk's: None off-topic or unanswerable)."""
    # dense alone: every chunk of the KB, scored by its cosine to the question
    chunks = retriever.search(item.question, kb=kb, audiences=("public",), top_k=10_000, mode="dense").chunks
    answering = [chunk.score for chunk in chunks if own and item.answerable and is_relevant(chunk, item)]
    return chunks[0].score, max(answering, default=None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    questions = {kb: load_qa(qa) for kb, (_docs, qa) in KBS.items()}
    answering: dict[str, list[float]] = {}
    off_topic: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as home:
        settings = Settings(home=Path(home), models={"cache_dir": common.MODELS})
        for kb, (docs, _qa) in KBS.items():
            documents.sync_path(settings, docs, kb=kb, audience="public", wait=True)
        with wiring.open_ingest(settings) as ctx:
            retriever = Retriever(ctx.store, ctx.embedder)
            for kb in KBS:
                for asked, items in questions.items():
                    for item in items:
                        best, gold = cosines(retriever, item, kb, own=asked == kb)
                        if asked != kb:
                            off_topic.setdefault(f"{asked} asked of {kb}", []).append(best)
                        elif gold is not None:
                            answering.setdefault(kb, []).append(gold)
    every_answering = [c for values in answering.values() for c in values]
    every_off_topic = [c for values in off_topic.values() for c in values]
    report: dict[str, Any] = {
        "benchmark": "relevance_floor", "embedder": settings.models.embedder,
        "data": {kb: {"questions": sha256([qa]), "documents": sha256(sorted(p for p in docs.rglob("*") if p.is_file()))}
                 for kb, (docs, qa) in KBS.items()},
        "answering_chunk": {kb: summary(values) for kb, values in answering.items()},
        "off_topic_best": {pair: summary(values) for pair, values in off_topic.items()},
        "floors": [{"floor": floor,
                    "answering_chunks_hidden": sum(c < floor for c in every_answering),
                    "answering_questions": len(every_answering),
                    "off_topic_reaching_the_model": sum(c >= floor for c in every_off_topic),
                    "off_topic_questions": len(every_off_topic)} for floor in FLOORS],
        "machine": common.machine()}
    common.emit(report, args.out)


def sha256(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def summary(values: list[float]) -> dict[str, Any]:
    ordered = sorted(values)
    return {"n": len(ordered), "min": round(ordered[0], 3), "max": round(ordered[-1], 3),
            "lowest": [round(c, 3) for c in ordered[:3]], "highest": [round(c, 3) for c in ordered[-3:]]}


if __name__ == "__main__":
    main()
