"""Source readers on real files written by the tests: rows, origins, rejects, contracts."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import polars as pl
import pytest

from llmspec.runtime.sources.profile import profile_frame
from llmspec.runtime.sources import SourceBatch, read_source, source_files
from llmspec.runtime.sources.expect import check_expectations
from llmspec.spec.errors import DataError
from llmspec.spec.models import (
    CsvSource,
    JsonlSource,
    JsonSource,
    MarkdownSource,
    ParquetSource,
    PostgresSource,
    SqliteSource,
    TextSource,
)


def _accounted(batch: SourceBatch) -> None:
    assert batch.rows_in == batch.rows.height + batch.rejected.height
    assert batch.rows.columns[-1] == "_origin"
    assert batch.rejected.schema == {"_rule": pl.String, "_detail": pl.String, "_origin": pl.String,
                                     "_raw": pl.Binary}


def _write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


# ----------------------------------------------------------------------------- JSONL

DIRTY_JSONL = b"\n".join([
    b'{"question": "Where is my order?", "answer": "On its way.", "n": 1}',
    b"",
    b"this line is not json",
    b'{"question": "Bad \xff\xfe bytes", "answer": "x", "n": 2}',
    b'{"question": "Truncated", "ans',
    b"[1, 2, 3]",
    b'{"question": "Refund?", "answer": "Within 30 days.", "n": 3}',
    b'{"question": "inner damage", "answer": "x" "n": 4}',
    b'   ',
    b'{"question": "Last", "answer": "Bye.", "n": 5}\r',
]) + b"\n"


def test_jsonl_isolates_every_bad_line_with_its_bytes(tmp_path: Path):
    _write(tmp_path / "data" / "t.jsonl", DIRTY_JSONL)
    batch = read_source("t", JsonlSource(format="jsonl", path="data/t.jsonl"), tmp_path)
    _accounted(batch)
    assert batch.files == ["data/t.jsonl"]
    assert batch.rows_in == 8  # blank and whitespace-only lines are not units
    assert batch.rows["question"].to_list() == ["Where is my order?", "Refund?", "Last"]
    assert batch.rows["_origin"].to_list() == ["data/t.jsonl:1", "data/t.jsonl:7", "data/t.jsonl:10"]
    rej = {r["_origin"]: r for r in batch.rejected.iter_rows(named=True)}
    assert set(rej) == {f"data/t.jsonl:{n}" for n in (3, 4, 5, 6, 8)}
    assert all(r["_rule"] == "corrupt" for r in rej.values())
    lines = DIRTY_JSONL.split(b"\n")
    for origin, r in rej.items():
        assert r["_raw"] == lines[int(origin.rsplit(":", 1)[1]) - 1]
    assert rej["data/t.jsonl:4"]["_detail"] == "not valid UTF-8 (byte 0xff at column 19)"
    assert rej["data/t.jsonl:6"]["_detail"] == "not a JSON object (an array)"
    assert rej["data/t.jsonl:3"]["_detail"].startswith("not JSON")


def test_jsonl_clean_file_types_and_late_keys(tmp_path: Path):
    lines = [json.dumps({"id": i, "text": f"row {i}", "meta": {"lang": "en"}, "tags": ["a"]}) for i in range(300)]
    lines.append(json.dumps({"id": 300, "text": "late", "extra": "appears after row 100"}))
    _write(tmp_path / "t.jsonl", "\n".join(lines))  # no final newline
    batch = read_source("t", JsonlSource(format="jsonl", path="t.jsonl"), tmp_path)
    _accounted(batch)
    assert batch.rows.height == 301 and batch.rejected.height == 0
    assert batch.rows.schema["id"] == pl.Int64
    assert isinstance(batch.rows.schema["meta"], pl.Struct) and isinstance(batch.rows.schema["tags"], pl.List)
    assert batch.rows["extra"].to_list()[-1] == "appears after row 100"
    assert batch.rows["_origin"][-1] == "t.jsonl:301"


def test_jsonl_objects_and_lists_under_one_key_become_json_text(tmp_path: Path):
    _write(tmp_path / "t.jsonl", '{"a": 1, "x": {"k": 1}}\n{"a": 2, "x": [1, 2]}\n{"a": 3}\n')
    batch = read_source("t", JsonlSource(format="jsonl", path="t.jsonl"), tmp_path)
    _accounted(batch)
    assert batch.rows["a"].to_list() == [1, 2, 3]
    assert [json.loads(v) if v else v for v in batch.rows["x"].to_list()] == [{"k": 1}, [1, 2], None]


def test_jsonl_contract_types_nulls_and_extra_columns(tmp_path: Path):
    rows = [
        {"q": "ok", "n": 1, "score": 0.5, "ok": True, "when": "2024-01-02T03:04:05Z", "tags": ["a"], "extra": 1},
        {"q": 42, "n": 2, "score": 1, "ok": False, "when": "2024-01-02", "tags": []},
        {"q": "n is text", "n": "3", "score": 1.5, "ok": True, "when": "2024-01-02 10:00", "tags": []},
        {"q": "n is float", "n": 2.5, "score": 1.5, "ok": True, "when": "2024-01-02", "tags": []},
        {"q": None, "n": 5, "score": 1.5, "ok": True, "when": "2024-01-02", "tags": []},
        {"q": "bad date", "n": 6, "score": 1.5, "ok": True, "when": "yesterday", "tags": []},
        {"q": "bool as text", "n": 7, "score": 1.5, "ok": "true", "when": "2024-01-02", "tags": []},
        {"q": "tags not a list", "n": 8, "score": 1.5, "ok": True, "when": "2024-01-02", "tags": "a,b"},
        {"q": "optional missing", "n": 9, "score": None, "ok": True, "when": "2024-01-02", "tags": []},
    ]
    _write(tmp_path / "t.jsonl", "\n".join(json.dumps(r) for r in rows))
    spec = JsonlSource(format="jsonl", path="t.jsonl", columns={
        "q": "str", "n": "int", "score": "float?", "ok": "bool", "when": "datetime", "tags": "list", "note": "str?"})
    batch = read_source("t", spec, tmp_path)
    _accounted(batch)
    assert batch.rows["n"].to_list() == [1, 9]
    assert batch.rows.schema["n"] == pl.Int64 and batch.rows.schema["score"] == pl.Float64
    assert batch.rows.schema["when"] == pl.Datetime("us", "UTC")
    assert batch.rows["when"][0].isoformat() == "2024-01-02T03:04:05+00:00"
    assert batch.rows["note"].to_list() == [None, None]  # optional, absent: added as nulls
    assert batch.rows["extra"].to_list() == [1, None]  # undeclared columns are kept
    details = dict(zip(batch.rejected["_origin"], batch.rejected["_detail"]))
    assert details == {
        "t.jsonl:2": "column 'q': expected str, got int",
        "t.jsonl:3": "column 'n': expected int, got str '3'",
        "t.jsonl:4": "column 'n': expected int, got float",
        "t.jsonl:5": "column 'q': expected str, got null",
        "t.jsonl:6": "column 'when': expected datetime, got str 'yesterday'",
        "t.jsonl:7": "column 'ok': expected bool, got str 'true'",
        "t.jsonl:8": "column 'tags': expected list, got str 'a,b'",
    }
    assert set(batch.rejected["_rule"]) == {"contract"}
    assert batch.rejected["_raw"].null_count() == batch.rejected.height


def test_jsonl_contract_strings_that_look_like_numbers_stay_strings(tmp_path: Path):
    _write(tmp_path / "t.jsonl", '{"zip": "01234"}\n{"zip": "true"}\n{"zip": "[x]"}\n{"zip": 1234}\n')
    batch = read_source("t", JsonlSource(format="jsonl", path="t.jsonl", columns={"zip": "str"}), tmp_path)
    assert batch.rows["zip"].to_list() == ["01234", "true", "[x]"]
    assert batch.rejected["_detail"].to_list() == ["column 'zip': expected str, got int"]


def test_missing_declared_column_fails_with_file_column_and_suggestion(tmp_path: Path):
    _write(tmp_path / "t.jsonl", '{"question": "a", "answer": "b"}\n')
    with pytest.raises(DataError) as err:
        read_source("t", JsonlSource(format="jsonl", path="t.jsonl", columns={"answr": "str"}), tmp_path)
    diag = err.value.first
    assert diag.code == "missing-column" and diag.pos.path == "t.jsonl"
    assert "'answr'" in diag.message and "question, answer" in diag.message
    assert diag.hint == "did you mean 'answer'?"


def test_missing_file_glob_and_unsafe_paths(tmp_path: Path):
    with pytest.raises(DataError, match="data/nope.jsonl: no such file"):
        read_source("t", JsonlSource(format="jsonl", path="data/nope.jsonl"), tmp_path)
    with pytest.raises(DataError, match="no files match"):
        read_source("t", JsonlSource(format="jsonl", path="data/*.jsonl"), tmp_path)
    assert source_files(JsonlSource(format="jsonl", path="data/*.jsonl"), tmp_path) == []
    assert source_files(JsonlSource(format="jsonl", path="data/nope.jsonl"), tmp_path) == []
    for bad in ("../outside.jsonl", "/etc/passwd", "data/../../x.jsonl"):
        with pytest.raises(DataError, match="must be relative"):
            read_source("t", JsonlSource(format="jsonl", path=bad), tmp_path)


def test_glob_reads_every_file_in_sorted_order(tmp_path: Path):
    _write(tmp_path / "shards" / "b.jsonl", '{"x": 2}\nnope\n')
    _write(tmp_path / "shards" / "a.jsonl", '{"x": 1, "y": "only here"}\n')
    spec = JsonlSource(format="jsonl", path="shards/*.jsonl")
    assert [p.name for p in source_files(spec, tmp_path)] == ["a.jsonl", "b.jsonl"]
    batch = read_source("t", spec, tmp_path)
    _accounted(batch)
    assert batch.files == ["shards/a.jsonl", "shards/b.jsonl"]
    assert batch.rows["_origin"].to_list() == ["shards/a.jsonl:1", "shards/b.jsonl:1"]
    assert batch.rows["y"].to_list() == ["only here", None]
    assert batch.rejected["_origin"].to_list() == ["shards/b.jsonl:2"]
    assert source_files(PostgresSource(format="postgres", url="${env:X}", query="select 1"), tmp_path) == []


# ----------------------------------------------------------------------------- JSON array


def test_json_array_top_level_and_records_key(tmp_path: Path):
    items = [{"q": "a", "n": 1}, "not an object", {"q": "b", "n": 2}, {"q": 3, "n": 3}]
    _write(tmp_path / "top.json", json.dumps(items, indent=2))
    batch = read_source("t", JsonSource(format="json", path="top.json", columns={"q": "str"}), tmp_path)
    _accounted(batch)
    assert batch.rows_in == 4
    assert batch.rows["_origin"].to_list() == ["top.json#/0", "top.json#/2"]
    rej = {r["_origin"]: r for r in batch.rejected.iter_rows(named=True)}
    assert rej["top.json#/1"]["_rule"] == "corrupt" and rej["top.json#/1"]["_raw"] == b'"not an object"'
    assert rej["top.json#/3"]["_detail"] == "column 'q': expected str, got int"

    _write(tmp_path / "nested.json", json.dumps({"meta": {}, "data": {"items": [{"q": "x"}, {"q": "y"}]}}))
    nested = read_source("t", JsonSource(format="json", path="nested.json", records="data.items"), tmp_path)
    assert nested.rows["_origin"].to_list() == ["nested.json#/data/items/0", "nested.json#/data/items/1"]
    with pytest.raises(DataError, match="records key 'data.itemz' not found"):
        read_source("t", JsonSource(format="json", path="nested.json", records="data.itemz"), tmp_path)
    with pytest.raises(DataError, match="expected an array of objects at the top level"):
        read_source("t", JsonSource(format="json", path="nested.json"), tmp_path)


def test_json_array_bad_bytes_reject_one_element_and_broken_file_fails(tmp_path: Path):
    _write(tmp_path / "t.json", b'[{"q": "fine"}, {"q": "bad \xff byte"}, {"q": "also fine"}]')
    batch = read_source("t", JsonSource(format="json", path="t.json"), tmp_path)
    _accounted(batch)
    assert batch.rows["q"].to_list() == ["fine", "also fine"]
    bad = batch.rejected.row(0, named=True)
    assert bad["_origin"] == "t.json#/1" and b"\xff" in bad["_raw"]
    _write(tmp_path / "broken.json", '[{"q": "a"}, {"q": ')
    with pytest.raises(DataError, match="broken.json: not readable as JSON"):
        read_source("t", JsonSource(format="json", path="broken.json"), tmp_path)


# ----------------------------------------------------------------------------- CSV


def test_csv_ragged_rows_quotes_and_bad_bytes(tmp_path: Path):
    data = (b'question,answer,n\n'
            b'"Where, exactly?","Here",1\n'
            b'too,many,fields,here\n'
            b'"multi\nline",ok,2\n'
            b'\n'
            b'too few\n'
            b'bad \xff bytes,x,3\n'
            b'empty,,4\n')
    _write(tmp_path / "t.csv", data)
    batch = read_source("t", CsvSource(format="csv", path="t.csv"), tmp_path)
    _accounted(batch)
    assert batch.rows_in == 6
    assert batch.rows.to_dicts() == [
        {"question": "Where, exactly?", "answer": "Here", "n": "1", "_origin": "t.csv:2"},
        {"question": "multi\nline", "answer": "ok", "n": "2", "_origin": "t.csv:4"},
        {"question": "empty", "answer": None, "n": "4", "_origin": "t.csv:9"},
    ]
    rej = batch.rejected.to_dicts()
    assert [(r["_origin"], r["_detail"], r["_raw"]) for r in rej] == [
        ("t.csv:3", "expected 3 fields, got 4", b"too,many,fields,here"),
        ("t.csv:7", "expected 3 fields, got 1", b"too few"),
        ("t.csv:8", "not valid UTF-8", b"bad \xff bytes,x,3"),
    ]


def test_csv_contract_parses_text_and_rejects_what_does_not_parse(tmp_path: Path):
    _write(tmp_path / "t.csv", "q;n;ok;when\na;1;yes;2024-05-01\nb;x;no;2024-05-01\nc;3;maybe;2024-05-01\n"
                               "d;4;TRUE;not a date\n;5;false;2024-05-01T10:00:00+02:00\n")
    spec = CsvSource(format="csv", path="t.csv", delimiter=";",
                     columns={"q": "str?", "n": "int", "ok": "bool", "when": "datetime"})
    batch = read_source("t", spec, tmp_path)
    _accounted(batch)
    assert batch.rows.select("q", "n", "ok").rows() == [("a", 1, True), (None, 5, False)]
    assert batch.rows["when"][1].isoformat() == "2024-05-01T08:00:00+00:00"
    assert batch.rejected["_detail"].to_list() == [
        "column 'n': expected int, got str 'x'",
        "column 'ok': expected bool, got str 'maybe'",
        "column 'when': expected datetime, got str 'not a date'",
    ]


def test_csv_without_header_takes_contract_names(tmp_path: Path):
    _write(tmp_path / "t.csv", "a,1\nb,2\n")
    batch = read_source("t", CsvSource(format="csv", path="t.csv", header=False,
                                       columns={"q": "str", "n": "int"}), tmp_path)
    assert batch.rows.select("q", "n").rows() == [("a", 1), ("b", 2)]
    assert batch.rows["_origin"].to_list() == ["t.csv:1", "t.csv:2"]
    plain = read_source("t", CsvSource(format="csv", path="t.csv", header=False), tmp_path)
    assert plain.rows.columns == ["column_1", "column_2", "_origin"]
    with pytest.raises(DataError, match="declared column 'question' is missing"):
        read_source("t", CsvSource(format="csv", path="t.csv", columns={"question": "str"}), tmp_path)


# ----------------------------------------------------------------------------- Parquet


def test_parquet_rows_contract_and_unreadable_file(tmp_path: Path):
    pl.DataFrame({"q": ["a", "b", None], "n": [1, 2, 3], "f": [0.5, 1.5, 2.5]}).write_parquet(tmp_path / "t.parquet")
    batch = read_source("t", ParquetSource(format="parquet", path="t.parquet", columns={"q": "str", "f": "int"}),
                        tmp_path)
    _accounted(batch)
    assert batch.rows.height == 0
    # The first failing column (in declared order) names the problem.
    assert batch.rejected["_detail"].to_list() == [
        "column 'f': expected int, got float", "column 'f': expected int, got float",
        "column 'q': expected str, got null"]
    ok = read_source("t", ParquetSource(format="parquet", path="t.parquet", columns={"n": "float"}), tmp_path)
    assert ok.rows["n"].to_list() == [1.0, 2.0, 3.0] and ok.rows["_origin"][2] == "t.parquet:row 3"
    _write(tmp_path / "fake.parquet", b"PAR1 this is not parquet at all")
    with pytest.raises(DataError, match="fake.parquet: not readable as Parquet"):
        read_source("t", ParquetSource(format="parquet", path="fake.parquet"), tmp_path)


# ----------------------------------------------------------------------------- text / markdown

GUIDE = """---
title: The Guide
---
Intro before any heading.

