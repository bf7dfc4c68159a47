"""Grounded-QA records from a knowledge base's own documents, as in LlamaIndex's question–context pairs and RAFT.

    kb_chunks → candidates (rules: FAQ rows, question headings, headings, table rows; model: the base model writes
    a question per chunk) → extractive target (the chunk's best body sentences) → the verifier accepts it →
    round trip (the serving retriever ranks the source chunk in the top k) → dedupe → cap → Records

A kept question becomes a Record of origin "generated" whose meta pins its source chunk (`chunk_id`) and names its
split group (the chunk id), so every question of one chunk lands on the same side of the split. QA files and
feedback outrank generated records with the same question (`data.ORIGIN_RANK`). `with_unanswerable` turns a share
of the generated training records into unanswerable ones: shown without their source, answered with the abstention.
"""

from __future__ import annotations

import logging
import re
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePath
from typing import Literal, Protocol

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from lorag.core.tables import DocumentStatus
from lorag.finetune.tasks import Documents, TaskSpec
from lorag.finetune.types import Record, stable_hash
from lorag.ingest import registry
from lorag.ingest.chunk import split as split_document
from lorag.ingest.document import ParsedDocument, content_hash
from lorag.ingest.embed import Embedder
from lorag.ingest.parse import parse
from lorag.ingest.store import VectorStore, point_id
from lorag.retrieval.citations import LEXICAL_THRESHOLD, SEMANTIC_THRESHOLD, body_spans, verify
from lorag.retrieval.evaluate import QAItem, is_relevant
from lorag.retrieval.search import Retriever
from lorag.retrieval.types import ScoredChunk

logger = logging.getLogger(__name__)

Method = Literal["faq", "question-heading", "heading", "table", "model"]
QUESTION_FIELD = re.compile(r"^\s*(?:question|q)\s*:\s*(.+\?)\s*$", re.IGNORECASE | re.MULTILINE)
FIELD_LINE = re.compile(r"^([^:\n]{1,60}):\s*(\S.*)$")
FIELD_PREFIX = re.compile(r"^\s*[A-Za-z_ ]{1,30}:\s+")
ASKING = ("how", "what", "when", "where", "which", "who", "why", "can", "do", "does", "is", "are")
MIN_TARGET_WORDS = 3
MAX_QUESTION_WORDS = 30
QUESTION_TOKENS = 40  # a question, and room for the model to number it
MAX_PARSE_BYTES = 50_000_000


class QuestionWriter(Protocol):
    """Writes one question per chunk (None where it wrote nothing usable)."""

    def write(self, chunks: Sequence[ScoredChunk]) -> list[str | None]: ...


@dataclass(frozen=True)
class Candidate:
    question: str
    target: str  # sentences copied from the chunk's body, without markers
    chunk: ScoredChunk
    method: Method


@dataclass
class SynthReport:
    """What generation produced and why questions were dropped; goes into the run's data report."""

    chunks: int = 0
    generated: Counter[str] = field(default_factory=Counter)  # by method
    filtered: Counter[str] = field(default_factory=Counter)  # by reason
    kept: int = 0

    def as_dict(self) -> dict[str, object]:
        return {"chunks": self.chunks, "generated": sum(self.generated.values()),
                "generated_by_method": dict(sorted(self.generated.items())), "kept": self.kept,
                "filtered": dict(sorted(self.filtered.items()))}


# --- the knowledge base's chunks --------------------------------------------------------------------------------

def kb_chunks(sessions: sessionmaker[Session], store: VectorStore, embedder: Embedder, *, kb: str,
              audiences: Sequence[str], chunk_tokens: int, overlap_tokens: int) -> list[ScoredChunk]:
    """The indexed chunks of a knowledge base, rebuilt from the stored documents as ingestion cut them.

    The store has no payload scan in its protocol, so documents are parsed and split again; a chunk counts only if
    the store holds its point id, so a changed chunking setting yields no chunk rather than a wrong one.
    """
    chunks: list[ScoredChunk] = []
    for source, row in sorted(registry.live_documents(sessions, kb).items()):
        if row.status != DocumentStatus.INDEXED or row.audience not in audiences or row.content_hash is None:
            continue
        stored = set(store.point_ids(row.id))
        parsed = _parse_blob(registry.blob(sessions, row.content_hash), source)
        for piece in split_document(parsed, count_tokens=embedder.count_tokens, chunk_tokens=chunk_tokens,
                                    overlap_tokens=overlap_tokens):
            chunk_id = point_id(row.id, content_hash(piece.text), piece.index)
            if chunk_id in stored:
                chunks.append(ScoredChunk(chunk_id, 0.0, row.id, kb, row.audience, parsed.title, source,
                                          piece.section_path, piece.page, piece.start, piece.end, piece.text,
                                          row.source_url))
    return chunks


