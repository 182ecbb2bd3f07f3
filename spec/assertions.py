"""The assertion language of acceptance tests.

In a spec, each test carries ``expect: [ ... ]``; every item is a mapping with exactly one
assertion key, optionally prefixed ``not_`` to negate it, and an optional ``weight``::

    expect:
      - contains: "refund"
      - not_icontains: "as an ai"
      - similar: {reference: "Refunds take 5 days.", threshold: 0.6, metric: token_f1}
        weight: 2

``parse_expectation`` checks the shape when the spec is validated (so it stays importable
without heavy dependencies: ``jsonschema`` is imported only when a ``json_schema`` assertion is
parsed or run). ``evaluate`` checks one model output. Parse errors are ``ValueError`` with a
message the spec loader wraps into a ``Diagnostic``.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

# The similarity metrics `similar` accepts (runtime/acceptance/similarity.py implements them).
METRIC_NAMES = ("rouge_l", "token_f1")


ASSERTION_KINDS: dict[str, str] = {
    "equals": "the output, stripped of surrounding whitespace, equals the string exactly",
    "contains": "the output contains the string (case-sensitive)",
    "icontains": "the output contains the string, ignoring case",
    "contains_any": "the output contains at least one of the strings in the list",
    "contains_all": "the output contains every string in the list",
    "starts_with": "the output, ignoring leading whitespace, starts with the string",
    "regex": "the regular expression matches somewhere in the output; the dialect of cleaning rules "
             "(Rust's regex, run in linear time by Polars: no look-around or back-references); "
             "use inline flags such as (?i) or (?s)",
    "is_json": "`true`: the output is valid JSON (a ```json fence around it is tolerated)",
    "json_schema": "the output is JSON (fence tolerated) that validates against this JSON Schema",
    "min_chars": "the output, stripped of surrounding whitespace, is at least this many characters",
    "max_chars": "the output, stripped of surrounding whitespace, is at most this many characters",
    "similar": "{reference, threshold, metric}: similarity of the output to the reference answer "
               "is >= threshold (0..1); metric rouge_l (default) or token_f1",
    "perplexity": "{reference, max}: perplexity of the reference answer under the model, given "
                  "the prompt, is <= max (needs the model; max >= 1)",
}
NEGATION_PREFIX = "not_"
DEFAULT_METRIC = "rouge_l"
EXCERPT_CHARS = 120


@dataclass(frozen=True)
class SimilarArg:
    reference: str
    threshold: float
    metric: str = DEFAULT_METRIC


@dataclass(frozen=True)
class PerplexityArg:
    reference: str
    max: float


@dataclass(frozen=True)
class Expectation:
    """One parsed ``expect`` item.

    ``arg`` by kind: ``str`` (equals, contains, icontains, starts_with, regex), ``tuple[str, ...]``
    (contains_any, contains_all), ``True`` (is_json), ``dict`` (json_schema), ``int``
    (min_chars, max_chars), ``SimilarArg``, ``PerplexityArg``. A json_schema expectation holds a dict, so
    it compares by value but cannot be hashed.
    """

    kind: str
    arg: Any
    negated: bool = False
    weight: float = 1.0

    @property
    def key(self) -> str:
        """The key as written in the spec, e.g. ``not_contains``."""
        return NEGATION_PREFIX + self.kind if self.negated else self.kind

    def describe(self) -> str:
        """Human-readable expectation, e.g. ``contains 'refund'`` or ``NOT contains 'refund'``."""
        text = PHRASES[self.kind](self.arg)[0]
        return "NOT " + text if self.negated else text

    def to_dict(self) -> dict[str, Any]:
        """Back to the spec's form; ``parse_expectation(e.to_dict()) == e``."""
        arg = self.arg
        if isinstance(arg, tuple):
            arg = list(arg)
        elif isinstance(arg, SimilarArg):
            arg = {"reference": arg.reference, "threshold": arg.threshold, "metric": arg.metric}
        elif isinstance(arg, PerplexityArg):
            arg = {"reference": arg.reference, "max": arg.max}
        out: dict[str, Any] = {self.key: arg}
        if self.weight != 1.0:
            out["weight"] = self.weight
        return out


# --------------------------------------------------------------------------- parsing

