"""Run a cleaning plan over one source's rows, counting every row that goes.

Rules apply in order; a row a rule rejects is gone for the rules after it. The reader's own
rejects (``corrupt``, ``contract``) are counted first. After the run the accounting invariant
``rows_in == rows_kept + sum(rejected)`` is checked, and ``rejects`` holds exactly the rejected rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

from llmspec.runtime.engine.columns import column  # data names are never patterns
from llmspec.spec.errors import DataError, Diagnostic

if TYPE_CHECKING:
    import polars as pl

    from llmspec.compiler.cleaning import CleaningPlan, CleaningStep
    from llmspec.spec.models import QualitySpec

READER_RULES = ("corrupt", "contract")
META = ("_rule", "_detail", "_origin", "_raw", "_duplicate_of")


class AccountingError(RuntimeError):
    """Rows appeared or vanished during cleaning: a bug in llmspec, never the user's doing."""


@dataclass
class CleanResult:
    source: str
    kept: "pl.DataFrame"  # data columns + _origin
    rejects: "pl.DataFrame"  # data columns + _rule, _detail, _origin, _raw, _duplicate_of
    rows_in: int
    rows_kept: int
    rejected: dict[str, int]
    modified: dict[str, int]
    notes: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)  # step reasons in the order they ran

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "rows_in": self.rows_in, "rows_kept": self.rows_kept,
                "rejected": dict(self.rejected), "modified": dict(self.modified), "notes": list(self.notes),
                "seconds": {k: round(v, 4) for k, v in self.seconds.items()}, "order": list(self.order)}


class StepProgress(int):
    """What ``progress`` receives: an int, the rows still in after the steps done so far (so a
    caller may log it as a row count), carrying the step about to run and the step counts."""

    reason: str
    done: int
    total: int

    def __new__(cls, rows: int, reason: str, done: int, total: int) -> "StepProgress":
        obj = super().__new__(cls, rows)
        obj.reason, obj.done, obj.total = reason, done, total
        return obj


Progress = Callable[[StepProgress], None]
CountTokens = Callable[[list[str]], list[int]]


def run_cleaning(batch: Any, plan: "CleaningPlan", *, count_tokens: CountTokens | None = None,
                 progress: Progress | None = None) -> CleanResult:
    """Apply ``plan`` to a ``SourceBatch`` (name, rows, rejected, rows_in, files), in memory.

    ``count_tokens`` maps texts to token counts with the model's tokenizer; without it token
    bounds use ceil(chars / 4) and say so in each detail. ``progress`` gets a ``StepProgress``
    before each step and once at the end (reason "done"). The batched engine runs it as one
    batch: ``clean_batches`` gives the same result batch by batch.
    """
    return clean_batches([batch], plan, count_tokens=count_tokens, progress=progress)


def clean_batches(batches: Iterable[Any], plan: "CleaningPlan", *, count_tokens: CountTokens | None = None,
                  progress: Progress | None = None, spill_dir: "Path | None" = None) -> CleanResult:
    """``run_cleaning`` over a source read in batches (``sources.stream.iter_source``), kept rows
    and rejects gathered in memory; ``clean_to_files`` writes them batch by batch instead."""
    from llmspec.runtime.clean.engine import Engine
    from llmspec.runtime.clean.sink import MemorySink

    batches = iter(batches)
    first = next(batches)
    data_cols = [c for c in first.rows.columns if c != "_origin"]
    _check_columns(plan, first.rows)
    sink = MemorySink(_order(plan), plan.keep_rejects)
    engine = Engine(plan, sink, count_tokens=count_tokens, progress=progress, spill_dir=spill_dir)
    engine.run(_chain(first, batches))
    kept, rejects = sink.frames(data_cols)
    result = CleanResult(source=plan.source, kept=kept, rejects=rejects, rows_in=engine.rows_in,
                         rows_kept=kept.height, rejected=_rejected(plan, sink.counts), modified=engine.modified,
                         notes=engine.notes, seconds=engine.seconds, order=_order(plan))
    check_accounting(result)
    return result


