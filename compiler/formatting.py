"""Step 3, decided: how each source's rows become training examples.

``compile_format`` turns ``format:`` into a ``FormatPlan``: plain data saying, per source,
which column or sandboxed Jinja template fills each field, which record layout the
dataset files use and which Axolotl dataset type reads them. ``runtime/dataset.py``
does the rendering; ``Renderer`` is shared so that the compiler's checks and the
runtime agree on what a field is.

A field value is a column when it names one (any name: ``Agent Reply`` too) or is a bare
identifier, and a template when it holds Jinja syntax (``{{``, ``{%``, ``{#``). Anything
else is an error with did-you-mean (``format-not-a-column``): ``Agent Reply`` naming no
column would otherwise render as that constant on every example. A constant is written on
purpose as ``{{ "text" }}``; any column is reachable in templates as ``{{ row["Agent Reply"] }}``.
Templates run in a sandboxed Jinja environment with ``StrictUndefined`` because they
come from a spec file and see untrusted data: a typo must fail loudly, not render "".
Compiling evaluates nothing; each render is bounded in time and size
(``llmspec.spec.sandbox``), and a template that blows its time budget on
``TIME_STRIKES`` rows is not run on the remaining rows.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any, Callable, Literal

from llmspec.spec.errors import Diagnostic, Pos, SpecError
from llmspec.spec.models import FormatSpec, Segment, style_fields
from llmspec.spec.templates import RESERVED_VARIABLES, ROW_VARIABLE, is_template, row_keys

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

CHAT_ROLES = ("system", "user", "assistant")

# The record layout each style writes, and the Axolotl dataset entry that reads it.
# chat_template gets explicit mappings so nothing depends on Axolotl's defaults drifting.
AXOLOTL_DATASET_TYPES: dict[str, dict[str, Any]] = {
    "chat": {
        "type": "chat_template",
        "field_messages": "messages",
        "message_property_mappings": {"role": "role", "content": "content"},
        "roles_to_train": ["assistant"],
        "train_on_eos": "turn",
    },
    "alpaca": {"type": "alpaca"},
    "completion": {"type": "completion", "field": "text"},
    "input_output": {"type": "input_output"},
}

# Preference methods (training.method dpo | orpo | kto; chat style only), as Axolotl 0.19 reads them
# (axolotl/prompt_strategies/{dpo,orpo,kto}):
# - dpo: ``chat_template.default``: the conversation up to the answer in `messages`, the chosen and
#   rejected answers as strings; Axolotl applies the chat template.
# - orpo: ``chat_template.argilla``: `chosen` and `rejected` as whole conversations (user and
#   assistant turns alternating, the answers last), `system` beside them.
# - kto: the user-defined type (prompt, completion, label); KTO has no chat-template type in
#   Axolotl, so the dataset stage writes the prompt and completion through the chat template.
PREFERENCE_DATASET_TYPES: dict[str, dict[str, Any]] = {
    "dpo": {"type": "chat_template.default", "field_messages": "messages", "field_chosen": "chosen",
            "field_rejected": "rejected"},
    "orpo": {"type": "chat_template.argilla"},
    "kto": {"type": {"field_prompt": "prompt", "field_completion": "completion", "field_label": "label"}},
}
PREFERENCE_RECORD_FIELDS: dict[str, tuple[str, ...]] = {
    "dpo": ("messages", "chosen", "rejected"),
    "orpo": ("system", "chosen", "rejected"),
    "kto": ("prompt", "completion", "label"),
}

RECORD_FIELDS: dict[str, tuple[str, ...]] = {
    "chat": ("messages",),
    "alpaca": ("instruction", "input", "output"),
    "completion": ("text",),
    "input_output": ("segments",),
}


def is_column_ref(value: str) -> bool:
    return bool(_IDENTIFIER.match(value))




@dataclass(frozen=True)
class FieldPlan:
    """One field of an example: where its text comes from."""

    name: str                      # user, assistant, instruction, ..., or segments[i]
    kind: Literal["column", "template", "messages"]
    text: str                      # the column name or the template source
    required: bool
    train: bool | None = None      # input_output segments only
    columns: tuple[str, ...] = ()  # columns it reads (templates: the free variables)


@dataclass(frozen=True)
class SourcePlan:
    source: str
    fields: tuple[FieldPlan, ...]

    def get(self, name: str) -> FieldPlan | None:
        return next((f for f in self.fields if f.name == name), None)

    @property
    def segments(self) -> tuple[FieldPlan, ...]:
        return tuple(f for f in self.fields if f.name.startswith("segments["))

    @property
    def columns(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for f in self.fields:
            for c in f.columns:
                seen.setdefault(c)
        return tuple(seen)


@dataclass(frozen=True)
class FormatPlan:
    style: Literal["chat", "alpaca", "completion", "input_output"]
    system: str | None
    sources: dict[str, SourcePlan]
    axolotl_dataset: dict[str, Any]        # the dataset entry minus path/split
    record_fields: tuple[str, ...]
    preference: str | None = None          # dpo | orpo | kto: records are preference records

    def sft_view(self) -> "FormatPlan":
        """The same mapping read as supervised chat examples: how one answer of a preference record
        is measured (its length as Axolotl tokenizes a chat turn)."""
        from dataclasses import replace

        return replace(self, axolotl_dataset=dict(AXOLOTL_DATASET_TYPES["chat"]), record_fields=RECORD_FIELDS["chat"],
                       preference=None)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["sources"] = {name: asdict(sp) for name, sp in sorted(self.sources.items())}
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "FormatPlan":
        """Inverse of ``to_dict`` (the Plan carries the mapping as plain data)."""
        sources = {name: SourcePlan(source=sp["source"], fields=tuple(
                       FieldPlan(**{**f, "columns": tuple(f.get("columns", ()))}) for f in sp["fields"]))
                   for name, sp in d["sources"].items()}
        return cls(style=d["style"], system=d["system"], sources=sources, axolotl_dataset=d["axolotl_dataset"],
                   record_fields=tuple(d["record_fields"]), preference=d.get("preference"))


# ----------------------------------------------------------------------------- templates


def _environment():
    from llmspec.spec.templates import sandbox

    # keep_trailing_newline: a segment template "{{ q }}\n" must keep its newline, it is data.
    return sandbox(keep_trailing_newline=True)


# A template that runs out of time on this many rows would cost that much on every other row
# too: the rest of its rows are rejected without running it.
TIME_STRIKES = 3


def template_variables(template: str) -> tuple[str, ...]:
    """Columns a template reads: its free variables minus Jinja globals and reserved names,
    plus the keys it reads from ``row`` by constant (``row["Agent Reply"]``).

    Raises ``jinja2.TemplateSyntaxError``.
    """
    env = _environment()
    ast = env.parse(template)
    free = env.free_variables(ast)
    return tuple(sorted((free - set(env.globals) - set(RESERVED_VARIABLES) - {ROW_VARIABLE}) | row_keys(ast)))


class Renderer:
    """Compiled fields of a plan; ``render(source, field, row)`` gives the field's text."""

    def __init__(self, plan: FormatPlan, special_tokens: dict[str, str] | None = None):
        self.plan = plan
        self._env = _environment()
        self._reserved = {name: (special_tokens or {}).get(name) or "" for name in RESERVED_VARIABLES}
        self._compiled: dict[tuple[str, str], Any] = {}
        self._strikes: dict[tuple[str, str], int] = {}
        for sp in plan.sources.values():
            for f in sp.fields:
                if f.kind == "template":
                    self._compiled[(sp.source, f.name)] = self._env.from_string(f.text)

    def render(self, source: str, fp: FieldPlan, row: dict[str, Any]) -> Any:
        if fp.kind == "messages":
            return row[fp.text]
        if fp.kind == "column":
            value = row[fp.text]
            return "" if value is None else str(value)
        from llmspec.spec.sandbox import TemplateTimeout

        key = (source, fp.name)
        if self._strikes.get(key, 0) >= TIME_STRIKES:
            raise TemplateTimeout(f"not run: this template went over its time budget on {TIME_STRIKES} rows already")
        try:
            columns = {k: v for k, v in row.items() if not k.startswith("_")}
            return self._env.render(self._compiled[key], {**self._reserved, **row, ROW_VARIABLE: columns})
        except TemplateTimeout:
            self._strikes[key] = self._strikes.get(key, 0) + 1
            raise


