"""The Polars expressions that run a compiled cleaning plan's steps.

Pure functions of a ``CleaningStep`` and a frame's schema: ``run.py`` evaluates them on data,
``explain.py`` renders the same expressions as Polars query plans.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Mapping

from llmspec.runtime.engine.columns import column, safe_name  # data names are never patterns
from llmspec.compiler.cleaning import CleaningStep, column_category

if TYPE_CHECKING:  # polars is heavy: imported inside functions only
    import polars as pl

# C0 controls except tab, LF and CR, and U+FFFD (what a lossy decode leaves for a bad byte).
CONTROL_CHARS = r"[\x00-\x08\x0B\x0C\x0E-\x1F]"
REPLACEMENT_CHAR = "\ufffd"



def explain_dtype(category: str):
    import polars as pl

    if category == "turns":
        return pl.List(pl.Struct({"role": pl.String, "content": pl.String}))
    if category == "other":
        return pl.Int64
    return pl.String


def text_columns(step: CleaningStep, schema: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(column, text|turns) for the step's columns that hold text in this frame."""
    out = []
    for c in step.columns:
        cat = column_category(schema[c])
        if cat in ("text", "turns"):
            out.append((c, cat))
    return out


def on_text(col: str, cat: str, fn: Callable[["pl.Expr"], "pl.Expr"]) -> "pl.Expr":
    """fn applied to a text column, or to the `content` of each turn of a list-of-struct column."""
    import polars as pl

    if cat == "turns":
        return column(col).list.eval(pl.element().struct.with_fields(fn(pl.field("content"))))
    return fn(column(col))


def any_text(col: str, cat: str, fn: Callable[["pl.Expr"], "pl.Expr"]) -> "pl.Expr":
    """A boolean per row: fn holds for the column, or for any turn's content."""
    import polars as pl

    if cat == "turns":
        return column(col).list.eval(fn(pl.element().struct.field("content"))).list.any().fill_null(False)
    return fn(column(col)).fill_null(False)


# Whitespace runs other than a single plain space: replacing only these is 3x faster than `\s+`,
# which rewrites every ordinary space too.
WHITESPACE_RUN = r"[^\S ]\s*|\s{2,}"


def unicode_fast(form: str):
    """Series -> Series Unicode normalisation that skips pure-ASCII values (normalisation cannot
    change them): a vectorised dispatch, measured 10x faster than normalising every value."""
    def run(s: "pl.Series") -> "pl.Series":
        todo = (s.str.len_bytes() != s.str.len_chars()).fill_null(False)
        if not todo.any():
            return s
        idx = todo.arg_true()
        return s.clone().scatter(idx, s.gather(idx).str.normalize(form))
    run.__name__ = f"{form.lower()}_non_ascii_only"
    return run


def normalize_text(e: "pl.Expr", *, unicode: str = "NFKC", whitespace: str = "collapse",
                   case: str = "none", fast: bool = False) -> "pl.Expr":
    """``fast``: a top-level column (not inside list.eval), where the ASCII shortcut applies."""
    import polars as pl

    if unicode != "none":
        e = e.map_batches(safe_name(unicode_fast(unicode)), return_dtype=pl.String, is_elementwise=True) if fast \
            else e.str.normalize(unicode)
    if whitespace == "collapse":
        e = e.str.replace_all(WHITESPACE_RUN, " ").str.strip_chars()
    elif whitespace == "strip":
        e = e.str.strip_chars()
    if case == "lower":
        e = e.str.to_lowercase()
    return e


