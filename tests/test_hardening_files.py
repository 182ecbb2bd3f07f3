"""Class 5 of issue 13, the data files: odd files give clear errors or correct results.

Column names are data, never patterns; a string that is not Unicode is rejected with a reason;
a byte order mark never costs a row; a file that is not a regular file, or holds nothing of its
format, fails its source by name; secrets never show in any spelling; a very wide file costs
time linear in its width.
"""

from __future__ import annotations

import json
import os
import socket
import time

import polars as pl
import pytest
from pydantic import TypeAdapter

from llmspec.compiler.cleaning import compile_cleaning
from llmspec.compiler.formatting import compile_format
from llmspec.runtime.clean.run import run_cleaning
from llmspec.runtime.dataset.build import build_dataset
from llmspec.runtime.sources import read_source
from llmspec.runtime.sources.expect import check_expectations
from llmspec.runtime.sources.secrets import scrub, secrets_of
from llmspec.spec.errors import DataError
from llmspec.spec.models import FormatSpec, QualitySpec, SourceSpec, SplitSpec

WEIRD = ["*", "^a.*$", "^q$", "a|b", "(x)"]


def source(fmt: str, path: str, **extra):
    return TypeAdapter(SourceSpec).validate_python({"format": fmt, "path": path, **extra})


def _write_weird(tmp_path, fmt: str) -> str:
    rows = [{**{w: f"{w} value {i}" for w in WEIRD}, "q": f"question {i} about  routers", "a": f"answer {i}"}
            for i in range(3)]
    rows.append(dict(rows[0]))  # an exact duplicate, for dedupe
    path = tmp_path / f"weird.{fmt}"
    if fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    elif fmt == "csv":
        pl.DataFrame(rows).write_csv(path)
    else:
        pl.DataFrame(rows).write_parquet(path)
    return path.name


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_column_names_are_data_never_patterns(tmp_path, fmt):
    name = _write_weird(tmp_path, fmt)
    spec = source(fmt, name, columns={"q": "str", "a": "str"})
    batch = read_source("s", spec, tmp_path)
    assert batch.rows.columns == [*WEIRD, "q", "a", "_origin"]
    # Spec names are identifiers; the rules without `columns` work on every (text) column.
    quality = QualitySpec.model_validate({"rules": [
        {"require": {"columns": ["q"]}}, {"normalize": {"unicode": "NFKC"}}, {"redact_pii": {}},
        {"drop_corrupt": {}}, {"length": {"column": "q", "max_chars": 1000}},
        {"dedupe": {"method": "exact"}}, {"dedupe": {"method": "fingerprint"}},
        {"dedupe": {"method": "minhash", "threshold": 0.95}},
    ]})
    plan = compile_cleaning(quality, "s", batch.rows.columns[:-1])
    result = run_cleaning(batch, plan)
    assert result.rows_kept == 3 and result.kept.columns == [*WEIRD, "q", "a", "_origin"]
    assert result.kept["*"].to_list() == [f"* value {i}" for i in range(3)]
    assert result.kept["q"].to_list() == [f"question {i} about routers" for i in range(3)]  # normalised
    fmt_plan = compile_format(FormatSpec.model_validate({"style": "completion", "map": {"s": {"text": "q"}}}))
    built = build_dataset({"s": result.kept}, fmt_plan, SplitSpec(eval_fraction=0.0), tmp_path / "out")
    assert built.train_size == 3


