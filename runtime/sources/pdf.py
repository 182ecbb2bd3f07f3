"""PDF files: text per page, one record per page or per file.

Columns ``path``, ``title``, ``heading``, ``text``, ``page`` (the markdown source's, plus the
1-based page number; ``heading`` is null: a PDF's text carries no reliable heading marks).
``split: page`` (default) gives one record per page, origin ``docs/manual.pdf#page=3`` (the
PDF open-parameters fragment); ``split: file`` one record per file, pages joined by a blank
line, ``page`` null. ``title`` is the document's Title metadata, else the file name.

A page without extractable text (a scanned image) is rejected with rule ``no_text`` and the
page named, never kept as an empty record; a file PDFium cannot open (damaged, encrypted
with a password) is one ``corrupt`` unit holding its bytes.

Text comes from PDFium (pypdfium2) line by line, put in reading order by ``reading_order``
(recursive XY-cut on the lines' boxes). Chosen by ``bench/document_readers.py`` on the PDFs
in /usr/share/doc and a generated two-column page drawn right column first: pypdf and plain
PDFium follow the drawing order (right column first), pdfminer.six's layout analysis
interleaves the two columns line by line, PDFium + XY-cut reads them in order; it is also
the cheapest of the three: 4 ms of CPU a page against 14 (pypdf) and 25-27 (pdfminer.six) on
the 53 pages of /usr/share/doc's PDFs (3 runs).
"""

from __future__ import annotations

from pathlib import Path

from ._common import Part, concat_rejects, read_bytes, rejects

NO_TEXT = "no_text"


# A column gutter: at least this wide (points), with text on both sides at least this share of
# the region's width (a bullet or a narrow table column is not a column of text).
GUTTER_PT = 8.0
COLUMN_SHARE = 0.25


def page_texts(data: bytes) -> list[str]:
    """Each page's text in reading order, lines joined by newlines."""
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(data)
    try:
        out = []
        for i in range(len(doc)):
            page = doc[i]
            textpage = page.get_textpage()
            boxes = []
            for j in range(textpage.count_rects()):
                rect = textpage.get_rect(j)
                text = textpage.get_text_bounded(*rect).replace("\r\n", " ").replace("\n", " ").strip()
                if text:
                    boxes.append((*rect, text))
            textpage.close()
            page.close()
            out.append(_join_lines(reading_order(boxes)))
        return out
    finally:
        doc.close()


def reading_order(boxes: list[tuple]) -> list[tuple]:
    """Text boxes ``(left, bottom, right, top, text)`` in reading order, by recursive XY-cut.

    PDFium hands text out in content-stream order, which is the order the producer drew it,
    not always the order to read it (a right column drawn first). A region splits at a
    column gutter when it has one (left side first), else at its widest horizontal gap (top
    first); a region with neither is one line, read left to right.
    """
    if len(boxes) <= 1:
        return boxes
    lo, hi = min(b[0] for b in boxes), max(b[2] for b in boxes)
    cut = _widest_gap(boxes, 0, 2)
    if cut is not None and cut[0] >= GUTTER_PT:
        left = [b for b in boxes if b[2] <= cut[1]]
        right = [b for b in boxes if b[0] >= cut[1]]
        if min(max(b[2] for b in left) - lo, hi - min(b[0] for b in right)) >= COLUMN_SHARE * (hi - lo):
            return reading_order(left) + reading_order(right)
    cut = _widest_gap(boxes, 1, 3)
    if cut is not None:
        top = [b for b in boxes if b[1] >= cut[1]]
        return reading_order(top) + reading_order([b for b in boxes if b[1] < cut[1]])
    return sorted(boxes, key=lambda b: b[0])


def _widest_gap(boxes: list[tuple], a: int, b: int) -> tuple[float, float] | None:
    """(width, middle) of the widest gap between the boxes' [a, b] intervals, or None."""
    spans = sorted((box[a], box[b]) for box in boxes)
    best, reach = None, spans[0][1]
    for start, end in spans[1:]:
        if start > reach and (best is None or start - reach > best[0]):
            best = (start - reach, (start + reach) / 2)
        reach = max(reach, end)
    return best


def _join_lines(boxes: list[tuple]) -> str:
    """Boxes on one line (overlapping vertically) joined by a space, lines by a newline."""
    out: list[str] = []
    prev = None
    for box in boxes:
        same_line = prev is not None and box[1] < prev[3] and box[3] > prev[1] and box[0] >= prev[2] - 1
        out.append((" " if same_line else "\n") + box[4] if out else box[4])
        prev = box
    return "".join(out).strip()


def document_title(data: bytes) -> str | None:
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(data)
    try:
        return (doc.get_metadata_value("Title") or "").strip() or None
    finally:
        doc.close()


def read_file(path: Path, shown: str, spec, contract) -> Part:
    import polars as pl
    import pypdfium2 as pdfium

    from .text import checked_part

    data = read_bytes(path, shown)
    schema = {"path": pl.String, "title": pl.String, "heading": pl.String, "text": pl.String, "page": pl.Int64,
              "_origin": pl.String}
    try:
        pages = page_texts(data)
        title = document_title(data) or path.stem
    except pdfium.PdfiumError as exc:
        bad = rejects("corrupt", [f"not a readable PDF ({exc})"], [shown], [data])
        return Part(pl.DataFrame(schema=schema), bad, 1)
    empty = [n for n, t in enumerate(pages, 1) if not t]
    why = "page {n} has no extractable text (a scanned image? run OCR first)"
    if spec.split == "file":
        text = "\n\n".join(t for t in pages if t)
        if not text:
            bad = rejects(NO_TEXT, [f"none of its {len(pages)} page(s) has extractable text (scanned images? "
                                    "run OCR first)"], [shown])
            return Part(pl.DataFrame(schema=schema), bad, 1)
        frame = pl.DataFrame({"path": [shown], "title": [title], "heading": [None], "text": [text], "page": [None],
                              "_origin": [shown]}, schema=schema)
        return checked_part(frame, 1, contract, shown)
    kept = [(n, t) for n, t in enumerate(pages, 1) if t]
    frame = pl.DataFrame({"path": [shown] * len(kept), "title": [title] * len(kept), "heading": [None] * len(kept),
                          "text": [t for _, t in kept], "page": [n for n, _ in kept],
                          "_origin": [f"{shown}#page={n}" for n, _ in kept]}, schema=schema)
    part = checked_part(frame, len(pages), contract, shown)
    bad = rejects(NO_TEXT, [why.format(n=n) for n in empty], [f"{shown}#page={n}" for n in empty])
    return Part(part.rows, concat_rejects([part.rejected, bad]), part.units)
