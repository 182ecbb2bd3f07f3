"""Checks that look at several parts of a valid-shaped spec at once.

They run after the models accept the spec's shape, and every check runs: the user sees all
problems of a file in one go, each at its own line and column.
"""

from __future__ import annotations

import os
import re
from pathlib import PurePosixPath
from typing import Callable, Iterator

from .errors import Diagnostic, Pos, did_you_mean
from .models import (
    CHAT_MESSAGES_FIELDS,
    GENERAL_SUITE,
    GENERAL_SUITE_TAGS,
    EMAIL_COLUMNS,
    MARKDOWN_COLUMNS,
    PAIRED_EMAIL_COLUMNS,
    PDF_COLUMNS,
    TEXT_COLUMNS,
    DedupeArgs,
    PostgresSource,
    ProjectSpec,
    Segment,
    rule_args,
    rule_kind,
    style_fields,
)
from .builtin_models import BUILTIN_MODELS
from .sql import read_only_problem
from .templates import RESERVED_VARIABLES, check_template

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

Locate = Callable[..., Pos]
ENV_REF = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")
# user:password@ right after a scheme, anywhere in a string (descriptions and prompts included)
_URL_PASSWORD = re.compile(r"\b[a-z][a-z0-9+.-]*://[^/@\s:]*:([^@\s/]+)@", re.IGNORECASE)
# ...?password=S3cret in a URL's query, or password=S3cret in a key=value DSN beside host=
_PARAM_PASSWORD = re.compile(r"(?:\b[a-z][a-z0-9+.-]*://\S*[?&;]|\bhost\s*=\s*\S+.*?\b)"
                             r"(?:ssl)?(?:password|passwd|pwd)\s*=\s*('[^']*'|[^&;#\s]+)", re.IGNORECASE)


def known_columns(spec: ProjectSpec, source: str) -> set[str] | None:
    """The columns a source is known to produce, or None when only the data can tell."""
    src = spec.sources[source]
    if src.contract:
        return set(src.contract)
    fmt = src.format
    if fmt in ("mbox", "eml"):
        return set(PAIRED_EMAIL_COLUMNS if getattr(src, "pairing", None) else EMAIL_COLUMNS)
    if fmt == "text":
        return set(TEXT_COLUMNS)
    if fmt in ("markdown", "html", "docx"):
        return set(MARKDOWN_COLUMNS)
    if fmt == "pdf":
        return set(PDF_COLUMNS)
    return None


def run_checks(spec: ProjectSpec, data: dict, at: Locate, key_at: Locate) -> list[Diagnostic]:
    diags: list[Diagnostic] = []
    for check in (_check_version, _check_format_map, _check_paths, _check_queries, _check_secrets, _check_rules,
                  _check_split, _check_acceptance, _check_base_model, _check_retention, _check_feedback_down,
                  _check_kto_holdout):
        diags.extend(check(spec, data, at, key_at))
    return diags


def _check_version(spec: ProjectSpec, data: dict, at: Locate, key_at: Locate) -> Iterator[Diagnostic]:
    # Literal[1] lets True through (True == 1 in Python); the version is a number, never a flag.
    if isinstance(data.get("llmspec"), bool):
        yield Diagnostic("invalid-value", f"llmspec: {str(data['llmspec']).lower()} is not a language version",
                         at(("llmspec",)), hint="allowed values: 1")