def parse_expectation(item: Any) -> Expectation:
    """Validate one ``expect`` item and return it parsed; ``ValueError`` says what is wrong."""
    if not isinstance(item, Mapping):
        raise ValueError(f"an expect item must be a mapping with one assertion key, e.g. "
                         f"{{contains: \"refund\"}}; got {type_name(item)} {short_json(item)}")
    keys = [k for k in item if k != "weight"]
    if not keys:
        raise ValueError(f"expect item has no assertion key; use exactly one of: "
                         f"{', '.join(ASSERTION_KINDS)} (prefix with not_ to negate)")
    if len(keys) > 1:
        raise ValueError(f"expect item has {len(keys)} assertion keys "
                         f"({', '.join(map(str, keys))}); each item takes exactly one, so split "
                         f"them into separate items")
    key = keys[0]
    if not isinstance(key, str):
        raise ValueError(f"assertion key must be a string, not {short_json(key)}")
    negated = key.startswith(NEGATION_PREFIX)
    kind = key[len(NEGATION_PREFIX):] if negated else key
    if kind not in ASSERTION_KINDS:
        prefix = NEGATION_PREFIX if negated else ""
        close = difflib.get_close_matches(key, [prefix + k for k in ASSERTION_KINDS], n=1,
                                          cutoff=0.6)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ValueError(f"unknown assertion {key!r}{hint}; known assertions: "
                         f"{', '.join(ASSERTION_KINDS)}, each may be prefixed with not_")
    arg = _ARG_PARSERS[kind](item[key], key)
    weight = _parse_weight(item["weight"]) if "weight" in item else 1.0
    return Expectation(kind=kind, arg=arg, negated=negated, weight=weight)


def parse_expectations(items: Any) -> list[Expectation]:
    """Parse a test's whole ``expect`` list; messages are prefixed with ``expect[i]``."""
    if not isinstance(items, Sequence) or isinstance(items, (str, bytes)):
        raise ValueError(f"expect must be a list of assertions, got {type_name(items)}")
    if not items:
        raise ValueError("expect is empty: a test needs at least one assertion")
    out = []
    for i, item in enumerate(items):
        try:
            out.append(parse_expectation(item))
        except ValueError as exc:
            raise ValueError(f"expect[{i}]: {exc}") from None
    return out


def _parse_weight(value: Any) -> float:
    if not is_number(value) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"weight must be a number > 0, got {short_json(value)}")
    return float(value)


def _text(value: Any, key: str, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{key}: expected a string, got {type_name(value)} {short_json(value)}; "
                         f"quote numbers and words like yes/no, e.g. {key}: \"42\"")
    if not value and not allow_empty:
        raise ValueError(f"{key}: must not be an empty string")
    return value


def _equals(value: Any, key: str) -> str:
    return _text(value, key, allow_empty=True)


def _nonempty_text(value: Any, key: str) -> str:
    return _text(value, key)


def _text_list(value: Any, key: str) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ValueError(f"{key}: expected a list of strings, e.g. {key}: [\"refund\", "
                         f"\"return\"], got {type_name(value)} {short_json(value)}")
    if not value:
        raise ValueError(f"{key}: the list is empty")
    return tuple(_text(v, f"{key}[{i}]") for i, v in enumerate(value))


def _regex(value: Any, key: str) -> str:
    from .regex import RegexNotPortable, rust_syntax

    pattern = _text(value, key)
    try:
        re.compile(pattern)
        rust_syntax(pattern)
    except re.error as exc:
        where = f" at position {exc.pos}" if exc.pos is not None else ""
        raise ValueError(f"{key}: invalid regular expression {pattern!r}: {exc.msg}{where}"
                         ) from None
    except RegexNotPortable as exc:
        hint = f" ({exc.args[1]})" if len(exc.args) > 1 and exc.args[1] else ""
        raise ValueError(f"{key}: regular expression {pattern!r} {exc.args[0]}{hint}") from None
    return pattern


def _true(value: Any, key: str) -> bool:
    if value is True:
        return True
    if value is False:
        kind = key.removeprefix(NEGATION_PREFIX)
        raise ValueError(f"{key}: false is not accepted; to assert the output is not JSON "
                         f"write `not_{kind}: true`")
    raise ValueError(f"{key}: expected `true`, got {short_json(value)}")


def _schema(value: Any, key: str) -> dict:
    if not isinstance(value, Mapping):
        raise ValueError(f"{key}: expected a JSON Schema mapping, e.g. {{type: object, "
                         f"required: [answer]}}, got {type_name(value)} {short_json(value)}")
    schema = plain(value)
    from jsonschema.exceptions import SchemaError
    from jsonschema.validators import validator_for

    try:
        validator_for(schema).check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.path)
        raise ValueError(f"{key}: not a valid JSON Schema"
                         f"{' at ' + where if where else ''}: {exc.message}") from None
    from .json_schema import schema_problem

    problem = schema_problem(schema)
    if problem:
        raise ValueError(f"{key}: {problem}")
    return schema


