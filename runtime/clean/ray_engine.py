"""The cleaning plan on a Ray cluster (Ray Data), with the local engine's results.

The source is read where llmspec runs (its readers decide origins and unreadable units) and
handed to the cluster batch by batch as Arrow tables in Ray's object store. On the cluster:
- the per-row rules run as ``map_batches`` with Polars inside (``run.modify_batch`` /
  ``run.reject_batch``, the local engine's own functions); a rejected row stays in the dataset
  with its ``_rule`` and is passed over by later rules;
- an exact or fingerprint dedupe is a hash shuffle: ``groupby`` on the key's two 64-bit hashes,
  the group's first row in source order kept;
- a MinHash dedupe is staged like datatrove's: band keys per batch (``near_stage.band_keys``) ->
  one shuffle on (band, key) for the rows sharing a bucket -> ``near_stage.groups`` on those
  candidates in one task -> ``near_stage.reject`` per batch.
The result is sorted back into source order and streamed into the same ``FileSink`` as locally,
so kept rows, rejects and counts are identical (tested on a local Ray).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

if TYPE_CHECKING:
    import polars as pl
    import pyarrow as pa

    from llmspec.compiler.cleaning import CleaningPlan, CleaningStep

from llmspec.runtime.engine.columns import cols

LIVE = "_rule"  # null while a row is still in play


def _pl(table: "pa.Table") -> "pl.DataFrame":
    import polars as pl

    return pl.from_arrow(table)


def _arrow(df: "pl.DataFrame") -> "pa.Table":
    import polars as pl

    return df.to_arrow(compat_level=pl.CompatLevel.oldest())  # plain Arrow types Ray Data handles


def _split(df: "pl.DataFrame") -> tuple["pl.DataFrame", "pl.DataFrame"]:
    import polars as pl

    live = df.get_column(LIVE).is_null()
    return df.filter(live), df.filter(~live)


def _join(live: "pl.DataFrame", dead: "pl.DataFrame") -> "pl.DataFrame":
    import polars as pl

    return pl.concat([live, dead], how="diagonal_relaxed") if dead.height else live


class RowSteps:
    """``map_batches`` function: the per-row rules, in order, on the rows still in play."""

    def __init__(self, steps: list["CleaningStep"], count_tokens: Callable | None):
        self.steps, self.count_tokens = steps, count_tokens

    def __call__(self, table: "pa.Table") -> "pa.Table":
        import polars as pl

        from llmspec.runtime.clean.run import modify_batch, reject_batch

        live, dead = _split(_pl(table))
        for step in self.steps:
            if step.action == "modify":
                before = live
                live, _ = modify_batch(live, step)
                cols = [c for c in live.columns if not c.startswith("_")]
                changed = pl.any_horizontal([live.get_column(c).ne_missing(before.get_column(c)) for c in cols]) \
                    if cols else pl.lit(False)
                live = live.with_columns(pl.select(changed).to_series().alias(f"__mod_{step.index}"))
            else:
                live, gone, _ = reject_batch(live, step, self.count_tokens)
                dead = _join(dead, gone)
        return _arrow(_join(live, dead))


class KeyHashes:
    """``map_batches``: the two 64-bit hashes of a dedupe key (and its text, for details)."""

    def __init__(self, step: "CleaningStep"):
        self.step = step

    def __call__(self, table: "pa.Table") -> "pa.Table":
        import polars as pl

        from llmspec.runtime.clean.seen import hashed_keys

        df = _pl(table)
        live, dead = _split(df)
        k = hashed_keys(live, self.step)
        live = live.with_columns(k.get_column("__h1"), k.get_column("__h2"), k.get_column("__key"))
        return _arrow(_join(live, dead))


def _mark_duplicates(table: "pa.Table", step: "CleaningStep", shared_ref: Any) -> "pa.Table":
    """``map_batches``: rows whose key hashes are in ``shared`` (h1, h2, first __ord, its
    origin) and which are not that first row are rejected as its duplicates."""
    import polars as pl
    import ray

    from llmspec.runtime.clean.seen import duplicate_detail

    df = _pl(table)
    shared = _pl(ray.get(shared_ref))
    m = df.join(shared, on=["__h1", "__h2"], how="left", maintain_order="left")
    dup = pl.col("__first").is_not_null() & (pl.col("__ord") != pl.col("__first"))
    out = m.with_columns(
        pl.when(dup).then(pl.col("__kept")).alias("_duplicate_of"),
        pl.when(dup).then(duplicate_detail(step, pl.col("__kept"), pl.col("__key"))).alias("_detail"),
        pl.when(dup).then(pl.lit(step.reason)).alias(LIVE))
    return _arrow(out.drop("__h1", "__h2", "__key", "__first", "__kept"))


def _rows_at(table: "pa.Table", want_ref: Any, columns: list[str]) -> "pa.Table":
    """``map_batches``: the given columns of the rows whose __ord is wanted."""
    import polars as pl
    import ray

    df = _pl(table)
    return _arrow(df.filter(pl.col("__ord").is_in(pl.Series(ray.get(want_ref)).implode())).select(columns))


def _collect(ds) -> "pl.DataFrame | None":
    import polars as pl

    parts = [_pl(t) for t in ds.iter_batches(batch_format="pyarrow", batch_size=None)]
    parts = [p for p in parts if p.height]
    return pl.concat(parts, how="vertical_relaxed") if parts else None


class BandKeys:
    """``map_batches``: (__band, __key, __ord) for every row in play that has shingles."""

    def __init__(self, step: "CleaningStep"):
        self.step = step

    def __call__(self, table: "pa.Table") -> "pa.Table":
        import numpy as np
        import polars as pl

        from llmspec.runtime.clean.near_stage import band_keys, step_texts

        live, _ = _split(_pl(table))
        rows, keys = band_keys(step_texts(live, self.step), self.step.args)
        ords = live.get_column("__ord").to_numpy()[rows]
        bands = keys.shape[0]
        return _arrow(pl.DataFrame({"__band": np.repeat(np.arange(bands, dtype=np.int64), len(ords)),
                                    "__key": keys.ravel(), "__ord": np.tile(ords, bands)}))


def _in_buckets(table: "pa.Table", buckets_ref: Any) -> "pa.Table":
    """``map_batches``: __ord of the rows whose (band, key) bucket holds two or more rows."""
    import ray

    df = _pl(table)
    return _arrow(df.join(_pl(ray.get(buckets_ref)), on=["__band", "__key"], how="semi").select("__ord"))


def _only(table: "pa.Table", live: bool) -> "pa.Table":
    rows, gone = _split(_pl(table))
    return _arrow(rows if live else gone)


class NearReject:
    def __init__(self, found_ref: Any, reason: str):
        self.found_ref, self.reason = found_ref, reason

    def __call__(self, table: "pa.Table") -> "pa.Table":
        import ray

        from llmspec.runtime.clean.near_stage import reject

        live, dead = _split(_pl(table))
        # the local engine's frames carry no _detail/_duplicate_of until a rule rejects the row
        live, gone = reject(live.drop("_detail", "_duplicate_of"), _pl(ray.get(self.found_ref)), self.reason)
        return _arrow(_join(_join(live, gone), dead))


def _texts_of(table: "pa.Table", step: "CleaningStep", want: Any) -> "pa.Table":
    import polars as pl

    from llmspec.runtime.clean.near_stage import step_texts

    live, _ = _split(_pl(table))
    sub = live.filter(pl.col("__ord").is_in(pl.Series(want).implode()))
    return _arrow(sub.select(pl.col("__ord").cast(pl.UInt64), "_origin", step_texts(sub, step).alias("__text")))


def _groups_task(cand: "pa.Table", args: dict) -> "pa.Table":
    from llmspec.runtime.clean.near_stage import groups

    # Arrow, not Polars, crosses processes: pickling a Polars frame hung inside Ray (its thread pool)
    return _arrow(groups(_pl(cand).sort("__ord"), args))


def connect(address: str | None) -> None:
    """Join the cluster at ``address`` (``auto``: one started here by ``ray start``), or start a
    Ray instance on this machine when unset; a Ray already running in this process is reused."""
    try:
        import ray
    except ImportError:
        from llmspec.spec.errors import LlmspecError

        raise LlmspecError("execution.engine is ray, but Ray is not installed", code="missing-extra",
                           hint="pip install 'llmspec-tune[ray]' (on this machine and every node of the cluster)") \
            from None
    import logging

    logging.getLogger("ray.data").setLevel(logging.WARNING)  # its INFO lines would mix into --json output
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    if ray.is_initialized():
        return
    # unset: a fresh local instance ("local"), never whichever cluster happens to run on this machine
    ray.init(address=address or "local", include_dashboard=False, log_to_driver=False, logging_level="ERROR",
             configure_logging=False)


def clean_on_ray(batches: Iterable[Any], plan: "CleaningPlan", kept_path: Path | None, rejects_path: Path | None, *,
                 address: str | None = None, count_tokens: Callable | None = None, profile: bool = False,
                 scratch: Path | None = None):
    """``run.clean_to_files`` on Ray: the same arguments, the same ``StreamResult``."""
    import polars as pl

    from llmspec.runtime.clean.run import AccountingError, StreamResult, _order, _rejected, _check_columns
    from llmspec.runtime.clean.sink import FileSink

    connect(address)
    import ray

    batches = iter(batches)
    acc = None
    if profile:
        from llmspec.runtime.sources.profile import ProfileParts

        acc = ProfileParts()
    sink = FileSink(_order(plan), plan.keep_rejects, scratch=scratch, profile=acc)
    try:
        refs, rows_in, data_cols = [], 0, None
        offset = 0
        for batch in batches:
            rows_in += int(batch.rows_in)
            if batch.rejected is not None and batch.rejected.height:
                sink.reader_rejects(batch.rejected)
            df = batch.rows
            if data_cols is None:
                data_cols = [c for c in df.columns if c != "_origin"]
                _check_columns(plan, df)
            if not df.height:
                continue
            df = df.rechunk().with_columns(
                (pl.int_range(pl.len(), dtype=pl.UInt64) + offset).alias("__ord"),
                pl.lit(None, dtype=pl.String).alias(LIVE), pl.lit(None, dtype=pl.String).alias("_detail"),
                pl.lit(None, dtype=pl.String).alias("_duplicate_of"))
            offset += df.height
            refs.append(ray.put(_arrow(df)))
        mods = [s for s in plan.steps if s.action == "modify"]
        modified = {s.reason: 0 for s in mods}
        if refs:
            # shuffle partitions: Ray's default (200) costs a task each, however small the data
            parts = max(1, min(len(refs), 2 * int(ray.cluster_resources().get("CPU", 1))))
            ds = _plan_on_ray(ray.data.from_arrow_refs(refs), plan, count_tokens, parts)
            for table in ds.sort("__ord").iter_batches(batch_format="pyarrow", batch_size=100_000):
                df = _pl(table)
                for rule_df in _by_rule(df):
                    rule, part = rule_df
                    if rule is None:
                        sink.kept(part.select(cols(data_cols + ["_origin"])))
                    else:
                        sink.rejects(rule, part)
                for s in mods:
                    if f"__mod_{s.index}" in df.columns:
                        modified[s.reason] += int(df.get_column(f"__mod_{s.index}").fill_null(False).sum())
        notes = _notes(plan, count_tokens)
        rejected = _rejected(plan, sink.counts)
        if rows_in != sink.rows_kept + sum(rejected.values()):
            raise AccountingError(f"source '{plan.source}': rows_in {rows_in} != rows_kept {sink.rows_kept} + "
                                  f"rejected {sum(rejected.values())} {rejected}")
        if kept_path is not None:
            sink.finish(kept_path, rejects_path, data_cols or [])
    finally:
        sink.close()
    samples = [sink.samples[r] for r in sink.rule_order() if r in sink.samples]
    return StreamResult(source=plan.source, rows_in=rows_in, rows_kept=sink.rows_kept, rejected=rejected,
                        modified=modified, samples=pl.concat(samples, how="diagonal_relaxed") if samples
                        else pl.DataFrame(schema={"_rule": pl.String, "_detail": pl.String, "_origin": pl.String}),
                        columns=(data_cols or []) + ["_origin"], profile=acc.result() if acc is not None else None,
                        notes=notes, order=_order(plan))


def _by_rule(df: "pl.DataFrame"):
    import polars as pl

    for rule in df.get_column(LIVE).unique(maintain_order=True).to_list():
        part = df.filter(pl.col(LIVE).is_null() if rule is None else pl.col(LIVE) == rule)
        yield rule, part.drop([c for c in part.columns if c.startswith("__mod_")] + ["__ord"])


def _notes(plan, count_tokens) -> list[str]:
    """The local engine's notes: only the token-estimate one exists (``run.token_note``)."""
    from llmspec.runtime.clean.run import token_note

    if count_tokens is not None:
        return []
    return list(dict.fromkeys(token_note(s) for s in plan.steps
                              if s.kind == "length" and (s.args.get("min_tokens") is not None
                                                         or s.args.get("max_tokens") is not None)))


