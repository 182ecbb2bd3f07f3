"""Quality rules -> an ordered cleaning plan for one source.

The plan is plain data (``to_dict()`` is JSON) so ``compile`` can write it and ``plan`` can
diff it; ``runtime/clean/`` executes it, building its Polars expressions in
``runtime/clean/kernels.py`` (``runtime/clean/explain.py`` renders those same expressions).

Everything is vectorised in Polars except where Python is unavoidable, each said where it
happens: checksum validation of PII candidates (``runtime/clean/pii.py``), tokenizer calls for
``max_tokens`` (``runtime/clean/run.py``) and MinHash banding (NumPy and Polars, ``runtime/clean/dedupe.py``).
"""

from __future__ import annotations

import copy
import re
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from llmspec.spec.errors import Diagnostic, Pos, SpecError, did_you_mean
from llmspec.spec.checks import LANGUAGE_HINT, LANGUAGE_REFUSAL
from llmspec.spec.models import QualitySpec, rule_args, rule_kind
from llmspec.spec.regex import RegexNotPortable, rust_syntax

from .dedupe_layout import SKETCH, band_layout

if TYPE_CHECKING:  # polars is heavy: imported inside functions only
    import polars as pl

MODIFYING = frozenset({"normalize", "fill", "redact_pii", "replace_matching", "substitute"})
# Rules that default to every text column when they name none.
TEXT_DEFAULT = frozenset({"drop_corrupt", "normalize", "redact_pii"})
ORIGIN = "_origin"



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


def compile_rules(quality: QualitySpec, source: str, *,
                  locate: Callable[[tuple], Pos] | None = None) -> list[dict[str, Any]]:
    """The quality rules that apply to ``source``, compiled without its data: arguments resolved
    (Rust regexes, MinHash layouts, PII placeholders), so every error the spec alone can cause is
    raised here, at plan time. ``bind_rules`` later fits them to the columns the source has."""
    reasons = rule_reasons(quality.rules)
    out: list[dict[str, Any]] = []
    for i, rule in enumerate(quality.rules):
        kind, args = rule_kind(rule), rule_args(rule)
        if args.sources is not None and source not in args.sources:
            continue
        pos = locate(("quality", "rules", i, kind)) if locate else None
        if kind == "language":  # validate refuses it too; a spec built in code lands here
            raise SpecError(Diagnostic("unsupported-rule", f"quality.rules[{i}]: {LANGUAGE_REFUSAL}",
                                       pos, hint=LANGUAGE_HINT))
        if kind == "fill":
            targets: list[str] | None = [args.column]
        else:
            named = args.columns if kind == "drop_corrupt" else args.targets
            targets = list(named) if named is not None else None
        out.append({"index": i, "reason": reasons[i], "kind": kind,
                    "action": "modify" if kind in MODIFYING else "reject",
                    "targets": targets, "requires": _named_columns(kind, args),
                    "skip_missing_columns": bool(args.skip_missing_columns),
                    "args": _resolve_args(kind, args, i, pos)})
    return out


def bind_rules(rules: Sequence[Mapping[str, Any]], source: str, columns: Sequence[str] | Mapping[str, Any], *,
               keep_rejects: bool = True, locate: Callable[[tuple], Pos] | None = None) -> CleaningPlan:
    """Compiled rules fitted to a source's columns: the ordered cleaning steps.

    ``columns``: the source's column names, or name -> type (a spec contract type such as
    ``str?``, a Polars dtype, or ``text``/``turns``/``other``) when known. Without types every
    column is assumed to be text and the runtime narrows defaulted column lists by real dtype.
    """
    types = _column_types(columns)
    names = list(types)
    steps: list[CleaningStep] = []
    skipped: list[dict[str, Any]] = []
    state: dict[str, set[str]] = {}  # column -> normalisations known to hold at this point
    for rule in rules:
        i, kind = rule["index"], rule["kind"]
        missing = [c for c in rule["requires"] if c not in types]
        if missing:
            if rule["skip_missing_columns"]:
                skipped.append({"index": i, "reason": rule["reason"], "kind": kind, "missing": missing})
                continue
            raise SpecError(Diagnostic(
                "unknown-column",
                f"quality.rules[{i}] ({kind}) uses column '{missing[0]}', which source '{source}' does not have",
                locate(("quality", "rules", i, kind)) if locate else None,
                hint=did_you_mean(missing[0], names) or f"'{source}' has {', '.join(names) or 'no columns'}; "
                "limit the rule with `sources: [...]` or set `skip_missing_columns: true`"))
        if rule["targets"] is not None:
            targets, all_text = list(rule["targets"]), False
        elif kind == "dedupe" and rule["args"]["method"] == "exact":
            targets, all_text = list(types), False
        else:  # text rules with no columns: every text column (turns too), narrowed by dtype at run time
            targets, all_text = [c for c, t in types.items() if t in ("text", "turns", "unknown")], True
        args = copy.deepcopy(rule["args"])
        _track_normalisation(kind, args, targets, state)
        steps.append(CleaningStep(index=i, reason=rule["reason"], kind=kind, action=rule["action"],
                                  columns=targets, args=args, all_text=all_text))
    return CleaningPlan(source=source, columns=names, types=types, steps=steps, skipped=skipped,
                        keep_rejects=keep_rejects)


def compile_cleaning(quality: QualitySpec, source: str, columns: Sequence[str] | Mapping[str, Any], *,
                     locate: Callable[[tuple], Pos] | None = None) -> CleaningPlan:
    """``compile_rules`` then ``bind_rules``: the cleaning steps of one source with known columns."""
    return bind_rules(compile_rules(quality, source, locate=locate), source, columns,
                      keep_rejects=quality.keep_rejects, locate=locate)


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


_COMMON = {"name", "sources", "skip_missing_columns", "column", "columns"}


def _resolve_args(kind: str, args: Any, index: int, pos: Pos | None) -> dict[str, Any]:
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
