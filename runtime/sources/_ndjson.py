"""NDJSON bytes -> (rows, corrupt lines), fast on clean data, exact on dirty data.

Polars reads a whole NDJSON buffer in one native pass but gives up on the first bad line
without saying which. A buffer that is valid UTF-8 is first given to polars whole (the
common, clean case: one pass). Otherwise bad lines are found first, cheaply, and polars
then reads a copy of the buffer in which they are blanked out (it skips blank lines):

1. Line boundaries from a vectorised newline scan.
2. Lines that start with ``{`` and end with ``}`` are presumed fine; all others (truncated
   lines, text, scalars, arrays, leading whitespace) are checked one by one with ``json``.
3. UTF-8 is checked per 1 MiB block (``isascii`` first, so ASCII data costs nothing); the
   lines holding invalid sequences are found from the decoder's error offsets.
4. If polars still refuses the buffer (damage inside a ``{...}`` line), the presumed-fine
   lines are re-read in blocks of a few hundred and failing blocks bisected down to the
   line, so the cost is one extra pass plus a little per bad line.
5. If the lines are all valid but one key's values mix kinds polars cannot widen (an object
   here and a list there, a boolean here and a number there), that key's values become
   text (JSON for non-strings, as polars itself does when strings mix with numbers).

Every non-blank line is a unit. Blank (whitespace-only) lines carry no data and are not
units; they still count for line numbers.
"""

from __future__ import annotations

import codecs
import json
import re
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from llmspec.runtime.engine.columns import column  # data names are never patterns
from ._common import data_error

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

_BLOCK = 1 << 20
_PIECE_LINES = 256
_LEAF_LINES = 8
_WS = b" \t\r\n"

_local = threading.local()
# A \uD800-\uDFFF escape: paired (an emoji written as ASCII) or alone, which no UTF-8 text can
# hold and Polars silently turns into "\x00". Lines holding one are checked with `json`.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def _record_bad_utf8(exc: UnicodeDecodeError):
    _local.offsets.append(exc.start)
    return "", exc.end


codecs.register_error("llmspec-record", _record_bad_utf8)


@dataclass
class Parsed:
    frame: "pl.DataFrame"
    rows: "np.ndarray"  # 0-based line index of each row of ``frame``
    buffer: bytes  # the NDJSON text ``frame`` was read from (for type probes)
    corrupt: list[tuple[int, str]] = field(default_factory=list)  # (line index, reason)
    units: int = 0
    starts: "np.ndarray | None" = None
    ends: "np.ndarray | None" = None

    def raw(self, data: bytes, line: int) -> bytes:
        return data[int(self.starts[line]):int(self.ends[line])]


def read_buffer(buf: bytes, **kwargs) -> "pl.DataFrame":
    import polars as pl

    # Full inference: with polars' default (first 100 rows) keys that first appear later are
    # silently dropped.
    return pl.read_ndjson(buf, infer_schema_length=None, **kwargs)


def _line_spans(data: bytes):
    import numpy as np

    arr = np.frombuffer(data, dtype=np.uint8)
    # Blockwise so the temporary boolean mask stays small on big files.
    parts = [np.flatnonzero(arr[i:i + (1 << 24)] == 10) + i for i in range(0, len(arr), 1 << 24)]
    nl = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    starts = np.concatenate((np.zeros(1, dtype=np.int64), nl + 1))
    ends = np.concatenate((nl, np.array([len(data)], dtype=np.int64)))
    if starts[-1] >= len(data):  # nothing after the final newline
        starts, ends = starts[:-1], ends[:-1]
    return arr, starts.astype(np.int64), ends.astype(np.int64)


def _utf8_detail(raw: bytes) -> str:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})"
    return "not valid UTF-8"


