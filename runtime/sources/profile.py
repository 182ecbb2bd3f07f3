"""A source's profile for plans and reports: size, nulls, text lengths, duplicates and how
much of it looks like something other than text. Vectorised; one pass per statistic."""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmspec.runtime.engine.columns import column  # data names are never patterns

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

# Control characters other than tab and newlines, and U+FFFD (what a failed decode leaves).
_BROKEN = r"[\p{Cc}--[\t\n\r]]|\x{FFFD}"
# Private-use and unassigned code points: a few are fine (icons), many mean binary data.
_ODD = r"[\p{Co}\p{Cn}]"
_ODD_SHARE = 0.1
# Any character either test above counts (C0 and C1 controls, DEL, U+FFFD, private use,
# unassigned): a row without one is text, and most rows have none.
_SUSPECT = r"[\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F\x{FFFD}\p{Co}\p{Cn}]"


def _stats(values: "pl.Series") -> dict:
    if values.len() == 0 or values.null_count() == values.len():
        return {"min": None, "median": None, "p95": None, "max": None}
    return {
        "min": int(values.min()),
        "median": float(values.median()),
        "p95": float(values.quantile(0.95, interpolation="nearest")),
        "max": int(values.max()),
    }


def profile_frame(df: "pl.DataFrame", text_columns: list[str] | None = None) -> dict:
    """JSON-able profile of the data columns (those not starting with ``_``).

    ``text_columns`` defaults to every text column. Token counts are estimates (characters
    divided by 4), labelled as such in the result.
    """
    import polars as pl

    data_cols = [c for c in df.columns if not c.startswith("_")]
    schema = df.schema  # built anew on every access: once, not once per column
    if text_columns is None:
        text_columns = [c for c in data_cols if schema[c] == pl.String]
    else:
        text_columns = [c for c in text_columns if c in schema]
    # Work on positional names: data column names such as "*" or "^a$" mean something to pl.col.
    names = {c: f"c{i}" for i, c in enumerate(df.columns)}
    df = df.rename(names)
    out = _profile(df, [names[c] for c in data_cols], [names[c] for c in text_columns])
    back = {v: k for k, v in names.items()}
    out["columns"] = {back[k]: v for k, v in out["columns"].items()}
    out["nulls"] = {back[k]: v for k, v in out["nulls"].items()}
    out["text"] = {back[k]: v for k, v in out["text"].items()}
    return out


def _profile(df: "pl.DataFrame", data_cols: list[str], text_columns: list[str]) -> dict:
    import polars as pl

    schema = df.schema  # built anew on every access: once, not once per column
    n = df.height
    out: dict = {
        "rows": n,
        "columns": {c: str(schema[c]) for c in data_cols},
        "nulls": {c: int(v) for c, v in df.select(column(c) for c in data_cols).null_count().row(0, named=True).items()}
        if data_cols and n else {c: 0 for c in data_cols},
        "tokens_estimate": "chars/4",
        "text": {},
    }
    if text_columns and n:
        lengths = df.select(column(c).str.len_chars().alias(c) for c in text_columns)
        for c in text_columns:
            chars = lengths[c]
            out["text"][c] = {"chars": _stats(chars), "tokens": _stats((chars / 4).ceil().cast(pl.Int64))}
        non_text = _count_non_text(df, text_columns)
    else:
        non_text = 0
    out["non_text_rows"] = non_text
    out["non_text_rate"] = non_text / n if n else 0.0
    out["duplicate_rows"] = _duplicates(df, data_cols)
    out["duplicate_rate"] = out["duplicate_rows"] / n if n else 0.0
    return out


def _looks_binary(text_columns: list[str]) -> "pl.Expr":
    """Per row: some text column holds broken characters or mostly odd code points."""
    import polars as pl

    return pl.any_horizontal(
        (column(c).str.contains(_BROKEN).fill_null(False))
        | (column(c).str.count_matches(_ODD).fill_null(0) > column(c).str.len_chars().fill_null(0) * _ODD_SHARE)
        for c in text_columns
    )


def _count_non_text(df: "pl.DataFrame", text_columns: list[str]) -> int:
    """Rows ``_looks_binary``, tested only where some text column has a suspect character: one
    regex scan a column instead of two (the source profile's largest cost: 2.5x faster on the
    400k-ticket bench, where no row has one)."""
    import polars as pl

    suspect = df.filter(pl.any_horizontal(column(c).str.contains(_SUSPECT).fill_null(False) for c in text_columns))
    return int(suspect.select(_looks_binary(text_columns).sum()).item()) if suspect.height else 0


def _duplicates(df: "pl.DataFrame", cols: list[str]) -> int:
    """Rows equal, on every data column, to an earlier row."""
    import polars as pl

    if not cols or df.height == 0:
        return 0
    try:
        unique = df.select(column(c) for c in cols).n_unique()
    except pl.exceptions.PolarsError:
        # Some nested types cannot be compared directly; their text form can.
        schema = df.schema
        unique = df.select(column(c).cast(pl.String) if schema[c] == pl.Null else column(c)
                           for c in cols).select(pl.struct(column(c) for c in cols).hash()).n_unique()
    return df.height - unique


