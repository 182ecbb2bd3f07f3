"""Randomly damaged files never crash a reader, and every unit is accounted for.

Valid JSONL / CSV / mbox files are generated, then damaged (bytes flipped, inserted,
deleted, invalid UTF-8 spliced in, the file cut short). Whatever comes out: only an
LlmspecError may be raised; rows_in == rows + rejects; every unreadable unit keeps the
exact bytes it had in the file.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path

import polars as pl
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from llmspec.runtime.sources import read_source
from llmspec.spec.errors import LlmspecError
from llmspec.spec.models import CsvSource, JsonlSource, MboxSource

# LLMSPEC_PROPERTY_EXAMPLES=2000 for a longer hunt than the quick default.
N = int(os.environ.get("LLMSPEC_PROPERTY_EXAMPLES", "80"))
SETTINGS = settings(max_examples=N, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=20)
_scalar = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                    st.floats(allow_nan=False, allow_infinity=False, width=32), _text)
_value = st.one_of(_scalar, st.lists(st.integers(0, 9), max_size=3), st.fixed_dictionaries({"k": _text}))
_record = st.dictionaries(st.sampled_from(["q", "a", "n", "meta", "tags", "x"]), _value, max_size=5)

INVALID_UTF8 = [b"\xff", b"\xfe", b"\xc3", b"\xe2\x82", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\x80\x80"]


@st.composite
def damaged(draw, valid: bytes) -> bytes:
    data = bytearray(valid)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "utf8", "truncate", "newline"]))
        pos = draw(st.integers(0, len(data))) if data else 0
        if op == "flip" and pos < len(data):
            data[pos] ^= draw(st.integers(1, 255))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=4))
        elif op == "delete" and data:
            data[pos:pos + draw(st.integers(1, 5))] = b""
        elif op == "utf8":
            data[pos:pos] = draw(st.sampled_from(INVALID_UTF8))
        elif op == "truncate":
            del data[pos:]
        elif op == "newline":
            data[pos:pos] = draw(st.sampled_from([b"\n", b"\r\n", b"\n\n", b'"']))
    return bytes(data)


def _read(spec, name: str, data: bytes):
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / name).write_bytes(data)
        try:
            return read_source("src", spec, Path(tmp))
        except LlmspecError:
            return None


def _is_object(line: bytes) -> bool:
    """A JSON object that UTF-8 text can hold: Python's json also accepts lone surrogate escapes
    ("\\ud800" without its pair), which no reader of UTF-8 can keep."""
    try:
        obj = json.loads(line.decode("utf-8"))
        json.dumps(obj, ensure_ascii=False).encode("utf-8")
    except (UnicodeDecodeError, UnicodeEncodeError, ValueError, RecursionError):
        return False
    return isinstance(obj, dict)


def _check_batch(batch) -> None:
    assert batch.rows_in == batch.rows.height + batch.rejected.height
    assert batch.rows["_origin"].null_count() == 0
    corrupt = batch.rejected.filter(pl.col("_rule") == "corrupt")
    assert corrupt["_raw"].null_count() == 0
    other = batch.rejected.filter(pl.col("_rule") != "corrupt")
    assert other["_raw"].null_count() == other.height


@st.composite
def jsonl_files(draw) -> tuple[bytes, bytes]:
    records = draw(st.lists(_record, min_size=1, max_size=12))
    ascii_only = draw(st.booleans())
    valid = "\n".join(json.dumps(r, ensure_ascii=ascii_only) for r in records).encode() + b"\n"
    return valid, draw(damaged(valid))


_LONE_SURROGATE = b'{"meta": "\\u001f\\ud800\\udc00", "tags": "\\u0007\\ud800\\udb00"}\n'  # found by Hypothesis


@SETTINGS
@given(files=jsonl_files(), contract=st.sampled_from([None, {"q": "str?", "n": "int?"}, {"a": "float?"}]))
@example(files=(_LONE_SURROGATE, _LONE_SURROGATE), contract=None)
def test_damaged_jsonl(files, contract):
    _, data = files
    batch = _read(JsonlSource(format="jsonl", path="t.jsonl", columns=contract), "t.jsonl", data)
    lines = data.split(b"\n")
    if batch is None:
        # Optional columns only: the source fails only when not one line is a JSON object.
        assert not any(_is_object(ln) for ln in lines)
        return
    _check_batch(batch)
    assert batch.rows_in == sum(1 for ln in lines if ln.strip(b" \t\r\n"))
    for origin, raw in zip(batch.rejected["_origin"], batch.rejected["_raw"]):
        if raw is not None:
            assert raw == lines[int(origin.rsplit(":", 1)[1]) - 1]
    for origin in batch.rows["_origin"]:
        line = lines[int(origin.rsplit(":", 1)[1]) - 1]
        assert isinstance(json.loads(line.decode("utf-8")), dict)


@st.composite
def csv_files(draw) -> tuple[bytes, bytes]:
    width = draw(st.integers(1, 4))
    field = st.text(alphabet=st.sampled_from(list('ab ,"\n\r;é€')), max_size=8)
    rows = draw(st.lists(st.lists(field, min_size=width, max_size=width), min_size=1, max_size=10))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")  # so fields holding \r or \n get quoted
    writer.writerow([f"c{i}" for i in range(width)])
    writer.writerows(rows)
    valid = out.getvalue().encode()
    return valid, draw(damaged(valid))


@SETTINGS
@given(files=csv_files(), contract=st.sampled_from([None, {"c0": "str?"}, {"c0": "int?"}]))
def test_damaged_csv(files, contract):
    _, data = files
    batch = _read(CsvSource(format="csv", path="t.csv", columns=contract), "t.csv", data)
    if batch is None:
        return
    _check_batch(batch)
    for raw in batch.rejected["_raw"]:
        if raw is not None:
            assert raw in data


def test_valid_files_lose_nothing():
    """The undamaged generators' output reads without a single reject (sanity for the above)."""

    @settings(max_examples=30, deadline=None)
    @given(j=jsonl_files(), c=csv_files())
    def run(j, c):
        batch = _read(JsonlSource(format="jsonl", path="t.jsonl"), "t.jsonl", j[0])
        assert batch is not None and batch.rejected.height == 0
        assert batch.rows_in == j[0].count(b"\n")
        batch = _read(CsvSource(format="csv", path="t.csv"), "t.csv", c[0])
        assert batch is not None and batch.rejected.height == 0

    run()


@st.composite
def mbox_files(draw) -> tuple[bytes, bytes]:
    parts = []
    for i in range(draw(st.integers(1, 4))):
        body = "\n".join(draw(st.lists(st.sampled_from(["ab", "> q", "-- ", "On x wrote:", "", "From me"]),
                                        max_size=6)))
        irt = f"In-Reply-To: <m{i - 1}@x>\n" if i else ""
        parts.append(f"From x@y Mon Jan  1 00:00:00 2024\nFrom: u{i}@example.com\nMessage-ID: <m{i}@x>\n{irt}"
                     f"Subject: s{i}\n\n{body}\n\n")
    valid = "".join(parts).encode()
    return valid, draw(damaged(valid))


@settings(max_examples=max(N // 2, 1), deadline=None)
@given(files=mbox_files(), pairing=st.booleans())
def test_damaged_mbox(files, pairing):
    _, data = files
    spec = MboxSource(format="mbox", path="m.mbox", pairing={"agent": ["u1@*"]} if pairing else None)
    batch = _read(spec, "m.mbox", data)
    if batch is None:
        return
    _check_batch(batch)
    for raw in batch.rejected["_raw"]:
        if raw is not None:
            assert raw in data
