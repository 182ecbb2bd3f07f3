"""Quality rules -> an ordered cleaning plan of Polars operations for one source.

The plan is plain data (``to_dict()`` is JSON) so ``compile`` can write it and ``plan`` can
diff it; ``runtime/clean.py`` executes it. Expression builders live here too, so the text
``explain()`` shows is built from the very expressions the runtime runs.

Everything is vectorised in Polars except where Python is unavoidable, each said where it
happens: checksum validation of PII candidates (``runtime/pii.py``), tokenizer calls for
``max_tokens`` (``runtime/clean.py``) and MinHash banding (NumPy and Polars, ``runtime/dedupe.py``).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from llmspec.spec.errors import Diagnostic, Pos, SpecError, did_you_mean
from llmspec.spec.models import QualitySpec, rule_args, rule_kind
from llmspec.spec.regex import RegexNotPortable, rust_syntax

if TYPE_CHECKING:  # polars is heavy: imported inside functions only
    import polars as pl

MODIFYING = frozenset({"normalize", "fill", "redact_pii", "replace_matching"})
# Rules that default to every text column when they name none.
TEXT_DEFAULT = frozenset({"drop_corrupt", "normalize", "redact_pii"})
ORIGIN = "_origin"

# C0 controls except tab, LF and CR, and U+FFFD (what a lossy decode leaves for a bad byte).
CONTROL_CHARS = r"[\x00-\x08\x0B\x0C\x0E-\x1F]"
REPLACEMENT_CHAR = "\ufffd"

# Measured here (langdetect 1.0.9, fixed seed, 2 shared cores): 3.7 ms per short text
# (~270 rows/s; ~25 min for 400k rows) and confidently wrong on short support texts
# ("Refund issued." -> de 0.99999, "yes" -> tr 0.99999), so min_confidence cannot guard it.
LANGUAGE_REFUSAL = (
    "the `language` rule is not available: the only offline detector installed (langdetect) was "
    "measured at 3.7 ms per row (~270 rows/s, about 25 minutes for 400k rows) and labels short "
    "texts wrongly with near-certain confidence ('Refund issued.' -> German 0.99999, 'yes' -> "
    "Turkish 0.99999), so it would silently drop good rows"
)
LANGUAGE_HINT = (
    "remove the rule; to drop other scripts use reject_matching with a Unicode range, "
    "e.g. patterns: ['[\\u0400-\\u04FF]'] for Cyrillic or ['[\\u4E00-\\u9FFF]'] for Han"
)


# ----------------------------------------------------------------------------- plan data


@dataclass
class CleaningStep:
    index: int  # position in quality.rules (what diagnostics point at)
    reason: str  # recorded as _rule on rejected rows and as the key of the counts
    kind: str
    action: str  # "reject" | "modify"
    columns: list[str]
    args: dict[str, Any]
    all_text: bool = False  # columns defaulted to "every text column": runtime keeps only text dtypes


@dataclass
class CleaningPlan:
    source: str
    columns: list[str]
    types: dict[str, str]  # column -> text | turns | other | unknown
    steps: list[CleaningStep]
    skipped: list[dict[str, Any]] = field(default_factory=list)
    keep_rejects: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "CleaningPlan":
        data = dict(data)
        data["steps"] = [CleaningStep(**s) for s in data["steps"]]
        return cls(**data)

    def explain(self) -> str:
        """The plan as text: per step, Polars' own rendering of the lazy query it runs."""
        import polars as pl

        schema = {c: _explain_dtype(self.types.get(c, "unknown")) for c in self.columns}
        schema[ORIGIN] = pl.String
        lines = [f"cleaning plan for source '{self.source}'",
                 "columns: " + ", ".join(f"{c} ({self.types.get(c, 'unknown')})" for c in self.columns), ""]
        if not self.steps:
            lines.append("no rules apply to this source")
        for n, step in enumerate(self.steps, 1):
            cols = ", ".join(step.columns) if step.columns else "(none)"
            lines.append(f"{n}. {step.reason}: {step.kind} [{step.action}] quality.rules[{step.index}] "
                         f"on {cols}")
            shown = {k: v for k, v in step.args.items() if v is not None}
            if shown:
                lines.append("   args: " + ", ".join(f"{k}={v!r}" for k, v in shown.items()))
            lf = explain_step(pl.LazyFrame(schema=schema), step, schema)
            lines.extend("   " + ln for ln in lf.explain(optimized=False).splitlines())
            note = STEP_NOTES.get(step.kind if step.kind != "dedupe" else f"dedupe:{step.args['method']}")
            if note:
                lines.append(f"   note: {note}")
            lines.append("")
        for s in self.skipped:
            lines.append(f"skipped quality.rules[{s['index']}] ({s['reason']}): source lacks "
                         f"{', '.join(s['missing'])} (skip_missing_columns)")
        return "\n".join(lines).rstrip() + "\n"


