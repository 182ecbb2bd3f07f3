"""Parquet: columns and types as stored. Origins: ``path:row N`` (1-based). Units: rows.

Parquet has no unreadable rows: a file that is not Parquet (or is damaged) fails the
source with its name. The contract is checked against the stored types (an ``int``
column must be stored as an integer type; text holding digits is rejected).
"""

from __future__ import annotations

from pathlib import Path

from ._common import Part, concat_rejects, contract_rejects, data_error, empty_rejects, origins


def read_file(path: Path, shown: str, spec, contract) -> Part:
    import polars as pl

    from .contract import add_absent, check_frame, require_columns

    if not path.is_file():
        raise data_error(f"{shown}: no such file", shown, code="file-not-found")
    try:
        frame = pl.read_parquet(path)
    except (pl.exceptions.PolarsError, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise data_error(f"{shown}: not readable as Parquet ({first})", shown, code="wrong-format") from None
    units = frame.height
    frame = frame.drop("_origin", strict=False).with_columns(origins(f"{shown}:row ", range(1, units + 1)))
    if not contract:
        return Part(frame, empty_rejects(), units)
    require_columns(frame.columns, contract, shown)
    frame = add_absent(frame, contract)
    good, wrong = check_frame(frame, contract, parse_strings=False)
    return Part(good, concat_rejects([contract_rejects(wrong)]), units)