# ----------------------------------------------------------------------------- compile


def compile_format(
    fmt: FormatSpec,
    sources: dict[str, list[str]] | None = None,
    *,
    locate: Callable[[tuple], Pos | None] | None = None,
    method: str | None = None,
) -> FormatPlan:
    """Check ``format:`` and decide every field's origin.

    ``sources`` (source name -> known columns), when given, lets unknown columns fail
    here rather than on every row at render time. ``locate`` maps a spec path to a
    position for the diagnostics. ``method``: training.method; dpo, orpo and kto make
    preference records. Raises ``SpecError`` listing every problem found.
    """
    diags: list[Diagnostic] = []
    preference = method if method in PREFERENCE_DATASET_TYPES else None

    def err(path: tuple, code: str, message: str, hint: str | None = None) -> None:
        diags.append(Diagnostic(code=code, message=message, pos=locate(path) if locate else None, hint=hint))

    plans: dict[str, SourcePlan] = {}
    for source, mapping in fmt.map.items():
        base = ("format", "map", source)
        if sources is not None and source not in sources:
            err(base, "unknown-source", f"format.map names source '{source}', which is not declared",
                hint=f"declared sources: {', '.join(sorted(sources)) or 'none'}")
            continue
        required, optional = style_fields(fmt.style, preference or "", mapping)
        for name in sorted(set(mapping) - required - optional):
            err(base + (name,), "style-mismatch",
                f"field '{name}' is not part of the {fmt.style} style",
                hint=f"{fmt.style} takes {', '.join(sorted(required | optional))}")
        for name in sorted(required - set(mapping)):
            err(base, "missing-key", f"source '{source}' does not map required field '{name}'")

        known = set(sources[source]) if sources is not None else None
        fields: list[FieldPlan] = []
        for name in sorted((required | optional) & set(mapping), key=_field_order):
            value = mapping[name]
            path = base + (name,)
            if name == "segments":
                if not isinstance(value, list) or not value:
                    err(path, "format-segments", "segments must be a non-empty list of {text, train}")
                    continue
                for i, seg in enumerate(value):
                    fp = _text_field(f"segments[{i}]", seg.text, True, seg.train, path + (i, "text"), err, known)
                    if fp:
                        fields.append(fp)
                if not any(isinstance(s, Segment) and s.train for s in value):
                    err(path, "format-segments", "no segment has `train: true`: the model would learn nothing")
                continue
            if not isinstance(value, str):
                err(path, "format-field-type", f"field '{name}' takes a column name or a template, not segments")
                continue
            if name == "messages":
                if not is_column_ref(value):
                    err(path, "format-messages",
                        "messages must name a column holding a list of {role, content} (e.g. `turns`)")
                    continue
                if known is not None and value not in known:
                    _unknown_column(err, path, value, known)
                    continue
                fields.append(FieldPlan(name, "messages", value, True, columns=(value,)))
                continue
            fp = _text_field(name, value, name in required, None, path, err, known)
            if fp:
                fields.append(fp)
        plans[source] = SourcePlan(source, tuple(fields))

    if preference and fmt.style != "chat":
        err(("format", "style"), "preference-style", f"training.method {preference} needs format.style chat")
    if diags:
        raise SpecError(diags)
    return FormatPlan(
        style=fmt.style,
        system=fmt.system,
        sources=plans,
        axolotl_dataset=dict(PREFERENCE_DATASET_TYPES[preference] if preference else AXOLOTL_DATASET_TYPES[fmt.style]),
        record_fields=PREFERENCE_RECORD_FIELDS[preference] if preference else RECORD_FIELDS[fmt.style],
        preference=preference,
    )