STEP_NOTES = {
    "redact_pii": "candidate values found by the Rust regex prefilter are validated in Python "
                  "(Luhn, IBAN mod-97, IP parsing, word boundaries); only they are rewritten",
    "dedupe:minhash": "band keys from one-permutation sketches in NumPy, or from rensa (Rust) "
              "signatures when few rows collide; candidate pairs verified by exact Jaccard "
              "(Polars hash sets) and joined by a vectorised union-find",
    "length": "token bounds use the model tokenizer when known, else ceil(chars / 4)",
}


# ----------------------------------------------------------------------------- compiling


def rule_reasons(rules: Sequence[Any]) -> list[str]:
    """The reason of each rule: its `name`, else its kind, else `kind#N` when a kind repeats.

    Counted over the whole rule list, not per source, so a reason means the same rule everywhere.
    """
    kinds = [rule_kind(r) for r in rules]
    unnamed = [k for r, k in zip(rules, kinds) if rule_args(r).name is None]
    seen: dict[str, int] = {}
    out = []
    for rule, kind in zip(rules, kinds):
        name = rule_args(rule).name
        if name is not None:
            out.append(name)
        elif unnamed.count(kind) > 1:
            seen[kind] = seen.get(kind, 0) + 1
            out.append(f"{kind}#{seen[kind]}")
        else:
            out.append(kind)
    return out


def compile_cleaning(quality: QualitySpec, source: str, columns: Sequence[str] | Mapping[str, Any], *,
                     locate: Callable[[tuple], Pos] | None = None) -> CleaningPlan:
    """The ordered cleaning steps for one source.

    ``columns``: the source's column names, or name -> type (a spec contract type such as
    ``str?``, a Polars dtype, or ``text``/``turns``/``other``) when known. Without types every
    column is assumed to be text and the runtime narrows defaulted column lists by real dtype.
    ``locate`` maps a spec path tuple to a position (``LoadedSpec.locate``) for diagnostics.
    """
    types = _column_types(columns)
    names = list(types)
    reasons = rule_reasons(quality.rules)
    steps: list[CleaningStep] = []
    skipped: list[dict[str, Any]] = []
    state: dict[str, set[str]] = {}  # column -> normalisations known to hold at this point
    for i, rule in enumerate(quality.rules):
        kind, args = rule_kind(rule), rule_args(rule)
        if args.sources is not None and source not in args.sources:
            continue
        where = ("quality", "rules", i, kind)
        pos = locate(where) if locate else None
        if kind == "language":
            raise SpecError(Diagnostic("unsupported-rule", f"quality.rules[{i}]: {LANGUAGE_REFUSAL}",
                                       pos, hint=LANGUAGE_HINT))
        named = _named_columns(kind, args)
        missing = [c for c in named if c not in types]
        if missing:
            if args.skip_missing_columns:
                skipped.append({"index": i, "reason": reasons[i], "kind": kind, "missing": missing})
                continue
            raise SpecError(Diagnostic(
                "unknown-column",
                f"quality.rules[{i}] ({kind}) uses column '{missing[0]}', which source '{source}' does not have",
                pos, hint=did_you_mean(missing[0], names) or f"'{source}' has {', '.join(names) or 'no columns'}; "
                "limit the rule with `sources: [...]` or set `skip_missing_columns: true`"))
        targets, all_text = _targets(kind, args, types)
        resolved = _resolve_args(kind, args, i, pos, types)
        _track_normalisation(kind, resolved, targets, state)
        steps.append(CleaningStep(index=i, reason=reasons[i], kind=kind,
                                  action="modify" if kind in MODIFYING else "reject",
                                  columns=targets, args=resolved, all_text=all_text))
    return CleaningPlan(source=source, columns=names, types=types, steps=steps, skipped=skipped,
                        keep_rejects=quality.keep_rejects)


