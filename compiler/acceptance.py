"""The acceptance suite of a spec: its inline tests, the tests of ``tests_from`` and a held-out
slice of the eval split, as one flat list of ``SuiteTest``.

``compile_acceptance`` builds the acceptance stage's compiled config at plan time: the inline
tests and the tests file's tests (read now, so editing the file changes the fingerprint), the
gates and prompt settings. The holdout slice needs the built eval split: the runtime adds it
with ``runtime_suite``. Stdlib only at import time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from llmspec.spec.errors import DataError, Diagnostic, LlmspecError, Pos, SpecError
from llmspec.spec.models import AcceptanceSpec, HoldoutSpec

from llmspec.spec.assertions import Expectation, parse_expectation, parse_expectations

ANSWER_METRIC = "rouge_l"
ANSWER_THRESHOLD = 0.5
HOLDOUT_TAG = "holdout"
# The gate a suite gets when the spec sets none (shown in the plan).
DEFAULT_PASS_RATE = {"threshold": ">= 1.0", "severity": "error"}
FEEDBACK_TESTS = "feedback"  # `tests_from: feedback`, and the tag of the tests it makes
_FILE_KEYS = ("name", "prompt", "expect", "answer", "tags", "max_new_tokens", "system")


@dataclass(frozen=True)
class SuiteTest:
    """One acceptance test, ready to run.

    Exactly one of ``prompt`` (a single user turn) and ``messages`` (a conversation of
    ``{role, content}`` ending before the answer to generate) is set. ``system`` is the system
    prompt to put in front when the conversation has none of its own. ``source`` says where the
    test came from: ``spec``, ``<file>:<line>`` or ``holdout``.
    """

    __test__ = False  # not a pytest test class, despite the name

    name: str
    expectations: tuple[Expectation, ...]
    prompt: str | None = None
    messages: tuple[Mapping[str, str], ...] | None = None
    tags: tuple[str, ...] = ()
    max_new_tokens: int | None = None
    system: str | None = None
    source: str = "spec"

    def __post_init__(self) -> None:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError(f"test {self.name!r}: give exactly one of prompt and messages")
        if not self.expectations:
            raise ValueError(f"test {self.name!r}: needs at least one expectation")

    def conversation(self) -> list[dict[str, str]]:
        """The messages fed to the chat template (system prompt first when there is one)."""
        turns = ([{"role": "user", "content": self.prompt}] if self.prompt is not None
                 else [{"role": m["role"], "content": m["content"]} for m in self.messages or ()])
        if self.system and self.system.strip() and (not turns or turns[0]["role"] != "system"):
            turns.insert(0, {"role": "system", "content": self.system})
        return turns

    @property
    def display_prompt(self) -> str:
        """The prompt as a person reads it in a report: the user's text for a single turn,
        else the conversation as ``role: content`` lines."""
        if self.prompt is not None:
            return self.prompt
        turns = [m for m in self.messages or () if m["role"] != "system"]
        if len(turns) == 1:
            return turns[0]["content"]
        return "\n".join(f"{m['role']}: {m['content']}" for m in turns)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "source": self.source}
        if self.prompt is not None:
            out["prompt"] = self.prompt
        else:
            out["messages"] = [dict(m) for m in self.messages or ()]
        out["system"] = self.system
        out["expect"] = [e.to_dict() for e in self.expectations]
        out["tags"] = list(self.tags)
        out["max_new_tokens"] = self.max_new_tokens
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "SuiteTest":
        messages = data.get("messages")
        return cls(name=data["name"], expectations=tuple(parse_expectations(data["expect"])),
                   prompt=data.get("prompt"),
                   messages=tuple(dict(m) for m in messages) if messages is not None else None,
                   tags=tuple(data.get("tags") or ()), max_new_tokens=data.get("max_new_tokens"),
                   system=data.get("system"), source=data.get("source", "spec"))


def build_suite(acceptance: AcceptanceSpec, base_dir: Path, *, system: str | None,
                eval_records: Sequence[Mapping[str, Any]] | None = None,
                with_holdout: bool = True) -> list[SuiteTest]:
    """All tests of ``acceptance``: inline tests, then ``tests_from``, then the holdout slice.

    ``system`` is the system prompt used in training (``format.system``); a test's own
    ``system`` overrides it. ``eval_records`` are the eval split's records in file order; the
    first ``holdout.count`` become tests. Raises ``LlmspecError`` for a bad tests file, for
    holdout records that are not chat conversations, and for duplicate test names.
    """
    default_tokens = acceptance.max_new_tokens
    tests: list[SuiteTest] = []
    for i, tc in enumerate(acceptance.tests):
        try:
            expectations = tuple(parse_expectations(tc.expect))
        except ValueError as exc:  # validated already; only a spec built in code gets here
            raise SpecError(Diagnostic("bad-assertion", f"acceptance.tests[{i}] ({tc.name}): {exc}")
                            ) from None
        tests.append(SuiteTest(name=tc.name, prompt=tc.prompt, expectations=expectations,
                               tags=tuple(tc.tags),
                               max_new_tokens=tc.max_new_tokens or default_tokens,
                               system=tc.system if tc.system is not None else system))
    if acceptance.tests_from == FEEDBACK_TESTS:
        pass  # read from the feedback store when the stage runs (runtime/acceptance/feedback_tests.py)
    elif acceptance.tests_from:
        import os

        from llmspec.spec.paths import check_inside

        tests_path = Path(base_dir) / acceptance.tests_from
        if os.path.lexists(tests_path):  # a missing file gets load_tests_file's own message
            check_inside(tests_path, Path(base_dir), acceptance.tests_from)
        tests.extend(load_tests_file(tests_path, system=system,
                                     max_new_tokens=default_tokens,
                                     shown_path=acceptance.tests_from))
    if acceptance.holdout is not None and with_holdout:
        tests.extend(holdout_tests(acceptance.holdout, eval_records or (), system=system,
                                   max_new_tokens=default_tokens))
    _check_unique(tests)
    return tests


def load_tests_file(path: Path, *, system: str | None = None, max_new_tokens: int | None = None,
                    shown_path: str | None = None) -> list[SuiteTest]:
    """Tests from a JSONL file, one ``{name?, prompt, expect | answer, tags?}`` per line.

    A line with ``answer`` and no ``expect`` becomes a ``similar`` test (ROUGE-L >= 0.5) against
    that answer; with both, ``expect`` decides and ``answer`` is only documentation. A missing
    name becomes ``<file name>:<line>``. Blank lines are skipped.
    """
    shown = shown_path or str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(Diagnostic("file-not-found", f"acceptance.tests_from: {shown} does not exist",
                                   Pos(shown), hint="paths are relative to the spec's folder")
                        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(Diagnostic("file-unreadable", f"cannot read tests file {shown}: {exc}",
                                   Pos(shown))) from None
    tests = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            tests.append(_test_from_line(line, Pos(shown, lineno), Path(shown).name,
                                         system=system, max_new_tokens=max_new_tokens))
    return tests


def _test_from_line(line: str, pos: Pos, file_name: str, *, system: str | None,
                    max_new_tokens: int | None) -> SuiteTest:
    def bad(message: str, hint: str | None = None) -> LlmspecError:
        return DataError(Diagnostic("bad-test", message, pos, hint=hint))

    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise DataError(Diagnostic("bad-json", f"not valid JSON: {exc.msg}",
                                   Pos(pos.path, pos.line, exc.colno))) from None
    if not isinstance(row, dict):
        raise bad(f"each line must be a JSON object, got {type(row).__name__}")
    unknown = [k for k in row if k not in _FILE_KEYS]
    if unknown:
        raise bad(f"unknown key(s) {', '.join(map(repr, unknown))}",
                  hint=f"allowed keys: {', '.join(_FILE_KEYS)}")
    name = row.get("name", f"{file_name}:{pos.line}")
    if not isinstance(name, str) or not name.strip():
        raise bad("name must be a non-empty string")
    prompt = row.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise bad(f"test {name!r}: prompt must be a non-empty string")
    if "expect" in row:
        try:
            expectations = tuple(parse_expectations(row["expect"]))
        except ValueError as exc:
            raise bad(f"test {name!r}: {exc}") from None
    elif "answer" in row:
        answer = row["answer"]
        if not isinstance(answer, str) or not answer.strip():
            raise bad(f"test {name!r}: answer must be a non-empty string")
        expectations = (similar_test(answer, ANSWER_METRIC, ANSWER_THRESHOLD),)
    else:
        raise bad(f"test {name!r} has neither expect nor answer",
                  hint='give "expect": [{"contains": "..."}] or a reference "answer"')
    tags = row.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) and t for t in tags):
        raise bad(f"test {name!r}: tags must be a list of non-empty strings")
    tokens = row.get("max_new_tokens", max_new_tokens)
    if tokens is not None and (isinstance(tokens, bool) or not isinstance(tokens, int)
                               or tokens < 1):
        raise bad(f"test {name!r}: max_new_tokens must be a whole number >= 1")
    own_system = row.get("system", system)
    if own_system is not None and not isinstance(own_system, str):
        raise bad(f"test {name!r}: system must be a string")
    return SuiteTest(name=name, prompt=prompt, expectations=expectations, tags=tuple(tags),
                     max_new_tokens=tokens, system=own_system, source=f"{pos.path}:{pos.line}")


def holdout_tests(holdout: HoldoutSpec, eval_records: Iterable[Mapping[str, Any]], *,
                  system: str | None = None, max_new_tokens: int | None = None) -> list[SuiteTest]:
    """The first ``holdout.count`` eval records as tests: the conversation up to its last
    assistant turn is the prompt, that turn the reference answer. Fewer records than ``count``
    give fewer tests (a small dataset has a small eval split)."""
    tests = []
    for i, record in enumerate(eval_records):
        if len(tests) >= holdout.count:
            break
        messages = record.get("messages") if isinstance(record, Mapping) else None
        if messages is None and isinstance(record, Mapping) and _is_conversation(record.get("chosen")):
            # An orpo record: the chosen conversation, its last turn the preferred answer.
            messages = [{"role": "system", "content": record["system"]}] if record.get("system") else []
            messages += list(record["chosen"])
        if not _is_conversation(messages):
            raise DataError(Diagnostic(
                "holdout-format", "acceptance.holdout needs chat records ({\"messages\": [{role, "
                f"content}}, ...]}}), but eval record {i + 1} is not one",
                hint="holdout works with format.style: chat; use tests or tests_from otherwise"))
        if isinstance(record.get("chosen"), str) and record["chosen"].strip():
            # A dpo record: the conversation is the prompt, the answer people preferred the reference.
            messages = [*messages, {"role": "assistant", "content": record["chosen"]}]
        last = max((j for j, m in enumerate(messages) if m["role"] == "assistant"), default=None)
        if last is None or last == 0 or not messages[last]["content"].strip():
            raise DataError(Diagnostic(
                "holdout-format", f"eval record {i + 1} has no assistant answer after a prompt, "
                "so it cannot serve as a holdout test"))
        reference = messages[last]["content"]
        tests.append(SuiteTest(
            name=f"holdout-{len(tests) + 1:03d}",
            messages=tuple({"role": m["role"], "content": m["content"]} for m in messages[:last]),
            expectations=(similar_test(reference, holdout.metric, holdout.threshold),),
            tags=(HOLDOUT_TAG,), max_new_tokens=max_new_tokens, system=system, source="holdout"))
    return tests


def compile_acceptance(spec, base_dir: str | Path, *, locate=None) -> dict[str, Any]:
    """The acceptance stage's compiled config (plain JSON data)."""
    acc = spec.acceptance
    try:
        tests = build_suite(acc, Path(base_dir), system=spec.format.system, eval_records=None,
                            with_holdout=False)
    except LlmspecError as exc:
        if locate is not None:
            for d in exc.diagnostics:
                if d.pos is None or d.pos.line is None:
                    d.pos = locate(("acceptance", "tests_from") if acc.tests_from else ("acceptance",))
        raise
    gates = acc.gates.model_dump(mode="json")
    configured = (acc.gates.pass_rate is not None or acc.gates.pass_rate_by_tag or acc.gates.eval_loss is not None
                  or acc.gates.baseline_gate is not None)
    default_gates = bool(tests or acc.holdout) and not configured
    if default_gates:
        # Tests with no gate would promote a model that fails them all: by default every test must pass.
        gates["pass_rate"] = dict(DEFAULT_PASS_RATE)
    return {
        "tests": suite_to_json(tests),
        "holdout": acc.holdout.model_dump(mode="json") if acc.holdout else None,
        "max_new_tokens": acc.max_new_tokens,
        "baseline": acc.baseline,
        "gates": gates,
        "default_gates": default_gates,
        # `tests_from: feedback`: the store's corrections become tests when the stage runs.
        "feedback_store": (spec.serve.log.store or "") if acc.tests_from == FEEDBACK_TESTS else None,
        "base_dir": str(base_dir),
        "system": spec.format.system,
        "style": spec.format.style,
        "chat_template": spec.base_model.chat_template if spec.format.style == "chat" else None,
    }