def _plan_on_ray(ds, plan: "CleaningPlan", count_tokens: Callable | None, parts: int):
    """The Ray Data pipeline of the plan: rows leave it kept (``_rule`` null) or rejected."""
    import numpy as np
    import polars as pl
    import ray
    from ray.data.aggregate import Count, Min

    from llmspec.runtime.clean.engine import is_barrier

    run: list = []

    def flush(ds):
        if run:
            ds = ds.map_batches(RowSteps(list(run), count_tokens), batch_format="pyarrow", batch_size=None)
            run.clear()
        return ds

    for step in plan.steps:
        if step.kind != "dedupe":
            run.append(step)
            continue
        ds = flush(ds)
        ds = ds.materialize()  # read twice below (rows in play, rows already rejected)
        live = ds.map_batches(_only, fn_kwargs={"live": True}, batch_format="pyarrow", batch_size=None)
        dead = ds.map_batches(_only, fn_kwargs={"live": False}, batch_format="pyarrow", batch_size=None)
        if not is_barrier(step):
            # exact / fingerprint: a hash shuffle (Ray's groupby) counts each key; the keys
            # held twice or more, with their first row, go back to every batch
            hashed = live.map_batches(KeyHashes(step), batch_format="pyarrow", batch_size=None).materialize()
            counts = hashed.groupby(["__h1", "__h2"], num_partitions=parts).aggregate(Count(alias_name="__n"),
                                                                 Min("__ord", alias_name="__first"))
            shared = _collect(counts.filter(expr="__n > 1"))
            if shared is None:
                shared = pl.DataFrame(schema={"__h1": pl.UInt64, "__h2": pl.UInt64, "__first": pl.UInt64})
            firsts = _collect(hashed.map_batches(
                _rows_at, fn_kwargs={"want_ref": ray.put(shared.get_column("__first").to_numpy()),
                                     "columns": ["__ord", "_origin"]}, batch_format="pyarrow", batch_size=None))
            shared = shared.select("__h1", "__h2", pl.col("__first").cast(pl.UInt64)).join(
                firsts.select(pl.col("__ord").cast(pl.UInt64).alias("__first"), pl.col("_origin").alias("__kept"))
                if firsts is not None else pl.DataFrame(schema={"__first": pl.UInt64, "__kept": pl.String}),
                on="__first", how="left")
            ds = hashed.map_batches(_mark_duplicates, fn_kwargs={"step": step, "shared_ref": ray.put(_arrow(shared))},
                                    batch_format="pyarrow", batch_size=None).union(dead)
            continue
        # MinHash, staged: band keys -> buckets of 2+ (a shuffle on band and key) -> groups of
        # those candidates in one task -> rejects per batch
        keys = live.map_batches(BandKeys(step), batch_format="pyarrow", batch_size=None).materialize()
        sizes = keys.groupby(["__band", "__key"], num_partitions=parts).aggregate(Count(alias_name="__n"))
        buckets = _collect(sizes.filter(expr="__n > 1"))
        want = np.zeros(0, np.uint64)
        if buckets is not None:
            members = _collect(keys.map_batches(_in_buckets, fn_kwargs={"buckets_ref": ray.put(
                _arrow(buckets.select("__band", "__key")))}, batch_format="pyarrow", batch_size=None))
            if members is not None:
                want = np.unique(members.get_column("__ord").to_numpy())
        want_ref = ray.put(want)
        cand = _collect(live.map_batches(lambda t, _s=step, _w=want_ref: _texts_of(t, _s, ray.get(_w)),
                                         batch_format="pyarrow", batch_size=None)) if want.size else None
        task = ray.remote(_groups_task)
        found = ray.get(task.remote(_arrow(cand) if cand is not None else
                                    _arrow(pl.DataFrame(schema={"__ord": pl.UInt64, "_origin": pl.String,
                                                                "__text": pl.String})), dict(step.args)))
        ds = live.map_batches(NearReject(ray.put(found), step.reason), batch_format="pyarrow",
                              batch_size=None).union(dead)
    return flush(ds)
