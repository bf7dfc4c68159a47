from __future__ import annotations

from pathlib import Path

import pytest

from lorag.core.errors import InvalidInput
from lorag.retrieval.evaluate import QAItem, is_relevant, load_qa, markdown_table, rouge_l, token_f1
from lorag.retrieval.types import ScoredChunk


def chunk(source: str, section: tuple[str, ...], text: str) -> ScoredChunk:
    return ScoredChunk(id="c", score=1.0, doc_id="d", kb="kb", audience="public", title="t", source=source,
                       section=section, page=None, start=0, end=len(text), text=text)


def test_token_f1_and_rouge_l() -> None:
    assert token_f1("Refunds take 5 days", "refunds take 5 days") == 1.0
    assert token_f1("nothing in common", "refunds take 5 days") == 0.0
    assert round(token_f1("refunds take 5 working days", "refunds take 5 days"), 3) == 0.889
    assert rouge_l("a b c d", "a c d") == pytest.approx(2 * (3 / 4) * 1 / (3 / 4 + 1))
    assert rouge_l("", "a") == 0.0


def test_relevance_by_document_and_section_or_passage() -> None:
    item = QAItem("q?", "€8.00", "placing_an_order.md", "Minimum order value")
    assert is_relevant(chunk("placing_an_order.md", ("Placing an order", "Minimum order value"), "x"), item)
    assert not is_relevant(chunk("placing_an_order.md", ("Group orders",), "x"), item)
    assert not is_relevant(chunk("tipping.md", ("Minimum order value",), "x"), item)
    faq = QAItem("Why indentation?", "Guido van Rossum believes that using indentation for grouping is elegant",
                 "python3.11-doc/usr/share/doc/python3.11/html/faq/design.html", None)
    inside = chunk("faq/design.html", ("Why indentation",), "Guido van Rossum believes using indentation is elegant")
    outside = chunk("faq/design.html", ("Why floats",), "Floating point numbers are stored in binary fractions")
    assert is_relevant(inside, faq) and not is_relevant(outside, faq)


def test_a_bad_qa_file_says_which_line(tmp_path: Path) -> None:
    path = tmp_path / "qa.jsonl"
    path.write_text('{"question": "ok?", "answer": "yes", "doc": "a.md"}\n{"answer": "no question"}\n')
    with pytest.raises(InvalidInput, match="qa.jsonl, line 2"):
        load_qa(path)


def test_markdown_report_tabulates_modes() -> None:
    text = markdown_table("retrieval", {"dense": {"mrr": 0.5}, "hybrid": {"mrr": 0.7}, "run": {"kb": "support"}})
    assert "| dense | 0.5 |" in text and "| hybrid | 0.7 |" in text and "- kb: support" in text
