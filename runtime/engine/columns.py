"""Column names are data, never patterns.

``pl.col("*")`` is every column and ``pl.col("^a.*$")`` a regex over the names, and Polars
reads a bare string in ``select``, ``over`` or ``struct`` the same way. A JSONL key, a CSV
header or a Parquet column may be spelt exactly so, so every expression on a column named by
data or by a spec goes through ``column`` (an exact-name selector).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Iterable

if TYPE_CHECKING:
    import polars as pl


def column(name: str) -> "pl.Expr":
    """The column called exactly ``name``."""
    import polars.selectors as cs

    return cs.by_name(name).as_expr()


def cols(names: Iterable[str]) -> list["pl.Expr"]:
    return [column(n) for n in names]


def safe_name(fn: Callable[["pl.Series"], "pl.Series"]) -> Callable[["pl.Series"], "pl.Series"]:
    """``fn`` for ``map_batches``, given its Series under a plain name: a Series' own methods
    select it by name, so one called ``^a.*$`` would find nothing inside its own frame."""

    def run(s: "pl.Series") -> "pl.Series":
        return fn(s.alias("value")).alias(s.name)

    return run


__all__ = ["cols", "column", "safe_name"]
