"""SQLite: a database file and a query, opened read-only (``file:...?mode=ro``), the query
run under an authorizer that allows reading tables and calling functions only: nothing it
does can write, attach another file or load an extension (``VACUUM INTO``, ``ATTACH``,
``load_extension`` are refused by SQLite itself, as validate refuses them in the spec).

Columns: the query's result columns, with the types SQLite returns per value (it is
dynamically typed: a column mixing 1 and 'a' becomes text unless the contract rejects the
odd values). TEXT declared as ``datetime`` is parsed from ISO 8601.
Origins: ``path:row N``, the row's position in the query result (1-based). Units: result
rows. A row holding text that is not valid UTF-8 is ``corrupt``, ``_raw`` being that value's
bytes. A file that is not a database, or a query SQLite refuses, fails the source.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from urllib.parse import quote

from ._common import Part, concat_rejects, contract_rejects, data_error, rejects
from .tabular import frame_from_rows


class _BadText(bytes):
    """Text that is not UTF-8: kept as bytes so the row can be rejected, not the query."""


def _text(raw: bytes):
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return _BadText(raw)


_ALLOWED = frozenset({sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION,
                      getattr(sqlite3, "SQLITE_RECURSIVE", 33)})  # WITH RECURSIVE (named in Python 3.11+)
_REFUSED_FUNCTIONS = frozenset({"load_extension", "readfile", "writefile", "edit", "fts3_tokenizer"})


def _reads_only(action: int, arg1, arg2, _db, _trigger) -> int:
    if action in _ALLOWED and not (action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() in _REFUSED_FUNCTIONS):
        return sqlite3.SQLITE_OK
    return sqlite3.SQLITE_DENY


def read_file(path: Path, shown: str, spec, contract) -> Part:
    if not path.is_file():
        raise data_error(f"{shown}: no such file", shown, code="file-not-found")
    uri = f"file:{quote(str(path.resolve()))}?mode=ro"
    error = None
    try:
        con = sqlite3.connect(uri, uri=True)
    except sqlite3.Error as exc:
        raise data_error(f"{shown}: cannot open as SQLite ({exc})", shown, code="wrong-format") from None
    try:
        con.text_factory = _text
        con.execute("PRAGMA query_only = ON")
        con.execute("SELECT count(*) FROM sqlite_master").fetchone()  # fails early on a non-database
        con.set_authorizer(_reads_only)
        cur = con.execute(spec.query)
        names = [d[0] for d in cur.description or []]
        rows = cur.fetchall()
    except sqlite3.DatabaseError as exc:
        error = str(exc)
    finally:
        con.close()
    if error is not None:
        unreadable = "file is not a database" in error or "malformed" in error
        denied = "not authorized" in error or "authorization denied" in error
        raise data_error(f"{shown}: {'not readable as SQLite' if unreadable else 'query failed'} ({error})",
                         shown, code="wrong-format" if unreadable else "query-failed",
                         hint="a source's query only reads: one SELECT, no ATTACH, PRAGMA, VACUUM or writes"
                         if denied else None)
    if not names:
        raise data_error(f"{shown}: the query returns no columns", shown, code="query-failed")
    good_rows, origins, bad_why, bad_origin, bad_raw = [], [], [], [], []
    for i, row in enumerate(rows, start=1):
        bad = next(((names[j], v) for j, v in enumerate(row) if isinstance(v, _BadText)), None)
        if bad:
            bad_why.append(f"column '{bad[0]}' is not valid UTF-8")
            bad_origin.append(f"{shown}:row {i}")
            bad_raw.append(bytes(bad[1]))
            continue
        good_rows.append(row)
        origins.append(f"{shown}:row {i}")
    corrupt = rejects("corrupt", bad_why, bad_origin, bad_raw)
    good, wrong = frame_from_rows(names, good_rows, origins, contract, shown)
    return Part(good, concat_rejects([corrupt, contract_rejects(wrong)]), len(rows))