def modify_exprs(step: CleaningStep, schema: Mapping[str, Any]) -> list["pl.Expr"]:
    """New values for the columns a modifying rule rewrites (aliased to the column names)."""
    import polars as pl

    a = step.args
    if step.kind == "normalize":
        return [on_text(c, cat, lambda e, _f=cat == "text": normalize_text(
                    e, unicode=a["unicode"], whitespace=a["whitespace"], case=a["case"], fast=_f)).alias(c)
                for c, cat in text_columns(step, schema)]
    if step.kind == "replace_matching":
        out = []
        for c, cat in text_columns(step, schema):
            def swap(e, _pats=a["rust_patterns"]):
                hit = pl.any_horizontal([e.str.contains(p) for p in _pats])
                return pl.when(hit.fill_null(False)).then(pl.lit(a["value"])).otherwise(e)
            out.append(on_text(c, cat, swap).alias(c))
        return out
    if step.kind == "substitute":
        return [on_text(c, cat, lambda e: e.str.replace_all(a["rust_pattern"], a["rust_with"])).alias(c)
                for c, cat in text_columns(step, schema)]
    if step.kind == "fill":
        c = a["column"]
        dtype = schema[c]
        missing = _missing(c, schema, blank=True)
        if a.get("from_column"):
            new = column(a["from_column"]).cast(dtype, strict=False)
        else:
            new = pl.lit(a["value"]).cast(dtype, strict=True)
        return [pl.when(missing).then(new).otherwise(column(c)).alias(c)]
    raise ValueError(f"{step.kind} does not modify by expression")


def _missing(c: str, schema: Mapping[str, Any], *, blank: bool) -> "pl.Expr":
    import polars as pl

    cat = column_category(schema[c])
    e = column(c).is_null()
    if cat == "text" and blank:
        e = e | (column(c).str.strip_chars() == "")
    elif cat == "turns" and blank:
        e = e | (column(c).list.len() == 0)
    return e


def first_detail(pairs: list[tuple["pl.Expr", "pl.Expr"]]) -> "pl.Expr":
    """The detail of the first condition that holds, else null (the row is kept)."""
    import polars as pl

    if not pairs:
        return pl.lit(None, dtype=pl.String)
    expr = pl.when(pairs[0][0]).then(pairs[0][1])
    for cond, detail in pairs[1:]:
        expr = expr.when(cond).then(detail)
    return expr.otherwise(pl.lit(None, dtype=pl.String))


def short(text: str, n: int = 40) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def reject_detail_expr(step: CleaningStep, schema: Mapping[str, Any]) -> "pl.Expr":
    """A String per row: why the rule rejects it, or null to keep it. Pure Polars."""
    return first_detail(reject_conditions(step, schema))


def reject_conditions(step: CleaningStep, schema: Mapping[str, Any]) -> list[tuple["pl.Expr", "pl.Expr"]]:
    """(condition, detail) pairs in order: the first condition that holds rejects the row.

    The runtime evaluates only the conditions on every row and builds details for the rejected
    few (a when/then chain computes every branch's value on every row)."""
    import polars as pl

    a = step.args
    pairs: list[tuple[pl.Expr, pl.Expr]] = []
    if step.kind == "drop_corrupt":
        for c, cat in text_columns(step, schema):
            pairs.append((any_text(c, cat, lambda e: e.str.contains(REPLACEMENT_CHAR, literal=True)),
                          pl.lit(f"{c}: U+FFFD replacement character (undecodable bytes)")))
            if a["control_chars"]:
                if cat == "text":
                    code = column(c).str.extract(f"({CONTROL_CHARS})").str.encode("hex").str.to_uppercase()
                    detail = pl.concat_str([pl.lit(f"{c}: control character U+00"), code])
                else:
                    detail = pl.lit(f"{c}: control character in a turn")
                pairs.append((any_text(c, cat, lambda e: e.str.contains(CONTROL_CHARS)), detail))
    elif step.kind == "require":
        for c in step.columns:
            pairs.append((column(c).is_null(), pl.lit(f"{c} is missing")))
            if a["blank_is_missing"]:
                blank = _missing(c, schema, blank=True) & column(c).is_not_null()
                pairs.append((blank, pl.lit(f"{c} is blank")))
    elif step.kind in ("reject_matching", "keep_matching"):
        cols = text_columns(step, schema)
        if step.kind == "reject_matching":
            for c, cat in cols:
                for p, rp in zip(a["patterns"], a["rust_patterns"]):
                    pairs.append((any_text(c, cat, lambda e, _rp=rp: e.str.contains(_rp)),
                                  pl.lit(f"{c} matches {short(p)!r}")))
        else:
            hit = pl.any_horizontal([any_text(c, cat, lambda e, _rp=rp: e.str.contains(_rp))
                                     for c, cat in cols for rp in a["rust_patterns"]] or [pl.lit(False)])
            which = ", ".join(repr(short(p, 30)) for p in a["patterns"][:3])
            more = f" (+{len(a['patterns']) - 3} more)" if len(a["patterns"]) > 3 else ""
            pairs.append((~hit, pl.lit(f"{', '.join(c for c, _ in cols)} matches none of {which}{more}")))
    elif step.kind == "length":
        for c, cat in text_columns(step, schema):
            n = column(c).str.len_chars() if cat == "text" else \
                column(c).list.eval(pl.element().struct.field("content").str.len_chars()).list.sum()
            if a.get("min_chars") is not None:
                pairs.append((n < a["min_chars"], pl.format(f"{c}: {{}} chars < min_chars {a['min_chars']}", n)))
            if a.get("max_chars") is not None:
                pairs.append((n > a["max_chars"], pl.format(f"{c}: {{}} chars > max_chars {a['max_chars']}", n)))
    else:
        raise ValueError(f"{step.kind} has no pure Polars reject expression")
    return pairs