@dataclass
class StreamResult:
    """What ``clean_to_files`` leaves in memory: counts, sample rejects, the kept rows' profile."""

    source: str
    rows_in: int
    rows_kept: int
    rejected: dict[str, int]
    modified: dict[str, int]
    samples: "pl.DataFrame"  # the first rejects of each rule (data columns + meta)
    columns: list[str] = field(default_factory=list)  # of the kept rows, _origin last
    profile: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return CleanResult.to_dict(self)  # type: ignore[arg-type]

    @classmethod
    def load(cls, stage_dir: Path) -> "StreamResult":
        """A built clean stage's result read back from its folder: its counts (``clean.json``)
        and sample rejects, never every row."""
        import json

        import polars as pl

        d = json.loads((stage_dir / "clean.json").read_text(encoding="utf-8"))
        samples = stage_dir / "samples.parquet"
        order = d.get("order", [])
        # clean.json's keys are sorted: give the counts back in the funnel's order (reader rules, then the rules')
        counts = d.get("rejected", {})
        first = [r for r in READER_RULES if r in counts] + [r for r in counts if r not in order and r not in READER_RULES]
        rejected = {r: counts[r] for r in first + [r for r in order if r in counts]}
        modified = {r: d.get("modified", {})[r] for r in order if r in d.get("modified", {})}
        return cls(source=d["source"], rows_in=d["rows_in"], rows_kept=d["rows_kept"], rejected=rejected,
                   modified=modified,
                   samples=pl.read_parquet(samples) if samples.exists() else pl.DataFrame(
                       schema={"_rule": pl.String, "_detail": pl.String, "_origin": pl.String}),
                   columns=d.get("columns", []), profile=d.get("kept_profile"), notes=d.get("notes", []),
                   seconds=d.get("seconds", {}), order=d.get("order", []))


def clean_to_files(batches: Iterable[Any], plan: "CleaningPlan", kept_path: "Path", rejects_path: "Path | None", *,
                   count_tokens: CountTokens | None = None, progress: Progress | None = None,
                   scratch: "Path | None" = None, profile: bool = False) -> StreamResult:
    """Clean batch by batch, writing kept rows to ``kept_path`` and rejects to ``rejects_path``
    (None: counted, not written): memory holds a batch and the dedupe state, not the source.
    ``scratch`` is where parts and spilled batches go meanwhile (default: the system's temp)."""
    import polars as pl

    from llmspec.runtime.clean.engine import Engine
    from llmspec.runtime.clean.sink import FileSink

    batches = iter(batches)
    first = next(batches)
    data_cols = [c for c in first.rows.columns if c != "_origin"]
    _check_columns(plan, first.rows)
    acc = None
    if profile:
        from llmspec.runtime.sources.profile import ProfileParts

        acc = ProfileParts()
    sink = FileSink(_order(plan), plan.keep_rejects, scratch=scratch, profile=acc)
    try:
        engine = Engine(plan, sink, count_tokens=count_tokens, progress=progress, spill_dir=scratch or _tmp())
        engine.run(_chain(first, batches))
        rejected = _rejected(plan, sink.counts)
        gone = sum(rejected.values())
        if engine.rows_in != sink.rows_kept + gone:
            raise AccountingError(f"source '{plan.source}': rows_in {engine.rows_in} != rows_kept {sink.rows_kept} + "
                                  f"rejected {gone} {rejected}")
        sink.finish(kept_path, rejects_path, data_cols)
    finally:
        sink.close()
    samples = [sink.samples[r] for r in sink.rule_order() if r in sink.samples]
    return StreamResult(source=plan.source, rows_in=engine.rows_in, rows_kept=sink.rows_kept, rejected=rejected,
                        modified=engine.modified, samples=pl.concat(samples, how="diagonal_relaxed") if samples
                        else pl.DataFrame(schema={"_rule": pl.String, "_detail": pl.String, "_origin": pl.String}),
                        columns=data_cols + ["_origin"], profile=acc.result() if acc is not None else None,
                        notes=engine.notes, seconds=engine.seconds, order=_order(plan))


def _tmp() -> "Path":
    import tempfile
    from pathlib import Path

    return Path(tempfile.gettempdir())


def _chain(first: Any, rest: Iterable[Any]):
    yield first
    yield from rest


def _order(plan: "CleaningPlan") -> list[str]:
    return list(dict.fromkeys(s.reason for s in plan.steps))