def runtime_suite(compiled: Mapping[str, Any], eval_records: Sequence[Mapping[str, Any]] | None,
                  extra: Sequence[SuiteTest] = ()) -> list[SuiteTest]:
    """The compiled tests, the tests only a run can know (``extra``: corrections from the
    feedback store), then the holdout slice of the built eval split."""
    tests = suite_from_json(compiled["tests"]) + list(extra)
    if compiled.get("holdout"):
        tests.extend(holdout_tests(HoldoutSpec(**compiled["holdout"]), eval_records or (),
                                   system=compiled.get("system"), max_new_tokens=compiled.get("max_new_tokens")))
    _check_unique(tests)
    return tests


def suite_to_json(tests: Sequence[SuiteTest]) -> list[dict[str, Any]]:
    """The suite as plain JSON data (``acceptance.json`` of ``llmspec compile``)."""
    return [t.to_dict() for t in tests]


def suite_from_json(data: Sequence[Mapping[str, Any]]) -> list[SuiteTest]:
    """Inverse of ``suite_to_json``."""
    return [SuiteTest.from_dict(d) for d in data]


def similar_test(reference: str, metric: str, threshold: float) -> Expectation:
    return parse_expectation({"similar": {"reference": reference, "threshold": threshold,
                                          "metric": metric}})


def _is_conversation(messages: Any) -> bool:
    return (isinstance(messages, list) and bool(messages)
            and all(isinstance(m, Mapping) and isinstance(m.get("role"), str)
                    and isinstance(m.get("content"), str) for m in messages))


def _check_unique(tests: Sequence[SuiteTest]) -> None:
    first: dict[str, SuiteTest] = {}
    for t in tests:
        if t.name in first:
            raise SpecError(Diagnostic(
                "duplicate-test", f"acceptance test name {t.name!r} is used twice "
                f"({first[t.name].source} and {t.source})",
                hint="names identify tests in reports and JUnit; make them unique"))
        first[t.name] = t


__all__ = ["ANSWER_METRIC", "ANSWER_THRESHOLD", "HOLDOUT_TAG", "SuiteTest", "build_suite", "compile_acceptance",
           "runtime_suite",
           "holdout_tests", "load_tests_file", "suite_from_json", "suite_to_json"]