def _check_format_map(spec: ProjectSpec, data: dict, at: Locate, key_at: Locate) -> Iterator[Diagnostic]:
    fmt = spec.format
    sources = list(spec.sources)
    for name in fmt.map:
        if name not in spec.sources:
            yield Diagnostic("unknown-source", f"format.map names '{name}', which is not a declared source",
                             key_at(("format", "map", name)),
                             hint=did_you_mean(name, sources) or f"declared sources: {', '.join(sources)}")
    for name in spec.sources:
        if name not in fmt.map:
            yield Diagnostic("unmapped-source", f"source '{name}' is not mapped in format.map",
                             key_at(("sources", name)),
                             hint=f"add `{name}: {{...}}` under format.map, or remove the source")
    method = spec.training.preference_method
    if method and fmt.style != "chat":
        yield Diagnostic("preference-style", f"training.method {method} needs format.style chat, not {fmt.style}",
                         at(("format", "style")),
                         hint="preference pairs are compiled to Axolotl's chat-template preference types")
        return
    required, optional = style_fields(fmt.style, method or "")
    for name, fields in fmt.map.items():
        base = ("format", "map", name)
        allowed_req, allowed_opt = style_fields(fmt.style, method or "", fields)
        for field in fields:
            if field not in allowed_req | allowed_opt:
                all_fields = sorted(required | optional | (CHAT_MESSAGES_FIELDS[0] if fmt.style == "chat" else set()))
                hint = did_you_mean(field, all_fields) or f"{fmt.style} fields: {', '.join(all_fields)}"
                if method in ("dpo", "orpo") and field == "assistant":
                    hint = f"training.method {method} learns from pairs: map the preferred answer as `chosen`"
                yield Diagnostic("style-mismatch", f"field '{field}' does not belong to the {fmt.style} style"
                                 + (f" with training.method {method}" if method else ""),
                                 key_at(base + (field,)), hint=hint)
        for field in sorted(allowed_req - set(fields)):
            if method and field in ("chosen", "rejected", "label"):
                why = ("learns from pairs: the answer people preferred (`chosen`) and the one they did not "
                       "(`rejected`)" if method != "kto" else "learns from answers labelled good or bad (`label`)")
                yield Diagnostic("preference-pairs", f"format.map.{name} gives no '{field}': training.method "
                                 f"{method} {why}", key_at(base),
                                 hint=f"map `{field}:` to a column (a `format: feedback` source has `rejected` and "
                                 "`label`), or train this data with method lora")
                continue
            yield Diagnostic("missing-key", f"format.map.{name} lacks '{field}', required by the {fmt.style} style",
                             key_at(base), hint=f"add `{field}:` (a column name or a template)")
        columns = known_columns(spec, name) if name in spec.sources else None
        for field, value in fields.items():
            texts: list[tuple[tuple, str]] = []
            if isinstance(value, str):
                texts.append((base + (field,), value))
                if fmt.style == "input_output":
                    yield Diagnostic("wrong-type", "input_output segments are a list of {text, train}",
                                     at(base + (field,)))
            else:
                if fmt.style != "input_output":
                    yield Diagnostic("wrong-type", f"field '{field}' takes a column name or a template, not a list",
                                     at(base + (field,)))
                texts.extend((base + (field, i, "text"), seg.text) for i, seg in enumerate(value)
                             if isinstance(seg, Segment))
            for path, text in texts:
                yield from _template_diags(text, path, columns, name, at)


def _check_kto_holdout(spec: ProjectSpec, data: dict, at: Locate, key_at: Locate) -> Iterator[Diagnostic]:
    # kto examples are answers labelled good or bad, with no reference answer to compare against.
    if spec.training.method == "kto" and spec.acceptance.holdout is not None:
        yield Diagnostic("conflict", "acceptance.holdout compares answers with the eval split's reference answers, "
                         "and training.method kto has none (its answers are labelled good or bad)",
                         at(("acceptance", "holdout")), hint="use acceptance.tests or tests_from with kto")


def _check_feedback_down(spec: ProjectSpec, data: dict, at: Locate, key_at: Locate) -> Iterator[Diagnostic]:
    # A thumbs-down answer is what the model should not say: only kto can learn that from it alone.
    if spec.training.method == "kto":
        return
    for name, src in spec.sources.items():
        if src.format == "feedback" and getattr(src, "include_down", False):
            yield Diagnostic("feedback-down", f"source '{name}' includes thumbs-down answers, which training.method "
                             f"{spec.training.method} would learn as good answers", at(("sources", name, "include_down")),
                             hint="use training.method kto (it reads `label`), or remove include_down")


def _template_diags(text: str, path: tuple, columns: set[str] | None, source: str, at: Locate):
    result = check_template(text)
    if result.error_code:
        message, pos = result.error, at(path)
        if result.line_in_template and "\n" in text.strip("\n"):
            if pos is not None and pos.content is not None:
                pos = pos.inside(result.line_in_template)  # the template's own line in the file
            else:
                message += f" (line {result.line_in_template} of the template)"
        yield Diagnostic(result.error_code, message, pos,
                         hint="templates are Jinja: {{ column }}, filters like | trim; no private attributes")
        return
    if result.literal:
        # "Agent Reply": a column's exact name, or (no such column) a typo that would train on
        # that text as a constant. Only the data can tell when no contract declares the columns.
        if columns is not None and text not in columns:
            yield Diagnostic("not-a-column", f"'{text}' is neither a column of source '{source}' nor a template",
                             at(path), hint=(did_you_mean(text, columns) or f"columns: {', '.join(sorted(columns))}")
                             + f"; a constant is written on purpose as {{{{ {text!r} }}}}")
        return
    unknown = result.variables - columns if columns is not None else set()
    if unknown:
        # bos_token / eos_token are given to every template by the renderer, next to the columns
        unknown -= set(RESERVED_VARIABLES)
    if columns is not None:
        for var in sorted(unknown):
            yield Diagnostic("unknown-column", f"template uses '{var}', which source '{source}' does not have",
                             at(path), hint=did_you_mean(var, columns) or f"columns: {', '.join(sorted(columns))}")


