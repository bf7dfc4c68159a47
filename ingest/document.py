"""The nouns of ingestion: a parsed document, its sections and its chunks.

Every span is a pair of character offsets into `ParsedDocument.text`, the normalised text that
`parse` builds, so a citation can always be traced back to the exact characters it came from.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Section:
    """A run of the normalised text under one heading path, on one page.

    `start` is the offset of the section's own heading when it has one, so the heading travels
    with the text it introduces. `page` is 1-based; None for formats without pages.
    """

    path: tuple[str, ...]
    start: int
    end: int
    page: int | None


@dataclass(frozen=True)
class ParsedDocument:
    """A document reduced to normalised text plus the sections that tile it (in order)."""

    text: str
    title: str
    sections: tuple[Section, ...]
    media_type: str


@dataclass(frozen=True)
class Chunk:
    """A piece of one section, small enough to embed.

    Invariant: `doc.text[chunk.start:chunk.end] == chunk.text`.
    """

    text: str
    start: int
    end: int
    section_path: tuple[str, ...]
    page: int | None
    index: int


def content_hash(text: str) -> str:
    """Stable id for a piece of text: sha256 of its UTF-8 bytes, as hex.

    >>> content_hash("abc")[:12]
    'ba7816bf8f01'
    """
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
