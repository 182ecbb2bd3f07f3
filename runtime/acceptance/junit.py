"""``acceptance.junit.xml``: acceptance results in the JUnit format CI systems read.

One ``<testcase>`` per acceptance test, judged on the fine-tuned model. A failed test carries a
``<failure>`` whose text lists every failed assertion, expected vs got; a test that could not
be evaluated carries an ``<error>``. The base model is the second dimension: its answer and
verdict go into the test's ``<system-out>`` next to the fine-tuned answer, so a reviewer sees
both without opening the HTML report, and the suite's ``<properties>`` count its passes.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from .assertions import TestOutcome

DEFAULT_CLASSNAME = "acceptance"
_MESSAGE_CHARS = 300
# Characters XML 1.0 forbids even when escaped; model output can contain any of them, and one
# would make the whole file unparsable.
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


@dataclass
class JUnitCase:
    """One acceptance test as written to JUnit. ``passed`` is the fine-tuned model's verdict.

    ``message``: one-line failure summary; ``details``: the failure body. ``error`` (evaluation
    impossible) and ``skipped`` take precedence over ``passed``. The ``base_*`` fields are the
    base model's answer and verdict on the same prompt, shown for comparison only.
    """

    name: str
    classname: str = DEFAULT_CLASSNAME
    time: float = 0.0
    passed: bool = True
    message: str | None = None
    details: str | None = None
    error: str | None = None
    skipped: str | None = None
    prompt: str | None = None
    output: str | None = None
    score: float | None = None
    base_output: str | None = None
    base_passed: bool | None = None
    base_score: float | None = None

    @property
    def status(self) -> str:
        """``skipped``, ``error``, ``failure`` or ``passed``."""
        if self.skipped is not None:
            return "skipped"
        if self.error is not None:
            return "error"
        return "passed" if self.passed else "failure"


def classname_for(tags: Sequence[str] = ()) -> str:
    """``acceptance`` or ``acceptance.<tag>.<tag>``: CI UIs group test cases by classname."""
    parts = [re.sub(r"[^\w-]+", "_", t).strip("_") for t in tags]
    return ".".join([DEFAULT_CLASSNAME, *[p for p in parts if p]])


def failure_text(outcome: TestOutcome) -> str:
    """Each failed assertion of ``outcome``, expected vs got, one block per assertion."""
    blocks = []
    for r in outcome.failures:
        weight = f" (weight {r.weight:g})" if r.weight != 1.0 else ""
        if r.error is not None:
            blocks.append(f"- {r.key}{weight}: could not be evaluated\n  error:    {r.error}")
        else:
            blocks.append(f"- {r.key}{weight}\n  expected: {r.expected}\n  got:      {r.got}")
    return "\n".join(blocks)


def case_from_outcome(name: str, outcome: TestOutcome, *, tags: Sequence[str] = (),
                      time: float = 0.0, prompt: str | None = None, output: str | None = None,
                      base_outcome: TestOutcome | None = None,
                      base_output: str | None = None) -> JUnitCase:
    """Build the JUnit case of one test from the fine-tuned (and optionally base) outcome."""
    case = JUnitCase(name=name, classname=classname_for(tags), time=time,
                     passed=outcome.passed, prompt=prompt, output=output, score=outcome.score,
                     base_output=base_output)
    if base_outcome is not None:
        case.base_passed = base_outcome.passed
        case.base_score = base_outcome.score
    failures = outcome.failures
    if failures:
        first = failures[0]
        count = (f"{len(failures)} of {len(outcome.results)} assertions failed"
                 if len(outcome.results) > 1 else "assertion failed")
        summary = f"{count}: {first.message}"
        case.message = _shorten(summary)
        case.details = failure_text(outcome)
        errored = [r for r in failures if r.error is not None]
        if errored:
            case.error = _shorten(f"{errored[0].key}: {errored[0].error}")
    return case


def write_junit(path: str | os.PathLike, suite_name: str, cases: Iterable[JUnitCase], *,
                properties: Mapping[str, object] | None = None,
                timestamp: datetime | None = None,
                extra_suites: Sequence[tuple[str, Sequence[JUnitCase], Mapping[str, object]]] = ()) -> Path:
    """Write ``cases`` as one JUnit ``<testsuite>`` inside ``<testsuites>`` (then each of
    ``extra_suites``: (name, cases, properties), e.g. retention), atomically (a reader sees the
    old file or the new one, never half of one). Returns the path written."""
    stamp = (timestamp or datetime.now(timezone.utc)).strftime("%Y-%m-%dT%H:%M:%S")
    suites = [(suite_name, list(cases), dict(properties or {}))]
    suites += [(name, list(c), dict(p or {})) for name, c, p in extra_suites]
    every = [c for _, group, _ in suites for c in group]
    root = ET.Element("testsuites", {"name": _clean(suite_name), **_counts(every)})
    for name, group, props in suites:
        suite = ET.SubElement(root, "testsuite", {"name": _clean(name), **_counts(group), "timestamp": stamp})
        judged = [c for c in group if c.base_passed is not None]
        if judged:
            props.setdefault("base_model.tests", len(judged))
            props.setdefault("base_model.passed", sum(bool(c.base_passed) for c in judged))
        if props:
            props_el = ET.SubElement(suite, "properties")
            for key, value in props.items():
                ET.SubElement(props_el, "property", {"name": _clean(str(key)), "value": _clean(str(value))})
        for case in group:
            suite.append(_testcase(case))

    ET.indent(root, space="  ")
    return _write_atomically(Path(path), ET.ElementTree(root))


def _counts(cases: Sequence[JUnitCase]) -> dict[str, str]:
    counts = {s: sum(c.status == s for c in cases) for s in ("failure", "error", "skipped")}
    return {"tests": str(len(cases)), "failures": str(counts["failure"]), "errors": str(counts["error"]),
            "skipped": str(counts["skipped"]), "time": _secs(sum(max(c.time, 0.0) for c in cases))}


def _testcase(case: JUnitCase) -> ET.Element:
    el = ET.Element("testcase", {"name": _clean(case.name), "classname": _clean(case.classname),
                                 "time": _secs(case.time)})
    status = case.status
    if status == "skipped":
        ET.SubElement(el, "skipped", {"message": _clean(_shorten(case.skipped or ""))})
    elif status == "error":
        child = ET.SubElement(el, "error", {"message": _clean(_shorten(case.error or "")),
                                            "type": "EvaluationError"})
        child.text = _clean(case.details or case.error or "")
    elif status == "failure":
        child = ET.SubElement(el, "failure", {
            "message": _clean(_shorten(case.message or "acceptance test failed")),
            "type": "AssertionFailed"})
        child.text = _clean(case.details or case.message or "")
    out = _system_out(case)
    if out:
        ET.SubElement(el, "system-out").text = _clean(out)
    return el


def _system_out(case: JUnitCase) -> str:
    sections = []
    if case.prompt is not None:
        sections.append(f"=== prompt ===\n{case.prompt}")
    if case.output is not None:
        sections.append(f"=== fine-tuned model: {_verdict(case.passed, case.score)} ===\n"
                        f"{case.output}")
    if case.base_output is not None or case.base_passed is not None:
        sections.append(f"=== base model: {_verdict(case.base_passed, case.base_score)} ===\n"
                        f"{case.base_output if case.base_output is not None else ''}")
    return "\n\n".join(sections)


def _verdict(passed: bool | None, score: float | None) -> str:
    word = {True: "PASSED", False: "FAILED", None: "not judged"}[passed]
    return word if score is None else f"{word}, score {score:.2f}"


def _write_atomically(path: Path, tree: ET.ElementTree) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            tree.write(fh, encoding="utf-8", xml_declaration=True)
            fh.write(b"\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600; a report is meant to be read by others
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def _clean(text: str) -> str:
    return _XML_ILLEGAL.sub(lambda m: f"\\u{ord(m.group(0)):04x}", text)


def _shorten(text: str, limit: int = _MESSAGE_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _secs(seconds: float) -> str:
    return f"{max(seconds, 0.0):.3f}"


__all__ = ["DEFAULT_CLASSNAME", "JUnitCase", "case_from_outcome", "classname_for",
           "failure_text", "write_junit"]
