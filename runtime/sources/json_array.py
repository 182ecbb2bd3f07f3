"""A JSON document holding an array of objects (at the top, or under ``records: a.b``).

Columns, types and origins follow JSONL (see ``jsonl.py``); the origin of element ``i`` is a
JSON pointer: ``faq.json#/3``, or ``faq.json#/data/items/3`` with ``records: data.items``.
Units: the array's elements. An element that is not an object, or holds bytes that are not
UTF-8, is rejected as ``corrupt``; its ``_raw`` is the element re-serialised as JSON (the
document has no per-element bytes once parsed). A document that is not JSON at all, or has
no array where ``records`` points, fails the source: there are no units to count.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from . import _ndjson
from ._common import (Part, concat_rejects, contract_rejects, data_error, fail_if_nothing_readable, origins,
                      read_bytes, rejects)

_ESCAPED = re.compile("[\udc80-\udcff]")


def _dump(value) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=True)


def read_file(path: Path, shown: str, spec, contract) -> Part:
    import polars as pl

    data = read_bytes(path, shown)
    # surrogateescape keeps undecodable bytes apart, so one bad string rejects one element
    # instead of failing the whole document.
    text = data.decode("utf-8", errors="surrogateescape").lstrip("\ufeff")
    try:
        doc = json.loads(text)
    except RecursionError:
        raise data_error(f"{shown}: not readable as JSON (nested too deeply)", shown, code="wrong-format") from None
    except ValueError as exc:
        raise data_error(f"{shown}: not readable as JSON: {exc.msg}", shown, code="wrong-format",
                         line=exc.lineno) from None
    pointer = ""
    if spec.records:
        for key in spec.records.split("."):
            if not isinstance(doc, dict) or key not in doc:
                have = ", ".join(list(doc)[:10]) if isinstance(doc, dict) else type(doc).__name__
                raise data_error(f"{shown}: records key {spec.records!r} not found (at {key!r}; found: {have})",
                                 shown, code="missing-records")
            doc = doc[key]
            pointer += "/" + key.replace("~", "~0").replace("/", "~1")
    if not isinstance(doc, list):
        where = f"under {spec.records!r}" if spec.records else "at the top level"
        raise data_error(f"{shown}: expected an array of objects {where}, found {type(doc).__name__}", shown,
                         code="not-an-array", hint=None if spec.records else
                         "set `records: KEY` to the key that holds the array")

    lines: list[str] = []
    good: list[int] = []
    bad_i: list[int] = []
    bad_why: list[str] = []
    bad_raw: list[bytes] = []
    for i, item in enumerate(doc):
        try:
            line = _dump(item)
        except (ValueError, RecursionError):
            line = repr(item)
        why = None
        if not isinstance(item, dict):
            why = f"not a JSON object ({type(item).__name__})"
        elif _ESCAPED.search(line):
            why = "not valid UTF-8"
        if why:
            bad_i.append(i)
            bad_why.append(why)
            bad_raw.append(line.encode("utf-8", "surrogateescape"))
            continue
        lines.append(line)
        good.append(i)
    buffer = "\n".join(lines).encode("utf-8", "surrogatepass")
    parsed = _ndjson.parse(buffer, shown)
    # Serialised elements are valid JSON objects, so every line is a row: map rows back.
    idx = pl.Series([good[r] for r in parsed.rows.tolist()], dtype=pl.Int64)
    corrupt = rejects("corrupt", bad_why, [f"{shown}#{pointer}/{i}" for i in bad_i], bad_raw)
    extra = rejects("corrupt", [why for _, why in parsed.corrupt],
                    [f"{shown}#{pointer}/{good[r]}" for r, _ in parsed.corrupt],
                    [lines[r].encode("utf-8", "surrogatepass") for r, _ in parsed.corrupt])
    frame = parsed.frame.with_columns(origins(f"{shown}#{pointer}/", idx))
    bad = concat_rejects([corrupt, extra])
    fail_if_nothing_readable(len(doc), frame.height, bad, shown, "element", "an array of objects")
    if not contract:
        return Part(frame, bad, len(doc))
    good_rows, wrong = _ndjson.check_contract(frame, parsed.buffer, contract, shown)
    return Part(good_rows, concat_rejects([bad, contract_rejects(wrong)]), len(doc))
