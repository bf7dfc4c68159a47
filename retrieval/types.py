"""The nouns of answering: a retrieved chunk, the prompt built from chunks, and a checked answer.

Every span (`start`, `end`) is a pair of character offsets into the document's normalised text,
the same text ingestion cut chunks from, so a citation points at the exact characters it quotes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# What the service says when the sources do not hold the answer; the model is told to say exactly this.
ABSTENTION = "I can't find this in the documentation."


@dataclass(frozen=True)
class ScoredChunk:
    """One retrieved chunk, rebuilt from the vector store's payload.

    Invariant (from ingestion): `document_text[start:end] == text`.
    """

    id: str
    score: float
    doc_id: str
    kb: str
    audience: str
    title: str
    source: str
    section: tuple[str, ...]
    page: int | None
    start: int
    end: int
    text: str
    url: str | None = None  # the document's source_url, checked http(s) at upload; never derived from `source`

    @classmethod
    def from_hit(cls, hit_id: str, score: float, payload: dict[str, Any]) -> ScoredChunk:
        """Rebuild a chunk from a search hit; `section` comes back from JSON as a list.

        >>> ScoredChunk.from_hit("c1", 0.8, {"doc_id": "d", "kb": "k", "audience": "public", "title": "T",
        ...     "source": "t.md", "section": ["A", "B"], "page": None, "start": 0, "end": 2, "text": "hi"}).section
        ('A', 'B')
        """
        page = payload.get("page")
        return cls(
            id=str(hit_id), score=float(score), doc_id=str(payload["doc_id"]), kb=str(payload["kb"]),
            audience=str(payload["audience"]), title=str(payload["title"]), source=str(payload["source"]),
            section=tuple(str(part) for part in payload.get("section") or ()),
            page=None if page is None else int(page),
            start=int(payload["start"]), end=int(payload["end"]), text=str(payload["text"]),
            url=str(payload["url"]) if payload.get("url") else None,
        )


@dataclass(frozen=True)
class Citation:
    """One source the shown answer cites, as the API returns it.

    `marker` is the number shown in the answer text. `snippet` is the passage of the chunk that supports
    the cited sentence(s); `start`/`end` are its span in the document (`chunk.start` + offset in the chunk).
    `support` is the stronger of the lexical share and the semantic similarity that let it through.
    """

    marker: int
    chunk_id: str
    doc_id: str
    title: str
    source: str
    section: tuple[str, ...]
    page: int | None
    start: int
    end: int
    snippet: str
    support: float


@dataclass(frozen=True)
class Prompt:
    """OpenAI-style chat messages (system, [history...], user) and the sources they number.

    `sources[i]` is marker `[i + 1]`. A source truncated to fit the budget appears here truncated, with
    its `end` moved to match, so verification only credits text the model actually saw.
    `prompt_tokens` counts the messages' contents; the chat template adds a few tokens per message.
    """

    messages: list[dict[str, str]]
    sources: tuple[ScoredChunk, ...]
    prompt_tokens: int


@dataclass(frozen=True)
class VerifiedAnswer:
    """The model's answer after citation checking.

    `text` keeps only supported sentences, with markers renumbered 1..m in order of first use so that
    `[n]` in the text is `citations[n - 1]`; or it is ABSTENTION when nothing survived.
    `dropped_markers` are the model's markers outside 1..k (original numbers); `unsupported` are the
    sentences removed from the text, without their markers.
    """

    text: str
    citations: tuple[Citation, ...]
    abstained: bool
    handoff: bool
    dropped_markers: tuple[int, ...]
    unsupported: tuple[str, ...]
