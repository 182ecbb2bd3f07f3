"""CSV (or any one-character delimiter), RFC 4180 quoting, UTF-8 (a BOM is ignored).

Columns: the header's names (``header: true``); without a header the contract's names in
order, else ``column_1``, ``column_2``, ... Every value is text: CSV has no types, so a
contract's ``int``/``float``/``bool``/``datetime`` columns are parsed from it (see
``contract.py``); undeclared columns stay text. An empty field is null.
Origins: ``path:LINE``, the line where the record starts (the header is line 1).
Units: every non-blank record. A record with a different number of fields than the header
(or, without a header, than the first record), or holding bytes that are not UTF-8, is
rejected as ``corrupt`` with its bytes.
"""

from __future__ import annotations

import csv as _csv
import io
import re
from pathlib import Path

from ._common import Part, concat_rejects, contract_rejects, data_error, read_bytes, rejects

_ESCAPED = re.compile("[\udc80-\udcff]")
_FIELD_LIMIT = 1 << 27


class _Lines:
    """Feeds csv.reader line by line while remembering what each record consumed."""

    __slots__ = ("it", "taken", "lineno")

    def __init__(self, text: str):
        self.it = iter(io.StringIO(text, newline=""))
        self.taken: list[str] = []
        self.lineno = 0

    def __iter__(self):
        return self

    def __next__(self) -> str:
        line = next(self.it)
        self.taken.append(line)
        self.lineno += 1
        return line


def _records(text: str, delimiter: str):
    """(first line number, fields or None when unparseable, raw text, error) per record."""
    if _csv.field_size_limit() < _FIELD_LIMIT:
        _csv.field_size_limit(_FIELD_LIMIT)
    lines = _Lines(text)
    reader = _csv.reader(lines, delimiter=delimiter, quotechar='"', doublequote=True, strict=False)
    while True:
        first = lines.lineno + 1
        lines.taken = []
        try:
            fields = next(reader)
        except StopIteration:
            return
        except _csv.Error as exc:
            yield first, None, "".join(lines.taken), f"not CSV: {exc}"
            continue
        yield first, fields, "".join(lines.taken), None


def _raw(text: str) -> bytes:
    return text.rstrip("\r\n").encode("utf-8", "surrogateescape")


def read_file(path: Path, shown: str, spec, contract) -> Part:
    import polars as pl

    from .contract import add_absent, check_frame, require_columns

    data = read_bytes(path, shown)
    text = data.decode("utf-8", errors="surrogateescape")
    if text.startswith("\ufeff"):
        text = text[1:]
    names: list[str] | None = None
    width: int | None = None
    cols: list[list] = []
    row_lines: list[int] = []
    bad_lines: list[int] = []
    bad_why: list[str] = []
    bad_raw: list[bytes] = []
    units = 0
    for lineno, fields, raw, err in _records(text, spec.delimiter):
        if fields is not None and (not fields or fields == [""] and not raw.strip()):
            continue  # a blank line is no record
        if names is None and spec.header:
            if err or _ESCAPED.search(raw):
                raise data_error(f"{shown}: the header line cannot be read ({err or 'not valid UTF-8'})", shown,
                                 code="unreadable", line=lineno)
            names = _header_names(fields, shown, lineno)
            width = len(names)
            cols = [[] for _ in names]
            continue
        units += 1
        why = err
        if why is None and _ESCAPED.search(raw):
            why = "not valid UTF-8"
        if why is None and width is None:
            width = len(fields)
            cols = [[] for _ in range(width)]
        if why is None and len(fields) != width:
            why = f"expected {width} fields, got {len(fields)}"
        if why:
            bad_lines.append(lineno)
            bad_why.append(why)
            bad_raw.append(_raw(raw))
            continue
        for col, value in zip(cols, fields):
            col.append(value if value != "" else None)
        row_lines.append(lineno)
    if names is None:
        declared = [c.name for c in contract]
        n = width or 0
        names = declared[:n] + [f"column_{i + 1}" for i in range(len(declared[:n]), n)]
    frame = pl.DataFrame({name: pl.Series(name, col, dtype=pl.String) for name, col in zip(names, cols)}
                         if cols else {name: pl.Series(name, [], dtype=pl.String) for name in names})
    frame = frame.with_columns(pl.Series("_origin", [f"{shown}:{n}" for n in row_lines], dtype=pl.String))
    bad = rejects("corrupt", bad_why, [f"{shown}:{n}" for n in bad_lines], bad_raw)
    if not contract:
        return Part(frame, bad, units)
    require_columns(names, contract, shown)
    frame = add_absent(frame, contract)
    good, wrong = check_frame(frame, contract, parse_strings=True)
    return Part(good, concat_rejects([bad, contract_rejects(wrong)]), units)


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
