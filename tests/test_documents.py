"""Document sources (HTML, PDF, DOCX) on generated files, binary files refused by text
formats, and empty sources failing unless the spec allows them."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmspec.runtime.sources import read_source
from llmspec.runtime.sources.expect import check_expectations
from llmspec.spec.errors import DataError
from llmspec.spec.models import DocxSource, ExpectSpec, HtmlSource, MarkdownSource, PdfSource, TextSource

PAGE = """<!doctype html>
<html><head><title>Refunds | Acme Help Centre</title>
<style>body { color: red }</style>
<script>window.track('pageview'); var secret = "TRACKING-CODE";</script></head>
<body>
<header class="site-header"><a href="/">Acme</a> <form><input name="q"></form></header>
<nav><ul><li><a href="/a">Shipping</a></li><li><a href="/b">NAVIGATION-LINK</a></li></ul></nav>
<div id="toc"><a href="#policy">Policy</a> TOC-ENTRY</div>
<main>
  <h1>Refunds <a class="anchor" href="#refunds">#</a></h1>
  <p>Everything about <strong>refunds</strong>.</p>
  <h2 id="policy">Policy <a href="#policy">&para;</a></h2>
  <p>Refunds are issued within <em>30 days</em> of purchase.</p>
  <ul><li>Keep the receipt.</li><li>Use the original box.</li></ul>
  <h2>Fees</h2>
  <table><tr><th>Item</th><th>Fee</th></tr><tr><td>Shipping</td><td>$5</td></tr></table>
  <pre><code>refund --order 42</code></pre>
