#!/usr/bin/env python3
"""Which libraries read HTML and PDF documents best: measured on real documents of this machine.

    python bench/document_readers.py [--repeat 3] [--pages 30]

HTML: the Node.js API pages in /usr/share/doc/nodejs/api ship as both ``X.html`` (with navigation,
table of contents, scripts, version pickers) and ``X.md`` (the text the page was built from). The
markdown is the ground truth of the main content: each extractor's output is scored by word
precision (share of its words, as a multiset, that are in the markdown: boilerplate lowers it),
word recall (share of the markdown's words it kept) and heading recall (share of the markdown's
headings (any level) that come out as markdown headings, which ``split: heading`` needs).
Candidates: trafilatura (markdown output), selectolax + markdownify of the main element with
nav/script/style removed (what ``runtime/sources/html.py`` ships), and the body's plain text.

PDF: /usr/share/doc/*/*.pdf (libtasn1's manual, the shared-mime-info spec) plus a generated
two-column page with known text, where reading order can be checked (difflib ratio of the words
in order). Candidates: pypdf (``extract_text``), pdfminer.six (layout analysis), PDFium's text
in drawing order, and PDFium's lines put in reading order by XY-cut (what
``runtime/sources/pdf.py`` ships). Reported: milliseconds per page (wall and CPU, range over
runs), characters per page, and words glued together (tokens over 25 letters, a spacing defect).

Prints figures only; never a timed assertion.
"""

from __future__ import annotations

import argparse
import difflib
import glob
import gzip
import re
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

NODE_API = Path("/usr/share/doc/nodejs/api")
PDFS = sorted(glob.glob("/usr/share/doc/*/*.pdf"))
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_']+")


def words(text: str) -> Counter:
    return Counter(w.lower() for w in _WORD.findall(text))


def md_headings(text: str) -> list[str]:
    """Every ATX heading's text, marks and permalink signs dropped, lowercased."""
    return [re.sub(r"[`*_\\]|[#\u00b6\u00a7]+$", "", m.group(1)).strip().lower()
            for m in re.finditer(r"^#{1,6}[ \t]+(.*?)[ \t]*$", text, re.M)]


# ----------------------------------------------------------------------------- HTML candidates


def html_trafilatura(html: str) -> str:
    import trafilatura

    return trafilatura.extract(html, output_format="markdown", include_tables=True, include_formatting=True,
                               include_comments=False, favor_recall=True) or ""


def html_selectolax(html: str) -> str:
    from llmspec.runtime.sources.html import html_to_markdown

    return html_to_markdown(html)[1]


def html_body_text(html: str) -> str:
    from selectolax.lexbor import LexborHTMLParser

    tree = LexborHTMLParser(html)
    return tree.body.text(separator="\n") if tree.body else ""


HTML_CANDIDATES = {"trafilatura": html_trafilatura, "selectolax+markdownify": html_selectolax,
                   "body text (baseline)": html_body_text}


def bench_html(repeat: int, limit: int) -> None:
    pages = []
    for html_path in sorted(NODE_API.glob("*.html")):
        md_path = html_path.with_suffix(".md")
        if html_path.name == "all.html" or not md_path.exists():
            continue
        pages.append((html_path.read_text(encoding="utf-8"), md_path.read_text(encoding="utf-8")))
        if len(pages) >= limit:
            break
    if not pages:
        print("HTML: no Node.js API pages under", NODE_API)
        return
    print(f"HTML: {len(pages)} Node.js API pages (html vs their markdown source)")
    print(f"  {'extractor':<24} {'word prec':>9} {'word rec':>9} {'head rec':>9} {'ms/page wall':>16} "
          f"{'ms/page cpu':>16}")
    for name, fn in HTML_CANDIDATES.items():
        precs, recs, heads = [], [], []
        for html, md in pages:
            out = fn(html)
            got, want = words(out), words(md)
            inter = sum((got & want).values())
            precs.append(inter / max(1, sum(got.values())))
            recs.append(inter / max(1, sum(want.values())))
            hs = md_headings(md)
            found = set(md_headings(out))
            heads.append(sum(1 for h in hs if h in found) / len(hs) if hs else 1.0)
        walls, cpus = [], []
        for _ in range(repeat):
            w0, c0 = time.perf_counter(), time.process_time()
            for html, _md in pages:
                fn(html)
            walls.append((time.perf_counter() - w0) * 1000 / len(pages))
            cpus.append((time.process_time() - c0) * 1000 / len(pages))
        print(f"  {name:<24} {statistics.mean(precs):>9.3f} {statistics.mean(recs):>9.3f} "
              f"{statistics.mean(heads):>9.3f} {min(walls):>7.1f}-{max(walls):<7.1f} {min(cpus):>7.1f}-{max(cpus):<7.1f}")


