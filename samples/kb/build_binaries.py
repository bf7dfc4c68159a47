#!/usr/bin/env python3
"""Build the PDF and DOCX sample documents from their Markdown-ish sources.

The text of every binary file in samples/kb/ lives in samples/kb/_sources/ so
that it can be read and diffed. This script renders those sources:

* PDF  with reportlab (real text layer, headings, page breaks),
* DOCX with python-docx ("Heading 1" for the document title, "Heading 2" for
  sections, "Heading 3" for sub-sections, real bullet/number list styles and
  tables).

Supported source syntax (deliberately small):

    # Title                 -> document title (Heading 1)
    ## Section              -> Heading 2
    ### Sub-section         -> Heading 3
    - item / 1. item        -> bulleted / numbered list
    | a | b |  (pipe table, second row is the |---| separator)
    **bold**                -> bold text
    <!-- pagebreak -->      -> page break (PDF only; DOCX flows naturally)
    blank line              -> paragraph break

Usage (from anywhere):

    python3 -m venv /tmp/kbgen
    /tmp/kbgen/bin/pip install python-docx reportlab
    /tmp/kbgen/bin/python samples/kb/build_binaries.py

Output is deterministic: PDFs are written in reportlab's "invariant" mode and
DOCX files get fixed core-property dates and fixed ZIP timestamps, so
re-running the script on unchanged sources gives identical files.
"""
from __future__ import annotations

import datetime as _dt
import io
import re
import sys
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCES = HERE / "_sources"

# source (relative to _sources/)  ->  output (relative to samples/kb/)
MANIFEST = [
    ("support/refund_policy.md", "support/refund_policy.pdf"),
    ("support/allergen_guide.md", "support/allergen_guide.pdf"),
    ("support/restaurant_partner_agreement_summary.md",
     "support/restaurant_partner_agreement_summary.docx"),
    ("support/courier_handbook.md", "support/courier_handbook.docx"),
    ("experts/refund_approval_limits.md", "experts/refund_approval_limits.docx"),
    ("experts/fraud_signals_playbook.md", "experts/fraud_signals_playbook.pdf"),
]

FIXED_DATE = _dt.datetime(2025, 3, 1, 9, 0, 0)
AUTHOR = "Dashbite B.V. (fictional sample content for lorag)"
MAX_BYTES = 100 * 1024


# --------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------

def parse(text: str) -> list[tuple]:
    """Return a list of blocks: (kind, payload)."""
    blocks: list[tuple] = []
    para: list[str] = []
    lines = text.splitlines()

    def flush_para():
        if para:
            blocks.append(("p", " ".join(s.strip() for s in para)))
            para.clear()

    i = 0
    while i < len(lines):
        line = lines[i].rstrip()
        stripped = line.strip()
        if not stripped:
            flush_para()
        elif stripped == "<!-- pagebreak -->":
            flush_para()
            blocks.append(("pagebreak", None))
        elif m := re.match(r"^(#{1,3})\s+(.*)$", stripped):
            flush_para()
            blocks.append((f"h{len(m.group(1))}", m.group(2).strip()))
        elif stripped.startswith("|"):
            flush_para()
            rows = []
            while i < len(lines) and lines[i].strip().startswith("|"):
                cells = [c.strip() for c in lines[i].strip().strip("|").split("|")]
                if not all(re.fullmatch(r":?-{2,}:?", c) for c in cells):
                    rows.append(cells)
                i += 1
            blocks.append(("table", rows))
            continue
        elif re.match(r"^(-|\d+\.)\s+", stripped):
            flush_para()
            ordered = bool(re.match(r"^\d+\.", stripped))
            items = []
            while i < len(lines) and re.match(r"^(-|\d+\.)\s+", lines[i].strip()):
                items.append(re.sub(r"^(-|\d+\.)\s+", "", lines[i].strip()))
                i += 1
            blocks.append(("ol" if ordered else "ul", items))
            continue
        else:
            para.append(stripped)
        i += 1
    flush_para()
    return blocks


def split_bold(text: str) -> list[tuple[str, bool]]:
    """Split 'a **b** c' into [('a ', False), ('b', True), (' c', False)]."""
    parts = re.split(r"(\*\*[^*]+\*\*)", text)
    out = []
    for part in parts:
        if not part:
            continue
        if part.startswith("**") and part.endswith("**"):
            out.append((part[2:-2], True))
        else:
            out.append((part, False))
    return out


# --------------------------------------------------------------------------
# PDF
# --------------------------------------------------------------------------