def _json_detail(raw: bytes) -> str | None:
    """Why one line is not a JSON object, or None when it is one."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return _utf8_detail(raw)
    try:
        obj = json.loads(text)
    except RecursionError:
        return "not JSON: nested too deeply"
    except ValueError as exc:
        msg = getattr(exc, "msg", str(exc))
        col = getattr(exc, "colno", None)
        return f"not JSON: {msg}" + (f" at column {col}" if col else "")
    if not isinstance(obj, dict):
        kind = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(type(obj), "a number")
        return f"not a JSON object ({kind})"
    if "\\u" in text:
        try:  # Python's json accepts "\ud800" alone; no UTF-8 text (nor Polars) can hold it
            json.dumps(obj, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            return "not valid Unicode: a \\uD800-\\uDFFF escape without its pair (a lone surrogate)"
    return None


def _polars_detail(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"not JSON: {text[:120]}"


def _valid_utf8(data: bytes) -> bool:
    if data.isascii():
        return True
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        for i in range(0, len(data), _BLOCK):
            decoder.decode(data[i:i + _BLOCK], final=i + _BLOCK >= len(data))
    except UnicodeDecodeError:
        return False
    return True


def _fast(data: bytes) -> Parsed | None:
    """The whole buffer in one polars read, when it is valid UTF-8 and polars takes every line."""
    import numpy as np
    import polars as pl

    if not data or data.isspace() or not _valid_utf8(data) or _SURROGATE_ESCAPE.search(data):
        return None
    try:
        frame = read_buffer(data)
    except pl.exceptions.PolarsError:
        return None
    n = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    if frame.height == n:
        rows = np.arange(n, dtype=np.int64)
    else:
        # Blank lines, which polars skips: find them to number the rows. A blank line is
        # empty or starts with whitespace, so only those few are looked at in Python.
        arr, starts, ends = _line_spans(data)
        first = np.full(len(starts), 32, dtype=np.uint8)
        nonempty = ends > starts
        first[nonempty] = arr[starts[nonempty]]
        blank = np.zeros(len(starts), dtype=bool)
        for i in np.flatnonzero(np.isin(first, np.frombuffer(_WS, dtype=np.uint8))).tolist():
            blank[i] = not data[starts[i]:ends[i]].strip(_WS)
        rows = np.flatnonzero(~blank)
        if len(rows) != frame.height:
            return None
    return Parsed(frame=frame, rows=rows, buffer=data, units=len(rows))


def parse(data: bytes, shown: str) -> Parsed:
    import numpy as np
    import polars as pl

    fast = _fast(data)
    if fast is not None:
        return fast
    arr, starts, ends = _line_spans(data)
    n = len(starts)
    status = np.zeros(n, dtype=np.int8)  # 0 candidate, 1 blank, 2 corrupt
    details: dict[int, str] = {}
    lens = ends - starts
    nonempty = lens > 0
    first = np.full(n, 0, dtype=np.uint8)
    last = np.full(n, 0, dtype=np.uint8)
    first[nonempty] = arr[starts[nonempty]]
    last[nonempty] = arr[ends[nonempty] - 1]
    cr = nonempty & (last == 13) & (lens > 1)
    last[cr] = arr[ends[cr] - 2]
    plain = (first == 123) & (last == 125)

    for i in np.flatnonzero(~plain).tolist():
        raw = data[starts[i]:ends[i]]
        if not raw.strip(_WS):
            status[i] = 1
            continue
        why = _json_detail(raw)
        if why is not None:
            status[i], details[i] = 2, why

    hits = [m.start() for m in _SURROGATE_ESCAPE.finditer(data)]
    for i in sorted(set(np.searchsorted(starts, hits, side="right").tolist())) if hits else []:
        i -= 1
        if status[i] == 0:
            why = _json_detail(data[starts[i]:ends[i]])
            if why is not None:
                status[i], details[i] = 2, why

    if not data.isascii():
        for i in _bad_utf8_lines(data, starts, ends):
            if status[i] == 0:
                status[i], details[i] = 2, _utf8_detail(data[starts[i]:ends[i]])

    cand = np.flatnonzero(status == 0)
    if not len(cand):
        return Parsed(frame=pl.DataFrame(), rows=cand, buffer=b"",
                      corrupt=[(i, details[i]) for i in np.flatnonzero(status == 2).tolist()],
                      units=int((status != 1).sum()), starts=starts, ends=ends)
    buf = _blanked(data, starts, ends, status, 0, n)
    try:
        frame = read_buffer(buf)
    except pl.exceptions.SchemaError:
        frame = None
    except pl.exceptions.PolarsError:
        frame = None
        # Damage inside a {...} line. Odd quote counts catch most of it without polars.
        for rounds in (_odd_quotes, _bisect):
            for i, why in rounds(data, arr, starts, ends, status):
                status[i], details[i] = 2, why
            cand = np.flatnonzero(status == 0)
            buf = _blanked(data, starts, ends, status, 0, n)
            try:
                frame = read_buffer(buf) if len(cand) else pl.DataFrame()
                break
            except pl.exceptions.SchemaError:
                break
            except pl.exceptions.PolarsError:
                continue
    if frame is not None and frame.height != len(cand):
        frame = None  # polars and the line scan disagree on what a line is: take the slow road
    if frame is None:
        frame, buf, cand = _rewrite(data, starts, ends, status, details, shown)

    corrupt = [(i, details[i]) for i in np.flatnonzero(status == 2).tolist()]
    return Parsed(frame=frame, rows=cand, buffer=buf, corrupt=corrupt, units=int((status != 1).sum()),
                  starts=starts, ends=ends)


def _bad_utf8_lines(data: bytes, starts, ends) -> list[int]:
    import numpy as np

    bad: list[int] = []
    n = len(starts)
    # Blocks end at line ends so a multi-byte character is never cut in two.
    cut = np.searchsorted(starts, np.arange(_BLOCK, len(data) + _BLOCK, _BLOCK))
    lo = 0
    for hi in np.unique(np.clip(cut, 1, n)).tolist():
        if hi <= lo:
            continue
        a, b = int(starts[lo]), int(ends[hi - 1])
        block = data[a:b]
        if not block.isascii():
            try:
                block.decode("utf-8")
            except UnicodeDecodeError:
                _local.offsets = []
                block.decode("utf-8", errors="llmspec-record")
                offs = np.array(_local.offsets, dtype=np.int64) + a
                bad.extend(np.unique(np.searchsorted(starts, offs, side="right") - 1).tolist())
        lo = hi
    return bad


def _blanked(data: bytes, starts, ends, status, lo: int, hi: int) -> bytes:
    """Bytes of lines lo..hi-1 with every non-candidate line emptied (its newline kept)."""
    import numpy as np

    a, b = int(starts[lo]), int(ends[hi - 1]) if hi > lo else int(starts[lo])
    skip = np.flatnonzero(status[lo:hi] != 0) + lo
    if not len(skip):
        return data[a:b]
    view = memoryview(data)
    pieces = []
    pos = a
    for s, e in zip(starts[skip].tolist(), ends[skip].tolist()):
        pieces.append(view[pos:s])
        pos = e
    pieces.append(view[pos:b])
    return b"".join(pieces)


def _odd_quotes(data: bytes, arr, starts, ends, status) -> list[tuple[int, str]]:
    """Candidate lines with an odd number of unescaped quotes, confirmed with ``json``."""
    import numpy as np

    found: list[tuple[int, str]] = []
    for lo in range(0, len(starts), 1 << 15):
        lines = np.arange(lo, min(lo + (1 << 15), len(starts)))
        a, b = int(starts[lines[0]]), int(ends[lines[-1]])
        blk = arr[a:b]
        quote = (blk == 34).view(np.uint8)
        escaped = np.zeros_like(quote)
        escaped[1:] = (quote[1:] == 1) & (blk[:-1] == 92)
        if not len(blk):
            continue
        # Empty lines at the very end start at len(blk), which reduceat refuses; they are
        # masked out below anyway.
        parity = np.bitwise_xor.reduceat(quote ^ escaped, np.minimum(starts[lines] - a, len(blk) - 1))
        empty = starts[lines] == ends[lines]  # reduceat gives the next byte for empty segments
        for i in lines[(parity == 1) & ~empty & (status[lines] == 0)].tolist():
            why = _json_detail(data[starts[i]:ends[i]])
            if why:
                found.append((i, why))
    return found


def _bisect(data: bytes, arr, starts, ends, status) -> list[tuple[int, str]]:
    """Candidate lines polars cannot read: small pieces are read on their own; in a failing
    piece ``json`` names the bad lines, and what only polars refuses is found by halving."""
    import numpy as np
    import polars as pl

    found: list[tuple[int, str]] = []
    cand = np.flatnonzero(status == 0)
    stack = [cand[i:i + _PIECE_LINES] for i in range(0, len(cand), _PIECE_LINES)][::-1]
    checked: set[int] = set()
    while stack:
        piece = stack.pop()
        if len(piece) <= _LEAF_LINES:
            for i in piece.tolist():
                try:
                    read_buffer(data[starts[i]:ends[i]])
                except pl.exceptions.SchemaError:
                    pass  # valid alone, only conflicts with other rows: not corrupt
                except pl.exceptions.PolarsError as exc:
                    found.append((i, _json_detail(data[starts[i]:ends[i]]) or _polars_detail(exc)))
            continue
        try:
            read_buffer(_joined(data, starts, ends, piece))
            continue
        except pl.exceptions.PolarsError:
            pass
        key = int(piece[0])
        if key not in checked:
            checked.add(key)
            bad = [(i, why) for i in piece.tolist() if (why := _json_detail(data[starts[i]:ends[i]]))]
            if bad:
                found.extend(bad)
                drop = {i for i, _ in bad}
                rest = np.array([i for i in piece.tolist() if i not in drop], dtype=np.int64)
                if len(rest):
                    checked.add(int(rest[0]))
                    stack.append(rest)
                continue
        mid = len(piece) // 2
        stack.extend([piece[mid:], piece[:mid]])
    return found


def _joined(data: bytes, starts, ends, lines) -> bytes:
    return b"\n".join(data[s:e] for s, e in zip(starts[lines].tolist(), ends[lines].tolist()))


def _kind(v) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    return type(v).__name__


def _conflicting_keys(objs: list[dict]) -> set[str]:
    """Keys whose values mix kinds polars cannot widen (booleans and numbers, objects and lists...)."""
    kinds: dict[str, set[str]] = {}
    for obj in objs:
        for k, v in obj.items():
            if v is not None:
                kinds.setdefault(k, set()).add(_kind(v))
    return {k for k, s in kinds.items() if len(s) > 1}


def _rewrite(data: bytes, starts, ends, status, details, shown: str):
    """Slow but sure: every candidate line through ``json``, conflicting nested values
    re-encoded as JSON text, and the result re-serialised for polars."""
    import numpy as np
    import polars as pl

    objs: list[dict] = []
    keep: list[int] = []
    for i in np.flatnonzero(status == 0).tolist():
        raw = data[starts[i]:ends[i]]
        try:
            obj = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            obj = None
        if not isinstance(obj, dict):
            status[i], details[i] = 2, _json_detail(raw) or "not a JSON object"
            continue
        objs.append(obj)
        keep.append(i)

    def dump(o):
        return json.dumps(o, ensure_ascii=False, allow_nan=False)

    def as_text(v):
        return v if isinstance(v, str) else dump(v)

    for attempt in ("conflicts", "all-nested"):
        # Values of conflicting keys become text: JSON for everything that is not a string,
        # which is what polars does itself when strings mix with numbers.
        keys = _conflicting_keys(objs) if attempt == "conflicts" else {k for o in objs for k in o}
        lines: list[str] = []
        kept: list[int] = []
        for i, obj in zip(keep, objs):
            try:
                fixed = {k: (as_text(v) if k in keys and v is not None else v) for k, v in obj.items()}
                if attempt != "conflicts":
                    fixed = {k: (dump(v) if isinstance(v, (dict, list)) else v) for k, v in fixed.items()}
                lines.append(dump(fixed))
                kept.append(i)
            except (ValueError, TypeError, RecursionError) as exc:
                status[i], details[i] = 2, f"not JSON: {exc}"[:120]
        buf = "\n".join(lines).encode("utf-8", "replace")
        try:
            frame = read_buffer(buf) if lines else pl.DataFrame()
        except pl.exceptions.PolarsError:
            continue
        if frame.height == len(kept):
            return frame, buf, np.array(kept, dtype=np.int64)
    raise data_error(f"{shown}: the JSON lines cannot be combined into one table", shown, code="schema-conflict",
                     hint="declare the conflicting columns as `json` or fix the data")


# ----------------------------------------------------------------------------- contract types

_NUMBER = r"^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$"


def value_kinds(frame: "pl.DataFrame", buffer: bytes, columns: list[str]) -> dict[str, "pl.Series"]:
    """The JSON type of each value of text columns that may hold widened non-text values.

    When one JSON column mixes types (``"a"`` in one row, ``5`` in another), polars stores
    all of it as text. Rows whose text could be a widened number, boolean, array or object
    are probed by re-reading just those columns with a fixed type (values of another type
    come back null), so strings stay strings and ``5`` is known to have been a number.
    """
    import polars as pl

    schema = frame.schema  # built anew on every access: once, not once per column
    text_cols = [c for c in columns if schema.get(c) == pl.String]
    if not text_cols or not frame.height:
        return {}
    suspects = frame.select(
        [column(c).str.contains(_NUMBER).fill_null(False).alias(f"{c}:num") for c in text_cols]
        + [column(c).is_in(["true", "false"]).fill_null(False).alias(f"{c}:bool") for c in text_cols]
        + [column(c).str.starts_with("[").fill_null(False).alias(f"{c}:list") for c in text_cols]
        + [column(c).str.starts_with("{").fill_null(False).alias(f"{c}:object") for c in text_cols]
    )
    probes = {
        "int": ("num", pl.Int64), "float": ("num", pl.Float64), "bool": ("bool", pl.Boolean),
        "list": ("list", pl.List(pl.Null)), "object": ("object", pl.Struct({"__probe": pl.Null})),
    }
    found: dict[str, dict[str, "pl.Series"]] = {}
    for kind, (flag, dtype) in probes.items():
        cols = [c for c in text_cols if suspects[f"{c}:{flag}"].any()]
        if not cols:
            continue
        probe = pl.read_ndjson(buffer, schema={c: dtype for c in cols}, ignore_errors=True)
        if probe.height != frame.height:
            continue
        for c in cols:
            found.setdefault(c, {})[kind] = probe[c].alias("value").is_not_null()
    out = {}
    for c in text_cols:
        hits = found.get(c)
        if not hits:
            continue
        expr = pl.when(column(c).is_null()).then(pl.lit("null"))
        for kind in ("int", "float", "bool", "list", "object"):
            if kind in hits:
                expr = expr.when(pl.lit(hits[kind])).then(pl.lit(kind))
        out[c] = frame.select(expr.otherwise(pl.lit("str")).alias(c)).to_series()
    return out


def check_contract(frame: "pl.DataFrame", buffer: bytes, contract, shown: str):
    """Contract check of a frame read from NDJSON: (conforming rows, rejects _detail/_origin)."""
    import polars as pl

    from .contract import add_absent, check_frame, require_columns

    require_columns(frame.columns, contract, shown)
    frame = add_absent(frame, contract)
    checked = [c.name for c in contract if c.type != "json"]
    kinds = value_kinds(frame, buffer, checked)
    # A column mixing 1 and 2.5 is read as floats; only re-reading it as integers tells 1 from 1.0.
    schema = frame.schema
    floats = [c.name for c in contract if c.type == "int" and schema[c.name].is_float()]
    if floats and frame.height:
        probe = pl.read_ndjson(buffer, schema={c: pl.Int64 for c in floats}, ignore_errors=True)
        if probe.height == frame.height:
            for c in floats:
                kinds[c] = pl.select(
                    pl.when(pl.lit(frame[c]).is_null()).then(pl.lit("null"))
                    .when(pl.lit(probe[c]).is_not_null()).then(pl.lit("int"))
                    .otherwise(pl.lit("float"))).to_series()
    good, bad = check_frame(frame, contract, parse_strings=False, kinds=kinds)
    good_schema = good.schema
    for c in contract:
        if c.type == "list" and good_schema[c.name] == pl.String and good.height:
            # Arrays widened to JSON text (the column also held other types in rejected rows).
            try:
                good = good.with_columns(good[c.name].str.json_decode(infer_schema_length=None))
            except pl.exceptions.PolarsError:
                pass
    return good, bad