def _path_problem(raw: str) -> tuple[str, str] | None:
    if raw.startswith("/") or re.match(r"^[A-Za-z]:[\\/]", raw) or raw.startswith("~"):
        return "absolute-path", f"path '{raw}' is absolute"
    parts = PurePosixPath(raw.replace("\\", "/")).parts
    depth = 0
    for part in parts:
        depth += -1 if part == ".." else (0 if part == "." else 1)
        if depth < 0:
            return "path-escape", f"path '{raw}' leaves the spec's folder"
    return None


def _check_paths(spec: ProjectSpec, data: dict, at: Locate, key_at: Locate) -> Iterator[Diagnostic]:
    places = [(("sources", n, "path"), getattr(s, "path", None)) for n, s in spec.sources.items()]
    places.append((("acceptance", "tests_from"), spec.acceptance.tests_from))
    suite = spec.acceptance.retention.suite
    places.append((("acceptance", "retention", "suite"), None if suite.startswith("builtin:") else suite))
    replay = spec.training.replay
    if replay is not None and replay.from_base_model and not replay.prompts.startswith("builtin:"):
        places.append((("training", "replay", "prompts"), replay.prompts))
    for path, raw in places:
        if raw is None:
            continue
        problem = _path_problem(raw)
        if problem:
            yield Diagnostic(problem[0], problem[1], at(path),
                             hint="data paths are relative to the spec's folder and stay inside it")


def _check_queries(spec: ProjectSpec, data: dict, at: Locate, key_at: Locate) -> Iterator[Diagnostic]:
    for name, src in spec.sources.items():
        query = getattr(src, "query", None)
        problem = read_only_problem(query) if isinstance(query, str) else None
        if problem:
            yield Diagnostic("unsafe-query", f"sources.{name}.query {problem}", at(("sources", name, "query")),
                             hint="a source only reads: one SELECT (or WITH ... SELECT), nothing that writes, "
                                  "attaches or reaches files")


