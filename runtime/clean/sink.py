"""Where the engine's kept rows and rejects go, batch by batch.

``MemorySink`` gathers frames (``run_cleaning``: callers that want DataFrames). ``FileSink``
writes each batch to a part file at once and, when the run is done, streams the parts into
``NAME.parquet`` and ``NAME.rejects.parquet`` (Polars' streaming engine: one part at a time in
memory), keeping only counts, the first rejects of each rule as samples, and the kept rows'
profile numbers. Rejects are ordered rule by rule (the reader's first), then by source order,
so the files do not depend on the batch size.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmspec.runtime.engine.columns import cols, column  # data names are never patterns

if TYPE_CHECKING:
    import polars as pl

META_TYPES = ("_rule", "_detail", "_origin", "_raw", "_duplicate_of")
READER_ORDER = ("corrupt", "contract")


def _meta_schema():
    import polars as pl

    return {"_rule": pl.String, "_detail": pl.String, "_origin": pl.String, "_raw": pl.Binary,
            "_duplicate_of": pl.String}


def align_rejects(f: "pl.DataFrame", data_schema: dict | None) -> "pl.DataFrame":
    """A reject frame with exactly the data columns (when kept) and the meta columns."""
    import polars as pl

    schema = dict(data_schema or {})
    schema.update(_meta_schema())
    have = f.schema  # built anew on every access: once, not once per column
    exprs = []
    for name, dtype in schema.items():
        if name in have:
            exprs.append(column(name).cast(dtype, strict=False) if have[name] != dtype else column(name))
        else:
            exprs.append(pl.lit(None, dtype=dtype).alias(name))
    return f.select(exprs)


def reader_parts(frames: list["pl.DataFrame"]) -> list["pl.DataFrame"]:
    """The reader's rejects of every batch, rule by rule (corrupt, contract, then others)."""
    import polars as pl

    if len(frames) <= 1:
        return frames
    every = pl.concat(frames, how="diagonal_relaxed")
    rules = list(dict.fromkeys(list(READER_ORDER) + every.get_column("_rule").unique(maintain_order=True).to_list()))
    return [every.filter(pl.col("_rule") == r) for r in rules if (every.get_column("_rule") == r).any()]


def data_schema(df: "pl.DataFrame") -> dict:
    return {c: t for c, t in df.schema.items() if not c.startswith("_")}


class MemorySink:
    def __init__(self, order: list[str], keep_data: bool):
        self.order, self.keep_data = order, keep_data
        self.reader: list[pl.DataFrame] = []
        self.parts: dict[str, list[pl.DataFrame]] = {r: [] for r in order}
        self.kept_parts: list[pl.DataFrame] = []
        self.counts: dict[str, int] = {}

    def reader_rejects(self, df: "pl.DataFrame") -> None:
        self.reader.append(df)
        for rule, n in df.group_by("_rule").len().iter_rows():
            self.counts[str(rule)] = self.counts.get(str(rule), 0) + n

    def rejects(self, rule: str, df: "pl.DataFrame") -> None:
        self.counts[rule] = self.counts.get(rule, 0) + df.height
        if df.height:
            self.parts.setdefault(rule, []).append(df)

    def kept(self, df: "pl.DataFrame") -> None:
        self.kept_parts.append(df)

    def frames(self, columns: list[str]) -> tuple["pl.DataFrame", "pl.DataFrame"]:
        """(kept: ``columns`` + _origin, rejects) as whole frames."""
        import polars as pl

        kept = pl.concat(self.kept_parts, how="diagonal_relaxed") if self.kept_parts else None
        if kept is None or not kept.width:
            kept = pl.DataFrame({c: [] for c in columns} | {"_origin": pl.Series([], dtype=pl.String)})
        kept = kept.select(cols(columns + ["_origin"]))
        kept_schema = kept.schema  # built anew on every access: once, not once per column
        schema = {c: kept_schema[c] for c in columns} if self.keep_data else {}
        frames = [align_rejects(f, schema) for f in reader_parts(self.reader)]
        frames += [align_rejects(f, schema) for r in self.parts for f in self.parts[r]]
        rejects = pl.concat(frames, how="vertical") if frames else pl.DataFrame(schema=schema | _meta_schema())
        return kept, rejects


