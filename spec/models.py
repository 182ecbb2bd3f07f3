"""The spec language: pydantic models of ``llmspec.yaml``.

Field-level checks (types, ranges, allowed values, regexes, gate expressions) live here;
checks that need several fields at once (sources named in ``format.map``, template
variables against declared columns, paths inside the project) live in ``checks.py`` so
that every problem is reported in one run.

The models are the single source of the published JSON Schema: descriptions and examples
given here are what editors show.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from .expressions import parse_comparison

LANGUAGE_VERSION = 1


class StrictModel(BaseModel):
    # strict: YAML already gives real ints, floats and bools; coercing "yes" or "1" would hide typos.
    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=False)


def _check_regex(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise PydanticCustomError(
            "bad-regex", "pattern '{pattern}' does not compile: {why}",
            {"pattern": pattern, "why": f"{exc.msg} at position {exc.pos}"},
        ) from None
    # Cleaning runs patterns in Polars' Rust engine: what it cannot run fails here, at validate,
    # not at clean time after the data was read.
    from .regex import RegexNotPortable, rust_syntax

    try:
        rust_syntax(pattern)
    except RegexNotPortable as exc:
        hint = f" ({exc.args[1]})" if len(exc.args) > 1 and exc.args[1] else ""
        raise PydanticCustomError("regex-not-portable", "pattern '{pattern}' {why}{hint}",
                                  {"pattern": pattern, "why": exc.args[0], "hint": hint}) from None
    return pattern


def _check_comparison(value: Any, *, lo: float | None = None, hi: float | None = None) -> str:
    try:
        cmp = parse_comparison(value)
    except ValueError as exc:
        raise PydanticCustomError("bad-gate", "{why}", {"why": str(exc)}) from None
    if (lo is not None and cmp.value < lo) or (hi is not None and cmp.value > hi):
        raise PydanticCustomError(
            "out-of-range", "gate value {v} is outside [{lo}, {hi}]",
            {"v": cmp.value, "lo": lo, "hi": hi},
        )
    return str(cmp)


Identifier = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]

# ----------------------------------------------------------------------------- base model


class BaseModelSpec(StrictModel):
    """The model to fine-tune."""

    id: str = Field(
        description="`builtin:tiny` (a tiny local Llama for demos and tests), a Hugging Face hub id "
        "`org/name` (pin `revision`), or a relative/absolute path to a local model folder.",
        examples=["builtin:tiny", "meta-llama/Llama-3.2-1B-Instruct", "./models/my-base"],
        min_length=1,
    )
    revision: str | None = Field(None, description="Hub revision (commit hash) to pin; recorded in llmspec.lock.")
    tokenizer: str | None = Field(None, description="A different tokenizer id or path (default: the model's own).")
    chat_template: str = Field(
        "tokenizer_default",
        description="Axolotl chat template for the `chat` style: `tokenizer_default` uses the model's own.",
        examples=["tokenizer_default", "chatml", "llama3"],
    )


# ----------------------------------------------------------------------------- sources

ColumnType = Annotated[
    str,
    Field(pattern=r"^(str|int|float|bool|datetime|list|json)\??$",
          description="str | int | float | bool | datetime | list | json; a trailing `?` makes it optional."),
]


class ExpectSpec(StrictModel):
    """Volume and completeness checks that fail the plan early, before any training."""

    min_rows: int | None = Field(None, ge=0, description="Fail when the source yields fewer rows.")
    max_rows: int | None = Field(None, ge=1, description="Fail when the source yields more rows.")
    max_null_fraction: Fraction | dict[str, Fraction] | None = Field(
        None, description="Largest allowed share of null values: one number for every column, or per column."
    )
    max_corrupt_fraction: Fraction | None = Field(None, description="Largest allowed share of unreadable units.")

    @model_validator(mode="after")
    def _rows_order(self) -> "ExpectSpec":
        if self.min_rows is not None and self.max_rows is not None and self.min_rows > self.max_rows:
            raise PydanticCustomError("out-of-range", "min_rows ({a}) is larger than max_rows ({b})",
                                      {"a": self.min_rows, "b": self.max_rows})
        return self


# Any name the data may use ("Agent Reply", "agent-reply"); a leading underscore is llmspec's own.
ColumnName = Annotated[str, Field(pattern=r"^[^_\x00-\x1f][^\x00-\x1f]*$", max_length=256)]
ExtraPolicy = Literal["reject", "warn", "ignore"]
EXTRA_POLICIES = ("reject", "warn", "ignore")


class _SourceBase(StrictModel):
    columns: dict[ColumnName, Union[ColumnType, ExtraPolicy]] | None = Field(
        None, description="The data contract: column name -> type. Missing columns fail the source; "
        "wrong-typed values reject the row. `extra: reject | warn | ignore` (default warn) says what keys the "
        "contract does not declare do: reject the rows holding them, count and name them in the report, or "
        "nothing (a column named `extra` is declared with a type as usual).",
        examples=[{"question": "str", "answer": "str", "product": "str?", "extra": "reject"}],
    )
    expect: ExpectSpec | None = None

    @field_validator("columns")
    @classmethod
    def _policy_only_for_extra(cls, value):
        for name, kind in (value or {}).items():
            if kind in EXTRA_POLICIES and name != "extra":
                raise PydanticCustomError(
                    "invalid-value", "column '{name}': '{kind}' is not a type (str, int, float, bool, datetime, "
                    "list, json); reject/warn/ignore is the value of `extra`", {"name": name, "kind": kind})
        return value

    @property
    def contract(self) -> dict[str, str] | None:
        """The declared columns and their types, without the `extra` policy."""
        if not self.columns:
            return None
        return {k: v for k, v in self.columns.items() if not (k == "extra" and v in EXTRA_POLICIES)} or None

    @property
    def extra_policy(self) -> str:
        value = (self.columns or {}).get("extra")
        return value if value in EXTRA_POLICIES else "warn"


class _FileSource(_SourceBase):
    path: str = Field(description="Path relative to the spec's folder. Must stay inside it.", min_length=1)


class JsonlSource(_FileSource):
    format: Literal["jsonl"]


class JsonSource(_FileSource):
    format: Literal["json"]
    records: str | None = Field(None, description="Dotted key holding the array when the file's top level is an object.")


class CsvSource(_FileSource):
    format: Literal["csv"]
    delimiter: str = Field(",", min_length=1, max_length=1)
    header: bool = True


class ParquetSource(_FileSource):
    format: Literal["parquet"]


class TextSource(_FileSource):
    format: Literal["text"]
    path: str = Field(description="A file or a glob (`docs/**/*.txt`), relative to the spec's folder.", min_length=1)


class MarkdownSource(_FileSource):
    format: Literal["markdown"]
    path: str = Field(description="A file or a glob (`docs/**/*.md`), relative to the spec's folder.", min_length=1)
    split: Literal["file", "heading"] = Field("heading", description="One record per file or per heading section.")
    heading_level: int = Field(2, ge=1, le=6, description="Split at headings of this level or higher.")


class HtmlSource(_FileSource):
    format: Literal["html"]
    path: str = Field(description="A file or a glob (`site/**/*.html`), relative to the spec's folder.", min_length=1)
    split: Literal["file", "heading"] = Field("heading", description="One record per page or per heading section.")
    heading_level: int = Field(2, ge=1, le=6, description="Split at headings of this level or higher.")


class DocxSource(_FileSource):
    format: Literal["docx"]
    path: str = Field(description="A file or a glob (`manuals/*.docx`), relative to the spec's folder.", min_length=1)
    split: Literal["file", "heading"] = Field("heading", description="One record per document or per heading section.")
    heading_level: int = Field(2, ge=1, le=6, description="Split at headings of this level or higher.")


class PdfSource(_FileSource):
    format: Literal["pdf"]
    path: str = Field(description="A file or a glob (`manuals/*.pdf`), relative to the spec's folder.", min_length=1)
    split: Literal["file", "page"] = Field("page", description="One record per page or per file.")


class PairingSpec(StrictModel):
    """Turns email threads into (customer query -> agent reply) training pairs."""

    by: Literal["thread"] = "thread"
    agent: list[str] = Field(
        min_length=1, description="Address patterns (shell-style) of your support agents.",
        examples=[["*@acme.example"]],
    )


class MboxSource(_FileSource):
    format: Literal["mbox"]
    pairing: PairingSpec | None = None


class EmlSource(_FileSource):
    format: Literal["eml"]
    path: str = Field(description="A folder glob of .eml files (`mail/*.eml`), relative to the spec's folder.", min_length=1)
    pairing: PairingSpec | None = None


class SqliteSource(_FileSource):
    format: Literal["sqlite"]
    query: str = Field(min_length=1, description="A read-only SELECT.")


class PostgresSource(_SourceBase):
    format: Literal["postgres"]
    url: str = Field(
        description="Connection URL, given only as a reference to the environment: `${env:NAME}`. "
        "Resolved at run time, never written to a plan, state, log or report.",
        examples=["${env:CRM_DATABASE_URL}"],
    )
    query: str = Field(min_length=1, description="A read-only SELECT.")


class FeedbackSource(_SourceBase):
    """What `llmspec serve` logged and people rated: one row per exchange with feedback. Columns:
    prompt (the user's last message), answer (the correction, or the answer itself for a thumbs-up),
    rejected (what the model said), label (true unless rated down without a correction), system,
    messages (JSON), exchange_id, run, rating."""

    format: Literal["feedback"]
    store: str | None = Field(
        None, description="The store `serve.log.store` writes: `${env:NAME}` holding a PostgreSQL URL; "
        "default: `.llmspec/feedback.sqlite` beside the spec.", examples=["${env:FEEDBACK_DB_URL}"])
    include_up: bool = Field(False, description="Thumbs-up answers become examples too (corrections always do).")
    include_down: bool = Field(
        False, description="Thumbs-down answers without a correction become rows with `label` false, for "
        "training.method kto (which learns from bad answers too); otherwise they are rejected.")


SourceSpec = Annotated[
    Union[JsonlSource, JsonSource, CsvSource, ParquetSource, TextSource, MarkdownSource,
          HtmlSource, PdfSource, DocxSource, MboxSource, EmlSource, SqliteSource, PostgresSource, FeedbackSource],
    Field(discriminator="format"),
]

SOURCE_FORMATS = ("jsonl", "json", "csv", "parquet", "text", "markdown", "html", "pdf", "docx", "mbox", "eml", "sqlite", "postgres",
                  "feedback")

# Columns that readers without a declared contract always produce (used to check templates).
EMAIL_COLUMNS = ("message_id", "thread_id", "in_reply_to", "sender", "to", "subject", "date", "body",
                 "quoted", "signature")
PAIRED_EMAIL_COLUMNS = ("thread_id", "message_id", "subject", "customer", "agent", "query", "reply", "turns")
TEXT_COLUMNS = ("path", "text")
MARKDOWN_COLUMNS = ("path", "title", "heading", "text")  # also html and docx
PDF_COLUMNS = MARKDOWN_COLUMNS + ("page",)

# ----------------------------------------------------------------------------- quality rules


class _RuleArgs(StrictModel):
    name: str | None = Field(
        None, pattern=r"^[a-z][a-z0-9_-]*$",
        description="Reason recorded on rejected rows (default: the rule kind; `kind#N` when a kind repeats).")
    sources: list[str] | None = Field(None, description="Apply only to these sources (default: all).")
    skip_missing_columns: bool = Field(
        False, description="Sources lacking this rule's columns skip it instead of failing (recipes set this)."
    )


class _ColumnsArgs(_RuleArgs):
    columns: list[str] | None = Field(None, min_length=1, description="Columns to work on.")
    column: str | None = Field(None, description="Shorthand for a single column.")

    @model_validator(mode="after")
    def _one_of(self):
        if self.column is not None and self.columns is not None:
            raise PydanticCustomError("conflict", "give either `column` or `columns`, not both", {})
        return self

    @property
    def targets(self) -> list[str] | None:
        return [self.column] if self.column is not None else self.columns


class DropCorruptArgs(_RuleArgs):
    control_chars: bool = Field(True, description="Also reject text holding C0 control characters.")
    columns: list[str] | None = None


class NormalizeArgs(_ColumnsArgs):
    unicode: Literal["NFKC", "NFC", "NFKD", "NFD", "none"] = "NFKC"
    whitespace: Literal["collapse", "strip", "none"] = "collapse"
    case: Literal["lower", "none"] = "none"


class RequireArgs(_ColumnsArgs):
    blank_is_missing: bool = Field(True, description="Whitespace-only values count as missing.")

    @model_validator(mode="after")
    def _need_columns(self):
        if self.targets is None:
            raise PydanticCustomError("missing-key", "require needs `columns` (or `column`)", {})
        return self


class FillArgs(_RuleArgs):
    column: str
    value: str | int | float | bool | None = None
    from_column: str | None = Field(None, description="Fill from another column instead of a constant.")

    @model_validator(mode="after")
    def _one_source(self):
        if (self.value is None) == (self.from_column is None):
            raise PydanticCustomError("conflict", "fill needs exactly one of `value` or `from_column`", {})
        return self


class MatchingArgs(_ColumnsArgs):
    patterns: list[str] = Field(min_length=1, description="Regular expressions (Python/Rust regex syntax).")
    ignore_case: bool = False

    @field_validator("patterns")
    @classmethod
    def _compile(cls, value: list[str]) -> list[str]:
        for p in value:
            _check_regex(p)
        return value

    @model_validator(mode="after")
    def _need_columns(self):
        if self.targets is None:
            raise PydanticCustomError("missing-key", "needs `column` or `columns`", {})
        return self


class ReplaceMatchingArgs(MatchingArgs):
    value: str = Field("", description="Replaces the whole value when a pattern matches (counted as modified).")


class SubstituteArgs(_ColumnsArgs):
    """Rewrites each match of `pattern` inside the value (counted as modified), keeping the rest;
    `replace_matching`, by contrast, replaces the whole value when a pattern matches."""

    pattern: str = Field(min_length=1, description="A regular expression; every match is rewritten.")
    with_: str = Field("", alias="with", description="The replacement: text, with `\\1` or `\\g<name>` for "
                       "the pattern's groups (`\\\\` is a backslash). Default: delete the match.")
    ignore_case: bool = False

    @field_validator("pattern")
    @classmethod
    def _compile(cls, value: str) -> str:
        return _check_regex(value)

    @model_validator(mode="after")
    def _groups_exist(self):
        if self.targets is None:
            raise PydanticCustomError("missing-key", "substitute needs `column` or `columns`", {})
        groups = re.compile(self.pattern)
        for name, number in re.findall(r"(?<!\\)(?:\\\\)*\\(?:g<(\w+)>|(\d+))", self.with_):
            key = number or name
            if not (int(key) <= groups.groups if key.isdigit() else key in groups.groupindex):
                raise PydanticCustomError("bad-group", "`with` refers to group {g}, which the pattern does not have "
                                          "({n} group(s))", {"g": key, "n": groups.groups})
        return self


class LengthArgs(_ColumnsArgs):
    min_chars: int | None = Field(None, ge=0)
    max_chars: int | None = Field(None, ge=1)
    min_tokens: int | None = Field(None, ge=0)
    max_tokens: int | None = Field(None, ge=1, description="Counted with the base model's tokenizer when available.")

    @model_validator(mode="after")
    def _bounds(self):
        if self.targets is None:
            raise PydanticCustomError("missing-key", "length needs `column` or `columns`", {})
        for lo, hi in (("min_chars", "max_chars"), ("min_tokens", "max_tokens")):
            a, b = getattr(self, lo), getattr(self, hi)
            if a is not None and b is not None and a > b:
                raise PydanticCustomError("out-of-range", "{lo} ({a}) is larger than {hi} ({b})",
                                          {"lo": lo, "hi": hi, "a": a, "b": b})
        if all(getattr(self, k) is None for k in ("min_chars", "max_chars", "min_tokens", "max_tokens")):
            raise PydanticCustomError("missing-key", "length needs at least one of min_chars, max_chars, "
                                      "min_tokens, max_tokens", {})
        return self


PII_KINDS = ("email", "phone", "credit_card", "ip", "iban")


class RedactPiiArgs(_ColumnsArgs):
    kinds: list[Literal["email", "phone", "credit_card", "ip", "iban"]] = Field(
        default_factory=lambda: list(PII_KINDS), min_length=1)
    placeholder: str = Field("<{KIND}>", description="Replacement; `{KIND}` becomes EMAIL, PHONE, ...")


class LanguageArgs(_ColumnsArgs):
    allowed: list[str] = Field(min_length=1, description="ISO 639-1 codes, e.g. [en, de].")
    min_confidence: Fraction = 0.5


class DedupeArgs(_ColumnsArgs):
    method: Literal["exact", "fingerprint", "minhash"] = "exact"
    threshold: float = Field(0.85, gt=0.0, le=1.0, description="Jaccard similarity for minhash.")
    ngram: int = Field(3, ge=1, le=32, description="Shingle size for minhash.")
    unit: Literal["word", "char"] = Field("word", description="Shingle unit for minhash.")
    permutations: int = Field(128, ge=16, le=1024, description="MinHash permutations.")
    seed: int = 42
    bands: int | None = Field(None, ge=1, le=1024, description=(
        "LSH bands for minhash; default: chosen from threshold and permutations (printed by `llmspec compile`)."))
    rows_per_band: int | None = Field(None, ge=1, le=1024, description=(
        "Permutations per LSH band for minhash; bands x rows_per_band must not exceed permutations."))

    @model_validator(mode="after")
    def _layout_fits(self):
        bands, rows = self.bands or 1, self.rows_per_band or 1
        if bands * rows > self.permutations:
            raise PydanticCustomError(
                "conflict", "bands x rows_per_band is {used}, more than the {permutations} permutations",
                {"used": bands * rows, "permutations": self.permutations})
        return self


RULE_ARGS: dict[str, type[StrictModel]] = {
    "drop_corrupt": DropCorruptArgs,
    "normalize": NormalizeArgs,
    "require": RequireArgs,
    "fill": FillArgs,
    "reject_matching": MatchingArgs,
    "keep_matching": MatchingArgs,
    "replace_matching": ReplaceMatchingArgs,
    "substitute": SubstituteArgs,
    "length": LengthArgs,
    "redact_pii": RedactPiiArgs,
    "language": LanguageArgs,
    "dedupe": DedupeArgs,
}


def _rule_model(kind: str, args: type[StrictModel]) -> type[StrictModel]:
    # drop_corrupt takes no required arguments, so `- drop_corrupt: {}` is enough.
    default = Field(default_factory=args) if kind == "drop_corrupt" else Field(...)
    name = "".join(p.title() for p in kind.split("_")) + "Rule"
    return create_model(name, __base__=StrictModel, __doc__=args.__doc__, **{kind: (args, default)})


_RULE_MODELS = {kind: _rule_model(kind, args) for kind, args in RULE_ARGS.items()}


def _rule_tag(value: Any) -> str | None:
    if isinstance(value, dict):
        keys = [k for k in value if k in RULE_ARGS]
        if len(keys) == 1:
            return keys[0]
        return None
    if isinstance(value, BaseModel):
        return next(k for k in RULE_ARGS if k in type(value).model_fields)
    return None


Rule = Annotated[
    Union[tuple(Annotated[m, Tag(k)] for k, m in _RULE_MODELS.items())],  # type: ignore[misc]
    Discriminator(
        _rule_tag,
        custom_error_type="unknown-rule",
        custom_error_message="each rule is a mapping with one rule name as its key",
    ),
]


def rule_kind(rule: BaseModel) -> str:
    return _rule_tag(rule)  # type: ignore[return-value]


def rule_args(rule: BaseModel) -> StrictModel:
    return getattr(rule, rule_kind(rule))


class QualityGates(StrictModel):
    max_rejected_fraction: Fraction | None = Field(None, description="Fail when cleaning throws away more than this.")
    min_rows_after: int | None = Field(None, ge=0, description="Fail when fewer rows survive cleaning.")


class QualitySpec(StrictModel):
    """Step 2: clean. Ordered rules, each one a named, counted reason."""

    rules: list[Rule] = Field(default_factory=list)
    gates: QualityGates = Field(default_factory=QualityGates, description="Gates over all sources together.")
    source_gates: dict[str, QualityGates] = Field(default_factory=dict, description="Gates per source.")
    keep_rejects: bool = Field(True, description="Keep every dropped row, with the rule that dropped it.")


# ----------------------------------------------------------------------------- format


class Segment(StrictModel):
    text: str = Field(description="A column name or a Jinja template.")
    train: bool = Field(description="Whether the model learns to produce this segment.")


FieldValue = Union[str, list[Segment]]

STYLE_FIELDS: dict[str, tuple[set[str], set[str]]] = {
    # style: (required fields, optional fields)
    "chat": ({"user", "assistant"}, {"system"}),
    "alpaca": ({"instruction", "output"}, {"input"}),
    "completion": ({"text"}, set()),
    "input_output": ({"segments"}, set()),
}
CHAT_MESSAGES_FIELDS = ({"messages"}, {"system"})

# training.method values that learn from preferences rather than from one right answer.
PREFERENCE_METHODS = ("dpo", "orpo", "kto")
# Their chat-style fields: dpo and orpo learn from pairs (the preferred answer and the rejected
# one to the same prompt), kto from single answers labelled desirable or not.
PREFERENCE_FIELDS: dict[str, tuple[set[str], set[str]]] = {
    "dpo": ({"user", "chosen", "rejected"}, {"system"}),
    "orpo": ({"user", "chosen", "rejected"}, {"system"}),
    "kto": ({"user", "assistant", "label"}, {"system"}),
}


def style_fields(style: str, method: str, mapping: dict | None = None) -> tuple[set[str], set[str]]:
    """(required, optional) fields of one ``format.map`` entry for a style and training method.
    A ``messages`` column replaces ``user`` (the conversation so far)."""
    messages = mapping is not None and "messages" in mapping
    if method in PREFERENCE_FIELDS:
        required, optional = PREFERENCE_FIELDS[method]
        return ((required - {"user"}) | {"messages"}, optional) if messages else (required, optional)
    if style == "chat" and messages:
        return CHAT_MESSAGES_FIELDS
    return STYLE_FIELDS[style]


class FormatSpec(StrictModel):
    """Step 3: how records become training examples."""

    style: Literal["chat", "alpaca", "completion", "input_output"] = Field(
        description="chat (system/user/assistant), alpaca (instruction/input/output), completion (raw text), "
        "input_output (segments, each trained or not)."
    )
    system: str | None = Field(None, description="System prompt for the chat style.")
    map: dict[str, dict[str, FieldValue]] = Field(
        description="source name -> {field: column name or Jinja template}.",
        examples=[{"tickets": {"user": "{{ question }}", "assistant": "{{ answer }}"}}],
    )
    too_long: Literal["reject", "truncate"] = Field(
        "reject", description="An example longer than training.sequence_len, counted in tokens as Axolotl tokenizes "
        "it: `reject` keeps it out of training (counted, in the rejects as `too_long`); `truncate` cuts the end of "
        "its last trained text until it fits.")


class SplitSpec(StrictModel):
    eval_fraction: float = Field(0.1, ge=0.0, le=0.5, description="Share of examples held out for evaluation.")
    seed: int = 42
    stratify: str | None = Field(None, description="Column whose values keep their proportions in both splits.")


# ----------------------------------------------------------------------------- training


class BatchSpec(StrictModel):
    micro: int = Field(2, ge=1, description="Examples per device per step.")
    accumulate: int = Field(8, ge=1, description="Gradient accumulation steps.")


class LoraSpec(StrictModel):
    r: int = Field(16, ge=1, le=1024)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    target: Literal["all-linear"] | list[str] = Field(
        "all-linear", description="`all-linear` or a list of module names (q_proj, v_proj, ...).")


class HardwareSpec(StrictModel):
    type: Literal["auto", "cpu", "cuda"] = "auto"
    gpus: int = Field(1, ge=1, le=1024)
    strategy: Literal["ddp", "fsdp", "deepspeed-zero2", "deepspeed-zero3"] = "ddp"


class WarmupSpec(StrictModel):
    ratio: Fraction | None = None
    steps: int | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _one(self):
        if (self.ratio is None) == (self.steps is None):
            raise PydanticCustomError("conflict", "warmup needs exactly one of `ratio` or `steps`", {})
        return self


class ReplaySpec(StrictModel):
    """Replay: general examples mixed into the training set, so the model keeps what it knew.

    They enter the training split only, never the eval split."""

    from_: str = Field(
        alias="from", min_length=1,
        description="`base_model`: the base model's own greedy answers to `prompts` (self-distillation, "
        "generated once and cached), or the name of a declared source to sample.",
        examples=["base_model", "general_instructions"])
    prompts: str = Field(
        "builtin:general-replay-v1",
        description="With from: base_model, the prompts the base model answers: `builtin:general-replay-v1` "
        "(prompts disjoint from the retention suite) or a JSONL file of {prompt} lines.")
    fraction: float = Field(0.25, gt=0.0, le=0.9, description="Share of the training set made of replay examples.")
    max_new_tokens: int = Field(96, ge=1, le=4096, description="Longest base-model answer generated for replay.")
    seed: int = Field(42, description="Which replay examples are drawn when there are more than needed.")

    @property
    def from_base_model(self) -> bool:
        return self.from_ == "base_model"


class PreferenceSpec(StrictModel):
    """Settings of the preference methods (training.method dpo, orpo or kto)."""

    adapter: Literal["lora", "qlora", "full"] = Field(
        "lora", description="What the preference method trains: a LoRA adapter (`training.lora`), a 4-bit "
        "QLoRA adapter (CUDA only) or every weight.")
    beta: float | None = Field(
        None, gt=0.0, description="dpo/kto: how far the model may move from the base (Axolotl `rl_beta`, TRL's "
        "default 0.1 when unset); orpo: the weight of the odds-ratio term (Axolotl `orpo_alpha`).")
    sft_weight: float | None = Field(
        None, gt=0.0, description="dpo only: also learn the chosen answer as a supervised target, with this "
        "weight beside the DPO loss (TRL's `sft` loss type; the RPO recipe). DPO alone only ranks the chosen "
        "answer above the rejected one; with a few pairs it rarely makes the chosen answer what the model says.")


class TrainingSpec(StrictModel):
    """Steps 4 and 5: the parameters, then the retraining run (Axolotl)."""

    method: Literal["lora", "qlora", "full", "dpo", "orpo", "kto"] = Field(
        "lora", description="lora | qlora | full: supervised fine-tuning on the right answers. dpo | orpo: "
        "preference training on pairs (format fields `chosen` and `rejected`); kto: on single answers "
        "labelled good or bad (fields `assistant` and `label`). Preference methods need format.style chat.")
    epochs: int = Field(3, ge=1, description="Passes over the training set (ignored when max_steps is set).")
    max_steps: int | None = Field(None, ge=1, description="Stop after this many optimizer steps.")
    learning_rate: float = Field(2.0e-4, gt=0.0, le=1.0)
    sequence_len: int = Field(2048, ge=16, le=1_048_576)
    batch: BatchSpec = Field(default_factory=BatchSpec)
    lora: LoraSpec = Field(default_factory=LoraSpec)
    scheduler: Literal["cosine", "linear", "constant", "constant_with_warmup"] = "cosine"
    warmup: WarmupSpec = Field(default_factory=lambda: WarmupSpec(ratio=0.03))
    weight_decay: float = Field(0.0, ge=0.0, le=1.0)
    optimizer: str = "adamw_torch"
    seed: int = 42
    eval_every: int | None = Field(None, ge=1, description="Evaluate every N steps (default: once per epoch).")
    save_every: int | None = Field(None, ge=1, description="Checkpoint every N steps (resume point).")
    hardware: Literal["auto", "cpu", "cuda"] | HardwareSpec = Field(
        "auto", description="auto | cpu | cuda, or {type: cuda, gpus: 8, strategy: fsdp}.")
    axolotl: dict[str, Any] = Field(
        default_factory=dict,
        description="Escape hatch: raw Axolotl keys merged last, checked against Axolotl's own schema.",
    )
    replay: ReplaySpec | None = Field(
        None, description="Mix general examples into training against forgetting (off when absent).")
    preference: PreferenceSpec = Field(default_factory=PreferenceSpec,
                                       description="Settings of training.method dpo, orpo and kto.")

    @property
    def preference_method(self) -> str | None:
        """dpo, orpo or kto; None for supervised fine-tuning."""
        return self.method if self.method in PREFERENCE_METHODS else None

    @property
    def adapter(self) -> str:
        """lora, qlora or full: what the weights update is, whichever the method."""
        return self.preference.adapter if self.preference_method else self.method

    @property
    def hw(self) -> HardwareSpec:
        return self.hardware if isinstance(self.hardware, HardwareSpec) else HardwareSpec(type=self.hardware)

    @model_validator(mode="after")
    def _gpus_need_cuda(self):
        hw = self.hw
        if hw.type == "cpu" and (hw.gpus > 1 or hw.strategy != "ddp"):
            raise PydanticCustomError("conflict", "gpus/strategy only apply to cuda hardware", {})
        if self.preference.sft_weight is not None and self.method != "dpo":
            raise PydanticCustomError("conflict", "preference.sft_weight applies to training.method dpo only "
                                      "(orpo has its own supervised term)", {})
        if self.adapter == "qlora" and hw.type == "cpu":
            raise PydanticCustomError("conflict", "qlora needs a CUDA GPU (bitsandbytes 4-bit); use lora on cpu", {})
        return self


# ----------------------------------------------------------------------------- acceptance

Severity = Literal["error", "warn"]


class GateSpec(StrictModel):
    threshold: str = Field(description="A comparison such as `>= 0.9`.")
    severity: Severity = "error"


class BaselineGate(StrictModel):
    enabled: bool = True
    severity: Severity = "error"


GateValue = Union[str, float, int, GateSpec]


def _normalize_gate(value: Any, lo: float | None, hi: float | None) -> Any:
    if isinstance(value, GateSpec):
        return GateSpec(threshold=_check_comparison(value.threshold, lo=lo, hi=hi), severity=value.severity)
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return GateSpec(threshold=_check_comparison(value, lo=lo, hi=hi))
    return value


class AcceptanceGates(StrictModel):
    pass_rate: GateValue | None = Field(None, description="Share of tests the fine-tuned model must pass.",
                                        examples=[">= 0.9"])
    pass_rate_by_tag: dict[str, GateValue] = Field(default_factory=dict, examples=[{"refunds": ">= 1.0"}])
    eval_loss: GateValue | None = Field(None, description="Bound on the final eval loss from training.",
                                        examples=["<= 1.5"])
    beats_baseline: bool | BaselineGate = Field(
        False, description="The fine-tuned model must pass more tests than the base model.")

    @field_validator("pass_rate", mode="after")
    @classmethod
    def _rate(cls, v):
        return _normalize_gate(v, 0.0, 1.0) if v is not None else v

    @field_validator("pass_rate_by_tag", mode="after")
    @classmethod
    def _rates(cls, v):
        return {k: _normalize_gate(g, 0.0, 1.0) for k, g in v.items()}

    @field_validator("eval_loss", mode="after")
    @classmethod
    def _loss(cls, v):
        return _normalize_gate(v, 0.0, None) if v is not None else v

    @property
    def baseline_gate(self) -> BaselineGate | None:
        if isinstance(self.beats_baseline, BaselineGate):
            return self.beats_baseline if self.beats_baseline.enabled else None
        return BaselineGate() if self.beats_baseline else None


class TestCase(StrictModel):
    name: str = Field(min_length=1)
    prompt: str = Field(min_length=1)
    expect: list[dict[str, Any]] = Field(
        min_length=1, description="Assertions; each a mapping with one kind (prefix `not_` to negate) and "
        "an optional `weight`.", examples=[[{"contains": "30 days"}, {"not_contains": "I don't know"}]],
    )
    tags: list[str] = Field(default_factory=list)
    max_new_tokens: int | None = Field(None, ge=1, le=4096)
    system: str | None = None

    @field_validator("expect")
    @classmethod
    def _expectations(cls, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        from llmspec.spec.assertions import parse_expectation

        for item in items:
            try:
                parse_expectation(item)
            except ValueError as exc:
                raise PydanticCustomError("bad-assertion", "{why}", {"why": str(exc)}) from None
        return items


class HoldoutSpec(StrictModel):
    count: int = Field(ge=1, description="Eval-split examples used as extra tests.")
    metric: Literal["rouge_l", "token_f1"] = "rouge_l"
    threshold: Fraction = 0.5


# v2 holds the prompts the base model passes robustly (bench/general_suite.py); v1, kept for runs
# that pinned it, holds every prompt it passed greedily, many of them by a hair.
GENERAL_SUITE = "builtin:general-v2"
# The areas of the built-in general suites, one tag each (runtime/acceptance/suites/).
GENERAL_SUITE_TAGS = ("facts", "arithmetic", "language", "instructions", "safety")


class RetentionSpec(StrictModel):
    """Retention: a general suite run on the base and the fine-tuned model, same prompts, same
    system prompt and chat template; the fine-tuned model may not fall far behind the base."""

    enabled: bool | Literal["auto"] = Field(
        "auto", description="`auto`: on for every real model, off for builtin:tiny (which knows nothing).")
    suite: str = Field(
        GENERAL_SUITE, description="`builtin:general-v2` (100+ everyday prompts tagged by area, each passed robustly "
        "by SmolLM2-135M-Instruct), `builtin:general-v1` (its first version) or a JSONL file in the tests_from format.")
    max_drop: Fraction = Field(
        0.05, description="Largest allowed fall of the pass rate on the suite below the base model's "
        "(0.05 = 5 points).")
    max_drop_by_tag: dict[str, Fraction] = Field(
        default_factory=dict, description="The same bound for one tag of the suite.", examples=[{"safety": 0.0}])
    max_drift: float | None = Field(
        None, ge=0.0, description="Bound on the drift: the mean per-token negative log-likelihood of the base "
        "model's own answers under the fine-tuned model minus under the base (nats per token).")
    severity: Severity = Field("error", description="`error`: a failed retention gate stops promotion.")
    max_new_tokens: int = Field(48, ge=1, le=4096)


class AcceptanceSpec(StrictModel):
    """Step 6: tests the new model must pass, side by side with the base model, before promotion."""

    baseline: Literal["base_model", "none"] = "base_model"
    max_new_tokens: int = Field(64, ge=1, le=4096)
    tests: list[TestCase] = Field(default_factory=list)
    tests_from: str | None = Field(None, description="A JSONL file of tests ({name, prompt, expect, tags}), or "
                                   "`feedback`: every correction people posted to `llmspec serve` becomes a test "
                                   "that the answer be similar to the correction.")
    holdout: HoldoutSpec | None = None
    gates: AcceptanceGates = Field(default_factory=AcceptanceGates)
    retention: RetentionSpec | bool = Field(
        default_factory=RetentionSpec,
        description="Retention of general knowledge, on by default for real models; `false` turns it off.")

    @field_validator("retention", mode="after")
    @classmethod
    def _retention(cls, v):
        return RetentionSpec(enabled=v) if isinstance(v, bool) else v


# ----------------------------------------------------------------------------- the project


class ExecutionSpec(StrictModel):
    """Where and in what batches cleaning runs. Neither changes which rows are kept or why."""

    engine: Literal["local", "ray"] = Field(
        "local", description="`local`: this machine, batch by batch. `ray`: a Ray cluster (Ray Data), "
        "installed with the `ray` extra.")
    address: str | None = Field(
        None, description="The Ray cluster to join (`ray://HOST:10001`, or `auto` for one started here "
        "with `ray start`); unset: a Ray instance started on this machine for the run.")
    batch_rows: int = Field(
        50_000, ge=100, description="Rows cleaned at a time; memory holds about one batch plus the dedupe "
        "state (hashes), not the source.")


class ServeLogSpec(StrictModel):
    enabled: bool = Field(True, description="Record every exchange `llmspec serve` answers (for feedback).")
    store: str | None = Field(
        None, description="`${env:NAME}` holding a PostgreSQL URL; default: `.llmspec/feedback.sqlite`.",
        examples=["${env:FEEDBACK_DB_URL}"])
    redact: bool = Field(False, description="Apply the spec's `redact_pii` rules (all PII kinds when it has "
                         "none) to messages and answers before they are stored.")


class ServeSpec(StrictModel):
    """How `llmspec serve` runs: what it logs."""

    log: ServeLogSpec = Field(default_factory=ServeLogSpec)


class ProjectSpec(StrictModel):
    """An llmspec project: one file covering the whole fine-tuning job."""

    model_config = ConfigDict(
        extra="forbid", strict=True,
        json_schema_extra={"$comment": "Generated by `llmspec schema`; do not edit by hand."},
    )

    llmspec: Literal[1] = Field(description="Spec language version. Only 1 exists.")
    project: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$", description="Project name (lowercase slug).",
                         examples=["acme-support-bot"])
    description: str = ""
    extends: list[str] = Field(
        default_factory=list,
        description="Recipes merged before this file: `recipe:NAME` (built in) or a relative path.",
        examples=[["recipe:instruction-hygiene", "recipe:lora-small"]],
    )
    base_model: BaseModelSpec
    sources: dict[Identifier, SourceSpec] = Field(min_length=1, description="Step 1: where the data is.")
    quality: QualitySpec = Field(default_factory=QualitySpec)
    format: FormatSpec
    split: SplitSpec = Field(default_factory=SplitSpec)
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    acceptance: AcceptanceSpec = Field(default_factory=AcceptanceSpec)
    execution: ExecutionSpec = Field(default_factory=ExecutionSpec, description="Where cleaning runs.")
    serve: ServeSpec = Field(default_factory=ServeSpec)


TOP_LEVEL_KEYS = tuple(ProjectSpec.model_fields)
