"""``expect``: volume and completeness checks on a freshly read source, before any cleaning
or training. Each failed expectation is one diagnostic carrying the numbers."""

from __future__ import annotations

from llmspec.spec.errors import Diagnostic, did_you_mean


def _pct(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:.1f}%" if whole else "0%"


class Tally:
    """What ``check_expectations`` reads of a source, counted over batches as they stream past
    (``watch``): readable rows, nulls per column, rejects per rule, units read."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.height = self.rows_in = 0
        self.columns: list[str] = []
        self.nulls: dict[str, int] = {}
        self.rejected: dict[str, int] = {}
        self.extra: dict[str, int] = {}  # undeclared keys: rows holding each

    def watch(self, batches):
        for b in batches:
            self.rows_in += int(b.rows_in)
            self.height += b.rows.height
            known = set(self.columns)  # a list per check would be quadratic in the width
            for c in b.rows.columns:
                if c not in known:
                    known.add(c)
                    self.columns.append(c)
            if b.rows.height:
                for c, v in b.rows.null_count().row(0, named=True).items():
                    self.nulls[c] = self.nulls.get(c, 0) + int(v)
            for key, n in (getattr(b, "extra_columns", None) or {}).items():
                self.extra[key] = self.extra.get(key, 0) + n
            if b.rejected is not None and b.rejected.height:
                for rule, n in b.rejected.group_by("_rule").len().iter_rows():
                    self.rejected[str(rule)] = self.rejected.get(str(rule), 0) + n
            yield b


def _tally(batch) -> Tally:
    if isinstance(batch, Tally):
        return batch
    t = Tally(batch.name)
    for _ in t.watch([batch]):
        pass
    return t


def check_expectations(batch, spec) -> list[Diagnostic]:
    """Diagnostics (severity error) for every ``spec.expect`` bound ``batch`` (a ``SourceBatch``,
    or a ``Tally`` of one read in batches) violates; [] when all hold or nothing is expected.
    ``rows`` are the readable rows (after the contract).
    A source with no readable row fails unless ``expect.min_rows`` is set (``0`` allows it)."""
    exp = getattr(spec, "expect", None)
    batch = _tally(batch)
    name = batch.name
    n = batch.height
    # A feedback source starts empty (nothing served or corrected yet): that is its normal state.
    if n == 0 and (exp is None or exp.min_rows is None) and getattr(spec, "format", None) != "feedback":
        # Nothing to train on is never what a source is for, unless the spec says it may happen.
        return [Diagnostic("source-empty", f"{name}: the source yielded 0 rows ({batch.rows_in} units read)",
                           hint=(_rejected_hint(batch) or "no file held a readable unit") +
                           "; set `expect: {min_rows: 0}` if an empty source is expected")]
    if exp is None:
        return []
    out: list[Diagnostic] = []
    if exp.min_rows is not None and n < exp.min_rows:
        out.append(Diagnostic("expect-min-rows", f"{name}: {n} rows, expect.min_rows is {exp.min_rows}",
                              hint=_rejected_hint(batch)))
    if exp.max_rows is not None and n > exp.max_rows:
        out.append(Diagnostic("expect-max-rows", f"{name}: {n} rows, expect.max_rows is {exp.max_rows}"))
    if exp.max_null_fraction is not None and n:
        data_cols = [c for c in batch.columns if not c.startswith("_")]
        if isinstance(exp.max_null_fraction, dict):
            limits = dict(exp.max_null_fraction)
            for col in limits:
                if col not in batch.columns:
                    out.append(Diagnostic("expect-unknown-column",
                                          f"{name}: expect.max_null_fraction names column '{col}', which the "
                                          f"source does not have", hint=did_you_mean(col, data_cols)))
            limits = {c: v for c, v in limits.items() if c in batch.columns}
        else:
            limits = {c: exp.max_null_fraction for c in data_cols}
        if limits:
            nulls = batch.nulls
            for col, limit in limits.items():
                frac = nulls.get(col, 0) / n
                if frac > limit:
                    out.append(Diagnostic(
                        "expect-nulls",
                        f"{name}: column '{col}' is {_pct(nulls.get(col, 0), n)} null ({nulls.get(col, 0)} of {n} rows), "
                        f"expect.max_null_fraction is {limit}"))
    if exp.max_corrupt_fraction is not None and batch.rows_in:
        corrupt = batch.rejected.get("corrupt", 0)
        frac = corrupt / batch.rows_in
        if frac > exp.max_corrupt_fraction:
            out.append(Diagnostic(
                "expect-corrupt",
                f"{name}: {corrupt} of {batch.rows_in} units unreadable ({_pct(corrupt, batch.rows_in)}), "
                f"expect.max_corrupt_fraction is {exp.max_corrupt_fraction}",
                hint="`llmspec clean --out DIR` writes them, with their bytes, to DIR/" + name + ".rejects.parquet"))
    return out


def _rejected_hint(batch: Tally) -> str | None:
    if not batch.rejected:
        return None
    counts = sorted(batch.rejected.items(), key=lambda kv: -kv[1])
    listed = ", ".join(f"{n} {rule}" for rule, n in counts)
    return f"{batch.rows_in} units were read; rejected: {listed}"
