"""Translate pydantic's ValidationError into Diagnostics at the spec's line and column.

Pydantic reports locations as tuples through the *model* (including union member tags such
as a source's format); we walk the same tuple through the *data* the user wrote, skipping
components that are not there, to find the key or value the user should look at.
"""

from __future__ import annotations

import re
import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError

from .errors import Diagnostic, Pos, did_you_mean
from .yamlload import Positions

_TYPE_WORDS = {
    "string_type": "a string", "int_type": "an integer", "float_type": "a number",
    "bool_type": "true or false", "dict_type": "a mapping", "list_type": "a list",
    "model_type": "a mapping", "model_attributes_type": "a mapping", "int_from_float": "an integer",
    "none_required": "nothing (null)",
}
_RANGE_TYPES = {"greater_than", "greater_than_equal", "less_than", "less_than_equal", "too_short", "too_long",
                "string_too_short", "string_too_long", "list_too_short"}


def data_path(data: Any, loc: tuple) -> tuple[tuple, bool]:
    """The path in `data` that `loc` points at, and whether every component was found."""
    path: list = []
    cur = data
    complete = True
    for comp in loc:
        if isinstance(cur, dict) and isinstance(comp, str) and comp in cur:
            path.append(comp)
            cur = cur[comp]
        elif isinstance(cur, list) and isinstance(comp, int) and 0 <= comp < len(cur):
            path.append(comp)
            cur = cur[comp]
        else:
            complete = False
    return tuple(path), complete


def _describe(value: Any) -> str:
    kind = {str: "string", int: "integer", float: "number", bool: "boolean", list: "list", dict: "mapping",
            type(None): "null"}.get(type(value), type(value).__name__)
    if isinstance(value, (dict, list)):
        return f"a {kind}"
    if value is None:
        return "null"
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"the {kind} {text}"


def _model_at(root: type[BaseModel], loc: tuple) -> list[type[BaseModel]]:
    """Every model class that could sit at `loc` (unions fan out), for did-you-mean hints."""
    current: list[Any] = [root]
    for comp in loc:
        nxt: list[Any] = []
        # A string component is a field, or else a union member's tag (a rule's kind, a source's
        # format): only the members it names stay, so hints list that member's keys alone.
        fields: list[Any] = []
        tagged: list[Any] = []
        for ann in current:
            for t in _flatten(ann):
                if isinstance(t, type) and issubclass(t, BaseModel):
                    if isinstance(comp, str) and comp in t.model_fields:
                        fields.append(t.model_fields[comp].annotation)
                    elif isinstance(comp, str) and _has_literal(t, comp):
                        tagged.append(t)
                    elif isinstance(comp, str):
                        nxt.append(t)
                elif typing.get_origin(t) in (dict, list):
                    args = typing.get_args(t)
                    if args:
                        nxt.append(args[-1])
        current = fields or tagged or nxt
    models = []
    for ann in current:
        for t in _flatten(ann):
            if isinstance(t, type) and issubclass(t, BaseModel) and t not in models:
                models.append(t)
    return models


def _has_literal(model: type[BaseModel], value: str) -> bool:
    return any(typing.get_origin(f.annotation) is typing.Literal and value in typing.get_args(f.annotation)
               for f in model.model_fields.values())


def _bounds(root: type[BaseModel], loc: tuple) -> list[tuple[str, Any]]:
    """(operator, bound) pairs constraining the field at loc, for a 'valid range' hint."""
    for cut in range(len(loc), 0, -1):
        name = loc[cut - 1]
        if not isinstance(name, str):
            continue
        for model in _model_at(root, loc[:cut - 1]):
            field = model.model_fields.get(name)
            if field is None:
                continue
            found: list[tuple[str, Any]] = []
            for meta in list(field.metadata) + _annotated_metadata(field.annotation):
                for attr, op in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
                    bound = getattr(meta, attr, None)
                    if bound is not None and (op, bound) not in found:
                        found.append((op, bound))
            if found:
                return found
    return []


def _annotated_metadata(ann: Any) -> list[Any]:
    origin = typing.get_origin(ann)
    if origin is typing.Annotated:
        out = []
        for extra in typing.get_args(ann)[1:]:
            out.extend(getattr(extra, "metadata", None) or [extra])
        return out + _annotated_metadata(typing.get_args(ann)[0])
    if origin in (typing.Union, types.UnionType):
        return [m for a in typing.get_args(ann) for m in _annotated_metadata(a)]
    return []


def _range_hint(bounds: list[tuple[str, Any]]) -> str | None:
    from .expressions import format_number

    low = [(op, b) for op, b in bounds if op in (">", ">=")]
    high = [(op, b) for op, b in bounds if op in ("<", "<=")]
    num = lambda b: format_number(b) if isinstance(b, float) else str(b)  # noqa: E731
    if low and high:
        lo_op = "<" if low[0][0] == ">" else "<="
        return f"valid range: {num(low[0][1])} {lo_op} value {high[0][0]} {num(high[0][1])}"
    if low or high:
        op, b = (low or high)[0]
        return f"valid range: value {op} {num(b)}"
    return None