def test_a_lone_surrogate_escape_is_rejected_with_a_reason(tmp_path):
    lines = ['{"q": "\\ud800 alone"}', '{"q": "\\udc00 low alone"}', '{"q": "\\ud83d\\ude00 a paired emoji"}',
             '{"q": "\\\\ud800 a backslash, then text"}', '{"q": "x\\ud800"}']
    (tmp_path / "s.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    batch = read_source("s", source("jsonl", "s.jsonl"), tmp_path)
    assert batch.rows["q"].to_list() == ["😀 a paired emoji", "\\ud800 a backslash, then text"]
    rejected = batch.rejected.to_dicts()
    assert [r["_origin"] for r in rejected] == ["s.jsonl:1", "s.jsonl:2", "s.jsonl:5"]
    assert all("lone surrogate" in r["_detail"] and r["_rule"] == "corrupt" for r in rejected)
    assert batch.rows_in == 5


BOM = b"\xef\xbb\xbf"
BOM_FILES = {
    "jsonl": ("s.jsonl", b'{"q": "first"}\n{"q": "second"}\n', "q", "first"),
    "json": ("s.json", b'[{"q": "first"}, {"q": "second"}]', "q", "first"),
    "csv": ("s.csv", b"q\nfirst\nsecond\n", "q", "first"),
    "text": ("s.txt", b"first line\n", "text", "first line\n"),
    "markdown": ("s.md", b"# Title\n\nfirst body\n", "text", "first body"),
    "eml": ("s.eml", b"From: a@example.com\nSubject: first\nMessage-ID: <1@x>\n\nfirst body\n", "subject", "first"),
    "mbox": ("s.mbox", b"From a@example.com Mon Jan  1 00:00:00 2024\nFrom: a@example.com\nSubject: first\n"
             b"Message-ID: <1@x>\n\nfirst body\n\nFrom b@example.com Mon Jan  1 00:00:00 2024\n"
             b"From: b@example.com\nSubject: second\nMessage-ID: <2@x>\n\nsecond body\n", "subject", "first"),
}


@pytest.mark.parametrize("fmt", sorted(BOM_FILES))
def test_a_byte_order_mark_never_costs_the_first_row(tmp_path, fmt):
    name, body, column, first = BOM_FILES[fmt]
    (tmp_path / name).write_bytes(body)
    plain = read_source("s", source(fmt, name), tmp_path)
    (tmp_path / name).write_bytes(BOM + body)
    marked = read_source("s", source(fmt, name), tmp_path)
    assert marked.rows.drop("_origin").to_dicts() == plain.rows.drop("_origin").to_dicts()
    assert marked.rows[column][0] == first and marked.rejected.height == 0


CRLF_FILES = {
    "jsonl": ("s.jsonl", '{"q": "first"}\n{"q": "second"}\n'),
    "csv": ("s.csv", 'q,r\nfirst,"multi\nline"\nsecond,x\n'),
    "json": ("s.json", '[{"q": "first"},\n {"q": "second"}]'),
    "text": ("s.txt", "first line\nsecond line\n"),
    "markdown": ("s.md", "# Title\n\nfirst body\nmore\n"),
    "eml": ("s.eml", "From: a@example.com\nSubject: first\nMessage-ID: <1@x>\n\nfirst body\nline two\n"),
}


@pytest.mark.parametrize("fmt", sorted(CRLF_FILES))
def test_windows_line_endings_and_a_bom_read_like_unix_text(tmp_path, fmt):
    name, body = CRLF_FILES[fmt]
    seen = set()
    for bom in (b"", BOM):
        for newline in ("\n", "\r\n"):
            (tmp_path / name).write_bytes(bom + body.replace("\n", newline).encode())
            batch = read_source("s", source(fmt, name), tmp_path)
            seen.add(json.dumps(batch.rows.drop("_origin").to_dicts(), default=str))
    assert len(seen) == 1, seen


@pytest.mark.parametrize("kind", ["fifo", "socket"])
def test_a_file_that_is_not_regular_is_named_as_such(tmp_path, kind):
    path = tmp_path / "s.jsonl"
    if kind == "fifo":
        os.mkfifo(path)
    else:
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(path))
    with pytest.raises(DataError) as info:
        read_source("s", source("jsonl", "s.jsonl"), tmp_path)
    text = str(info.value)
    assert "not a regular file" in text and "no such file" not in text
    assert ("FIFO" if kind == "fifo" else "socket") in text


# Not UTF-8 anywhere, no NUL (so not refused as binary up front): of no text format at all.
JUNK = (bytes(range(128, 256)) * 4 + b"\n") * 6


@pytest.mark.parametrize("fmt,name", [("jsonl", "j.jsonl"), ("csv", "c.csv"), ("json", "j.json"), ("mbox", "m.mbox"),
                                      ("eml", "e.eml"), ("markdown", "m.md"), ("text", "t.txt")])