def _track_normalisation(kind: str, args: dict[str, Any], columns: list[str], state: dict[str, set[str]]) -> None:
    """Record which normalisations hold per column, so dedupe does not redo them.

    normalize adds NFKC / collapse / lower; fill and replace_matching may write anything; PII
    placeholders keep them when ASCII without whitespace."""
    if kind == "dedupe":
        args["normalized"] = {c: sorted(state.get(c, ())) for c in columns if state.get(c)}
    elif kind == "normalize":
        done = {args["unicode"], args["whitespace"], args["case"]} & {"NFKC", "collapse", "lower"}
        for c in columns:
            state.setdefault(c, set()).update(done)
    elif kind in ("fill", "replace_matching"):
        for c in ([args["column"]] if kind == "fill" else columns):
            state.pop(c, None)
    elif kind == "redact_pii":
        if not all(p.isascii() and not any(ch.isspace() for ch in p) for p in args["placeholders"].values()):
            for c in columns:
                state.pop(c, None)


def _column_types(columns: Sequence[str] | Mapping[str, Any]) -> dict[str, str]:
    if isinstance(columns, Mapping):
        return {c: column_category(t) for c, t in columns.items() if c != ORIGIN}
    return {c: "unknown" for c in columns if c != ORIGIN}


def column_category(dtype: Any) -> str:
    """text | turns | other | unknown, from a contract type string or a Polars dtype."""
    if dtype is None:
        return "unknown"
    if isinstance(dtype, str):
        t = dtype.rstrip("?")
        if t in ("text", "turns", "other", "unknown"):
            return t
        return "text" if t == "str" else "other"
    import polars as pl

    if dtype == pl.String:
        return "text"
    if isinstance(dtype, pl.List) and isinstance(dtype.inner, pl.Struct):
        fields = {f.name: f.dtype for f in dtype.inner.fields}
        if fields.get("content") == pl.String:
            return "turns"
    return "other"


def _named_columns(kind: str, args: Any) -> list[str]:
    if kind == "fill":
        return [args.column] + ([args.from_column] if args.from_column else [])
    if kind == "drop_corrupt":
        return list(args.columns or [])
    return list(args.targets or [])


def _targets(kind: str, args: Any, types: dict[str, str]) -> tuple[list[str], bool]:
    if kind == "fill":
        return [args.column], False
    named = args.columns if kind == "drop_corrupt" else args.targets
    if named is not None:
        return list(named), False
    if kind == "dedupe" and args.method == "exact":
        return list(types), False
    # text rules with no columns: every text column (turns too), narrowed by dtype at run time
    return [c for c, t in types.items() if t in ("text", "turns", "unknown")], True


_COMMON = {"name", "sources", "skip_missing_columns", "column", "columns"}


def _resolve_args(kind: str, args: Any, index: int, pos: Pos | None, types: dict[str, str]) -> dict[str, Any]:
    out = args.model_dump(exclude=_COMMON if kind != "fill" else _COMMON - {"column"})
    if kind in ("reject_matching", "keep_matching", "replace_matching"):
        out["rust_patterns"] = [_rust_or_spec_error(p, args.ignore_case, index, kind, pos) for p in args.patterns]
    if kind == "dedupe" and args.method != "minhash":
        for k in ("threshold", "ngram", "unit", "permutations", "seed", "bands", "rows_per_band"):
            out.pop(k, None)
    if kind == "dedupe" and args.method == "minhash":
        from llmspec.runtime.clean.dedupe import SKETCH, band_layout

        if args.bands or args.rows_per_band:  # the spec's layout; a missing half uses every permutation
            out["bands"] = args.bands or args.permutations // args.rows_per_band
            out["rows_per_band"] = args.rows_per_band or args.permutations // args.bands
        else:
            out["bands"], out["rows_per_band"] = band_layout(args.threshold, args.permutations)
        # which rows end up grouped depends on the sketch: part of the step's fingerprint, so a
        # new algorithm re-runs this cleaning once
        out["sketch"] = SKETCH
    if kind == "redact_pii":
        out["placeholders"] = {k: args.placeholder.replace("{KIND}", k.upper()) for k in args.kinds}
    if kind == "drop_corrupt":
        out.pop("columns", None)
    return out


# ----------------------------------------------------------------------------- regex


def rust_regex(pattern: str, ignore_case: bool = False) -> str:
    """The pattern in Rust regex syntax (what Polars runs), or RegexNotPortable saying why not:
    ``spec.regex.rust_syntax``'s translation, then compiled by Polars' engine itself."""
    out = rust_syntax(pattern, ignore_case)
    import polars as pl

    try:
        pl.select(pl.lit("").str.contains(out))
    except Exception as exc:  # the Rust parser's message is the useful part
        why = str(exc).split("This error occurred")[0].strip().replace("regex error: ", "")
        raise RegexNotPortable(f"does not compile in Rust regex syntax: {why}", None) from None
    return out