# ----------------------------------------------------------------------------- PDF candidates


def pdf_pypdfium2(path: str) -> list[str]:
    from llmspec.runtime.sources.pdf import page_texts

    return page_texts(Path(path).read_bytes())


def pdf_pypdfium2_stream(path: str) -> list[str]:
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(path)
    return [doc[i].get_textpage().get_text_range() for i in range(len(doc))]


def pdf_pypdf(path: str) -> list[str]:
    from pypdf import PdfReader

    return [p.extract_text() or "" for p in PdfReader(path).pages]


def pdf_pdfminer(path: str) -> list[str]:
    from pdfminer.high_level import extract_pages
    from pdfminer.layout import LTTextContainer

    return ["".join(el.get_text() for el in page if isinstance(el, LTTextContainer)) for page in extract_pages(path)]


PDF_CANDIDATES = {"pypdfium2+xy-cut": pdf_pypdfium2, "pypdfium2 stream": pdf_pypdfium2_stream, "pypdf": pdf_pypdf, "pdfminer.six": pdf_pdfminer}

COLUMNS = ("Left column opens the story of the river and the mill that stood beside it for a hundred years. "
           "The miller kept his books in a wooden chest.",
           "Right column tells how the railway came and the mill fell silent. Children still play among "
           "its stones on summer evenings.")


def two_column_pdf(path: str) -> str:
    """A page whose two columns must be read left column first, written right column first (as
    some layout tools do), so that content-stream order is wrong; returns the text in reading order."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=11)
    for i, text in reversed(list(enumerate(COLUMNS))):
        pdf.set_xy(10 + i * 100, 20)
        pdf.multi_cell(90, 6, text)
    pdf.output(path)
    return " ".join(COLUMNS)


def bench_pdf(repeat: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        gen = f"{tmp}/two-columns.pdf"
        truth = two_column_pdf(gen)
        print("\nPDF: reading order on a generated two-column page (difflib ratio of the word sequence)")
        for name, fn in PDF_CANDIDATES.items():
            got = " ".join(fn(gen)).split()
            print(f"  {name:<18} {difflib.SequenceMatcher(a=truth.split(), b=got, autojunk=False).ratio():.3f}")
    print(f"\nPDF: {len(PDFS)} real documents: {', '.join(Path(p).name for p in PDFS)}")
    print(f"  {'library':<18} {'pages':>5} {'chars/page':>10} {'glued words':>11} {'ms/page wall':>16} "
          f"{'ms/page cpu':>16}")
    for name, fn in PDF_CANDIDATES.items():
        pages, chars, glued = 0, 0, 0
        walls, cpus = [], []
        for r in range(repeat):
            w0, c0 = time.perf_counter(), time.process_time()
            outs = [fn(p) for p in PDFS]
            walls.append(time.perf_counter() - w0)
            cpus.append(time.process_time() - c0)
        for texts in outs:
            pages += len(texts)
            chars += sum(len(t) for t in texts)
            glued += sum(1 for t in texts for w in re.findall(r"[A-Za-z]+", t) if len(w) > 25)
        per = max(1, pages)
        print(f"  {name:<18} {pages:>5} {chars / per:>10.0f} {glued:>11} "
              f"{min(walls) * 1000 / per:>7.1f}-{max(walls) * 1000 / per:<7.1f} "
              f"{min(cpus) * 1000 / per:>7.1f}-{max(cpus) * 1000 / per:<7.1f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--pages", type=int, default=30, help="HTML pages to score")
    args = ap.parse_args()
    bench_html(args.repeat, args.pages)
    bench_pdf(args.repeat)


if __name__ == "__main__":
    main()