# Getting started

Install it.

## Install on Linux

```bash
# not a heading
apt install thing
```

### Details

Deep text stays in the section.

## Install on Linux

Second section with the same heading.

Setext heading
--------------

Under a setext heading.
"""


def test_markdown_sections_headings_slugs_and_origins(tmp_path: Path):
    _write(tmp_path / "docs" / "guide.md", GUIDE)
    _write(tmp_path / "docs" / "sub" / "empty.md", "# Only a title\n")
    spec = MarkdownSource(format="markdown", path="docs/**/*.md", heading_level=2)
    batch = read_source("d", spec, tmp_path)
    _accounted(batch)
    rows = batch.rows.to_dicts()
    assert [(r["heading"], r["_origin"]) for r in rows] == [
        (None, "docs/guide.md"),
        ("Getting started", "docs/guide.md#getting-started"),
        ("Install on Linux", "docs/guide.md#install-on-linux"),
        ("Install on Linux", "docs/guide.md#install-on-linux-1"),
        ("Setext heading", "docs/guide.md#setext-heading"),
    ]
    assert {r["title"] for r in rows} == {"The Guide"}
    assert rows[0]["text"] == "Intro before any heading."
    assert rows[2]["text"].startswith("```bash\n# not a heading") and "Deep text stays" in rows[2]["text"]
    assert rows[4]["text"] == "Under a setext heading."
    assert batch.files == ["docs/guide.md", "docs/sub/empty.md"]

    whole = read_source("d", MarkdownSource(format="markdown", path="docs/sub/empty.md", split="file"), tmp_path)
    assert whole.rows.to_dicts() == [{"path": "docs/sub/empty.md", "title": "Only a title", "heading": None,
                                      "text": "# Only a title", "_origin": "docs/sub/empty.md"}]


def test_text_files_one_record_each_and_bad_utf8_file(tmp_path: Path):
    _write(tmp_path / "notes" / "a.txt", "first file\n")
    _write(tmp_path / "notes" / "b.txt", b"latin-1 \xe9t\xe9\n")
    batch = read_source("n", TextSource(format="text", path="notes"), tmp_path)
    _accounted(batch)
    assert batch.rows.to_dicts() == [{"path": "notes/a.txt", "text": "first file\n", "_origin": "notes/a.txt"}]
    bad = batch.rejected.row(0, named=True)
    assert bad["_origin"] == "notes/b.txt" and bad["_raw"] == b"latin-1 \xe9t\xe9\n"


# ----------------------------------------------------------------------------- SQLite


def test_sqlite_query_types_bad_text_and_contract(tmp_path: Path):
    db = tmp_path / "app.sqlite"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE t (id INTEGER, q, score REAL, created TEXT)")  # q: no affinity
    con.executemany("INSERT INTO t VALUES (?, ?, ?, ?)", [
        (1, "hello", 0.5, "2024-01-01 10:00:00"),
        (2, "world", None, "2024-01-02"),
        (3, 42, 1.0, "2024-01-03"),
    ])
    con.execute("INSERT INTO t VALUES (4, CAST(X'62616420ff' AS TEXT), 2.0, '2024-01-04')")
    con.execute("INSERT INTO t VALUES (5, 'when', 2.0, 'not a date')")
    con.commit()
    con.close()
    spec = SqliteSource(format="sqlite", path="app.sqlite", query="SELECT id, q, score, created FROM t ORDER BY id",
                        columns={"id": "int", "q": "str", "score": "float?", "created": "datetime"})
    batch = read_source("db", spec, tmp_path)
    _accounted(batch)
    assert batch.rows.select("id", "q", "score").rows() == [(1, "hello", 0.5), (2, "world", None)]
    assert batch.rows["created"][0].isoformat() == "2024-01-01T10:00:00+00:00"
    assert batch.rows["_origin"].to_list() == ["app.sqlite:row 1", "app.sqlite:row 2"]
    rej = batch.rejected.to_dicts()
    assert [(r["_rule"], r["_origin"], r["_detail"]) for r in rej] == [
        ("corrupt", "app.sqlite:row 4", "column 'q' is not valid UTF-8"),
        ("contract", "app.sqlite:row 3", "column 'q': expected str, got int"),
        ("contract", "app.sqlite:row 5", "column 'created': expected datetime, got str 'not a date'"),
    ]
    assert rej[0]["_raw"] == b"bad \xff"


def test_sqlite_is_read_only_and_errors_are_data_errors(tmp_path: Path):
    db = tmp_path / "app.sqlite"
    sqlite3.connect(db).execute("CREATE TABLE t (x)").connection.commit()
    with pytest.raises(DataError, match="query failed"):
        read_source("db", SqliteSource(format="sqlite", path="app.sqlite", query="DELETE FROM t"), tmp_path)
    with pytest.raises(DataError, match="no such table"):
        read_source("db", SqliteSource(format="sqlite", path="app.sqlite", query="SELECT * FROM nope"), tmp_path)
    _write(tmp_path / "fake.sqlite", b"not a database" * 100)
    with pytest.raises(DataError, match="fake.sqlite: not readable as SQLite"):
        read_source("db", SqliteSource(format="sqlite", path="fake.sqlite", query="SELECT 1"), tmp_path)


# ----------------------------------------------------------------------------- PostgreSQL

PG_URL = os.environ.get("LLMSPEC_TEST_POSTGRES_URL")
needs_pg = pytest.mark.skipif(not PG_URL, reason="LLMSPEC_TEST_POSTGRES_URL is not set: run "
                              "`eval \"$(bash .ci/postgres.sh)\"` to start a throwaway server")


@pytest.fixture
def pg_table():
    import psycopg

    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS llmspec_tickets")
        conn.execute("CREATE TABLE llmspec_tickets (id serial PRIMARY KEY, question text, answer text, "
                     "score numeric, created timestamptz, meta jsonb, tags text[])")
        conn.execute("INSERT INTO llmspec_tickets (question, answer, score, created, meta, tags) VALUES "
                     "('Where is my order?', 'On its way.', 1.5, '2024-01-01 10:00+02', '{\"lang\": \"en\"}', "
                     "'{a,b}'), ('Refund?', NULL, 2, '2024-01-02 10:00+00', NULL, '{}')")
    yield "llmspec_tickets"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS llmspec_tickets")


@pytest.mark.postgres
@needs_pg
def test_postgres_reads_a_real_table(pg_table, tmp_path: Path):
    spec = PostgresSource(format="postgres", url="${env:CRM_URL}",
                          query=f"SELECT question, answer, score, created, meta, tags FROM {pg_table} ORDER BY id",
                          columns={"question": "str", "answer": "str", "created": "datetime", "score": "float"})
    batch = read_source("crm", spec, tmp_path, env={"CRM_URL": PG_URL})
    _accounted(batch)
    assert batch.files == []
    assert batch.rows["question"].to_list() == ["Where is my order?"]
    assert batch.rows["created"][0].isoformat() == "2024-01-01T08:00:00+00:00"
    assert batch.rows["score"].to_list() == [1.5]
    assert json.loads(batch.rows["meta"][0]) == {"lang": "en"}
    assert batch.rows["tags"].to_list() == [["a", "b"]]
    assert batch.rows["_origin"].to_list() == ["crm:row 1"]
    assert batch.rejected.select("_rule", "_origin", "_detail").rows() == [
        ("contract", "crm:row 2", "column 'answer': expected str, got null")]


@pytest.mark.postgres
@needs_pg
def test_postgres_secret_never_appears_in_errors(pg_table, tmp_path: Path):
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(PG_URL)
    secret = "Wr0ng-S3cret-pw"
    netloc = f"{parts.username}:{secret}@{parts.hostname}:{parts.port}"
    bad_url = urlunsplit(parts._replace(netloc=netloc))
    spec = PostgresSource(format="postgres", url="${env:CRM_URL}", query=f"SELECT * FROM {pg_table}")
    with pytest.raises(DataError) as err:
        read_source("crm", spec, tmp_path, env={"CRM_URL": bad_url})
    text = "\n".join([str(err.value), repr(err.value), err.value.render(), repr(err.value.__context__),
                      repr(err.value.__cause__)])
    assert "password authentication failed" in text
    assert secret not in text and bad_url not in text
    # A query error on a good connection: no URL either.
    spec = PostgresSource(format="postgres", url="${env:CRM_URL}", query="SELECT * FROM no_such_table")
    with pytest.raises(DataError) as err:
        read_source("crm", spec, tmp_path, env={"CRM_URL": PG_URL})
    assert "no_such_table" in str(err.value) and PG_URL not in str(err.value)
    assert urlsplit(PG_URL).password not in str(err.value)
    # A write statement is refused before it reaches the database ...
    spec = PostgresSource(format="postgres", url="${env:CRM_URL}", query=f"DELETE FROM {pg_table} RETURNING id")
    with pytest.raises(DataError, match="unsafe-query"):
        read_source("crm", spec, tmp_path, env={"CRM_URL": PG_URL})
    # ... and a write the text cannot show (a function that writes) by the read-only transaction.
    import psycopg

    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"CREATE OR REPLACE FUNCTION llmspec_sneaky_write() RETURNS int LANGUAGE sql AS "
                     f"'DELETE FROM {pg_table} RETURNING 1'")
    try:
        spec = PostgresSource(format="postgres", url="${env:CRM_URL}", query="SELECT llmspec_sneaky_write()")
        with pytest.raises(DataError, match="read-only transaction"):
            read_source("crm", spec, tmp_path, env={"CRM_URL": PG_URL})
        with psycopg.connect(PG_URL) as conn:
            assert conn.execute(f"SELECT count(*) FROM {pg_table}").fetchone()[0] == 2
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute("DROP FUNCTION IF EXISTS llmspec_sneaky_write()")


def test_postgres_env_variable_must_be_set_and_literal_urls_are_refused(tmp_path: Path):
    spec = PostgresSource(format="postgres", url="${env:LLMSPEC_SURELY_UNSET_VAR}", query="SELECT 1")
    with pytest.raises(DataError, match="LLMSPEC_SURELY_UNSET_VAR is not set"):
        read_source("crm", spec, tmp_path, env={})
    literal = PostgresSource(format="postgres", url="postgresql://u:hunter2@db/x", query="SELECT 1")
    with pytest.raises(DataError) as err:
        read_source("crm", literal, tmp_path, env={})
    assert "hunter2" not in str(err.value) and "${env:NAME}" in str(err.value)


def test_secret_scrubbing_covers_encoded_passwords():
    from llmspec.runtime.sources.postgres import scrub, secrets_of

    url = "postgresql://user:p%40ss%2Fw0rd@host:5432/db"
    msg = "failed for postgresql://user:p%40ss%2Fw0rd@host:5432/db with p@ss/w0rd and p%40ss%2Fw0rd"
    assert scrub(msg, secrets_of(url)) == "failed for *** with *** and ***"
    assert scrub("password=abc123 x", secrets_of("host=h password=abc123 user=u")) == "password=*** x"


# ----------------------------------------------------------------------------- expect


def test_expectations_report_the_numbers(tmp_path: Path):
    _write(tmp_path / "t.jsonl", '{"q": "a", "a": null}\n{"q": "b", "a": "x"}\nbroken\n')
    spec = JsonlSource(format="jsonl", path="t.jsonl", expect={
        "min_rows": 100, "max_null_fraction": 0.25, "max_corrupt_fraction": 0.1})
    batch = read_source("tickets", spec, tmp_path)
    diags = check_expectations(batch, spec)
    messages = [d.message for d in diags]
    assert messages == [
        "tickets: 2 rows, expect.min_rows is 100",
        "tickets: column 'a' is 50.0% null (1 of 2 rows), expect.max_null_fraction is 0.25",
        "tickets: 1 of 3 units unreadable (33.3%), expect.max_corrupt_fraction is 0.1",
    ]
    assert diags[0].hint == "3 units were read; rejected: 1 corrupt"
    per_col = JsonlSource(format="jsonl", path="t.jsonl", expect={"max_rows": 1,
                                                                  "max_null_fraction": {"q": 0.0, "qq": 0.5}})
    msgs = [d.message for d in check_expectations(batch, per_col)]
    assert msgs == ["tickets: 2 rows, expect.max_rows is 1",
                    "tickets: expect.max_null_fraction names column 'qq', which the source does not have"]
    assert check_expectations(batch, JsonlSource(format="jsonl", path="t.jsonl")) == []


# ----------------------------------------------------------------------------- profile


def test_profile_lengths_nulls_duplicates_and_binary_share():
    df = pl.DataFrame({
        "q": ["abcd", "abcd", "x" * 40, None, "bad\x00bytes", "ok \ufffd"],
        "n": [1, 1, 2, 3, 4, 5],
        "_origin": ["f:1", "f:2", "f:3", "f:4", "f:5", "f:6"],
    })
    prof = profile_frame(df)
    assert prof["rows"] == 6
    assert prof["nulls"] == {"q": 1, "n": 0}
    assert prof["tokens_estimate"] == "chars/4"
    assert prof["text"]["q"]["chars"] == {"min": 4, "median": 4.0, "p95": 40.0, "max": 40}
    assert prof["text"]["q"]["tokens"]["max"] == 10
    assert prof["duplicate_rows"] == 1 and prof["duplicate_rate"] == pytest.approx(1 / 6)
    assert prof["non_text_rows"] == 2 and prof["non_text_rate"] == pytest.approx(2 / 6)
    json.dumps(prof)
    empty = profile_frame(df.head(0))
    assert empty["rows"] == 0 and empty["duplicate_rate"] == 0.0
    assert profile_frame(df, text_columns=["q"])["text"].keys() == {"q"}


def test_profile_counts_non_text_rows_as_the_full_test_does_on_every_kind_of_character():
    """The profile tests rows for binary content only where a suspect character is (a prefilter):
    the count must equal the full test on every row, for each character the test looks at."""
    import random

    from llmspec.runtime.sources.profile import ProfileParts, _looks_binary

    rng = random.Random(5)
    odd = ["\x00", "\x07", "\x0b", "\x1f", "\x7f", "\x85", "\x9f", "\ufffd", "\ue000", "\U000f0000", "\u0378",
           "\t", "\n", "\r", "é", "日", "😀", " "]
    rows = ["".join(rng.choice(odd) if rng.random() < share else rng.choice("abc ")
                    for _ in range(rng.randint(0, 30)))
            for share in (0.0, 0.02, 0.1, 0.3, 0.9) for _ in range(200)]
    df = pl.DataFrame({"a": rows, "b": list(reversed(rows)), "n": list(range(len(rows)))})
    full = int(df.select(_looks_binary(["a", "b"]).sum()).item())
    assert 0 < full < df.height  # both kinds of row are there
    assert profile_frame(df)["non_text_rows"] == full
    parts = ProfileParts()
    for lo in range(0, df.height, 300):
        parts.add(df.slice(lo, 300))
    assert parts.result()["non_text_rows"] == full


def test_a_file_with_no_readable_unit_fails_naming_it(tmp_path: Path):
    _write(tmp_path / "t.jsonl", "question,answer\nwhat,that\n")
    with pytest.raises(DataError) as err:
        read_source("t", JsonlSource(format="jsonl", path="t.jsonl"), tmp_path)
    assert err.value.first.pos.path == "t.jsonl"
    assert "not one of its 2 lines could be read (t.jsonl:1: not JSON" in err.value.first.message
    _write(tmp_path / "t.json", "[1, 2]")
    with pytest.raises(DataError, match="t.json: not one of its 2 elements could be read"):
        read_source("t", JsonSource(format="json", path="t.json"), tmp_path)


def test_jsonl_damage_inside_lines_is_found_in_a_large_file(tmp_path: Path):
    lines = [json.dumps({"id": i, "text": f"ticket number {i}"}).encode() for i in range(3000)]
    lines[10] = lines[10].replace(b'"text":', b'"text";')  # even quote count: found by bisection
    lines[1500] = lines[1500].replace(b"ticket", b'tic"ket')  # odd quote count
    lines[2998] = lines[2998].replace(b'{"id"', b'{"id" "x"')
    _write(tmp_path / "t.jsonl", b"\n".join(lines) + b"\n")
    batch = read_source("t", JsonlSource(format="jsonl", path="t.jsonl"), tmp_path)
    _accounted(batch)
    assert batch.rejected["_origin"].to_list() == ["t.jsonl:11", "t.jsonl:1501", "t.jsonl:2999"]
    assert batch.rejected["_raw"].to_list() == [lines[10], lines[1500], lines[2998]]
    assert batch.rows["id"].to_list() == [i for i in range(3000) if i not in (10, 1500, 2998)]


def test_jsonl_line_with_a_lone_surrogate_escape_is_corrupt_with_a_reason(tmp_path):
    from llmspec.runtime.sources import read_source
    from llmspec.spec.models import JsonlSource

    (tmp_path / "t.jsonl").write_bytes(b'{"q": "fine \\ud83d\\ude00"}\n{"q": "broken \\ud800\\udb00"}\n')
    batch = read_source("src", JsonlSource(format="jsonl", path="t.jsonl"), tmp_path)
    assert batch.rows["q"].to_list() == ["fine \U0001F600"]
    (detail,) = batch.rejected["_detail"].to_list()
    assert "lone surrogate" in detail