_ORDER = ("system", "messages", "user", "assistant", "chosen", "rejected", "label", "instruction", "input", "output",
          "text", "segments")


def _field_order(name: str) -> int:
    return _ORDER.index(name) if name in _ORDER else len(_ORDER)


def _unknown_column(err, path: tuple, column: str, known: set[str]) -> None:
    from llmspec.spec.errors import did_you_mean

    err(path, "unknown-column", f"column '{column}' does not exist in this source",
        hint=did_you_mean(column, known) or f"columns: {', '.join(sorted(known))}")


def _text_field(name: str, value: str, required: bool, train: bool | None, path: tuple, err,
                known: set[str] | None) -> FieldPlan | None:
    if (known is not None and value in known) or (known is None and not is_template(value)):
        # Without known columns only the data can tell; the dataset stage compiles again with them.
        return FieldPlan(name, "column", value, required, train, (value,))
    if is_column_ref(value):
        _unknown_column(err, path, value, known or set())
        return None
    if not is_template(value):
        from llmspec.spec.errors import did_you_mean

        err(path, "not-a-column", f"'{value}' is neither a column of this source nor a template",
            hint=(did_you_mean(value, known or set()) or f"columns: {', '.join(sorted(known or ())) or 'none'}")
            + f"; a constant is written on purpose as {{{{ {value!r} }}}}")
        return None
    from jinja2 import TemplateSyntaxError

    try:
        variables = template_variables(value)
    except TemplateSyntaxError as exc:
        err(path, "bad-template", f"template does not parse: {exc.message} (template line {exc.lineno})")
        return None
    except RecursionError:
        from llmspec.spec.templates import NESTING_HINT

        err(path, "bad-template", f"template nests too deeply to check ({NESTING_HINT})")
        return None
    if known is not None:
        for var in variables:
            if var not in known:
                _unknown_column(err, path, var, known)
                return None
    return FieldPlan(name, "template", value, required, train, variables)




def example_text(record: dict[str, Any]) -> str:
    """Everything the model sees of a record (prompt and answer), in a fixed order."""
    if "chosen" in record or "completion" in record:  # a preference record, as the dataset stage keeps it
        turns = "\n".join(f"{m['role']}: {m['content']}" for m in record.get("messages", []))
        answers = [f"{k}: {record[k]}" for k in ("chosen", "rejected", "completion", "label") if k in record]
        return "\n".join([turns, *answers]) if turns else "\n".join(answers)
    if "messages" in record:
        return "\n".join(f"{m['role']}: {m['content']}" for m in record["messages"])
    if "segments" in record:
        return "".join(s["text"] for s in record["segments"])
    if "instruction" in record:
        return "\n".join((record["instruction"], record.get("input", ""), record["output"]))
    return record["text"]


__all__ = [
    "AXOLOTL_DATASET_TYPES", "CHAT_ROLES", "FieldPlan", "FormatPlan", "PREFERENCE_DATASET_TYPES",
    "PREFERENCE_RECORD_FIELDS", "RECORD_FIELDS", "RESERVED_VARIABLES",
    "ROW_VARIABLE", "Renderer", "SourcePlan", "compile_format", "example_text", "is_column_ref", "is_template",
    "template_variables",
]