def _rejected(plan: "CleaningPlan", counts: Mapping[str, int]) -> dict[str, int]:
    """Every reader rule and reject step, counted or 0, in the order the funnel shows them."""
    out = {r: 0 for r in READER_RULES}
    for rule, n in counts.items():
        if rule not in out and rule not in _order(plan):
            out[rule] = n
    for step in plan.steps:
        if step.action != "modify":
            out.setdefault(step.reason, 0)
    for rule, n in counts.items():
        out[rule] = n
    return out


def check_accounting(result: CleanResult) -> None:
    gone = sum(result.rejected.values())
    if result.rows_in != result.rows_kept + gone or result.rejects.height != gone \
            or result.kept.height != result.rows_kept:
        raise AccountingError(
            f"source '{result.source}': rows_in {result.rows_in} != rows_kept {result.rows_kept} + rejected "
            f"{gone} {result.rejected} (rejects frame holds {result.rejects.height} rows)")


def _check_columns(plan: "CleaningPlan", df: "pl.DataFrame") -> None:
    missing = sorted({c for s in plan.steps for c in s.columns if c not in df.columns}
                     | {s.args["from_column"] for s in plan.steps
                        if s.kind == "fill" and s.args.get("from_column") and s.args["from_column"] not in df.columns})
    if missing:
        raise DataError(Diagnostic(
            "missing-column", f"source '{plan.source}' has no column {', '.join(repr(c) for c in missing)}, "
            "which the cleaning plan uses", hint=f"it has {', '.join(c for c in df.columns if c != '_origin')}; "
            "recompile the plan after changing the source"))
    from llmspec.compiler.cleaning import column_category

    schema = df.schema  # built anew on every access: once, not once per column
    for s in plan.steps:
        if s.all_text or s.kind in ("require", "fill") or (s.kind == "dedupe" and s.args["method"] == "exact"):
            continue
        bad = [c for c in s.columns if column_category(schema[c]) not in ("text", "turns")]
        if bad:
            raise DataError(Diagnostic(
                "not-text", f"rule {s.reason} (quality.rules[{s.index}]) works on text, but column '{bad[0]}' of "
                f"source '{plan.source}' is {schema[bad[0]]}", hint="declare the column as `str` or drop it "
                "from the rule's columns"))


def modify_batch(df: "pl.DataFrame", step: "CleaningStep") -> tuple["pl.DataFrame", int]:
    import polars as pl

    if step.kind == "redact_pii":
        from llmspec.runtime.clean.pii import redact_frame

        return redact_frame(df, step)
    from llmspec.runtime.clean.kernels import modify_exprs

    try:
        exprs = modify_exprs(step, df.schema)
        if not exprs:
            return df, 0
        names = [e.meta.output_name() for e in exprs]
        tmp = df.lazy().with_columns([e.alias(f"__new__{n}") for e, n in zip(exprs, names)]).collect()
    except (pl.exceptions.InvalidOperationError, pl.exceptions.ComputeError) as exc:
        if step.kind == "fill":
            raise DataError(Diagnostic(
                "fill-type", f"rule {step.reason} (quality.rules[{step.index}]) cannot put {step.args.get('value')!r}"
                f" into column '{step.args['column']}' of type {df.schema[step.args['column']]}",
                hint=str(exc).splitlines()[0])) from None
        raise
    n = tmp.select(pl.any_horizontal([column(c).ne_missing(column(f"__new__{c}")) for c in names]).sum()).item()
    out = tmp.select([column(f"__new__{c}").alias(c) if c in names else column(c) for c in df.columns])
    return out, int(n or 0)


def reject_batch(df: "pl.DataFrame", step: "CleaningStep",
                 count_tokens: CountTokens | None) -> tuple["pl.DataFrame", "pl.DataFrame", str | None]:
    import polars as pl

    note = None
    if df.height == 0:
        return df, df.head(0), None
    if step.kind == "length" and (step.args.get("min_tokens") is not None
                                    or step.args.get("max_tokens") is not None):
        from llmspec.runtime.clean.kernels import reject_detail_expr

        detail = df.with_columns(reject_detail_expr(step, df.schema).alias("__d")).get_column("__d")
        detail, note = _token_details(df, step, detail, count_tokens)
    else:
        from llmspec.runtime.clean.kernels import first_detail, reject_conditions

        pairs = reject_conditions(step, df.schema)
        if not pairs:
            return df, df.head(0), note
        hit = df.select(pl.any_horizontal([c for c, _ in pairs]).fill_null(False)).to_series()
        if not hit.any():
            return df, df.head(0), note
        gone = df.filter(hit)
        gone = gone.with_columns(pl.lit(step.reason).alias("_rule"), first_detail(pairs).alias("_detail"))
        return df.filter(~hit), gone, note
    mask = detail.is_not_null()
    if not mask.any():
        return df, df.head(0), note
    extra = [pl.lit(step.reason).alias("_rule"), detail.filter(mask).alias("_detail")]
    gone = df.filter(mask).with_columns(extra)
    return df.filter(~mask), gone, note


