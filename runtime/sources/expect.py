"""``expect``: volume and completeness checks on a freshly read source, before any cleaning
or training. Each failed expectation is one diagnostic carrying the numbers."""

from __future__ import annotations

from llmspec.spec.errors import Diagnostic, did_you_mean


def _pct(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:.1f}%" if whole else "0%"


def check_expectations(batch, spec) -> list[Diagnostic]:
    """Diagnostics (severity error) for every ``spec.expect`` bound ``batch`` violates; [] when
    all hold or nothing is expected. ``rows`` are the readable rows (after the contract).
    A source with no readable row fails unless ``expect.min_rows`` is set (``0`` allows it)."""
    exp = getattr(spec, "expect", None)
    name = batch.name
    rows = batch.rows
    n = rows.height
    if n == 0 and (exp is None or exp.min_rows is None):
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
        data_cols = [c for c in rows.columns if not c.startswith("_")]
        if isinstance(exp.max_null_fraction, dict):
            limits = dict(exp.max_null_fraction)
            for col in limits:
                if col not in rows.columns:
                    out.append(Diagnostic("expect-unknown-column",
                                          f"{name}: expect.max_null_fraction names column '{col}', which the "
                                          f"source does not have", hint=did_you_mean(col, data_cols)))
            limits = {c: v for c, v in limits.items() if c in rows.columns}
        else:
            limits = {c: exp.max_null_fraction for c in data_cols}
        if limits:
            nulls = rows.null_count().row(0, named=True)
            for col, limit in limits.items():
                frac = nulls[col] / n
                if frac > limit:
                    out.append(Diagnostic(
                        "expect-nulls",
                        f"{name}: column '{col}' is {_pct(nulls[col], n)} null ({nulls[col]} of {n} rows), "
                        f"expect.max_null_fraction is {limit}"))
    if exp.max_corrupt_fraction is not None and batch.rows_in:
        corrupt = int((batch.rejected["_rule"] == "corrupt").sum()) if batch.rejected.height else 0
        frac = corrupt / batch.rows_in
        if frac > exp.max_corrupt_fraction:
            out.append(Diagnostic(
                "expect-corrupt",
                f"{name}: {corrupt} of {batch.rows_in} units unreadable ({_pct(corrupt, batch.rows_in)}), "
                f"expect.max_corrupt_fraction is {exp.max_corrupt_fraction}",
                hint="`llmspec clean --out DIR` writes them, with their bytes, to DIR/" + name + ".rejects.parquet"))
    return out


def _rejected_hint(batch) -> str | None:
    if not batch.rejected.height:
        return None
    counts = batch.rejected["_rule"].value_counts(sort=True).rows()
    listed = ", ".join(f"{n} {rule}" for rule, n in counts)
    return f"{batch.rows_in} units were read; rejected: {listed}"
