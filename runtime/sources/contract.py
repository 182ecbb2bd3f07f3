"""The data contract of a source: declared columns, their types, and the checks.

``columns: {answer: str, score: float?}`` means: each named column must exist in the data
(else the whole source fails with a ``DataError`` naming the file and the column), and each
value must have the declared type (else that row is rejected with rule ``contract``).
A trailing ``?`` allows nulls. Columns the contract does not name are kept unchecked.

Types and what they accept:

- ``str``: text. ``int``: whole numbers (a JSON ``2.0`` is a float, not an int).
  ``float``: any number. ``bool``: true/false. ``list``: an array.
  ``json``: any value, unchecked (only presence is required).
  ``datetime``: a datetime value, or text in ISO 8601 form (``2024-05-01``,
  ``2024-05-01 10:00``, ``2024-05-01T10:00:00.5+02:00``); stored as UTC (naive values are
  taken to be UTC already).

Text-only formats (CSV) carry no types, so there ``int``, ``float`` and ``bool`` are parsed
from the text (``bool`` accepts true/false/yes/no/1/0 in any case) and a value that does not
parse rejects the row. Typed formats (JSON, Parquet, SQLite, PostgreSQL) are checked against
the type the value really has: a JSON string ``"42"`` in an ``int`` column is rejected.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Mapping, Sequence

from llmspec.runtime.engine.columns import column  # data names are never patterns
from llmspec.spec.errors import did_you_mean

from ._common import data_error

if TYPE_CHECKING:
    import polars as pl

COMPATIBLE = {
    "str": {"str"},
    "int": {"int"},
    "float": {"int", "float"},
    "bool": {"bool"},
    "datetime": {"datetime"},
    "list": {"list"},
}

_AWARE_FORMATS = ("%Y-%m-%dT%H:%M:%S%.f%#z", "%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%dT%H:%M%#z")
_NAIVE_FORMATS = ("%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M",
                  "%Y-%m-%d")
_BOOL_WORDS = {"true": True, "false": False, "yes": True, "no": False, "1": True, "0": False}


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    optional: bool


def parse_contract(columns: Mapping[str, str] | None) -> list[Column]:
    if not columns:
        return []
    out = []
    for name, spec in columns.items():
        spec = spec.strip()
        out.append(Column(name, spec.rstrip("?"), spec.endswith("?")))
    return out


def extra_columns(df: "pl.DataFrame", contract: Sequence[Column]) -> dict[str, int]:
    """Columns the contract does not declare -> rows holding a value there (a key present
    with null counts as absent: JSON readers fill keys a row lacks with null)."""
    declared = {c.name for c in contract}
    extra = [c for c in df.columns if not c.startswith("_") and c not in declared]
    if not extra or df.height == 0:
        return {}
    counts = {c: df.height - df.get_column(c).null_count() for c in extra}
    return {c: n for c, n in counts.items() if n}


def reject_extra(df: "pl.DataFrame", extra: Sequence[str]) -> tuple["pl.DataFrame", "pl.DataFrame"]:
    """``columns.extra: reject``: rows holding a value under an undeclared key leave as
    ``contract`` rejects naming the keys; the kept rows lose those columns."""
    import polars as pl

    from ._common import contract_rejects

    # By position (pl.nth): names such as "*" or "^a$" are patterns to pl.col.
    idx = [df.columns.index(c) for c in extra]
    has = [pl.nth(i).is_not_null() for i in idx]
    names = pl.concat_str([pl.when(h).then(pl.lit(c)) for h, c in zip(has, extra)], separator=", ",
                          ignore_nulls=True)
    flagged = df.with_columns(pl.any_horizontal(has).alias("__extra"), names.alias("__names"))
    bad = flagged.filter(pl.col("__extra")).select(
        (pl.lit("undeclared key(s): ") + pl.col("__names") + pl.lit(" (columns.extra: reject)")).alias("_detail"),
        pl.col("_origin"))
    keep = [i for i, c in enumerate(df.columns) if c not in set(extra)]
    good = flagged.filter(~pl.col("__extra")).select(pl.nth(keep))
    return good, contract_rejects(bad)


def require_columns(present: Iterable[str], contract: Sequence[Column], shown: str) -> None:
    """A declared, non-optional column that the data lacks entirely fails the source.

    Optional columns may be absent: they are added as all-null by ``add_absent``.
    """
    present = [c for c in present if not c.startswith("_")]
    for col in contract:
        if col.optional or col.name in present:
            continue
        listing = ", ".join(present[:20]) + (" ..." if len(present) > 20 else "") if present else "none"
        hint = did_you_mean(col.name, present)
        raise data_error(
            f"{shown}: declared column '{col.name}' is missing from the data (columns present: {listing})",
            shown, code="missing-column",
            hint=hint or "fix the name in `columns`, or mark it optional with a trailing `?`",
        )


def add_absent(df: "pl.DataFrame", contract: Sequence[Column]) -> "pl.DataFrame":
    import polars as pl

    missing = [c for c in contract if c.name not in df.columns]
    if not missing:
        return df
    return df.with_columns(pl.lit(None, dtype=target_dtype(c.type)).alias(c.name) for c in missing)


def target_dtype(kind: str) -> "pl.DataType":
    import polars as pl

    return {
        "str": pl.String, "int": pl.Int64, "float": pl.Float64, "bool": pl.Boolean,
        "datetime": pl.Datetime("us", "UTC"), "list": pl.List(pl.String), "json": pl.String,
    }[kind]


def dtype_kind(dtype: "pl.DataType") -> str:
    import polars as pl

    if dtype in (pl.String, pl.Categorical) or isinstance(dtype, pl.Enum):
        return "str"
    if dtype == pl.Boolean:
        return "bool"
    if dtype.is_integer():
        return "int"
    if dtype.is_float() or isinstance(dtype, pl.Decimal):
        return "float"
    if isinstance(dtype, (pl.List, pl.Array)):
        return "list"
    if isinstance(dtype, pl.Struct):
        return "object"
    if isinstance(dtype, (pl.Datetime, pl.Date)):
        return "datetime"
    if dtype == pl.Null:
        return "null"
    if dtype == pl.Binary:
        return "bytes"
    return str(dtype).lower()


def py_kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, (float, decimal.Decimal)):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "bytes"
    if isinstance(value, (_dt.datetime, _dt.date)):
        return "datetime"
    if isinstance(value, (list, tuple)):
        return "list"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def parse_datetime(expr: "pl.Expr") -> "pl.Expr":
    import polars as pl

    text = expr.str.strip_chars()
    tries = [text.str.to_datetime(f, strict=False, time_unit="us", time_zone="UTC") for f in _AWARE_FORMATS]
    tries += [text.str.to_datetime(f, strict=False, time_unit="us").dt.replace_time_zone("UTC")
              for f in _NAIVE_FORMATS]
    return pl.coalesce(tries)


def _to_utc(expr: "pl.Expr", dtype: "pl.DataType") -> "pl.Expr":
    import polars as pl

    if isinstance(dtype, pl.Date):
        return expr.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    if isinstance(dtype, pl.Datetime):
        expr = expr.dt.cast_time_unit("us")
        return expr.dt.convert_time_zone("UTC") if dtype.time_zone else expr.dt.replace_time_zone("UTC")
    return expr


def _parsed(expr: "pl.Expr", kind: str) -> "pl.Expr":
    """Text to the declared type; null where it does not parse."""
    import polars as pl

    text = expr.str.strip_chars()
    if kind == "int":
        return text.cast(pl.Int64, strict=False)
    if kind == "float":
        return text.cast(pl.Float64, strict=False)
    if kind == "bool":
        return text.str.to_lowercase().replace_strict(_BOOL_WORDS, default=None, return_dtype=pl.Boolean)
    if kind == "datetime":
        return parse_datetime(expr)
    raise AssertionError(kind)


def check_frame(df: "pl.DataFrame", contract: Sequence[Column], *, parse_strings: bool,
                kinds: Mapping[str, "pl.Series"] | None = None) -> tuple["pl.DataFrame", "pl.DataFrame"]:
    """Split rows into (conforming rows with values converted to the declared types,
    rejects ``_detail``/``_origin``).

    ``kinds`` gives, per column, the type each value really had in the source where the
    frame's dtype cannot tell (JSON columns that polars widened to text). Without it, every
    value of a column has the kind of the column's dtype.
    ``parse_strings``: text columns hold numbers and booleans as text (CSV).
    """
    import polars as pl

    kinds = dict(kinds or {})
    if not contract or df.height == 0:
        return df.with_columns(_conversions(df, contract, kinds)), pl.DataFrame(
            {"_detail": [], "_origin": []}, schema={"_detail": pl.String, "_origin": pl.String})
    frame = df.with_columns(pl.Series(f"__kind_{c}", s) for c, s in kinds.items())
    problems = []
    schema = df.schema  # built anew on every access: once, not once per column
    for col in contract:
        value = column(col.name)
        dtype = schema[col.name]
        kind = column(f"__kind_{col.name}") if col.name in kinds else pl.lit(dtype_kind(dtype))
        is_text = dtype == pl.String
        if col.type == "json":
            ok = pl.lit(True)
        elif col.type == "datetime":
            ok = kind.eq("datetime") | (kind.eq("str") & _parsed(value, "datetime").is_not_null()) \
                if is_text else kind.eq("datetime")
        elif parse_strings and is_text and col.name not in kinds and col.type in ("int", "float", "bool"):
            ok = _parsed(value, col.type).is_not_null()
        else:
            ok = kind.is_in(sorted(COMPATIBLE[col.type]))
        got = pl.concat_str(kind, pl.when(kind.eq("str")).then(
            pl.lit(" ") + pl.lit("'") + value.cast(pl.String).str.slice(0, 30) + pl.lit("'")).otherwise(pl.lit("")))
        bad_type = pl.when(value.is_not_null() & ~ok).then(
            pl.lit(f"column '{col.name}': expected {col.type}, got ") + got)
        if not col.optional:
            bad_type = pl.when(value.is_null()).then(
                pl.lit(f"column '{col.name}': expected {col.type}, got null")).otherwise(bad_type)
        problems.append(bad_type)
    frame = frame.with_columns(pl.coalesce(problems).alias("__problem"))
    bad = frame.filter(pl.col("__problem").is_not_null()).select(
        pl.col("__problem").alias("_detail"), pl.col("_origin"))
    good = frame.filter(pl.col("__problem").is_null()).drop(["__problem"] + [f"__kind_{c}" for c in kinds])
    return good.with_columns(_conversions(good, contract, kinds)), bad


def _conversions(df: "pl.DataFrame", contract: Sequence[Column], kinds) -> list["pl.Expr"]:
    import polars as pl

    out = []
    schema = df.schema
    for col in contract:
        dtype = schema[col.name]
        value = column(col.name)
        if col.type in ("json", "list"):
            continue
        if dtype == pl.Null:
            out.append(value.cast(target_dtype(col.type)))
        elif col.type == "datetime":
            out.append(parse_datetime(value) if dtype == pl.String else _to_utc(value, dtype))
        elif dtype == pl.String and col.type in ("int", "float", "bool"):
            out.append(_parsed(value, col.type))
        elif col.type == "int" and not dtype.is_integer():
            out.append(value.cast(pl.Int64, strict=False))
        elif col.type == "float" and dtype != pl.Float64:
            out.append(value.cast(pl.Float64))
        elif col.type == "str" and dtype != pl.String:
            out.append(value.cast(pl.String))
    return out


def py_series(name: str, values: list) -> "pl.Series":
    """A column from Python values (database rows). Mixed types that polars cannot hold in
    one dtype become text: JSON for dicts and lists, ``str()`` for the rest."""
    import polars as pl

    try:
        return pl.Series(name, values)
    except (TypeError, ValueError, OverflowError, pl.exceptions.PolarsError):
        pass

    def text(v):
        if v is None:
            return None
        if isinstance(v, (dict, list, tuple)):
            return json.dumps(v, default=str, ensure_ascii=False)
        if isinstance(v, (bytes, bytearray, memoryview)):
            return bytes(v).decode("utf-8", "replace")
        return str(v)

    return pl.Series(name, [text(v) for v in values], dtype=pl.String)


def kinds_of(values: list) -> "pl.Series":
    import polars as pl

    return pl.Series([py_kind(v) for v in values], dtype=pl.String)
