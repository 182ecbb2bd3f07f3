"""Word (.docx) files: paragraphs, headings and tables as markdown, then split like markdown.

Columns ``path``, ``title``, ``heading``, ``text`` (the markdown source's), split per file or
per heading section with the same rules and origins (``docs/guide.docx#section-slug``).

The body is read in document order with python-docx: a paragraph styled ``Heading N``
becomes an ``N``-level markdown heading (``Title`` a level-1 one), list paragraphs become
``-``/``1.`` items, and tables become markdown tables (first row as the header), so a table's
text stays in the section it belongs to. ``title``: the document's Title property, else its
first Title/Heading 1 paragraph, else the file name. A file python-docx cannot open (not a
Word document, damaged) is one ``corrupt`` unit holding its bytes.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

from ._common import Part, read_bytes, rejects

_HEADING = re.compile(r"^Heading\s+([1-6])$", re.I)


def _paragraph_markdown(paragraph) -> str:
    text = paragraph.text.strip()
    if not text:
        return ""
    style = (paragraph.style.name if paragraph.style is not None else "") or ""
    m = _HEADING.match(style)
    if m:
        return "#" * int(m.group(1)) + " " + text
    if style == "Title":
        return "# " + text
    if style.startswith("List Number"):
        return "1. " + text
    if style.startswith("List"):
        return "- " + text
    return text


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _table_markdown(table) -> str:
    rows = [[_cell(c.text) for c in row.cells] for row in table.rows]
    rows = [r for r in rows if any(r)]
    if not rows:
        return ""
    width = max(len(r) for r in rows)
    rows = [r + [""] * (width - len(r)) for r in rows]
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + " --- |" * width]
    lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    return "\n".join(lines)


def docx_to_markdown(data: bytes) -> tuple[str | None, str]:
    """(title, markdown of the body). Raises ``ValueError`` for a file that is not a .docx."""
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as exc:  # zipfile, lxml and python-docx each raise their own
        raise ValueError(f"not a readable Word document ({type(exc).__name__}: {exc})") from None
    blocks: list[str] = []
    first_heading = None
    for child in document.element.body.iterchildren():
        tag = child.tag.rsplit("}", 1)[-1]
        if tag == "p":
            text = _paragraph_markdown(Paragraph(child, document))
            if first_heading is None and text.startswith("# "):
                first_heading = text[2:]
        elif tag == "tbl":
            text = _table_markdown(Table(child, document))
        else:
            continue
        if text:
            blocks.append(text)
    title = (document.core_properties.title or "").strip() or first_heading
    return title, "\n\n".join(blocks)


def read_file(path: Path, shown: str, spec, contract) -> Part:
    import polars as pl

    from .text import _schema, markdown_part

    data = read_bytes(path, shown)
    try:
        title, body = docx_to_markdown(data)
    except ValueError as exc:
        bad = rejects("corrupt", [str(exc)], [shown], [data])
        return Part(pl.DataFrame(schema=_schema("markdown") | {"_origin": pl.String}), bad, 1)
    return markdown_part(shown, title, path.stem, body, spec, contract)