_RANGE_WORDS = {"greater_than": "greater than", "greater_than_equal": "at least", "less_than": "less than",
                "less_than_equal": "at most"}


def _range_message(etype: str, ctx: dict, where: str, value: Any) -> str:
    if etype in _RANGE_WORDS:
        from .expressions import format_number

        bound = next((ctx[k] for k in ("gt", "ge", "lt", "le") if k in ctx), "?")
        bound = format_number(bound) if isinstance(bound, float) else bound
        shown = repr(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else _describe(value)
        return f"{where} must be {_RANGE_WORDS[etype]} {bound}, got {shown}"
    unit = "character" if etype.startswith("string") else "item"
    if "min_length" in ctx:
        n = ctx["min_length"]
        if n == 1:
            return f"{where} must not be empty"
        return f"{where} needs at least {n} {unit}s, got {ctx.get('actual_length', len(value))}"
    n = ctx.get("max_length", "?")
    got = ctx.get("actual_length") if "actual_length" in ctx else (len(value) if hasattr(value, "__len__") else "?")
    return f"{where} takes at most {n} {unit}{'s' if n != 1 else ''}, got {got}"


def _flatten(ann: Any) -> list[Any]:
    origin = typing.get_origin(ann)
    if origin is typing.Annotated:
        return _flatten(typing.get_args(ann)[0])
    if origin in (typing.Union, types.UnionType):
        return [t for a in typing.get_args(ann) for t in _flatten(a)]
    return [ann]


def _dotted(path: tuple) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "the top level"


def _as_written(path: tuple, positions: Positions) -> tuple:
    """The path with list indices counted within the file each item came from.

    `extends` appends a recipe's rules before the spec's own, so the spec's first rule is
    `quality.rules[6]` once merged; the user reading their file knows it as `rules[0]`.
    """
    out = []
    for i, comp in enumerate(path):
        if isinstance(comp, int):
            prefix = path[:i]
            mine = positions.at(prefix + (comp,))
            if mine is not None:
                comp = sum(1 for j in range(comp)
                           if (other := positions.at(prefix + (j,))) is not None and other.path == mine.path)
        out.append(comp)
    return tuple(out)


def translate(exc: ValidationError, data: dict, positions: Positions, root: type[BaseModel],
              fallback: Pos) -> list[Diagnostic]:
    grouped: dict[tuple, list[dict]] = {}
    for err in exc.errors(include_url=False):
        path, complete = data_path(data, tuple(err["loc"]))
        key = (path, err["type"] == "missing", tuple(err["loc"]) if err["type"] == "missing" else ())
        grouped.setdefault(key, []).append(err)
    diags = []
    for (path, _missing, _), errs in grouped.items():
        diags.append(_one(errs, path, data, positions, root, fallback))
    diags.sort(key=lambda d: (d.pos.path if d.pos else "", d.pos.line or 0 if d.pos else 0,
                              d.pos.col or 0 if d.pos else 0))
    return diags


def _value_at(data: Any, path: tuple) -> Any:
    for p in path:
        data = data[p]
    return data


def _one(errs: list[dict], path: tuple, data: dict, positions: Positions, root: type[BaseModel],
         fallback: Pos) -> Diagnostic:
    # Among a union's member errors, the most specific one speaks for the group.
    order = ["extra_forbidden", "missing", "unknown-rule", "union_tag_invalid", "union_tag_not_found",
             "literal_error"]
    errs = sorted(errs, key=lambda e: order.index(e["type"]) if e["type"] in order else len(order))
    err = errs[0]
    etype, loc = err["type"], tuple(err["loc"])
    where = _dotted(_as_written(path, positions))
    pos = positions.at(path) or fallback
    if etype == "extra_forbidden":
        key = path[-1] if path else loc[-1]
        parent_loc = loc[:-1]
        allowed: list[str] = []
        for model in _model_at(root, parent_loc):
            allowed.extend(f for f in model.model_fields if f not in allowed)
        hint = did_you_mean(str(key), allowed) or (f"allowed keys here: {', '.join(allowed)}" if allowed else None)
        return Diagnostic("unknown-key", f"unknown key '{key}' in {_dotted(path[:-1])}",
                          positions.key_at(path) or pos, hint=hint)
    if etype == "missing":
        missing = loc[-1]
        return Diagnostic("missing-key", f"{where} is missing the required key '{missing}'",
                          positions.key_at(path) or fallback,
                          hint=f"add `{missing}:` under {where}" if path else f"add `{missing}:` at the top level")
    if etype == "unknown-rule":
        from .models import RULE_ARGS

        value = _value_at(data, path)
        names = list(value) if isinstance(value, dict) else []
        guess = next((did_you_mean(str(n), RULE_ARGS) for n in names if did_you_mean(str(n), RULE_ARGS)), None)
        return Diagnostic("unknown-rule", f"{where}: each rule is a mapping with exactly one rule name as its key"
                          + (f", got {', '.join(map(str, names))}" if names else ""), pos,
                          hint=guess or f"rules: {', '.join(RULE_ARGS)}")
    if etype in ("union_tag_invalid", "union_tag_not_found"):
        from .models import SOURCE_FORMATS

        if etype == "union_tag_not_found":
            return Diagnostic("missing-key", f"{where} needs a `format`", positions.key_at(path) or pos,
                              hint=f"formats: {', '.join(SOURCE_FORMATS)}")
        tag = str(err.get("ctx", {}).get("tag", ""))
        fpos = positions.at(path + ("format",)) or pos
        written = _value_at(data, path).get("format") if isinstance(_value_at(data, path), dict) else None
        formats = f"formats: {', '.join(SOURCE_FORMATS)}"
        if not isinstance(written, str):
            return Diagnostic("invalid-value", f"{where}.format must name a source format, got {_describe(written)}",
                              fpos, hint=formats)
        return Diagnostic("invalid-value", f"unknown source format '{tag}'", fpos,
                          hint=did_you_mean(tag, SOURCE_FORMATS) or formats)
    value = err.get("input")
    if etype == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        options = [o.strip().strip("'") for o in expected.replace(" or ", ",").split(",") if o.strip()]
        others = [e for e in errs[1:] if e["type"] not in ("literal_error",)]
        extra = " (or a mapping)" if any(e["type"] in ("model_type", "dict_type") for e in others) else ""
        if isinstance(value, str) and value.strip() in options and _is_number(value.strip()):
            guess = "numbers are written without quotes; "  # `llmspec: '1'`: the text matches, the type not
        else:
            guess = did_you_mean(str(value), options)
            guess = f"{guess} " if guess else ""
        return Diagnostic("invalid-value", f"{where}: {_describe(value)} is not allowed", pos,
                          hint=f"{guess}allowed values: {', '.join(options)}{extra}")
    if etype in _TYPE_WORDS or etype.endswith("_type") or etype.endswith("_parsing"):
        wanted = []
        for e in errs:
            w = _TYPE_WORDS.get(e["type"])
            if w is None and e["type"] == "literal_error":
                w = "one of " + e.get("ctx", {}).get("expected", "")
            if w and w not in wanted:
                wanted.append(w)
        hint = None
        if isinstance(value, str) and any(e["type"] in ("float_type", "int_type") for e in errs):
            hint = "numbers are written without quotes"
        elif isinstance(value, str) and any(e["type"] == "bool_type" for e in errs):
            hint = "write true or false, without quotes"
        return Diagnostic("wrong-type", f"{where}: expected {' or '.join(wanted) or 'another type'}, "
                          f"got {_describe(value)}", pos, hint=hint)
    if etype in _RANGE_TYPES:
        ctx = err.get("ctx") or {}
        hint = _range_hint(_bounds(root, loc)) if etype in _RANGE_WORDS else None
        return Diagnostic("out-of-range", _range_message(etype, ctx, where, value), pos, hint=hint)
    if etype == "string_pattern_mismatch":
        pattern = err.get("ctx", {}).get("pattern", "")
        return Diagnostic("invalid-value", f"{where}: {_describe(value)} does not match the expected form", pos,
                          hint=f"expected a value matching {pattern}")
    # Our own PydanticCustomError codes (bad-regex, bad-gate, conflict, ...) are already user-facing.
    message = _filled(err)
    if etype == "bad-regex":
        pos = _pattern_pos(data, path, err.get("ctx", {}).get("pattern"), positions) or pos
    elif isinstance(_value_at(data, path), dict):
        pos = _culprit_pos(data, path, message, positions) or pos
    if "-" in etype or etype in ("conflict",):
        return Diagnostic(etype, f"{where}: {message}", pos)
    return Diagnostic("invalid-value", f"{where}: {message}", pos)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _filled(err: dict) -> str:
    # pydantic fills only plain `{name}` fields of a custom message; `{name!r}` stays as written.
    message, ctx = err["msg"], err.get("ctx") or {}
    if "{" in message and ctx:
        try:
            return message.format(**ctx)
        except (KeyError, IndexError, ValueError):
            return message
    return message


def _pattern_pos(data: dict, path: tuple, pattern: Any, positions: Positions) -> Pos | None:
    """The list item holding the regex that failed, rather than the whole list."""
    items = _value_at(data, path)
    if isinstance(items, list) and pattern in items:
        return positions.at(path + (items.index(pattern),))
    return None


def _culprit_pos(data: dict, path: tuple, message: str, positions: Positions) -> Pos | None:
    """For a check across a mapping's keys (`qlora needs ... cpu`), the key or value it names first.

    The message names keys (`column`, `columns`) or their values (qlora, cpu); pointing at the
    first one named beats pointing at the whole mapping, and shows which file it came from.
    """
    mapping = _value_at(data, path)
    best: tuple[int, Pos] | None = None
    for key, value in mapping.items():
        for text, locate in ((str(key), positions.key_at), (value, positions.at)):
            if not isinstance(text, str) or not text:
                continue
            found = re.search(rf"(?<![\w-]){re.escape(text)}(?![\w-])", message)
            if found and (best is None or found.start() < best[0]):
                pos = locate(path + (key,))
                if pos is not None:
                    best = (found.start(), pos)
    return best[1] if best else None
