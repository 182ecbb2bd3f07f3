"""Retention: does the fine-tuned model still know what the base model knew?

A general suite (``builtin:general-v2`` or the user's JSONL) runs on the base and on the
fine-tuned model with the same prompts, system prompt and chat template. Two figures come out:

- the pass rates, overall and per tag, and the prompts the fine-tuned model lost (base right,
  fine-tuned wrong);
- the drift, which needs no assertions: the mean per-token negative log-likelihood of the base
  model's own greedy answers under the fine-tuned model minus under the base model. Zero when
  nothing moved; it rises as the model forgets how it used to answer, before any assertion
  flips.

Stdlib only at import time; the model stack is imported by the runner when a model loads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Sequence

from llmspec.spec.errors import Diagnostic, SpecError

from .junit import JUnitCase, case_from_outcome, classname_for
from .runner import ModelRef, PromptFormat, TestRun, load_model, shares_weights
from llmspec.compiler.acceptance import SuiteTest, load_tests_file
from llmspec.spec.checks import BUILTIN_PROMPT_SETS, BUILTIN_SUITES

def builtin_file(name: str) -> Path:
    """The packaged file behind a ``builtin:`` suite or prompt set (``builtin:X`` is ``suites/X.jsonl``;
    the names are ``spec.checks``', which validation checks specs against)."""
    known = (*BUILTIN_SUITES, *BUILTIN_PROMPT_SETS)
    if name not in known:
        raise SpecError(Diagnostic("unknown-suite", f"there is no built-in suite '{name}'",
                                   hint=f"built-in: {', '.join(known)}"))
    suites = resources.files("llmspec.runtime.acceptance") / "suites"
    return Path(str(suites / f"{name.removeprefix('builtin:')}.jsonl"))


def load_retention_suite(suite: str, base_dir: Path, *, system: str | None,
                         max_new_tokens: int) -> list[SuiteTest]:
    """The retention suite's tests, prompted with the training system prompt."""
    path = builtin_file(suite) if suite.startswith("builtin:") else Path(base_dir) / suite
    return load_tests_file(path, system=system, max_new_tokens=max_new_tokens, shown_path=suite)


@dataclass(frozen=True)
class Drift:
    """Mean per-token NLL (nats) of the base model's answers under each model."""

    base_nll: float
    tuned_nll: float
    tokens: int
    answers: int

    @property
    def delta(self) -> float:
        return self.tuned_nll - self.base_nll

    def to_dict(self) -> dict[str, Any]:
        return {"base_nll": round(self.base_nll, 4), "tuned_nll": round(self.tuned_nll, 4),
                "delta": round(self.delta, 4), "tokens": self.tokens, "answers": self.answers}


def drift_of(base_scores: Sequence[tuple[float, int]], tuned_scores: Sequence[tuple[float, int]]) -> Drift:
    """Token-weighted means of (summed NLL, tokens) pairs, one pair per answer on each side."""
    tokens = sum(n for _, n in base_scores)
    if tokens == 0:
        return Drift(0.0, 0.0, 0, 0)
    base = sum(s for s, _ in base_scores) / tokens
    tuned = sum(s for s, _ in tuned_scores) / tokens
    return Drift(base, tuned, tokens, sum(1 for _, n in base_scores if n))


@dataclass
class RetentionResult:
    """The suite on both models, in suite order, and the drift between them."""

    suite: str
    tests: list[SuiteTest]
    tuned: list[TestRun]
    base: list[TestRun]
    drift: Drift
    gates: list[Any] = field(default_factory=list)

    @property
    def pass_rate(self) -> float:
        return _rate(self.tuned)

    @property
    def base_pass_rate(self) -> float:
        return _rate(self.base)

    @property
    def drop(self) -> float:
        """How far the fine-tuned pass rate fell below the base's (negative: it rose)."""
        return self.base_pass_rate - self.pass_rate

    def by_tag(self) -> dict[str, dict[str, Any]]:
        tags: dict[str, list[int]] = {}
        for i, test in enumerate(self.tests):
            for tag in test.tags or ("untagged",):
                tags.setdefault(tag, []).append(i)
        out = {}
        for tag, idx in sorted(tags.items()):
            base = sum(self.base[i].passed for i in idx)
            tuned = sum(self.tuned[i].passed for i in idx)
            out[tag] = {"tests": len(idx), "base_passed": base, "passed": tuned,
                        "base_pass_rate": base / len(idx), "pass_rate": tuned / len(idx),
                        "drop": (base - tuned) / len(idx)}
        return out

    def lost(self) -> list[int]:
        """Indexes of the prompts the base model passes and the fine-tuned model fails."""
        return [i for i, (t, b) in enumerate(zip(self.tuned, self.base)) if b.passed and not t.passed]

    def gained(self) -> list[int]:
        return [i for i, (t, b) in enumerate(zip(self.tuned, self.base)) if t.passed and not b.passed]

    def to_report(self) -> dict[str, Any]:
        """The retention part of the acceptance report."""
        def entry(i: int) -> dict[str, Any]:
            test, run, base = self.tests[i], self.tuned[i], self.base[i]
            return {"name": test.name, "prompt": test.display_prompt, "tags": list(test.tags),
                    "base_output": base.output, "output": run.output,
                    "failed": [r.key for r in run.outcome.failures]}

        return {"enabled": True, "suite": self.suite, "tests": len(self.tests),
                "pass_rate": self.pass_rate, "base_pass_rate": self.base_pass_rate,
                "passed": sum(r.passed for r in self.tuned), "base_passed": sum(r.passed for r in self.base),
                "drop": self.drop, "by_tag": self.by_tag(), "drift": self.drift.to_dict(),
                "lost": [entry(i) for i in self.lost()], "gained": [entry(i) for i in self.gained()],
                "gates": [g.to_dict() for g in self.gates]}


def _rate(runs: Sequence[TestRun]) -> float:
    return sum(r.passed for r in runs) / len(runs) if runs else 0.0


def run_retention(suite: str, tests: Sequence[SuiteTest], *, tuned: ModelRef, base: ModelRef,
                  prompt_format: PromptFormat = "chat", device: str = "auto",
                  progress: Callable[[int, int], None] | None = None) -> RetentionResult:
    """Answer ``tests`` with both models (greedy), then score the base model's answers under
    both. An adapter on the base model's folder is loaded once and switched off for the base."""
    tests = list(tests)
    done = [0]
    total = 2 * len(tests)

    def tick() -> None:
        done[0] += 1
        if progress:
            progress(done[0], total)

    conversations = [t.conversation() for t in tests]

    def load(ref: ModelRef, template: str | None = None):
        return load_model(ref.model_path, adapter_path=ref.adapter_path, tokenizer_path=ref.tokenizer_path,
                          device=device, chat_template=template, prompt_format=prompt_format)

    model = load(tuned)
    try:
        if shares_weights(tuned, base):
            with model.adapter_disabled():
                base_runs = model.run(tests, progress=tick)
                answers = [r.output for r in base_runs]
                base_scores = model.answer_nll(conversations, answers)
            tuned_runs = model.run(tests, progress=tick)
            tuned_scores = model.answer_nll(conversations, answers)
            return RetentionResult(suite, tests, tuned_runs, base_runs, drift_of(base_scores, tuned_scores))
        # A full fine-tune: the base model is prompted with the fine-tuned (deployed) template.
        template = model.chat_template
        tuned_runs = model.run(tests, progress=tick)
    finally:
        model.close()
    other = load(base, template)
    try:
        base_runs = other.run(tests, progress=tick)
        answers = [r.output for r in base_runs]
        base_scores = other.answer_nll(conversations, answers)
    finally:
        other.close()
    model = load(tuned)
    try:
        tuned_scores = model.answer_nll(conversations, answers)
    finally:
        model.close()
    return RetentionResult(suite, tests, tuned_runs, base_runs, drift_of(base_scores, tuned_scores))


def retention_junit_cases(result: RetentionResult) -> list[JUnitCase]:
    """One case per prompt of the suite. A loss (base right, fine-tuned wrong) is a failure; a
    prompt both models fail is skipped: it says nothing about retention."""
    cases = []
    for test, run, base in zip(result.tests, result.tuned, result.base):
        case = case_from_outcome(test.name, run.outcome, tags=test.tags, time=run.duration,
                                 prompt=test.display_prompt, output=run.output, base_outcome=base.outcome,
                                 base_output=base.output)
        case.classname = "retention" + classname_for(test.tags)[len("acceptance"):]
        if not run.passed and not base.passed:
            case.skipped = "the base model fails it too: not a loss"
        elif not run.passed:
            case.message = f"lost: the base model passes it. {case.message or ''}".strip()
        cases.append(case)
    return cases


__all__ = ["retention_junit_cases", "Drift", "RetentionResult", "builtin_file", "drift_of",
           "load_retention_suite", "run_retention"]
