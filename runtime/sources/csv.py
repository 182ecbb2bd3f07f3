"""CSV (or any one-character delimiter), RFC 4180 quoting, UTF-8 (a BOM is ignored; a line
break inside a quoted value is "\n" whether the file ends its lines with "\r\n" or "\n").

Columns: the header's names (``header: true``); without a header the contract's names in
order, else ``column_1``, ``column_2``, ... Every value is text: CSV has no types, so a
contract's ``int``/``float``/``bool``/``datetime`` columns are parsed from it (see
``contract.py``); undeclared columns stay text. An empty field is null.
Origins: ``path:LINE``, the line where the record starts (the header is line 1).
Units: every non-blank record. A record with a different number of fields than the header
(or, without a header, than the first record), or holding bytes that are not UTF-8, is
rejected as ``corrupt`` with its bytes. A file in which not one record is readable fails
the source.
"""

from __future__ import annotations

import csv as _csv
import io
import re
from pathlib import Path

from ._common import (Part, concat_rejects, contract_rejects, data_error, fail_if_nothing_readable, origins,
                      read_bytes, rejects)

_ESCAPED = re.compile("[\udc80-\udcff]")
_FIELD_LIMIT = 1 << 27


def _reader(text: str, delimiter: str):
    if _csv.field_size_limit() < _FIELD_LIMIT:
        _csv.field_size_limit(_FIELD_LIMIT)
    return _csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quotechar='"', doublequote=True,
                       strict=False)


def _records(text: str, delimiter: str):
    """(first line, last line, fields or None when unparseable, error) per record."""
    reader = _reader(text, delimiter)
    prev = 0
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except _csv.Error as exc:
            first, prev = prev + 1, reader.line_num
            yield first, prev, None, f"not CSV: {exc}"
            continue
        first, prev = prev + 1, reader.line_num
        yield first, prev, fields, None


def read_file(path: Path, shown: str, spec, contract) -> Part:
    import polars as pl

    from .contract import add_absent, check_frame, require_columns

    data = read_bytes(path, shown)
    try:
        text, check_utf8 = data.decode("utf-8"), False
    except UnicodeDecodeError:
        # Undecodable bytes become lone surrogates, so the records holding them can be found.
        text, check_utf8 = data.decode("utf-8", errors="surrogateescape"), True
    if text.startswith("\ufeff"):
        text = text[1:]
    names: list[str] | None = None
    width: int | None = None
    rows: list[list[str]] = []
    row_lines: list[int] = []
    bad: list[tuple[int, int, str]] = []
    units = 0
    for first, last, fields, err in _records(text, spec.delimiter):
        if fields is not None and not fields:
            continue  # a blank line is no record
        bad_text = check_utf8 and (err is not None or any(_ESCAPED.search(f) for f in fields))
        if names is None and spec.header:
            if err or bad_text:
                raise data_error(f"{shown}: the header line cannot be read ({err or 'not valid UTF-8'})", shown,
                                 code="wrong-format", line=first)
            names = _header_names(fields, shown, first)
            width = len(names)
            continue
        units += 1
        why = err or ("not valid UTF-8" if bad_text else None)
        if why is None and width is None:
            width = len(fields)
        if why is None and len(fields) != width:
            why = f"expected {width} fields, got {len(fields)}"
        if why:
            bad.append((first, last, why))
            continue
        rows.append(fields)
        row_lines.append(first)
    if names is None:
        declared = [c.name for c in contract]
        n = width or 0
        names = declared[:n] + [f"column_{i + 1}" for i in range(len(declared[:n]), n)]
    frame = pl.DataFrame(rows, schema={n: pl.String for n in names}, orient="row")
    # CSV cannot tell an empty value from a missing one; both are null.
    frame = frame.with_columns(pl.nth(i).replace("", None) for i in range(frame.width))
    if "\r" in text:
        # A quoted value spanning lines keeps the file's line ending; text and markdown sources
        # read "\r\n" as "\n", and so does CSV, so one export reads alike from Windows and Unix.
        frame = frame.with_columns(pl.nth(i).str.replace_all("\r\n", "\n", literal=True) for i in range(frame.width))
    frame = frame.with_columns(origins(f"{shown}:", row_lines))
    rejected = rejects("corrupt", [w for _, _, w in bad], [f"{shown}:{a}" for a, _, _ in bad], _raws(text, bad))
    fail_if_nothing_readable(units, frame.height, rejected, shown, "record", "CSV with this delimiter")
    if not contract:
        return Part(frame, rejected, units)
    require_columns(names, contract, shown)
    frame = add_absent(frame, contract)
    good, wrong = check_frame(frame, contract, parse_strings=True)
    return Part(good, concat_rejects([rejected, contract_rejects(wrong)]), units)


def _raws(text: str, bad: list[tuple[int, int, str]]) -> list[bytes]:
    """The bytes of lines first..last of each bad record (only computed when there are some)."""
    if not bad:
        return []
    lines = list(io.StringIO(text, newline=""))
    return ["".join(lines[a - 1:b]).rstrip("\r\n").encode("utf-8", "surrogateescape") for a, b, _ in bad]


def _header_names(fields: list[str], shown: str, lineno: int) -> list[str]:
    names = [f.strip() or f"column_{i + 1}" for i, f in enumerate(fields)]
    seen: set[str] = set()
    dups = sorted({n for n in names if n in seen or seen.add(n)})
    if dups:
        raise data_error(f"{shown}: the header names {', '.join(map(repr, dups))} more than once", shown,
                         code="duplicate-column", line=lineno)
    if "_origin" in names:
        raise data_error(f"{shown}: a column may not be called '_origin' (llmspec uses that name)", shown,
                         code="reserved-column", line=lineno)
    return names