def _char_count(value: Any, key: str) -> int:
    if is_number(value) and float(value).is_integer() and value >= 0:
        return int(value)
    raise ValueError(f"{key}: expected a whole number of characters >= 0, got {short_json(value)}")


def _mapping(value: Any, key: str, required: tuple[str, ...], optional: tuple[str, ...],
             example: str) -> Mapping:
    if not isinstance(value, Mapping):
        raise ValueError(f"{key}: expected a mapping like {example}, got {type_name(value)} "
                         f"{short_json(value)}")
    unknown = [k for k in value if k not in required + optional]
    if unknown:
        raise ValueError(f"{key}: unknown field(s) {', '.join(map(repr, unknown))}; "
                         f"allowed: {', '.join(required + optional)}")
    missing = [k for k in required if k not in value]
    if missing:
        raise ValueError(f"{key}: missing field(s) {', '.join(missing)}; e.g. {example}")
    return value


def _similar(value: Any, key: str) -> SimilarArg:
    example = "{reference: \"...\", threshold: 0.6, metric: rouge_l}"
    m = _mapping(value, key, ("reference", "threshold"), ("metric",), example)
    reference = _text(m["reference"], f"{key}.reference")
    threshold = m["threshold"]
    if not is_number(threshold) or not 0 <= threshold <= 1:
        raise ValueError(f"{key}.threshold: expected a number between 0 and 1, got "
                         f"{short_json(threshold)}")
    metric = m.get("metric", DEFAULT_METRIC)
    if metric not in METRIC_NAMES:
        raise ValueError(f"{key}.metric: unknown metric {short_json(metric)}; use one of "
                         f"{', '.join(METRIC_NAMES)}")
    return SimilarArg(reference=reference, threshold=float(threshold), metric=metric)


def _perplexity(value: Any, key: str) -> PerplexityArg:
    m = _mapping(value, key, ("reference", "max"), (), "{reference: \"...\", max: 12.5}")
    reference = _text(m["reference"], f"{key}.reference")
    bound = m["max"]
    if not is_number(bound) or not math.isfinite(bound) or bound < 1:
        # exp(mean NLL) is never below 1, so a bound under 1 could never be met.
        raise ValueError(f"{key}.max: expected a number >= 1 (perplexity is never below 1), "
                         f"got {short_json(bound)}")
    return PerplexityArg(reference=reference, max=float(bound))


_ARG_PARSERS: dict[str, Callable[[Any, str], Any]] = {
    "equals": _equals,
    "contains": _nonempty_text,
    "icontains": _nonempty_text,
    "contains_any": _text_list,
    "contains_all": _text_list,
    "starts_with": _nonempty_text,
    "regex": _regex,
    "is_json": _true,
    "json_schema": _schema,
    "min_chars": _char_count,
    "max_chars": _char_count,
    "similar": _similar,
    "perplexity": _perplexity,
}


# kind -> arg -> (present tense for `expected`, infinitive for failure messages)
PHRASES: dict[str, Callable[[Any], tuple[str, str]]] = {
    "equals": lambda a: (f"equals {quote(a)}", f"to equal {quote(a)}"),
    "contains": lambda a: (f"contains {quote(a)}", f"to contain {quote(a)}"),
    "icontains": lambda a: (f"contains {quote(a)} (any case)", f"to contain {quote(a)} (any case)"),
    "contains_any": lambda a: (f"contains any of {quote_list(a)}", f"to contain any of {quote_list(a)}"),
    "contains_all": lambda a: (f"contains all of {quote_list(a)}", f"to contain all of {quote_list(a)}"),
    "starts_with": lambda a: (f"starts with {quote(a)}", f"to start with {quote(a)}"),
    "regex": lambda a: (f"matches /{a}/", f"to match /{a}/"),
    "is_json": lambda a: ("is valid JSON", "to be valid JSON"),
    "json_schema": lambda a: (f"is JSON matching schema {short_json(a)}",
                              f"to be JSON matching schema {short_json(a)}"),
    "min_chars": lambda a: (f"is at least {a} chars", f"to be at least {a} chars"),
    "max_chars": lambda a: (f"is at most {a} chars", f"to be at most {a} chars"),
    "similar": lambda a: (f"{a.metric} >= {number_text(a.threshold)} vs reference {quote(a.reference)}",
                          f"to reach {a.metric} >= {number_text(a.threshold)} vs reference "
                          f"{quote(a.reference)}"),
    "perplexity": lambda a: (f"perplexity of reference {quote(a.reference)} <= {number_text(a.max)}",
                             f"to give reference {quote(a.reference)} a perplexity "
                             f"<= {number_text(a.max)}"),
}


