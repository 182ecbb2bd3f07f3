"""Pieces every reader shares: origins, reject frames, errors (which files to read: ``paths``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Sequence

from llmspec.spec.errors import DataError, Diagnostic, Pos

if TYPE_CHECKING:
    import polars as pl

REJECT_COLUMNS = ("_rule", "_detail", "_origin", "_raw")


def data_error(message: str, path: str | None = None, *, code: str = "source", hint: str | None = None,
               line: int | None = None) -> DataError:
    return DataError(Diagnostic(code=code, message=message, pos=Pos(path, line) if path else None, hint=hint))


def display(path: Path, base_dir: Path) -> str:
    """The path as users wrote it: relative to the spec folder, with forward slashes."""
    try:
        return path.relative_to(base_dir).as_posix()
    except ValueError:
        return path.as_posix()


def read_bytes(path: Path, shown: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise data_error(f"{shown}: no such file", shown, code="file-not-found") from None
    except OSError as exc:
        raise data_error(f"{shown}: cannot read ({exc.strerror or exc})", shown, code="file-unreadable") from None


# Leading bytes of binary files people point text sources at, and the format that reads them.
_MAGIC = ((b"%PDF-", "a PDF", "pdf"), (b"PK\x03\x04", "a ZIP archive (a .docx, .xlsx or .zip?)", "docx"),
          (b"\xd0\xcf\x11\xe0", "an old Office document (.doc/.xls)", None),
          (b"\x89PNG", "a PNG image", None), (b"\xff\xd8\xff", "a JPEG image", None), (b"GIF8", "a GIF image", None),
          (b"PAR1", "a Parquet file", "parquet"), (b"SQLite format 3\x00", "an SQLite database", "sqlite"))


def refuse_binary(data: bytes, shown: str, fmt: str) -> None:
    """A binary file read with a text format is refused: decoding it would give one corrupt
    row (or, worse, a row of garbage), and the source would look like it merely had bad data."""
    for magic, what, reader in _MAGIC:
        if data.startswith(magic):
            break
    else:
        if b"\x00" not in data[:8192] or data.startswith((b"\xff\xfe", b"\xfe\xff")):  # UTF-16 is text
            return
        what, reader = "binary (it holds NUL bytes)", None
    hint = f"read it with `format: {reader}`" if reader else "text formats read text files only"
    raise data_error(f"{shown} is {what}, not {fmt} text", shown, code="binary-file", hint=hint)


def strip_bom(data: bytes) -> bytes:
    """The bytes without a leading UTF-8 byte order mark: every text reader ignores one, so a
    file saved by Windows Notepad never costs its first row."""
    return data[3:] if data.startswith(b"\xef\xbb\xbf") else data


def rejects(rule: str, details: Sequence[str], origins: Sequence[str],
            raws: Sequence[bytes | None] | None = None) -> "pl.DataFrame":
    import polars as pl

    n = len(details)
    return pl.DataFrame(
        {
            "_rule": pl.Series([rule] * n, dtype=pl.String),
            "_detail": pl.Series(list(details), dtype=pl.String),
            "_origin": pl.Series(list(origins), dtype=pl.String),
            "_raw": pl.Series(list(raws) if raws is not None else [None] * n, dtype=pl.Binary),
        }
    )


def empty_rejects() -> "pl.DataFrame":
    return rejects("corrupt", [], [], [])


def concat_rejects(frames: Iterable["pl.DataFrame"]) -> "pl.DataFrame":
    import polars as pl

    frames = [f.select(REJECT_COLUMNS) for f in frames if f.height]
    return pl.concat(frames, how="vertical") if frames else empty_rejects()


def concat_rows(frames: list["pl.DataFrame"], what: str) -> "pl.DataFrame":
    """Rows of several files (or chunks) as one frame; columns missing in one file become null."""
    import polars as pl

    frames = [f for f in frames if f.width]
    if not frames:
        return pl.DataFrame({"_origin": pl.Series([], dtype=pl.String)})
    if len(frames) == 1:
        return frames[0]
    try:
        return pl.concat(frames, how="diagonal_relaxed")
    except (pl.exceptions.SchemaError, pl.exceptions.ComputeError, pl.exceptions.InvalidOperationError) as exc:
        raise data_error(f"{what}: the files disagree on column types and cannot be combined ({exc})",
                         code="schema-conflict",
                         hint="declare `columns` types or split the files into separate sources") from None


def with_origin_last(df: "pl.DataFrame") -> "pl.DataFrame":
    import polars as pl

    # By position: data column names such as "*" or "^a.*$" mean something to pl.col.
    order = [i for i, c in enumerate(df.columns) if c != "_origin"] + [df.columns.index("_origin")]
    return df if order == list(range(df.width)) else df.select(pl.nth(order))


def short(value: object, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Part:
    """What one file (or one query) yielded: rows with ``_origin``, rejects, units read."""

    __slots__ = ("rows", "rejected", "units")

    def __init__(self, rows: "pl.DataFrame", rejected: "pl.DataFrame", units: int):
        self.rows, self.rejected, self.units = rows, rejected, units


def contract_rejects(bad: "pl.DataFrame | None") -> "pl.DataFrame":
    import polars as pl

    if bad is None:
        return empty_rejects()
    return bad.select(
        pl.lit("contract", dtype=pl.String).alias("_rule"),
        pl.col("_detail").cast(pl.String),
        pl.col("_origin").cast(pl.String),
        pl.lit(None, dtype=pl.Binary).alias("_raw"),
    )


def origins(prefix: str, numbers) -> "pl.Series":
    """``prefix`` followed by each number, built without a Python loop."""
    import polars as pl

    nums = pl.Series(numbers, dtype=pl.Int64).cast(pl.String)
    return pl.select(pl.lit(prefix, dtype=pl.String) + pl.lit(nums)).to_series().alias("_origin")


def fail_if_nothing_readable(part_units: int, good: int, bad: "pl.DataFrame", shown: str, unit: str,
                             fmt: str) -> None:
    """A file in which not one unit could be read is not of its format at all: fail the
    source naming it, rather than hand on a pile of rejects."""
    if part_units and not good and bad.height == part_units and bad.height:
        first = bad.row(0, named=True)
        raise data_error(
            f"{shown}: not one of its {part_units} {unit}{'s' * (part_units != 1)} could be read "
            f"({first['_origin']}: {first['_detail']}); is it really {fmt}?", shown, code="wrong-format")
