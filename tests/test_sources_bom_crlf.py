"""Encodings details never cost a row, in any reader: the same records written as JSONL, JSON
and CSV, with and without a UTF-8 byte-order mark, with LF or CRLF line ends and with or
without a final newline, read back as the same rows with no rejects. (The JSONL reader's own
BOM and surrogate cases are in test_sources.py / test_sources_property.py; this file checks
the readers agree with each other.)"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from llmspec.runtime.sources import read_source
from llmspec.spec.models import CsvSource, JsonlSource, JsonSource, SqliteSource, TextSource

RECORDS = [
    {"question": "Où est ma commande ?", "answer": "En route, livraison jeudi."},
    {"question": "Refund window?", "answer": "30 days, unused."},
    {"question": "Emoji ok? 🙂", "answer": "Yes: \u00e9\u00e8 and 🙂 survive."},
]
BOM = b"\xef\xbb\xbf"


def _jsonl(eol: str) -> str:
    return eol.join(json.dumps(r, ensure_ascii=False) for r in RECORDS)


def _json(eol: str) -> str:
    return json.dumps(RECORDS, ensure_ascii=False, indent=2).replace("\n", eol)


def _csv(eol: str) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=["question", "answer"], lineterminator=eol)
    writer.writeheader()
    writer.writerows(RECORDS)
    return out.getvalue().rstrip("\r\n")


FORMATS = {
    "jsonl": (_jsonl, lambda p: JsonlSource(format="jsonl", path=p)),
    "json": (_json, lambda p: JsonSource(format="json", path=p)),
    "csv": (_csv, lambda p: CsvSource(format="csv", path=p)),
}


@pytest.mark.parametrize("final_newline", [True, False], ids=["final-eol", "no-final-eol"])
@pytest.mark.parametrize("eol", ["\n", "\r\n"], ids=["lf", "crlf"])
@pytest.mark.parametrize("bom", [False, True], ids=["no-bom", "bom"])
@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_every_reader_yields_the_same_rows(tmp_path: Path, fmt: str, bom: bool, eol: str,
                                           final_newline: bool) -> None:
    render, make_spec = FORMATS[fmt]
    text = render(eol) + (eol if final_newline else "")
    path = tmp_path / "data" / f"t.{fmt}"
    path.parent.mkdir()
    path.write_bytes((BOM if bom else b"") + text.encode("utf-8"))
    batch = read_source("t", make_spec(f"data/t.{fmt}"), tmp_path)
    assert batch.rejected.height == 0, batch.rejected.to_dicts()
    assert batch.rows_in == len(RECORDS)
    assert batch.rows.select("question", "answer").to_dicts() == RECORDS


@pytest.mark.parametrize("eol", ["\n", "\r\n"], ids=["lf", "crlf"])
@pytest.mark.parametrize("bom", [False, True], ids=["no-bom", "bom"])
def test_text_reader_drops_the_bom_and_keeps_the_text(tmp_path: Path, bom: bool, eol: str) -> None:
    path = tmp_path / "docs" / "a.txt"
    path.parent.mkdir()
    body = eol.join(["First line.", "Second line."])
    path.write_bytes((BOM if bom else b"") + body.encode("utf-8"))
    batch = read_source("d", TextSource(format="text", path="docs/*.txt"), tmp_path)
    assert batch.rows.height == 1 and batch.rejected.height == 0
    text = batch.rows.get_column("text")[0]
    assert not text.startswith("\ufeff")
    assert text.replace("\r\n", "\n") == "First line.\nSecond line."