def _walk_strings(node, path=()):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _walk_strings(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk_strings(v, path + (i,))
    elif isinstance(node, str):
        yield path, node


def _check_secrets(spec: ProjectSpec, data: dict, at: Locate, key_at: Locate) -> Iterator[Diagnostic]:
    url_paths = {("sources", n, "url") for n, s in spec.sources.items() if isinstance(s, PostgresSource)}
    url_paths |= {("sources", n, "store") for n, s in spec.sources.items() if s.format == "feedback" and s.store}
    if spec.serve.log.store:
        url_paths.add(("serve", "log", "store"))
    for path, text in _walk_strings(data):
        if path in url_paths:
            continue
        if _inline_password(text):
            yield Diagnostic("inline-secret", "a URL with an inline password: secrets never go in the spec",
                             at(path), hint="put the URL in an environment variable and write `${env:NAME}`")
        elif ENV_REF.search(text):
            yield Diagnostic("env-not-allowed", "`${env:...}` references are only resolved in a source's `url`",
                             at(path))
    for path in sorted(url_paths):
        raw = _lookup(data, path)
        # the reader resolves exactly one whole `${env:NAME}`, nothing spliced into a URL
        if isinstance(raw, str) and not ENV_REF.fullmatch(raw.strip()):
            what = ("a URL with an inline password: secrets never go in the spec" if _inline_password(raw)
                    else "a database URL must be given as `${env:NAME}`, never inline")
            yield Diagnostic("inline-secret", what, at(path),
                             hint="export CRM_DATABASE_URL=... and write `url: ${env:CRM_DATABASE_URL}`")


def _inline_password(text: str) -> bool:
    """Whether a URL in text carries a literal password (`${env:...}` parts are not literal)."""
    masked = ENV_REF.sub("\0", text)
    return any(set(m.group(1).strip("'")) != {"\0"}
               for rx in (_URL_PASSWORD, _PARAM_PASSWORD) for m in rx.finditer(masked))


def _lookup(data, path):
    for p in path:
        data = data[p]
    return data


def _check_rules(spec: ProjectSpec, data: dict, at: Locate, key_at: Locate) -> Iterator[Diagnostic]:
    sources = list(spec.sources)
    for i, rule in enumerate(spec.quality.rules):
        kind = rule_kind(rule)
        args = rule_args(rule)
        base = ("quality", "rules", i, kind)
        if kind == "language":
            yield Diagnostic("unsupported-rule", f"quality.rules[{i}]: {LANGUAGE_REFUSAL}", key_at(base),
                             hint=LANGUAGE_HINT)
            continue
        for j, name in enumerate(args.sources or []):
            if name not in spec.sources:
                yield Diagnostic("unknown-source", f"rule {kind} names source '{name}', which is not declared",
                                 at(base + ("sources", j)),
                                 hint=did_you_mean(name, sources) or f"declared sources: {', '.join(sources)}")
        targets = _rule_targets(args, kind, base)
        if not targets or args.skip_missing_columns:
            continue
        for src in args.sources or sources:
            columns = known_columns(spec, src) if src in spec.sources else None
            if columns is None:
                continue
            missing = [(c, p) for c, p in targets if c not in columns]
            if missing:
                names = ", ".join(f"'{c}'" for c, _ in missing)
                guess = did_you_mean(missing[0][0], columns) if len(missing) == 1 else None
                yield Diagnostic("unknown-column", f"rule {kind} uses {names}, which source '{src}' does not have",
                                 at(missing[0][1]), hint=guess or f"'{src}' has {', '.join(sorted(columns))}; "
                                 "limit the rule with `sources: [...]` or set `skip_missing_columns: true`")
        if isinstance(args, DedupeArgs) and args.method != "minhash":
            raw = _lookup(data, base) if isinstance(_lookup(data, base), dict) else {}
            for key in ("threshold", "ngram", "unit", "permutations", "bands", "rows_per_band"):
                if key in raw:
                    yield Diagnostic("ignored-key", f"dedupe.{key} only applies to method minhash",
                                     key_at(base + (key,)), severity="warning")
    for name in spec.quality.source_gates:
        if name not in spec.sources:
            yield Diagnostic("unknown-source", f"quality.source_gates names '{name}', which is not declared",
                             key_at(("quality", "source_gates", name)),
                             hint=did_you_mean(name, sources) or f"declared sources: {', '.join(sources)}")


def _rule_targets(args, kind: str, base: tuple) -> list[tuple[str, tuple]]:
    """(column, where it is written) for every column a rule works on."""
    if kind == "fill":
        out = [(args.column, base + ("column",))]
        return out + ([(args.from_column, base + ("from_column",))] if args.from_column else [])
    if getattr(args, "column", None) is not None:
        return [(args.column, base + ("column",))]
    return [(c, base + ("columns", i)) for i, c in enumerate(getattr(args, "columns", None) or [])]


def _check_split(spec: ProjectSpec, data: dict, at: Locate, key_at: Locate) -> Iterator[Diagnostic]:
    col = spec.split.stratify
    if col is None:
        return
    for name in spec.sources:
        columns = known_columns(spec, name)
        if columns is not None and col not in columns:
            yield Diagnostic("unknown-column", f"split.stratify uses '{col}', which source '{name}' does not "
                             "have: its rows form one stratum of their own", at(("split", "stratify")),
                             hint=did_you_mean(col, columns), severity="warning")


def _check_acceptance(spec: ProjectSpec, data: dict, at: Locate, key_at: Locate) -> Iterator[Diagnostic]:
    acc = spec.acceptance
    seen: dict[str, int] = {}
    for i, test in enumerate(acc.tests):
        if test.name in seen:
            yield Diagnostic("duplicate-test", f"test name '{test.name}' is used twice",
                             at(("acceptance", "tests", i, "name")),
                             hint=f"first used by acceptance.tests[{seen[test.name]}]")
        seen.setdefault(test.name, i)
    gates = acc.gates
    if gates.eval_loss is not None and spec.split.eval_fraction == 0:
        yield Diagnostic("conflict", "the eval_loss gate needs an eval split, but split.eval_fraction is 0",
                         at(("acceptance", "gates", "eval_loss")), hint="set split.eval_fraction, e.g. 0.1")
    if gates.baseline_gate is not None and acc.baseline == "none":
        yield Diagnostic("conflict", "beats_baseline needs a baseline, but acceptance.baseline is none",
                         at(("acceptance", "gates", "beats_baseline")))
    tags = {t for test in acc.tests for t in test.tags}
    for tag in gates.pass_rate_by_tag:
        if tag not in tags and acc.tests_from is None:
            yield Diagnostic("unknown-tag", f"no test carries the tag '{tag}'",
                             key_at(("acceptance", "gates", "pass_rate_by_tag", tag)),
                             hint=did_you_mean(tag, tags) or None)
    gates_set = gates.pass_rate is not None or gates.pass_rate_by_tag or gates.baseline_gate is not None
    if gates_set and not acc.tests and acc.tests_from is None and acc.holdout is None:
        yield Diagnostic("no-tests", "acceptance gates are set but there are no tests",
                         key_at(("acceptance",)) if "acceptance" in data else None)


def _check_base_model(spec: ProjectSpec, data: dict, at: Locate, key_at: Locate) -> Iterator[Diagnostic]:
    model_id = spec.base_model.id
    if model_id.startswith("builtin:"):
        if model_id not in BUILTIN_MODELS:
            yield Diagnostic("unknown-builtin", f"there is no built-in model '{model_id}'",
                             at(("base_model", "id")), hint=f"built-in models: {', '.join(BUILTIN_MODELS)}")
        return
    looks_local = (model_id.startswith((".", "/")) or os.sep in model_id and model_id.count("/") != 1
                   or model_id.lower().endswith(".gguf"))
    if not looks_local and spec.base_model.revision is None:
        yield Diagnostic("unpinned-model", f"base model '{model_id}' has no pinned revision",
                         at(("base_model", "id")), severity="warning",
                         hint="add `revision: <commit hash>` so every run trains from the same weights")


# The packaged suites and prompt sets (runtime/acceptance/suites/).
BUILTIN_SUITES = ("builtin:general-v2", "builtin:general-v1")
BUILTIN_PROMPT_SETS = ("builtin:general-replay-v1",)


def _check_retention(spec: ProjectSpec, data: dict, at: Locate, key_at: Locate) -> Iterator[Diagnostic]:
    ret = spec.acceptance.retention
    if ret.suite.startswith("builtin:") and ret.suite not in BUILTIN_SUITES:
        yield Diagnostic("unknown-suite", f"there is no built-in suite '{ret.suite}'",
                         at(("acceptance", "retention", "suite")),
                         hint=did_you_mean(ret.suite, BUILTIN_SUITES) or f"built-in: {', '.join(BUILTIN_SUITES)}")
    if ret.suite == GENERAL_SUITE:
        for tag in ret.max_drop_by_tag:
            if tag not in GENERAL_SUITE_TAGS:
                yield Diagnostic("unknown-tag", f"no prompt of {GENERAL_SUITE} carries the tag '{tag}'",
                                 key_at(("acceptance", "retention", "max_drop_by_tag", tag)),
                                 hint=did_you_mean(tag, GENERAL_SUITE_TAGS) or f"tags: {', '.join(GENERAL_SUITE_TAGS)}")
    if ret.enabled is True and spec.base_model.id == "builtin:tiny":
        yield Diagnostic("retention-on-tiny", "retention is on, but builtin:tiny knows nothing to retain: "
                         "its base pass rate is 0", at(("acceptance", "retention")), severity="warning",
                         hint="use a real base model (builtin:smollm2-135m-instruct), or leave retention on auto")
    replay = spec.training.replay
    if replay is None:
        return
    if spec.training.method in ("dpo", "orpo", "kto"):
        # Replay examples are answers to imitate; a preference method learns from pairs (or
        # rated answers), so there is no record shape to mix them in as.
        yield Diagnostic("replay-with-preference", f"training.replay works with supervised methods (lora, qlora, "
                         f"full), not with {spec.training.method}", at(("training", "replay")),
                         hint="train with replay first (method: lora), then the preference run from that model; "
                              "or remove training.replay")
        return
    if replay.from_base_model:
        if replay.prompts.startswith("builtin:") and replay.prompts not in BUILTIN_PROMPT_SETS:
            yield Diagnostic("unknown-suite", f"there is no built-in prompt set '{replay.prompts}'",
                             at(("training", "replay", "prompts")),
                             hint=did_you_mean(replay.prompts, BUILTIN_PROMPT_SETS)
                             or f"built-in: {', '.join(BUILTIN_PROMPT_SETS)}")
        if spec.base_model.id == "builtin:tiny":
            yield Diagnostic("replay-on-tiny", "replay from builtin:tiny teaches its random answers back to it",
                             at(("training", "replay", "from")), severity="warning")
    elif replay.from_ not in spec.sources:
        yield Diagnostic("unknown-source", f"replay from '{replay.from_}': no such source",
                         at(("training", "replay", "from")),
                         hint=did_you_mean(replay.from_, list(spec.sources))
                         or "give `base_model` or the name of a declared source")
    elif replay.from_ not in spec.format.map:
        yield Diagnostic("replay-unmapped", f"replay source '{replay.from_}' has no entry in format.map, so its "
                         "rows cannot become examples", at(("training", "replay", "from")),
                         hint=f"map its columns: format.map.{replay.from_}: {{user: ..., assistant: ...}}")
