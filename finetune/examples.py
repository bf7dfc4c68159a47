"""Records → training examples, rendered exactly as the serving path renders its prompts.

grounded-qa: the question is searched in the task's knowledge base like a user's question. The prompt holds
the gold chunk plus the best-ranked distractors (`context_chunks` in all; those from the gold chunk's own document
first, as RAFT's hard distractors), in an order fixed by a hash of the
question so the gold source is not always [1], and is built by the serving path's `build_prompt`. The target
is the gold answer cited with the gold chunk's number; an unanswerable question gets distractors only and the
abstention sentence. So the adapter learns to answer from its sources, cite them, and say when they are silent.

classification and chat: the messages of `finetune.prompts`, and the canonical output.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from lorag.finetune.prompts import classification_messages, format_output
from lorag.finetune.tasks import TaskSpec
from lorag.finetune.types import Example, Record, stable_hash
from lorag.retrieval.evaluate import QAItem, is_relevant, words
from lorag.retrieval.prompt import CountTokens, build_prompt
from lorag.retrieval.search import Retriever
from lorag.retrieval.types import ABSTENTION, ScoredChunk

logger = logging.getLogger(__name__)

SEARCH_POOL = 20  # candidates searched for the gold chunk and the distractors
ANSWER_OVERLAP = 0.6  # share of an answer's words a chunk must hold to count as its source, without a gold doc


@dataclass(frozen=True)
class GroundingContext:
    """What grounded-qa examples need from the serving stack."""

    retriever: Retriever
    count_tokens: CountTokens
    budget_tokens: int


def build_examples(task: TaskSpec, records: Sequence[Record],
                   grounding: GroundingContext | None = None) -> tuple[list[Example], list[str]]:
    """The examples, and one line per record that could not become one (e.g. its gold chunk is not indexed)."""
    examples: list[Example] = []
    skipped: list[str] = []
    for record in records:
        if record.origin == "general":
            examples.append(Example(({"role": "user", "content": record.prompt},), str(record.output), record.key))
        elif task.kind == "classification":
            messages = classification_messages(task, record.prompt)
            examples.append(Example(tuple(messages), format_output(task.taxonomy, record.output), record.key))
        elif task.kind == "chat":
            examples.append(Example(tuple(chat_messages(task, record)), str(record.output), record.key))
        else:
            if grounding is None:
                raise ValueError("grounded-qa examples need a GroundingContext (retriever and token counter)")
            example = grounded_example(task, record, grounding)
            if example is None:
                skipped.append(f"{record.prompt[:80]!r}: no chunk among the top {SEARCH_POOL} holds its answer "
                               f"(gold: {record.meta.get('doc')!r}, {record.meta.get('section')!r})")
            else:
                examples.append(example)
    if skipped:
        logger.warning("%d of %d records gave no example (first: %s)", len(skipped), len(records), skipped[0])
    return examples, skipped


def chat_messages(task: TaskSpec, record: Record) -> list[dict[str, str]]:
    system = [{"role": "system", "content": task.system}] if task.system else []
    history = [dict(turn) for turn in record.meta.get("history", [])]
    return [*system, *history, {"role": "user", "content": record.prompt}]


def grounded_example(task: TaskSpec, record: Record, grounding: GroundingContext) -> Example | None:
    item = QAItem(record.prompt, record.output if isinstance(record.output, str) else None,
                  record.meta.get("doc"), record.meta.get("section"))
    found = grounding.retriever.search(record.prompt, kb=task.kb, audiences=tuple(task.audiences),
                                       top_k=SEARCH_POOL, mode="hybrid")
    answerable = item.answer is not None
    pool = [chunk for chunk in found.chunks if not holds_withheld(chunk, record)]
    gold = [chunk for chunk in pool if is_gold(chunk, item, record.meta.get("chunk_id"))]
    distractors = hard_first([chunk for chunk in pool if chunk not in gold], gold[:1] or found.chunks[:1])
    if answerable and not gold:
        return None
    chosen = ([gold[0]] if answerable else []) + distractors[: task.context_chunks - (1 if answerable else 0)]
    ordered = sorted(chosen, key=lambda chunk: stable_hash({"q": record.key, "chunk": chunk.id}))
    prompt = build_prompt(record.prompt, ordered, count_tokens=grounding.count_tokens,
                          budget_tokens=grounding.budget_tokens)
    if not answerable:
        return Example(tuple(prompt.messages), ABSTENTION, record.key)
    number = _number_of(gold[0], prompt.sources)
    if number is None:  # the gold chunk did not fit the budget next to the others
        return None
    return Example(tuple(prompt.messages), cite(str(item.answer), number), record.key)


def holds_withheld(chunk: ScoredChunk, record: Record) -> bool:
    """A generated question made unanswerable must not see its source, nor a neighbour that overlaps it."""
    withheld = record.meta.get("without")
    if not withheld or record.output is not None:
        return False
    return chunk.id == record.meta.get("chunk_id") or " ".join(withheld.split()) in " ".join(chunk.text.split())


def hard_first(distractors: Sequence[ScoredChunk], anchor: Sequence[ScoredChunk]) -> list[ScoredChunk]:
    """Distractors from the anchor's document first (the hard ones: same topic, same words), each group by rank."""
    doc = anchor[0].doc_id if anchor else None
    return sorted(distractors, key=lambda chunk: chunk.doc_id != doc)


def is_gold(chunk: ScoredChunk, item: QAItem, chunk_id: str | None = None) -> bool:
    """The chunk holds the answer: the record's own chunk when it pins one (a generated question), by its gold
    document and section when the record names them (the QA files), else (a rated answer or an expert's
    correction) when most of the answer's words are in the chunk."""
    if item.answer is None:
        return False
    if chunk_id:
        return chunk.id == chunk_id
    if item.doc is not None:
        return is_relevant(chunk, item)
    answer, text = set(words(item.answer)), set(words(chunk.text))
    return bool(answer) and len(answer & text) / len(answer) >= ANSWER_OVERLAP


def cite(answer: str, number: int) -> str:
    """The answer with its source marker before the final full stop, as the answering rules ask.

    >>> cite("Up to 10 participants, including the host.", 2)
    'Up to 10 participants, including the host [2].'
    """
    text = answer.strip()
    ending = text[-1] if text and text[-1] in ".!?" else "."
    return f"{text.rstrip('.!?').rstrip()} [{number}]{ending}"


def _number_of(chunk: ScoredChunk, sources: Sequence[ScoredChunk]) -> int | None:
    return next((n for n, source in enumerate(sources, start=1) if source.id == chunk.id), None)
