"""Rows of Python values (database results) into a frame, with the contract checked on
the values' own types before polars widens mixed columns."""

from __future__ import annotations

import datetime as _dt
import decimal
import json
from typing import Sequence

from ._common import data_error


def _plain(value):
    """Values polars has no type for become text (UUIDs, addresses, ranges); JSON
    objects become JSON text so one column never mixes structs and scalars."""
    if value is None or isinstance(value, (bool, int, float, str, bytes, decimal.Decimal, _dt.datetime,
                                           _dt.date, _dt.time, _dt.timedelta)):
        return value
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, default=str)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    return str(value)


def frame_from_rows(names: list[str], rows: Sequence[Sequence], origins: list[str], contract, shown: str):
    """(conforming rows with ``_origin``, rejects ``_detail``/``_origin``)."""
    import polars as pl

    from .contract import add_absent, check_frame, kinds_of, py_series, require_columns

    dups = sorted({n for n in names if names.count(n) > 1})
    if dups:
        raise data_error(f"{shown}: the query returns the column name(s) {', '.join(map(repr, dups))} "
                         "more than once; give them distinct names with AS", shown, code="duplicate-column")
    columns = list(zip(*rows)) if rows else [[] for _ in names]
    declared = {c.name for c in contract}
    kinds = {n: kinds_of(list(col)) for n, col in zip(names, columns) if n in declared}
    frame = pl.DataFrame([py_series(n, [_plain(v) for v in col]) for n, col in zip(names, columns)]
                         + [pl.Series("_origin", origins, dtype=pl.String)])
    if not contract:
        return frame, None
    require_columns(names, contract, shown)
    frame = add_absent(frame, contract)
    return check_frame(frame, contract, parse_strings=False, kinds=kinds)