def _rust_or_spec_error(pattern: str, ignore_case: bool, index: int, kind: str, pos: Pos | None) -> str:
    try:
        return rust_regex(pattern, ignore_case)
    except RegexNotPortable as exc:
        why, hint = exc.args[0], exc.args[1] if len(exc.args) > 1 else None
        raise SpecError(Diagnostic("regex-not-portable", f"quality.rules[{index}] ({kind}): pattern "
                                   f"{pattern!r} {why}", pos, hint=hint)) from None


# ----------------------------------------------------------------------------- expressions


def _explain_dtype(category: str):
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
        return pl.col(col).list.eval(pl.element().struct.with_fields(fn(pl.field("content"))))
    return fn(pl.col(col))


def any_text(col: str, cat: str, fn: Callable[["pl.Expr"], "pl.Expr"]) -> "pl.Expr":
    """A boolean per row: fn holds for the column, or for any turn's content."""
    import polars as pl

    if cat == "turns":
        return pl.col(col).list.eval(fn(pl.element().struct.field("content"))).list.any().fill_null(False)
    return fn(pl.col(col)).fill_null(False)


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
        e = e.map_batches(unicode_fast(unicode), return_dtype=pl.String, is_elementwise=True) if fast \
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
    if step.kind == "fill":
        c = a["column"]
        dtype = schema[c]
        missing = _missing(c, schema, blank=True)
        if a.get("from_column"):
            new = pl.col(a["from_column"]).cast(dtype, strict=False)
        else:
            new = pl.lit(a["value"]).cast(dtype, strict=True)
        return [pl.when(missing).then(new).otherwise(pl.col(c)).alias(c)]
    raise ValueError(f"{step.kind} does not modify by expression")


def _missing(c: str, schema: Mapping[str, Any], *, blank: bool) -> "pl.Expr":
    import polars as pl

    cat = column_category(schema[c])
    e = pl.col(c).is_null()
    if cat == "text" and blank:
        e = e | (pl.col(c).str.strip_chars() == "")
    elif cat == "turns" and blank:
        e = e | (pl.col(c).list.len() == 0)
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


def _short(text: str, n: int = 40) -> str:
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
                    code = pl.col(c).str.extract(f"({CONTROL_CHARS})").str.encode("hex").str.to_uppercase()
                    detail = pl.concat_str([pl.lit(f"{c}: control character U+00"), code])
                else:
                    detail = pl.lit(f"{c}: control character in a turn")
                pairs.append((any_text(c, cat, lambda e: e.str.contains(CONTROL_CHARS)), detail))
    elif step.kind == "require":
        for c in step.columns:
            pairs.append((pl.col(c).is_null(), pl.lit(f"{c} is missing")))
            if a["blank_is_missing"]:
                blank = _missing(c, schema, blank=True) & pl.col(c).is_not_null()
                pairs.append((blank, pl.lit(f"{c} is blank")))
    elif step.kind in ("reject_matching", "keep_matching"):
        cols = text_columns(step, schema)
        if step.kind == "reject_matching":
            for c, cat in cols:
                for p, rp in zip(a["patterns"], a["rust_patterns"]):
                    pairs.append((any_text(c, cat, lambda e, _rp=rp: e.str.contains(_rp)),
                                  pl.lit(f"{c} matches {_short(p)!r}")))
        else:
            hit = pl.any_horizontal([any_text(c, cat, lambda e, _rp=rp: e.str.contains(_rp))
                                     for c, cat in cols for rp in a["rust_patterns"]] or [pl.lit(False)])
            which = ", ".join(repr(_short(p, 30)) for p in a["patterns"][:3])
            more = f" (+{len(a['patterns']) - 3} more)" if len(a["patterns"]) > 3 else ""
            pairs.append((~hit, pl.lit(f"{', '.join(c for c, _ in cols)} matches none of {which}{more}")))
    elif step.kind == "length":
        for c, cat in text_columns(step, schema):
            n = pl.col(c).str.len_chars() if cat == "text" else \
                pl.col(c).list.eval(pl.element().struct.field("content").str.len_chars()).list.sum()
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

    n = pl.col(col).str.len_chars() if cat == "text" else \
        pl.col(col).list.eval(pl.element().struct.field("content").str.len_chars()).list.sum()
    return (n + 3) // 4


def explain_step(lf: "pl.LazyFrame", step: CleaningStep, schema: Mapping[str, Any]) -> "pl.LazyFrame":
    """The lazy query of one step on ``lf`` (runtime-backed parts appear as named Python UDFs)."""
    import polars as pl

    if step.kind in ("normalize", "fill", "replace_matching"):
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
