"""Exact and fingerprint dedupe across batches: the keys seen so far, as hashes, not rows.

Each distinct key is two 64-bit Polars hashes (different seeds), a 32-bit index and the
``_origin`` of the row that first had it, itself compact (``Origins``): 32 bytes a distinct key
whatever the row's or the origin's size (10M distinct rows: 320 MB).
Two different keys are taken as equal only if both hashes agree (odds ~ n^2 / 2^129: nil at
any real size). The hashes live in sorted runs merged like a binary counter (a run is merged
into the one before it while that one is no larger), up to ``MAX_RUN`` keys a run: a lookup is
a few binary searches, and a merge never copies more than two capped runs at once (merging
everything into one run would briefly need twice the whole state).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

    from llmspec.compiler.cleaning import CleaningStep

SEEDS = (0x5EED_0001, 0x5EED_0002)
NO_NUMBER = 2**64 - 1
# an origin is nearly always a prefix and a line, row or page number ("data/t.jsonl:1234"); a
# number with no leading zero, at most 18 digits (under 2^63), so that prefix + str(n) gives it back
_ORIGIN = r"(?s)^(.*?)([1-9][0-9]{0,17})$"


class Origins:
    """``_origin`` strings appended in order and gathered by index, at 12 bytes each: a prefix
    id (the few distinct prefixes, file by file, stored once) and the number after it. An origin
    not ending in a number (an email's message id) is its own prefix (as costly as the string)."""

    def __init__(self) -> None:
        import polars as pl

        self.prefixes: dict[str, int] = {}
        self.names: list[str] = []
        self.pid = pl.Series("pid", [], dtype=pl.UInt32)  # appended chunk by chunk: never copied
        self.num = pl.Series("num", [], dtype=pl.UInt64)

    def __len__(self) -> int:
        return self.pid.len()

    def nbytes(self) -> int:
        return self.pid.estimated_size() + self.num.estimated_size() + sum(len(n) + 60 for n in self.names)

    def append(self, origins: "pl.Series") -> None:
        import polars as pl

        parts = origins.cast(pl.String).str.extract_groups(_ORIGIN).struct.unnest()
        prefix = pl.select(pl.coalesce(parts.to_series(0), origins.cast(pl.String))).to_series()
        for p in prefix.unique(maintain_order=True).to_list():
            if p not in self.prefixes:
                self.prefixes[p] = len(self.names)
                self.names.append(p)
        pid = prefix.replace_strict(self.prefixes, return_dtype=pl.UInt32)
        num = parts.to_series(1).cast(pl.UInt64).fill_null(NO_NUMBER)
        self.pid.append(pid.alias("pid"))
        self.num.append(num.alias("num"))

    def gather(self, ids: "np.ndarray") -> "pl.Series":
        import polars as pl

        idx = pl.Series(ids.astype("int64", copy=False))
        num = self.num.gather(idx)
        prefix = pl.Series(self.names, dtype=pl.String).gather(self.pid.gather(idx))
        return pl.select(prefix + pl.when(num == NO_NUMBER).then(pl.lit("")).otherwise(num.cast(pl.String))
                         ).to_series().alias("origin")


class SeenKeys:
    MAX_RUN = 1 << 21  # keys a run (20 bytes each: 40 MB); a merge copies at most two runs

    def __init__(self) -> None:
        self.runs: list[tuple["np.ndarray", "np.ndarray", "np.ndarray"]] = []  # (h1 sorted, h2, origin id)
        self.origins = Origins()  # of first rows, by id

    def __len__(self) -> int:
        return len(self.origins)

    def nbytes(self) -> int:
        """Memory held: what a test bounds per distinct key."""
        return sum(a.nbytes + b.nbytes + c.nbytes for a, b, c in self.runs) + self.origins.nbytes()

    def find(self, h1: "np.ndarray", h2: "np.ndarray") -> "pl.Series":
        """The origin under which each (h1, h2) was seen, else null."""
        import numpy as np
        import polars as pl

        out = pl.Series([None] * len(h1), dtype=pl.String)
        todo = np.ones(len(h1), bool)
        for r1, r2, ids in self.runs:
            if not todo.any():
                break
            at = np.searchsorted(r1, h1)
            inside = at < len(r1)
            at = np.minimum(at, len(r1) - 1)
            hit = todo & inside & (r1[at] == h1) & (r2[at] == h2)
            if hit.any():
                idx = np.flatnonzero(hit)
                out = out.scatter(idx, self.origins.gather(ids[at[idx]]))
                todo &= ~hit
        return out

    def add(self, h1: "np.ndarray", h2: "np.ndarray", origins: "pl.Series") -> None:
        import numpy as np

        if not len(h1):
            return
        first = len(self)
        ids = np.arange(first, first + len(h1), dtype=np.uint32 if first + len(h1) < 2**32 else np.int64)
        self.origins.append(origins)
        order = np.argsort(h1, kind="stable")
        self.runs.append((h1[order], h2[order], ids[order]))
        while len(self.runs) > 1 and len(self.runs[-2][0]) <= len(self.runs[-1][0]) \
                and len(self.runs[-2][0]) + len(self.runs[-1][0]) <= self.MAX_RUN:
            (a1, a2, ai), (b1, b2, bi) = self.runs[-2], self.runs[-1]
            m1 = np.concatenate([a1, b1])
            order = np.argsort(m1, kind="stable")
            self.runs[-2:] = [(m1[order], np.concatenate([a2, b2])[order], np.concatenate([ai, bi])[order])]


def hashed_keys(df: "pl.DataFrame", step: "CleaningStep") -> "pl.DataFrame":
    """_origin, __h1, __h2 (the key's hashes) and __key (its text, for fingerprint details) of each row."""
    import polars as pl

    from llmspec.runtime.clean.dedupe import key_exprs

    keys = key_exprs(step, df.schema)
    if not keys:
        return df.select("_origin", pl.lit(None, dtype=pl.UInt64).alias("__h1"),
                         pl.lit(None, dtype=pl.UInt64).alias("__h2"), pl.lit(None, dtype=pl.String).alias("__key"))
    names = [k.meta.output_name() for k in keys]
    # the key's text only where a detail shows it (fingerprint keys are strings; exact ones may be turns)
    text = pl.concat_str(names, separator=" | ", ignore_nulls=True).str.slice(0, 60) \
        if step.args["method"] == "fingerprint" else pl.lit(None, dtype=pl.String)
    return df.lazy().select(pl.col("_origin"), *keys).select(
        "_origin", pl.struct(names).hash(SEEDS[0]).alias("__h1"), pl.struct(names).hash(SEEDS[1]).alias("__h2"),
        text.alias("__key"),
    ).collect()


def duplicate_detail(step: "CleaningStep", kept: "pl.Expr", key: "pl.Expr") -> "pl.Expr":
    import polars as pl

    if step.args["method"] == "exact":
        return pl.concat_str([pl.lit("exact duplicate of "), kept, pl.lit(" (after normalisation)")])
    return pl.concat_str([pl.lit("same fingerprint as "), kept, pl.lit(": '"), key, pl.lit("'")])


def split_duplicates(df: "pl.DataFrame", step: "CleaningStep", seen: SeenKeys) -> tuple["pl.DataFrame", "pl.DataFrame"]:
    """(rows kept, duplicates with _rule, _detail, _duplicate_of): a row is a duplicate when an
    earlier row, in this batch or any before it, has its key. ``seen`` learns the new keys."""
    import polars as pl

    from llmspec.runtime.clean.dedupe import key_exprs

    if not key_exprs(step, df.schema) or df.height == 0:
        return df, df.head(0)
    k = hashed_keys(df, step)
    h1, h2 = k.get_column("__h1").to_numpy(), k.get_column("__h2").to_numpy()
    before = seen.find(h1, h2)
    k = k.with_columns(before.alias("__before")).with_columns(
        pl.col("__before").is_null().alias("__new"))
    k = k.with_columns(
        (pl.col("__new") & pl.struct("__h1", "__h2").is_first_distinct()).alias("__first"))
    k = k.with_columns(pl.coalesce(
        pl.col("__before"),
        pl.when(~pl.col("__first")).then(pl.col("_origin").filter(pl.col("__first")).first()
                                         .over("__h1", "__h2"))).alias("__kept"))
    new = k.filter(pl.col("__first"))
    seen.add(new.get_column("__h1").to_numpy(), new.get_column("__h2").to_numpy(), new.get_column("_origin"))
    dup = k.get_column("__kept").is_not_null()
    if not dup.any():
        return df, df.head(0)
    info = k.filter(dup).select(pl.col("__kept").alias("_duplicate_of"),
                                duplicate_detail(step, pl.col("__kept"), pl.col("__key")).alias("_detail"))
    gone = pl.concat([df.filter(dup), info], how="horizontal").with_columns(pl.lit(step.reason).alias("_rule"))
    return df.filter(~dup), gone