def _parse_blob(data: bytes, source: str) -> ParsedDocument:
    with tempfile.TemporaryDirectory(prefix="lorag-synth-") as folder:
        path = Path(folder) / (PurePath(source).name[-200:] or "document")
        path.write_bytes(data)
        return parse(path, max_bytes=MAX_PARSE_BYTES)


# --- questions by rule ------------------------------------------------------------------------------------------

def body_sentences(chunk: ScoredChunk) -> list[str]:
    """The chunk's sentences outside its headings (the verifier's own notion of body), field prefixes removed."""
    sentences = []
    for start, end in body_spans(chunk):
        text = chunk.text[start:end].strip()
        if QUESTION_FIELD.match(text) or text.endswith("?"):
            continue  # a question is not an answer
        text = FIELD_PREFIX.sub("", text, count=1) if text.lower().startswith(("answer:", "a:")) else text
        if text:
            sentences.append(text)
    return sentences


def rule_candidates(chunk: ScoredChunk, max_sentences: int) -> list[Candidate]:
    """FAQ rows ("question: …" then the answer), question headings, plain headings and table rows."""
    body = body_sentences(chunk)
    if not body:
        return []
    faq = QUESTION_FIELD.search(chunk.text)
    if faq:
        return [Candidate(faq.group(1).strip(), " ".join(body[:max_sentences]), chunk, "faq")]
    table = table_candidate(chunk)
    if table is not None:
        return [table]
    heading = chunk.section[-1].strip() if chunk.section else ""
    if not heading or not chunk.text.lstrip().startswith(heading):
        return []  # only the chunk that opens its section answers the heading's question
    if heading.endswith("?"):
        return [Candidate(heading, " ".join(body[:max_sentences]), chunk, "question-heading")]
    return [Candidate(heading_question(heading, chunk.title), " ".join(body[:max_sentences]), chunk, "heading")]


def heading_question(heading: str, title: str) -> str:
    """A question a reader of that heading would ask.

    >>> heading_question("How to cancel", "Cancelling an order")
    'How to cancel?'
    >>> heading_question("Minimum order value", "Placing an order")
    'What is the minimum order value (placing an order)?'
    """
    name = re.sub(r"^\d+(?:\.\d+)*\.?\s+", "", heading).strip().rstrip(".:")
    if name.split()[0].lower() in ASKING:
        return f"{name}?"
    context = f" ({title.lower()})" if title and title.lower() not in name.lower() else ""
    return f"What is the {name[0].lower()}{name[1:]}{context}?"


def table_candidate(chunk: ScoredChunk) -> Candidate | None:
    """A row of `field: value` lines: ask for one field of the row named by its first two fields."""
    lines = [line.strip() for line in chunk.text.splitlines() if line.strip()]
    fields = [FIELD_LINE.match(line) for line in lines]
    if len(lines) < 3 or not all(fields):
        return None
    pairs = [(m.group(1).strip(), m.group(2).strip()) for m in fields if m]
    asked = 2 + int(stable_hash({"chunk": chunk.id})[:8], 16) % (len(pairs) - 2)
    name = ", ".join(f"{key.replace('_', ' ')} {value}" for key, value in pairs[:2])
    question = f"What is the {pairs[asked][0].replace('_', ' ')} for {name}?"
    return Candidate(question, lines[asked], chunk, "table")


# --- questions by model -----------------------------------------------------------------------------------------

def model_candidates(chunks: Sequence[ScoredChunk], writer: QuestionWriter, embedder: Embedder,
                     max_sentences: int, report: SynthReport) -> list[Candidate]:
    """One question per chunk from the writer, its target the body sentences most like the question."""
    candidates = []
    for chunk, question in zip(chunks, writer.write(chunks), strict=True):
        report.generated["model"] += 1
        if question is None:
            report.filtered["no_question"] += 1
            continue
        target = best_sentences(question, body_sentences(chunk), embedder, max_sentences)
        if target is None:
            report.filtered["no_target"] += 1
            continue
        candidates.append(Candidate(question, target, chunk, "model"))
    return candidates


