"""Quality rules -> an ordered cleaning plan for one source.

The plan is plain data (``to_dict()`` is JSON) so ``compile`` can write it and ``plan`` can
diff it; ``runtime/clean/`` executes it, building its Polars expressions in
``runtime/clean/kernels.py`` (``runtime/clean/explain.py`` renders those same expressions).

Everything is vectorised in Polars except where Python is unavoidable, each said where it
happens: checksum validation of PII candidates (``runtime/clean/pii.py``), tokenizer calls for
``max_tokens`` (``runtime/clean/run.py``) and MinHash banding (NumPy and Polars, ``runtime/clean/dedupe.py``).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from llmspec.spec.errors import Diagnostic, Pos, SpecError, did_you_mean
from llmspec.spec.models import QualitySpec, rule_args, rule_kind
from llmspec.spec.regex import RegexNotPortable, rust_syntax

from .dedupe_layout import SKETCH, band_layout

if TYPE_CHECKING:  # polars is heavy: imported inside functions only
    import polars as pl

MODIFYING = frozenset({"normalize", "fill", "redact_pii", "replace_matching", "substitute"})
# Rules that default to every text column when they name none.
TEXT_DEFAULT = frozenset({"drop_corrupt", "normalize", "redact_pii"})
ORIGIN = "_origin"

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
    elif kind in ("fill", "replace_matching", "substitute"):
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
    if kind == "substitute":
        out["rust_pattern"] = _rust_or_spec_error(args.pattern, args.ignore_case, index, kind, pos)
        out["rust_with"] = rust_replacement(args.with_)
    if kind == "dedupe" and args.method != "minhash":
        for k in ("threshold", "ngram", "unit", "permutations", "seed", "bands", "rows_per_band"):
            out.pop(k, None)
    if kind == "dedupe" and args.method == "minhash":
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


def rust_replacement(text: str) -> str:
    """A Python ``re.sub`` replacement (``\\1``, ``\\g<name>``, ``\\\\``) in the syntax Polars'
    ``replace_all`` takes (``${1}``, ``${name}``, ``$$`` for a literal dollar sign)."""
    def one(m: re.Match) -> str:
        if m.group(0) == "\\\\":
            return "\\"
        return "${" + (m.group(1) or m.group(2)) + "}"

    parts = re.split(r"(\\\\|\\g<\w+>|\\\d+)", text)
    out = []
    for i, part in enumerate(parts):
        if i % 2:
            out.append(one(re.match(r"\\\\|\\g<(\w+)>|\\(\d+)", part)))
        else:
            out.append(part.replace("$", "$$"))
    return "".join(out)


def _rust_or_spec_error(pattern: str, ignore_case: bool, index: int, kind: str, pos: Pos | None) -> str:
    try:
        return rust_regex(pattern, ignore_case)
    except RegexNotPortable as exc:
        why, hint = exc.args[0], exc.args[1] if len(exc.args) > 1 else None
        raise SpecError(Diagnostic("regex-not-portable", f"quality.rules[{index}] ({kind}): pattern "
                                   f"{pattern!r} {why}", pos, hint=hint)) from None