</main>
<aside class="sidebar">SIDEBAR-AD</aside>
<footer>FOOTER-COPYRIGHT 2024</footer>
<script>console.log("LATE-SCRIPT")</script>
</body></html>
"""


def test_html_main_content_as_markdown_sections(tmp_path: Path):
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "refunds.html").write_text(PAGE, encoding="utf-8")
    batch = read_source("help", HtmlSource(format="html", path="site"), tmp_path)
    rows = batch.rows.to_dicts()
    everything = " ".join(str(v) for r in rows for v in r.values())
    for junk in ("TRACKING-CODE", "NAVIGATION-LINK", "TOC-ENTRY", "SIDEBAR-AD", "FOOTER-COPYRIGHT", "LATE-SCRIPT",
                 "color: red", "<p>", "&para;", "¶"):
        assert junk not in everything, junk
    assert [r["heading"] for r in rows] == ["Refunds", "Policy", "Fees"]
    assert {r["title"] for r in rows} == {"Refunds"}
    assert "Everything about **refunds**." in rows[0]["text"]
    policy = rows[1]["text"]
    assert "Refunds are issued within *30 days* of purchase." in policy
    assert "- Keep the receipt." in policy and "- Use the original box." in policy
    fees = rows[2]["text"]
    assert "| Item | Fee |" in fees and "| Shipping | $5 |" in fees
    assert "refund --order 42" in fees
    assert [r["_origin"] for r in rows] == ["site/refunds.html#refunds", "site/refunds.html#policy", "site/refunds.html#fees"]
    assert batch.rows_in == 3 and batch.rejected.height == 0


def test_html_split_by_file_and_title_from_title_tag(tmp_path: Path):
    (tmp_path / "a.html").write_text("<html><head><title>Only Title</title></head><body><p>Hello there.</p>"
                                     "<h2>Part</h2><p>More.</p></body></html>", encoding="utf-8")
    batch = read_source("h", HtmlSource(format="html", path="a.html", split="file"), tmp_path)
    (row,) = batch.rows.to_dicts()
    assert row["title"] == "Only Title" and row["heading"] is None
    assert row["text"] == "Hello there.\n\n## Part\n\nMore."


def _pdf(path: Path, pages: list[str | None]) -> None:
    """One page per entry: text, or None for a page holding only an image (a scan)."""
    from fpdf import FPDF
    from PIL import Image

    pdf = FPDF()
    pdf.set_title("Acme Manual")
    pdf.set_font("Helvetica", size=12)
    scan = path.with_suffix(".png")
    Image.new("RGB", (200, 280), (240, 240, 235)).save(scan)
    for text in pages:
        pdf.add_page()
        if text is None:
            pdf.image(str(scan), x=10, y=10, w=150)
        else:
            pdf.multi_cell(0, 8, text)
    pdf.output(str(path))


def test_pdf_pages_in_order_and_scanned_page_rejected(tmp_path: Path):
    _pdf(tmp_path / "manual.pdf", ["Installing the widget.\nPlug it in.", None, "Cleaning the widget.\nUse a dry cloth."])
    batch = read_source("m", PdfSource(format="pdf", path="manual.pdf"), tmp_path)
    rows = batch.rows.to_dicts()
    assert [(r["page"], r["text"]) for r in rows] == [
        (1, "Installing the widget.\nPlug it in."), (3, "Cleaning the widget.\nUse a dry cloth.")]
    assert {r["title"] for r in rows} == {"Acme Manual"}
    assert [r["_origin"] for r in rows] == ["manual.pdf#page=1", "manual.pdf#page=3"]
    rej = batch.rejected.to_dicts()
    assert [(r["_rule"], r["_origin"]) for r in rej] == [("no_text", "manual.pdf#page=2")]
    assert "page 2 has no extractable text" in rej[0]["_detail"]
    assert batch.rows_in == 3

    whole = read_source("m", PdfSource(format="pdf", path="manual.pdf", split="file"), tmp_path)
    (row,) = whole.rows.to_dicts()
    assert row["text"] == "Installing the widget.\nPlug it in.\n\nCleaning the widget.\nUse a dry cloth."
    assert row["page"] is None and whole.rows_in == 1


def test_pdf_two_columns_drawn_right_first_read_left_first(tmp_path: Path):
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=11)
    columns = ["Left column text comes first and runs over several lines of the page for sure.",
               "Right column text comes second and also runs over several lines of the page."]
    for i in (1, 0):  # drawn right column first: content-stream order is not reading order
        pdf.set_xy(10 + i * 100, 20)
        pdf.multi_cell(90, 6, columns[i])
    pdf.output(str(tmp_path / "cols.pdf"))
    (row,) = read_source("c", PdfSource(format="pdf", path="cols.pdf"), tmp_path).rows.to_dicts()
    assert " ".join(row["text"].split()) == " ".join(columns)


def test_pdf_damaged_file_is_one_corrupt_unit(tmp_path: Path):
    (tmp_path / "bad.pdf").write_bytes(b"%PDF-1.7\nnot really a pdf")
    (tmp_path / "good.pdf").write_bytes(b"")
    _pdf(tmp_path / "good.pdf", ["Fine page."])
    batch = read_source("p", PdfSource(format="pdf", path="*.pdf"), tmp_path)
    assert batch.rows["text"].to_list() == ["Fine page."]
    assert batch.rejected["_rule"].to_list() == ["corrupt"] and batch.rejected["_origin"].to_list() == ["bad.pdf"]


def _docx(path: Path) -> None:
    import docx

    d = docx.Document()
    d.core_properties.title = "Widget Guide"
    d.add_heading("Widget Guide", level=1)
    d.add_paragraph("Read this first.")
    d.add_heading("Setup", level=2)
    d.add_paragraph("Unpack the box.")
    d.add_paragraph("Charge it", style="List Bullet")
    d.add_heading("Details", level=3)
    d.add_paragraph("Deeper text stays in Setup.")
    d.add_heading("Specs", level=2)
    table = d.add_table(rows=2, cols=2)
    for r, values in enumerate((("Size", "Weight"), ("10 cm", "2 kg"))):
        for c, v in enumerate(values):
            table.cell(r, c).text = v
    d.add_paragraph("After the table.")
    d.save(str(path))


def test_docx_headings_lists_and_tables(tmp_path: Path):
    _docx(tmp_path / "guide.docx")
    batch = read_source("g", DocxSource(format="docx", path="guide.docx"), tmp_path)
    rows = batch.rows.to_dicts()
    assert [r["heading"] for r in rows] == ["Widget Guide", "Setup", "Specs"]
    assert {r["title"] for r in rows} == {"Widget Guide"}
    assert rows[0]["text"] == "Read this first."
    assert rows[1]["text"] == "Unpack the box.\n\n- Charge it\n\n### Details\n\nDeeper text stays in Setup."
    assert rows[2]["text"] == "| Size | Weight |\n| --- | --- |\n| 10 cm | 2 kg |\n\nAfter the table."
    assert rows[2]["_origin"] == "guide.docx#specs"


def test_docx_that_is_not_a_word_file_is_corrupt(tmp_path: Path):
    (tmp_path / "x.docx").write_bytes(b"PK\x03\x04 not a zip at all")
    batch = read_source("g", DocxSource(format="docx", path="x.docx"), tmp_path)
    assert batch.rows.height == 0 and batch.rejected["_rule"].to_list() == ["corrupt"]
    assert "not a readable Word document" in batch.rejected["_detail"][0]


@pytest.mark.parametrize("fmt", ["text", "markdown"])
def test_binary_file_read_as_text_is_refused(tmp_path: Path, fmt: str):
    _pdf(tmp_path / "manual.pdf", ["Some page."])
    src = (TextSource if fmt == "text" else MarkdownSource)(format=fmt, path="manual.pdf")
    with pytest.raises(DataError) as err:
        read_source("t", src, tmp_path)
    diag = err.value.diagnostics[0]
    assert diag.code == "binary-file" and "manual.pdf is a PDF, not" in diag.message
    assert "format: pdf" in diag.hint


def test_nul_bytes_are_binary_but_utf16_is_not_refused(tmp_path: Path):
    (tmp_path / "blob.txt").write_bytes(b"abc\x00\x01\x02")
    with pytest.raises(DataError, match="binary"):
        read_source("t", TextSource(format="text", path="blob.txt"), tmp_path)
    (tmp_path / "u16.txt").write_bytes("hi".encode("utf-16"))
    batch = read_source("t", TextSource(format="text", path="u16.txt"), tmp_path)
    assert batch.rejected["_rule"].to_list() == ["corrupt"]


def test_source_with_no_rows_fails_unless_expected(tmp_path: Path):
    _pdf(tmp_path / "scan.pdf", [None, None])
    spec = PdfSource(format="pdf", path="scan.pdf")
    batch = read_source("scans", spec, tmp_path)
    assert batch.rows.height == 0 and batch.rejected["_rule"].to_list() == ["no_text", "no_text"]
    (diag,) = check_expectations(batch, spec)
    assert diag.code == "source-empty" and "0 rows" in diag.message and "2 no_text" in diag.hint
    allowed = PdfSource(format="pdf", path="scan.pdf", expect=ExpectSpec(min_rows=0))
    assert check_expectations(batch, allowed) == []


def test_clean_command_exits_nonzero_on_empty_source(tmp_path: Path):
    from click.testing import CliRunner

    from llmspec.cli import cli

    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "empty.md").write_text("\n\n", encoding="utf-8")
    spec = tmp_path / "llmspec.yaml"
    spec.write_text("llmspec: 1\nproject: d\nbase_model: {id: builtin:tiny}\nsources:\n"
                    "  docs: {format: markdown, path: docs}\n"
                    "format:\n  style: completion\n  map:\n    docs: {text: text}\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["clean", str(spec)])
    assert result.exit_code != 0
    assert "source-empty" in result.output and "0 rows" in result.output
    spec.write_text(spec.read_text().replace("{format: markdown, path: docs}",
                                             "{format: markdown, path: docs, expect: {min_rows: 0}}"))
    assert CliRunner().invoke(cli, ["clean", str(spec)]).exit_code == 0


def test_docs_project_from_html_and_pdf_compiles_clean_and_token_exact(tmp_path: Path, monkeypatch):
    """The issue's finish line without the training: HTML and PDF documentation become chat
    examples with no markup or navigation in them, and the compiled plan's counts are exact."""
    pytest.importorskip("axolotl")
    import json

    from llmspec.commands.compile import compile_project

    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "refunds.html").write_text(PAGE, encoding="utf-8")
    (tmp_path / "manuals").mkdir()
    _pdf(tmp_path / "manuals" / "widget.pdf", ["Installing the widget.\nPlug it in and wait.", None,
                                               "Cleaning the widget.\n" + "Use a dry cloth. " * 60])
    spec = tmp_path / "llmspec.yaml"
    spec.write_text("""llmspec: 1
project: docs
base_model: {id: builtin:tiny}
sources:
  site: {format: html, path: site}
  manuals: {format: pdf, path: manuals}
format:
  style: chat
  too_long: truncate
  map:
    site: {user: "{{ title }}: {{ heading }}", assistant: text}
    manuals: {user: "{{ title }}, page {{ page }}", assistant: text}
split: {eval_fraction: 0.0}
training: {hardware: cpu, sequence_len: 128, batch: {micro: 1, accumulate: 1}, epochs: 1}
""", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    plan = compile_project(spec, tmp_path / "out", n_examples=0)
    assert plan["clean"]["manuals"]["rows_in"] == 3 and plan["clean"]["manuals"]["rows_kept"] == 2
    records = [json.loads(x) for x in (tmp_path / "out" / "data" / "train.jsonl").read_text().splitlines()]
    text = json.dumps(records)
    for junk in ("NAVIGATION-LINK", "TRACKING-CODE", "SIDEBAR-AD", "FOOTER-COPYRIGHT", "<p>", "<script"):
        assert junk not in text
    assert len(records) == 3 + 2 and plan["dataset"]["per_source"]["manuals"]["truncated"] == 1
    tokens = plan["estimates"]["tokens"]
    assert tokens["method"] == "tokenizer" and tokens["max_per_example"] <= 128
    assert plan["estimates"]["examples"]["train"] == 5 and plan["estimates"]["steps"]["per_epoch"] == 5
    origins = (tmp_path / "out" / "data" / "origins.jsonl").read_text()
    assert "manuals/widget.pdf#page=3" in origins and "site/refunds.html#policy" in origins