def test_a_pure_junk_file_fails_its_source_clearly_in_every_format(tmp_path, fmt, name):
    (tmp_path / name).write_bytes(JUNK)
    try:
        batch = read_source("s", source(fmt, name), tmp_path)
    except DataError as exc:
        message = str(exc)
    else:
        problems = [d for d in check_expectations(batch, source(fmt, name)) if d.severity == "error"]
        assert problems, f"a junk {fmt} file passed as a source"
        message = problems[0].render() if hasattr(problems[0], "render") else problems[0].message
    assert name in message or "0 rows" in message


@pytest.mark.parametrize("url,shown", [
    ("postgresql://u@h/db?password=S3cret%zz", 'invalid percent-encoded token: "S3cret%zz"'),
    ("postgresql://u:S3cret%zz@h/db", "password S3cret%zz for u"),
    ("postgresql://u:p%40ss%2Fw0rd@h/db", "auth failed: p@ss/w0rd p%40ss%2Fw0rd"),
    ("postgresql://h/db?sslmode=require&PassWord=S3cret", "S3cret rejected"),
    ("postgresql://h/db?sslpassword=S3cret+key", "S3cret key / S3cret+key"),
    ("host=h password='S3 cr\\'et' user=u", "bad password 'S3 cr\\'et' (S3 cr'et)"),
    ("host=h password=S3cret user=u", "password=S3cret"),
])
def test_secrets_are_scrubbed_in_every_spelling(url, shown):
    message = scrub(f"cannot connect to {url}: {shown}", secrets_of(url))
    assert "S3" not in message and "p@ss" not in message and "p%40ss" not in message, message


def test_the_postgres_reader_never_prints_the_password(tmp_path):
    pytest.importorskip("psycopg")
    spec = TypeAdapter(SourceSpec).validate_python({"format": "postgres", "url": "${env:CRM}", "query": "select 1"})
    for url in ("postgresql://u@127.0.0.1:1/db?password=S3cret%zz", "postgresql://u:S3cret%zz@127.0.0.1:1/db",
                "host=127.0.0.1 port=1 password='S3cret' dbname=d connect_timeout=2"):
        with pytest.raises(DataError) as info:
            read_source("crm", spec, tmp_path, env={"CRM": url})
        assert "S3cret" not in str(info.value)


def test_an_inline_password_in_any_url_form_is_refused_at_validate(write_spec, minimal_spec):
    from llmspec.spec.errors import SpecError
    from llmspec.spec.load import load_spec

    for text in ("postgresql://u@h/db?password=S3cret", "host=h dbname=d password=S3cret"):
        with pytest.raises(SpecError) as info:
            load_spec(write_spec(minimal_spec + f"description: {json.dumps(text)}\n"))
        assert "inline-secret" in str(info.value)


def _wide_csv(path, width: int, rows: int = 50) -> None:
    header = ["question", "answer"] + [f"c{i}" for i in range(width - 2)]
    lines = [",".join(header)] + [",".join([f"q{r}", f"a{r}"] + [f"v{r}_{i}" for i in range(width - 2)])
                                  for r in range(rows)]
    path.write_text("\n".join(lines) + "\n")


def _read_and_clean(tmp_path, width: int) -> float:
    _wide_csv(tmp_path / f"w{width}.csv", width)
    start = time.process_time()
    batch = read_source("w", source("csv", f"w{width}.csv"), tmp_path)
    quality = QualitySpec.model_validate({"rules": [{"require": {"columns": ["question", "answer"]}},
                                                    {"dedupe": {"columns": ["question"], "method": "exact"}}]})
    result = run_cleaning(batch, compile_cleaning(quality, "w", batch.rows.columns[:-1]))
    assert result.rows_kept == 50 and result.kept.width == width + 1
    return time.process_time() - start


def test_a_wide_csv_costs_time_linear_in_its_width(tmp_path):
    # 10,002 columns x 50 rows took 216 s: `df.schema[c]` rebuilds the whole schema per column.
    small = min(_read_and_clean(tmp_path, 2_500) for _ in range(2))
    large = min(_read_and_clean(tmp_path, 10_002) for _ in range(2))
    print(f"CPU: 2,500 columns {small:.2f} s, 10,002 columns {large:.2f} s, ratio {large / small:.1f} (linear: 4)")
    assert large / small < 8  # quadratic would be 16