def _stats_of_counts(counts: dict[int, int]) -> dict:
    """``_stats`` of the values a histogram (value -> how many) describes, exactly: the median
    of an even count averages the two middle values, p95 is the nearest rank (Polars' rule)."""
    import numpy as np

    if not counts:
        return {"min": None, "median": None, "p95": None, "max": None}
    vals = np.array(sorted(counts), dtype=np.int64)
    ends = np.cumsum([counts[v] for v in vals.tolist()])  # ends[i]: rows up to and including vals[i]
    n = int(ends[-1])

    def at(k: int) -> int:  # the value at 0-based position k of the sorted rows
        return int(vals[int(np.searchsorted(ends, k, side="right"))])

    median = (at((n - 1) // 2) + at(n // 2)) / 2
    return {"min": int(vals[0]), "median": float(median), "p95": float(at(int(np.floor((n - 1) * 0.95 + 0.5)))),
            "max": int(vals[-1])}


class DistinctHashes:
    """How many distinct 64-bit hashes were added: each kept once, in sorted runs (merged like a
    binary counter, ``SeenKeys``' scheme), 8 bytes a distinct value."""

    MAX_RUN = 1 << 22

    def __init__(self) -> None:
        self.runs: list = []

    def __len__(self) -> int:
        return sum(len(r) for r in self.runs)

    def nbytes(self) -> int:
        return sum(r.nbytes for r in self.runs)

    def add(self, hashes: "np.ndarray") -> None:
        import numpy as np

        new = np.unique(hashes)
        for run in self.runs:  # only values no run holds yet: every run stays duplicate-free
            at = np.minimum(np.searchsorted(run, new), len(run) - 1)
            new = new[run[at] != new]
        if not len(new):
            return
        self.runs.append(new)
        while len(self.runs) > 1 and len(self.runs[-2]) <= len(self.runs[-1]) \
                and len(self.runs[-2]) + len(self.runs[-1]) <= self.MAX_RUN:
            b, a = self.runs.pop(), self.runs.pop()
            self.runs.append(np.sort(np.concatenate([a, b])))


class ProfileParts:
    """``profile_frame`` of rows seen batch by batch, in memory that does not grow with the
    rows' count: per text column a histogram of lengths (as many entries as distinct lengths),
    and the rows' 64-bit hashes (for duplicates) once each, 8 bytes a distinct row. Duplicates
    are counted by hash (two distinct rows sharing one: odds ~ n^2 / 2^65)."""

    def __init__(self) -> None:
        self.lengths: dict[str, dict[int, int]] = {}  # text column -> {length in chars: rows}
        self.distinct = DistinctHashes()
        self.nulls: dict[str, int] = {}
        self.columns: dict[str, str] = {}
        self.text: list[str] | None = None
        self.non_text = 0
        self.rows = 0

    def nbytes(self) -> int:
        """Memory held (what a test bounds): the hashes and ~100 bytes a histogram entry."""
        return self.distinct.nbytes() + 100 * sum(len(h) for h in self.lengths.values())

    def add(self, df: "pl.DataFrame") -> None:
        import polars as pl

        data_cols = [c for c in df.columns if not c.startswith("_")]
        schema = df.schema  # built anew on every access: once, not once per column (10,000 columns: 216 s)
        if self.text is None:
            self.text = [c for c in data_cols if schema[c] == pl.String]
            self.columns = {c: str(schema[c]) for c in data_cols}
        names = {c: f"c{i}" for i, c in enumerate(df.columns)}
        back = {n: c for c, n in names.items()}
        d = df.rename(names)
        text = [names[c] for c in self.text if c in names and schema[c] == pl.String]
        for c, v in d.select([names[c] for c in data_cols]).null_count().row(0, named=True).items():
            orig = back[c]
            self.nulls[orig] = self.nulls.get(orig, 0) + int(v)
        if text:
            self.non_text += _count_non_text(d, text)
        for c in text:
            hist = self.lengths.setdefault(back[c], {})
            counts = d.select(pl.col(c).str.len_chars().alias("n")).drop_nulls().group_by("n").len()
            for n, k in counts.iter_rows():
                hist[n] = hist.get(n, 0) + k
        cols = [names[c] for c in data_cols]
        if cols and d.height:
            self.distinct.add(d.select(pl.struct(cols).hash(0)).to_series().to_numpy())
        self.rows += df.height

    def result(self) -> dict:
        import math

        n = self.rows
        out: dict = {"rows": n, "columns": dict(self.columns), "nulls": dict(self.nulls) if n else
                     {c: 0 for c in self.columns}, "tokens_estimate": "chars/4", "text": {}}
        if n:
            for c in self.text or []:
                chars = self.lengths.get(c, {})
                tokens: dict[int, int] = {}
                for length, k in chars.items():
                    t = math.ceil(length / 4)
                    tokens[t] = tokens.get(t, 0) + k
                out["text"][c] = {"chars": _stats_of_counts(chars), "tokens": _stats_of_counts(tokens)}
        out["non_text_rows"] = self.non_text
        out["non_text_rate"] = self.non_text / n if n else 0.0
        dups = n - len(self.distinct) if n and self.columns else 0
        out["duplicate_rows"] = dups
        out["duplicate_rate"] = dups / n if n else 0.0
        return out