def best_sentences(question: str, sentences: Sequence[str], embedder: Embedder, count: int) -> str | None:
    """The sentence most similar to the question, and the one after it while `count` allows (in text order)."""
    if not sentences:
        return None
    vectors = embedder.embed_batch([question, *sentences])
    best = int(np.argmax(vectors[1:] @ vectors[0]))
    return " ".join(sentences[best:best + count])


def clean_question(text: str) -> str | None:
    """The first line of a model's output that reads as a question, or None.

    >>> clean_question("1. How long is a gift card valid?\\nAnswer: 3 years")
    'How long is a gift card valid?'
    """
    for line in text.splitlines():
        line = re.sub(r"^\s*(?:\d+[.)]|[-*•]|question\s*\d*\s*:|q\d*\s*:)\s*", "", line, flags=re.IGNORECASE)
        line = line.strip().strip('"')
        words = line.split()
        if line.endswith("?") and 3 <= len(words) <= MAX_QUESTION_WORDS and "[" not in line:
            return line
    return None


# Why rules are the default and the model is opt-in (`questions: model|both`), measured on 12 random support
# chunks with SmolLM2-135M on this project's 2-core shared CPU: llama-index's own template and "Teacher/Professor
# ... quiz" query took 614 s (51 s a chunk: its query engine wraps each node in a summary index and a response
# synthesizer) and gave 6 lines that read as questions, of which 2 were about the passage ("What is the purpose of
# the SOS button?"); the rest were chatter ("I'm ready to assist. What's your question?", "What is the capital of
# France?"), which `clean_question` cannot tell from a real question and only the round trip filters out. Our
# shorter prompt below goes through the same interface; at that speed, a few hundred chunks cost an hour a night.
QUESTION_PROMPT = (
    "Here is a passage from a help centre.\n---------------------\n{context_str}\n---------------------\n"
    "{query_str}\n"
)
QUESTION_QUERY = "Write one question a customer could ask that this passage answers. Reply with the question only."


class LlamaIndexWriter:
    """llama-index's question generation (`DatasetGenerator`, one node per chunk) with lorag's generator as its LLM.

    `generate_question_context_pairs`, the function the design card names, left llama-index-core in 0.14; the
    `DatasetGenerator` that remains runs the same per-node prompt through a query engine. `default_prompt` keeps
    llama-index's own template and query, for measuring against ours.
    """

    def __init__(self, llm: object, *, default_prompt: bool = False) -> None:
        self.llm = llm
        self.default_prompt = default_prompt

    def write(self, chunks: Sequence[ScoredChunk]) -> list[str | None]:
        from llama_index.core import PromptTemplate
        from llama_index.core.evaluation import DatasetGenerator
        from llama_index.core.schema import TextNode

        questions: list[str | None] = []
        for chunk in chunks:
            node = TextNode(text=chunk.text, id_=chunk.id)
            generator = (DatasetGenerator([node], llm=self.llm, num_questions_per_chunk=1) if self.default_prompt
                         else DatasetGenerator([node], llm=self.llm, num_questions_per_chunk=1,
                                               text_question_template=PromptTemplate(QUESTION_PROMPT),
                                               question_gen_query=QUESTION_QUERY))
            written = generator.generate_questions_from_nodes()
            questions.append(clean_question("\n".join(written)))
        return questions


# --- filters and records ----------------------------------------------------------------------------------------

def is_verifiable(candidate: Candidate) -> bool:
    """The target, cited with its chunk, survives the serving verifier (lexically: it is copied from the body)."""
    checked = verify(f"{candidate.target.rstrip('.')} [1].", [candidate.chunk], similarity=None,
                     lexical_threshold=LEXICAL_THRESHOLD, semantic_threshold=SEMANTIC_THRESHOLD)
    return not checked.abstained


def round_trips(candidate: Candidate, retriever: Retriever, task: TaskSpec, k: int) -> bool:
    """The serving retriever ranks the question's source chunk among the first k (hybrid, as serving searches)."""
    found = retriever.search(candidate.question, kb=task.kb, audiences=tuple(task.audiences), top_k=k,
                             mode="hybrid")
    return any(chunk.id == candidate.chunk.id for chunk in found.chunks)