# --------------------------------------------------------------------------- schema for docs

def expectation_json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of one ``expect`` item, for the spec's schema and editors.
    It checks shape only; ``parse_expectation`` also compiles regexes and checks schemas."""
    text = {"type": "string", "minLength": 1}
    texts = {"type": "array", "items": text, "minItems": 1}
    args: dict[str, dict[str, Any]] = {
        "equals": {"type": "string"},
        "contains": text,
        "icontains": text,
        "contains_any": texts,
        "contains_all": texts,
        "starts_with": text,
        "regex": {"type": "string", "minLength": 1, "format": "regex"},
        "is_json": {"const": True},
        "json_schema": {"type": "object"},
        "min_chars": {"type": "integer", "minimum": 0},
        "max_chars": {"type": "integer", "minimum": 0},
        "similar": {
            "type": "object", "additionalProperties": False,
            "required": ["reference", "threshold"],
            "properties": {"reference": text,
                           "threshold": {"type": "number", "minimum": 0, "maximum": 1},
                           "metric": {"enum": list(METRIC_NAMES), "default": DEFAULT_METRIC}},
        },
        "perplexity": {
            "type": "object", "additionalProperties": False, "required": ["reference", "max"],
            "properties": {"reference": text, "max": {"type": "number", "minimum": 1}},
        },
    }
    properties: dict[str, Any] = {}
    for kind, schema in args.items():
        properties[kind] = {**schema, "description": ASSERTION_KINDS[kind]}
        properties[NEGATION_PREFIX + kind] = {**schema,
                                              "description": "NOT: " + ASSERTION_KINDS[kind]}
    properties["weight"] = {"type": "number", "exclusiveMinimum": 0, "default": 1}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
        "oneOf": [{"required": [k]} for k in properties if k != "weight"],
    }


# --------------------------------------------------------------------------- small helpers

def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def plain(value: Any) -> Any:
    # YAML loaders hand back their own mapping/sequence types; jsonschema and json want plain.
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return [plain(v) for v in value]
    return value


def type_name(value: Any) -> str:
    return {dict: "mapping", list: "list", str: "string", bool: "boolean", int: "integer",
            float: "number", type(None): "null"}.get(type(value), type(value).__name__)


def shorten(text: str, limit: int = EXCERPT_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def short_json(value: Any) -> str:
    try:
        text = json.dumps(plain(value), ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return shorten(text, 80)


def quote(text: str) -> str:
    return repr(shorten(text, 80))


def quote_list(items: Sequence[str]) -> str:
    return "[" + ", ".join(quote(s) for s in items) + "]"


def number_text(x: float) -> str:
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:.3f}".rstrip("0").rstrip(".") if abs(x) < 1e6 else f"{x:.3g}"


def json_type(doc: Any) -> str:
    return {dict: "(object)", list: "(array)", str: "(string)", bool: "(boolean)",
            type(None): "(null)"}.get(type(doc), "(number)")


def excerpt(text: str, around: tuple[int, int] | None = None,
             limit: int = EXCERPT_CHARS) -> str:
    """``repr`` of at most ``limit`` chars of ``text`` (centred on ``around`` when given), with
    ``…`` where it was cut; repr shows newlines and stray whitespace that matter here."""
    if len(text) <= limit:
        return repr(text)
    start = 0
    if around is not None:
        mid = (around[0] + around[1]) // 2
        start = max(0, min(mid - limit // 2, len(text) - limit))
    end = start + limit
    return ("…" if start > 0 else "") + repr(text[start:end]) + ("…" if end < len(text) else "")



__all__ = [
    "ASSERTION_KINDS", "DEFAULT_METRIC", "EXCERPT_CHARS", "Expectation", "METRIC_NAMES", "NEGATION_PREFIX",
    "PHRASES", "PerplexityArg", "SimilarArg", "excerpt", "expectation_json_schema", "is_number",
    "json_type", "number_text", "parse_expectation", "parse_expectations", "plain", "quote", "quote_list",
    "short_json", "shorten", "type_name",
]