def _token_details(df: "pl.DataFrame", step: "CleaningStep", detail: "pl.Series",
                   count_tokens: CountTokens | None) -> tuple["pl.Series", str | None]:
    import polars as pl

    from llmspec.runtime.clean.kernels import approx_tokens, text_columns, token_detail_expr

    frame = pl.DataFrame({"d": detail.alias("d")})
    for c, cat in text_columns(step, df.schema):
        if count_tokens is None:
            counts = df.select(approx_tokens(c, cat).alias("n")).get_column("n")
        else:
            col = df.get_column(c).alias("value")  # a Series' methods select it by its name: never "*"
            if cat == "turns":
                col = col.list.eval(pl.element().struct.field("content")).list.join("\n")
            todo = col.is_not_null()
            texts = col.filter(todo).to_list()
            # the tokenizer is a Python call: one batched call per column, on surviving rows only
            got = pl.Series(list(count_tokens(texts)), dtype=pl.Int64) if texts else pl.Series([], dtype=pl.Int64)
            counts = pl.Series([None] * df.height, dtype=pl.Int64).scatter(todo.arg_true(), got) if texts \
                else pl.Series([None] * df.height, dtype=pl.Int64)
        frame = frame.with_columns(counts.alias("n")).with_columns(
            pl.coalesce(pl.col("d"), token_detail_expr(step, c, pl.col("n"), approximate=count_tokens is None))
            .alias("d"))
    note = None if count_tokens else token_note(step)
    return frame.get_column("d"), note


# ----------------------------------------------------------------------------- gates


def check_gates(results: Mapping[str, CleanResult], quality: "QualitySpec") -> list[Diagnostic]:
    """Failed gates, with the numbers: per source (quality.source_gates) and over all sources."""
    diags: list[Diagnostic] = []
    for name, res in results.items():
        gates = quality.source_gates.get(name)
        if gates is not None:
            diags.extend(_gate(f"source '{name}'", f"quality.source_gates.{name}", gates,
                               res.rows_in, res.rows_kept, res.rejected))
    if results:
        totals: dict[str, int] = {}
        for res in results.values():
            for rule, n in res.rejected.items():
                totals[rule] = totals.get(rule, 0) + n
        where = "all sources" if len(results) > 1 else f"source '{next(iter(results))}'"
        diags.extend(_gate(where, "quality.gates", quality.gates, sum(r.rows_in for r in results.values()),
                           sum(r.rows_kept for r in results.values()), totals))
    return diags


def _gate(what: str, key: str, gates: Any, rows_in: int, kept: int, rejected: Mapping[str, int]) -> list[Diagnostic]:
    out = []
    gone = rows_in - kept
    top = sorted(((n, r) for r, n in rejected.items() if n), reverse=True)[:3]
    why = ", ".join(f"{r} {n:,}" for n, r in top) or "none"
    if gates.max_rejected_fraction is not None and rows_in:
        frac = gone / rows_in
        if frac > gates.max_rejected_fraction:
            out.append(Diagnostic(
                "gate-failed", f"{what}: cleaning rejected {frac:.1%} of rows ({gone:,} of {rows_in:,}), above "
                f"{key}.max_rejected_fraction {gates.max_rejected_fraction:g}; largest reasons: {why}",
                hint="run `llmspec clean SPEC` to see sample rejects per rule"))
    if gates.min_rows_after is not None and kept < gates.min_rows_after:
        out.append(Diagnostic(
            "gate-failed", f"{what}: {kept:,} rows left after cleaning ({rows_in:,} in), below "
            f"{key}.min_rows_after {gates.min_rows_after:,}; largest reasons: {why}",
            hint="run `llmspec clean SPEC` to see sample rejects per rule"))
    return out


def token_note(step: "CleaningStep") -> str:
    return f"{step.reason}: no tokenizer known, token counts estimated as ceil(chars / 4)"