def kept_candidates(candidates: Sequence[Candidate], retriever: Retriever, task: TaskSpec, spec: Documents,
                    report: SynthReport) -> list[Candidate]:
    """The candidates that pass every filter, the first of each question text, at most `spec.max_examples`."""
    seen: set[str] = set()
    kept = []
    for candidate in candidates:
        text = " ".join(candidate.question.lower().split())
        if text in seen:
            report.filtered["duplicate"] += 1
        elif len(candidate.target.split()) < MIN_TARGET_WORDS and not FIELD_LINE.match(candidate.target):
            report.filtered["short_target"] += 1
        elif not is_verifiable(candidate):
            report.filtered["unverifiable"] += 1
        elif not round_trips(candidate, retriever, task, spec.round_trip_k):
            report.filtered["round_trip"] += 1
        else:
            seen.add(text)
            kept.append(candidate)
    # The cap keeps a hash-chosen subset, the same every night, not the first documents' questions.
    ordered = sorted(kept, key=lambda c: stable_hash({"q": c.question, "chunk": c.chunk.id}))
    report.filtered["over_cap"] += max(0, len(ordered) - spec.max_examples)
    return ordered[: spec.max_examples]


def as_record(candidate: Candidate) -> Record:
    chunk = candidate.chunk
    meta = {"doc": chunk.source, "section": chunk.section[-1] if chunk.section else None, "chunk_id": chunk.id,
            "group": chunk.id, "method": candidate.method}
    return Record(prompt=candidate.question, output=candidate.target, origin="generated",
                  source=f"documents:{candidate.method}", meta=meta)


def synthesize(task: TaskSpec, chunks: Sequence[ScoredChunk], retriever: Retriever, embedder: Embedder,
               writer: QuestionWriter | None) -> tuple[list[Record], SynthReport]:
    """Generated records for a task with `data.documents`, and the counts behind them."""
    spec = task.data.documents
    if spec is None:
        return [], SynthReport()
    report = SynthReport(chunks=len(chunks))
    candidates: list[Candidate] = []
    if spec.questions in ("rules", "both"):
        for chunk in chunks:
            found = rule_candidates(chunk, spec.max_sentences)
            report.generated.update(candidate.method for candidate in found)
            candidates += found
    if spec.questions in ("model", "both") and writer is not None:
        candidates += model_candidates(chunks, writer, embedder, spec.max_sentences, report)
    kept = kept_candidates(candidates, retriever, task, spec, report)
    report.kept = len(kept)
    logger.info("task %s: %d questions generated from %d chunks, %d kept (%s)", task.name,
                sum(report.generated.values()), len(chunks), len(kept), dict(report.filtered))
    return [as_record(candidate) for candidate in kept], report


def without_held_out_chunks(records: Sequence[Record], held_out: Sequence[Record],
                            chunks: Sequence[ScoredChunk]) -> tuple[list[Record], int]:
    """Generated records whose source chunk is no gold chunk of a held-out (test or validation) record.

    A QA file's record names its gold document and section, not a chunk: every chunk `is_relevant` to it is out.
    """
    items = [QAItem(r.prompt, r.output, r.meta.get("doc"), r.meta.get("section")) for r in held_out
             if isinstance(r.output, str) and r.meta.get("doc")]
    banned = {r.meta["chunk_id"] for r in held_out if r.meta.get("chunk_id")}
    banned |= {chunk.id for chunk in chunks for item in items if is_relevant(chunk, item)}
    kept = [r for r in records if r.origin != "generated" or r.meta.get("chunk_id") not in banned]
    return kept, len(records) - len(kept)


def with_unanswerable(records: Sequence[Record], share: float, salt: str) -> list[Record]:
    """A hash-chosen `share` of the generated records made unanswerable: the example builder then shows the
    question without its source chunk (or any chunk holding its target) and teaches the abstention."""
    changed = []
    for record in records:
        u = int(stable_hash({"key": record.key, "salt": salt, "use": "unanswerable"})[:8], 16) / 16**8
        if record.origin == "generated" and isinstance(record.output, str) and u < share:
            meta = {**record.meta, "without": record.output, "unanswerable": True}
            record = replace(record, output=None, meta=meta)
        changed.append(record)
    return changed