def build_pdf(blocks: list[tuple], out: Path) -> None:
    from reportlab import rl_config
    rl_config.invariant = 1  # deterministic IDs/dates
    from xml.sax.saxutils import escape

    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
    from reportlab.lib.units import mm
    from reportlab.platypus import (
        ListFlowable,
        ListItem,
        PageBreak,
        Paragraph,
        SimpleDocTemplate,
        Spacer,
        Table,
        TableStyle,
    )

    styles = getSampleStyleSheet()
    body = ParagraphStyle("Body", parent=styles["BodyText"], fontSize=10.5,
                          leading=14, spaceAfter=6)
    h1 = ParagraphStyle("H1", parent=styles["Heading1"], fontSize=20,
                        leading=24, spaceAfter=10,
                        textColor=colors.HexColor("#B3261E"))
    h2 = ParagraphStyle("H2", parent=styles["Heading2"], fontSize=14,
                        leading=18, spaceBefore=10, spaceAfter=6)
    h3 = ParagraphStyle("H3", parent=styles["Heading3"], fontSize=12,
                        leading=15, spaceBefore=8, spaceAfter=4)
    cell = ParagraphStyle("Cell", parent=body, fontSize=9.5, leading=12,
                          spaceAfter=0)

    def rich(text: str) -> str:
        return "".join(f"<b>{escape(t)}</b>" if b else escape(t)
                       for t, b in split_bold(text))

    title = next((p for k, p in blocks if k == "h1"), out.stem)
    story = []
    for kind, payload in blocks:
        if kind == "h1":
            story.append(Paragraph(rich(payload), h1))
        elif kind == "h2":
            story.append(Paragraph(rich(payload), h2))
        elif kind == "h3":
            story.append(Paragraph(rich(payload), h3))
        elif kind == "p":
            story.append(Paragraph(rich(payload), body))
        elif kind in ("ul", "ol"):
            items = [ListItem(Paragraph(rich(t), body), leftIndent=14)
                     for t in payload]
            story.append(ListFlowable(
                items, bulletType="1" if kind == "ol" else "bullet",
                start="1" if kind == "ol" else None, leftIndent=14,
                bulletFontSize=9))
            story.append(Spacer(1, 4))
        elif kind == "table":
            data = [[Paragraph(rich(c), cell) for c in row] for row in payload]
            ncols = max(len(r) for r in payload)
            width = (A4[0] - 40 * mm) / ncols
            t = Table(data, colWidths=[width] * ncols, repeatRows=1)
            t.setStyle(TableStyle([
                ("GRID", (0, 0), (-1, -1), 0.5, colors.grey),
                ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#F3E5E4")),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ]))
            story.append(t)
            story.append(Spacer(1, 8))
        elif kind == "pagebreak":
            story.append(PageBreak())

    def footer(canvas, doc):
        canvas.saveState()
        canvas.setFont("Helvetica", 8)
        canvas.setFillColor(colors.grey)
        canvas.drawString(20 * mm, 12 * mm, f"Dashbite B.V. · {title}")
        canvas.drawRightString(A4[0] - 20 * mm, 12 * mm, f"Page {doc.page}")
        canvas.restoreState()

    doc = SimpleDocTemplate(str(out), pagesize=A4, title=title,
                            author=AUTHOR, subject=title,
                            leftMargin=20 * mm, rightMargin=20 * mm,
                            topMargin=20 * mm, bottomMargin=22 * mm)
    doc.build(story, onFirstPage=footer, onLaterPages=footer)


# --------------------------------------------------------------------------
# DOCX
# --------------------------------------------------------------------------

def build_docx(blocks: list[tuple], out: Path) -> None:
    import docx
    from docx.shared import Pt

    d = docx.Document()
    d.styles["Normal"].font.name = "Calibri"
    d.styles["Normal"].font.size = Pt(11)

    def add_runs(par, text):
        for t, b in split_bold(text):
            run = par.add_run(t)
            run.bold = b or None

    title = next((p for k, p in blocks if k == "h1"), out.stem)
    for kind, payload in blocks:
        if kind in ("h1", "h2", "h3"):
            level = int(kind[1])
            d.add_heading(payload.replace("**", ""), level=level)
        elif kind == "p":
            add_runs(d.add_paragraph(), payload)
        elif kind in ("ul", "ol"):
            style = "List Number" if kind == "ol" else "List Bullet"
            for item in payload:
                add_runs(d.add_paragraph(style=style), item)
        elif kind == "table":
            ncols = max(len(r) for r in payload)
            table = d.add_table(rows=0, cols=ncols)
            table.style = "Table Grid"
            for r, row in enumerate(payload):
                cells = table.add_row().cells
                for c, text in enumerate(row):
                    par = cells[c].paragraphs[0]
                    for t, b in split_bold(text):
                        run = par.add_run(t)
                        run.bold = True if r == 0 else (b or None)
            d.add_paragraph()
        # page breaks are ignored in DOCX

    cp = d.core_properties
    cp.title = title
    cp.author = AUTHOR
    cp.last_modified_by = AUTHOR
    cp.created = FIXED_DATE
    cp.modified = FIXED_DATE
    cp.revision = 1

    buf = io.BytesIO()
    d.save(buf)
    # Rewrite the ZIP with fixed timestamps so the output is reproducible.
    buf.seek(0)
    with zipfile.ZipFile(buf) as src, zipfile.ZipFile(
            out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            zi = zipfile.ZipInfo(info.filename, date_time=(2025, 3, 1, 9, 0, 0))
            zi.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(zi, src.read(info.filename))


def main() -> int:
    for src_rel, out_rel in MANIFEST:
        src = SOURCES / src_rel
        out = HERE / out_rel
        out.parent.mkdir(parents=True, exist_ok=True)
        blocks = parse(src.read_text(encoding="utf-8"))
        if out.suffix == ".pdf":
            build_pdf(blocks, out)
        elif out.suffix == ".docx":
            build_docx(blocks, out)
        else:
            raise SystemExit(f"unknown output type: {out}")
        size = out.stat().st_size
        print(f"{out_rel:55s} {size:>7d} bytes")
        if size > MAX_BYTES:
            print(f"error: {out_rel} is larger than {MAX_BYTES} bytes",
                  file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