def token_detail_expr(step: CleaningStep, column: str, counts: "pl.Expr", *, approximate: bool) -> "pl.Expr":
    """Detail for min/max_tokens given a per-row token count expression."""
    import polars as pl

    a = step.args
    how = " (estimated as chars/4: no tokenizer known)" if approximate else ""
    pairs = []
    if a.get("min_tokens") is not None:
        pairs.append((counts < a["min_tokens"],
                      pl.format(f"{column}: {{}} tokens < min_tokens {a['min_tokens']}{how}", counts)))
    if a.get("max_tokens") is not None:
        pairs.append((counts > a["max_tokens"],
                      pl.format(f"{column}: {{}} tokens > max_tokens {a['max_tokens']}{how}", counts)))
    return first_detail(pairs)


def approx_tokens(col: str, cat: str) -> "pl.Expr":
    """ceil(chars / 4): the usual English average for BPE tokenizers, used when none is known."""
    import polars as pl

    n = column(col).str.len_chars() if cat == "text" else \
        column(col).list.eval(pl.element().struct.field("content").str.len_chars()).list.sum()
    return (n + 3) // 4


def explain_step(lf: "pl.LazyFrame", step: CleaningStep, schema: Mapping[str, Any]) -> "pl.LazyFrame":
    """The lazy query of one step on ``lf`` (runtime-backed parts appear as named Python UDFs)."""
    import polars as pl

    if step.kind in ("normalize", "fill", "replace_matching", "substitute"):
        return lf.with_columns(modify_exprs(step, schema))
    if step.kind in ("drop_corrupt", "require", "reject_matching", "keep_matching", "length"):
        detail = reject_detail_expr(step, schema)
        if step.kind == "length" and (step.args.get("min_tokens") is not None
                                      or step.args.get("max_tokens") is not None):
            for c, cat in text_columns(step, schema):
                detail = pl.coalesce(detail, token_detail_expr(step, c, approx_tokens(c, cat), approximate=True))
        return lf.with_columns(detail.alias("_detail")).filter(pl.col("_detail").is_null()).drop("_detail")
    if step.kind == "redact_pii":
        from llmspec.runtime.clean.pii import explain_exprs

        return lf.with_columns(explain_exprs(step, schema))
    if step.kind == "dedupe":
        from llmspec.runtime.clean.dedupe import explain_lazy

        return explain_lazy(lf, step, schema)
    raise ValueError(f"unknown rule kind {step.kind}")
