"""parse: offsets round-trip for every format, headings give section paths, bad input is refused.

The PDF and DOCX fixtures come from `fixtures/make_fixtures.py`. The first test that partitions
prose pays a one-off import of unstructured and spaCy (seconds); every later test is fast.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from lorag.core.errors import InvalidInput, PayloadTooLarge
from lorag.ingest.document import ParsedDocument
from lorag.ingest.parse import parse

FIXTURES = Path(__file__).parent / "fixtures"
LIMIT = 10_000_000


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def section_texts(doc: ParsedDocument) -> dict[tuple[str, ...], str]:
    return {section.path: doc.text[section.start:section.end] for section in doc.sections}


def assert_sections_tile(doc: ParsedDocument) -> None:
    """Sections are in order, inside the text, non-empty and never overlap."""
    previous_end = 0
    for section in doc.sections:
        assert previous_end <= section.start < section.end <= len(doc.text)
        assert doc.text[section.start:section.end].strip()
        previous_end = section.end


MARKDOWN = """# Kitchen guide

Welcome to the kitchen. Read this first.

## Knives

Keep knives sharp. A dull knife slips.

### Storage

Store knives on the magnetic strip.

## Ovens

Preheat ovens for twenty minutes.
"""

HTML = """<html><head><title>ignored</title></head><body>
<h1>Wine list</h1><p>Our cellar holds two hundred bottles.</p>
<h2>Reds</h2><p>The house red is a Rioja from a small family vineyard.</p>
<h2>Whites</h2><p>The house white is a crisp Albarino from Galicia.</p>
</body></html>"""


def test_markdown_headings_nest_into_section_paths(tmp_path: Path) -> None:
    doc = parse(write(tmp_path, "guide.md", MARKDOWN), max_bytes=LIMIT)

    texts = section_texts(doc)
    assert doc.title == "Kitchen guide"
    assert doc.media_type == "text/markdown"
    assert texts[("Kitchen guide", "Knives", "Storage")].startswith("Storage")
    assert "magnetic strip" in texts[("Kitchen guide", "Knives", "Storage")]
    assert "Preheat" in texts[("Kitchen guide", "Ovens")]
    assert_sections_tile(doc)


def test_html_sections_start_at_their_heading(tmp_path: Path) -> None:
    doc = parse(write(tmp_path, "wine.html", HTML), max_bytes=LIMIT)

    texts = section_texts(doc)
    assert doc.title == "Wine list"
    assert texts[("Wine list", "Reds")] == (
        "Reds\n\nThe house red is a Rioja from a small family vineyard.")
    assert "Albarino" in texts[("Wine list", "Whites")]
    assert "ignored" not in doc.text
    assert_sections_tile(doc)


def test_plain_text_keeps_every_paragraph(tmp_path: Path) -> None:
    body = ("The delivery arrives on Tuesdays before nine in the morning.\n\n"
            "Check every crate against the invoice and sign the driver's sheet.\n")
    doc = parse(write(tmp_path, "delivery.txt", body), max_bytes=LIMIT)

    assert "arrives on Tuesdays" in doc.text
    assert "sign the driver's sheet" in doc.text
    assert doc.title == "delivery"
    assert_sections_tile(doc)


def test_latin1_text_is_decoded_by_detection(tmp_path: Path) -> None:
    body = "Crème brûlée and café au lait are served after the main course every day.\n"
    doc = parse(write(tmp_path, "dessert.txt", body.encode("latin-1")), max_bytes=LIMIT)

    assert "Crème brûlée" in doc.text


def test_utf8_bom_is_not_part_of_the_text(tmp_path: Path) -> None:
    doc = parse(write(tmp_path, "bom.md", "\ufeff# Title here\n\nSome body text.\n".encode()),
                max_bytes=LIMIT)

    assert doc.text.startswith("Title here")


def test_pdf_sections_carry_page_numbers() -> None:
    doc = parse(FIXTURES / "menu.pdf", max_bytes=LIMIT)

    by_path = {section.path: section for section in doc.sections}
    assert doc.media_type == "application/pdf"
    assert by_path[("Opening hours",)].page == 1
    assert by_path[("Allergens",)].page == 2
    assert "nuts and gluten" in section_texts(doc)[("Allergens",)]
    assert_sections_tile(doc)


def test_docx_heading_levels_nest() -> None:
    doc = parse(FIXTURES / "handbook.docx", max_bytes=LIMIT)

    texts = section_texts(doc)
    assert doc.title == "Staff handbook"
    assert "thirty minute break" in texts[("Staff handbook", "Shifts", "Breaks")]
    assert "spill" in texts[("Staff handbook", "Safety")]
    assert_sections_tile(doc)


def test_csv_rows_become_titled_sections(tmp_path: Path) -> None:
    body = 'name,price,description\nMargherita,9.50,"Tomato, mozzarella, basil"\nMarinara,7.00,Tomato and garlic\n'
    doc = parse(write(tmp_path, "menu.csv", body), max_bytes=LIMIT)

    assert doc.title == "menu"
    assert section_texts(doc) == {
        ("Margherita",): "name: Margherita\nprice: 9.50\ndescription: Tomato, mozzarella, basil",
        ("Marinara",): "name: Marinara\nprice: 7.00\ndescription: Tomato and garlic",
    }


def test_tsv_rows_without_a_title_field_are_numbered(tmp_path: Path) -> None:
    doc = parse(write(tmp_path, "stock.tsv", "item\tqty\nflour\t12\nsugar\t3\n"), max_bytes=LIMIT)

    assert section_texts(doc) == {("row 1",): "item: flour\nqty: 12", ("row 2",): "item: sugar\nqty: 3"}


def test_jsonl_question_titles_the_section(tmp_path: Path) -> None:
    rows = [{"question": "Do you take bookings?", "answer": "Yes, for six or more.", "tags": ["booking"]},
            {"question": "Is there parking?", "answer": "Street parking only."}]
    body = "\n".join(json.dumps(row) for row in rows) + "\n\n"
    doc = parse(write(tmp_path, "faq.jsonl", body), max_bytes=LIMIT)

    texts = section_texts(doc)
    assert texts[("Do you take bookings?",)] == (
        'question: Do you take bookings?\nanswer: Yes, for six or more.\ntags: ["booking"]')
    assert ("Is there parking?",) in texts


# --- bad input ---------------------------------------------------------------------------


def assert_refused(path: Path, *causes: str, max_bytes: int = LIMIT) -> None:
    with pytest.raises(InvalidInput) as raised:
        parse(path, max_bytes=max_bytes)
    message = raised.value.message.lower()
    assert path.name.lower() in message
    for cause in causes:
        assert cause in message


def test_unsupported_extension_is_refused(tmp_path: Path) -> None:
    assert_refused(write(tmp_path, "slides.pptx", b"PK\x03\x04"), "unsupported", ".pptx", ".pdf")


def test_empty_file_is_refused(tmp_path: Path) -> None:
    assert_refused(write(tmp_path, "blank.md", b""), "empty")


def test_file_over_the_limit_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "big.txt", "word " * 100)

    with pytest.raises(PayloadTooLarge, match="500 bytes, over the limit of 100"):
        parse(path, max_bytes=100)


def test_missing_file_is_refused(tmp_path: Path) -> None:
    assert_refused(tmp_path / "nowhere.txt", "cannot be read")


def test_corrupt_pdf_is_refused() -> None:
    assert_refused(FIXTURES / "corrupt.pdf", "corrupt pdf")


def test_pdf_that_is_not_a_pdf_is_refused(tmp_path: Path) -> None:
    assert_refused(write(tmp_path, "fake.pdf", "just some words"), "not a pdf")


def test_encrypted_pdf_is_refused() -> None:
    assert_refused(FIXTURES / "encrypted.pdf", "encrypted", "password")


def test_corrupt_docx_is_refused(tmp_path: Path) -> None:
    assert_refused(write(tmp_path, "broken.docx", b"not a zip at all"), "not a valid docx")


def test_docx_without_a_document_part_is_refused(tmp_path: Path) -> None:
    import zipfile

    path = tmp_path / "hollow.docx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("hello.txt", "no word/document.xml here")
    assert_refused(path, "docx")


def test_nul_bytes_in_text_are_refused(tmp_path: Path) -> None:
    assert_refused(write(tmp_path, "image.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), "nul bytes", "binary")


def test_binary_garbage_without_nul_bytes_is_refused(tmp_path: Path) -> None:
    garbage = bytes(byte for byte in os.urandom(4000) if byte != 0)
    assert_refused(write(tmp_path, "noise.md", garbage), "binary")


def test_ragged_csv_names_the_row(tmp_path: Path) -> None:
    body = "name,price\nSoup,4.00\nBread,2.00,extra\n"
    assert_refused(write(tmp_path, "ragged.csv", body), "row 3 has 3 fields, header has 2")


def test_invalid_jsonl_names_the_line(tmp_path: Path) -> None:
    assert_refused(write(tmp_path, "bad.jsonl", '{"a": 1}\n{"a": \n'), "line 2", "not valid json")


def test_jsonl_line_that_is_not_an_object_is_refused(tmp_path: Path) -> None:
    assert_refused(write(tmp_path, "list.jsonl", "[1, 2]\n"), "line 1", "not an object")


def test_document_without_text_is_refused(tmp_path: Path) -> None:
    assert_refused(write(tmp_path, "hollow.html", "<html><body><img src='x.png'></body></html>"),
                   "no text")