class FileSink:
    """Part files in a scratch folder, streamed into the two outputs by ``finish``."""

    def __init__(self, order: list[str], keep_data: bool, scratch: Path | None = None, samples: int = 3,
                 profile: Any = None):
        self.order, self.keep_data, self.samples_per_rule = order, keep_data, samples
        self.dir = Path(tempfile.mkdtemp(prefix="llmspec-parts-", dir=scratch))
        self.counts: dict[str, int] = {}
        self.samples: dict[str, pl.DataFrame] = {}
        self.parts: dict[str, list[Path]] = {}
        self.kept_paths: list[Path] = []
        self.rows_kept = 0
        self.profile = profile  # ProfileParts of the kept rows, or None
        self._n = 0

    def _write(self, df: "pl.DataFrame", tag: str) -> Path:
        self._n += 1
        path = self.dir / f"{self._n:08d}-{tag}.parquet"
        df.write_parquet(path, compression="lz4")
        return path

    def _sample(self, rule: str, df: "pl.DataFrame") -> None:
        have = self.samples.get(rule)
        if have is None or have.height < self.samples_per_rule:
            import polars as pl

            more = df.head(self.samples_per_rule - (have.height if have is not None else 0))
            self.samples[rule] = more if have is None else pl.concat([have, more], how="diagonal_relaxed")

    def reader_rejects(self, df: "pl.DataFrame") -> None:
        import polars as pl

        for rule in df.get_column("_rule").unique(maintain_order=True).to_list():
            part = df.filter(pl.col("_rule") == rule)
            self.rejects(str(rule), part, reader=True)

    def rejects(self, rule: str, df: "pl.DataFrame", *, reader: bool = False) -> None:
        self.counts[rule] = self.counts.get(rule, 0) + df.height
        if not df.height:
            return
        schema = data_schema(df) if self.keep_data and not reader else {}
        part = align_rejects(df, schema)
        self._sample(rule, part)
        self.parts.setdefault(rule, []).append(self._write(part, "rejects"))

    def kept(self, df: "pl.DataFrame") -> None:
        if not df.height:
            return
        out = df.drop("__ord", strict=False)
        self.rows_kept += out.height
        if self.profile is not None:
            self.profile.add(out.drop("_origin"))
        self.kept_paths.append(self._write(out, "kept"))

    def rule_order(self) -> list[str]:
        reader = [r for r in READER_ORDER if r in self.parts] + \
            [r for r in self.parts if r not in self.order and r not in READER_ORDER]
        return reader + [r for r in self.order if r in self.parts]

    def finish(self, kept_path: Path, rejects_path: Path | None, columns: list[str]) -> None:
        """Write the outputs (each atomically: a temp file renamed), then drop the parts."""
        import polars as pl

        kept = [pl.scan_parquet(p) for p in self.kept_paths]
        lf = pl.concat(kept, how="diagonal_relaxed") if kept else pl.LazyFrame(
            {c: [] for c in columns} | {"_origin": pl.Series([], dtype=pl.String)})
        have = lf.collect_schema()
        _sink(lf.select([column(c) if c in have else pl.lit(None).alias(c) for c in columns]
                        + [column("_origin")]), kept_path)
        if rejects_path is not None:
            frames = [pl.scan_parquet(p) for r in self.rule_order() for p in self.parts[r]]
            if frames:
                lf = pl.concat(frames, how="diagonal_relaxed")
                names = lf.collect_schema().names()
                front = [c for c in names if not c.startswith("_")]
                lf = lf.select(cols(front + [c for c in META_TYPES if c in names]))
            else:
                lf = pl.LazyFrame(schema=_meta_schema())
            _sink(lf, rejects_path)
        self.close()

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def _sink(lf: "pl.LazyFrame", target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        lf.sink_parquet(tmp)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
