"""`acceptance.tests_from: feedback`: a test per correction posted to `llmspec serve`, read
from the feedback store when the acceptance stage runs (a store is data, like a database
source: only a run can read it)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llmspec.compiler.acceptance import SuiteTest

def feedback_tests(base_dir: Path, store: str | None, *, system: str | None,
                   max_new_tokens: int | None) -> list[SuiteTest]:
    """A test per correction posted to `llmspec serve`: the same conversation must now be
    answered like the correction (ROUGE-L >= 0.5), so the next model passes what the last one
    failed. No store yet (nothing served) means no tests."""
    from llmspec.compiler.acceptance import ANSWER_METRIC, ANSWER_THRESHOLD, FEEDBACK_TESTS, SuiteTest, similar_test  # noqa: F811
    from llmspec.runtime.feedback.location import store_target
    from llmspec.runtime.feedback.store import FeedbackStore

    target = store_target(Path(base_dir), store)
    if not target.startswith(("postgres://", "postgresql://")) and not Path(target).exists():
        return []
    db = FeedbackStore.open(target)
    try:
        entries = db.entries(rating="corrected")
    finally:
        db.close()
    tests = []
    for e in entries:
        turns = tuple({"role": m["role"], "content": m["content"]} for m in e.messages if m["role"] != "system")
        logged_system = next((m["content"] for m in e.messages if m["role"] == "system"), None)
        tests.append(SuiteTest(name=f"feedback:{e.id}", messages=turns,
                               expectations=(similar_test(e.correction, ANSWER_METRIC, ANSWER_THRESHOLD),),
                               tags=(FEEDBACK_TESTS,), max_new_tokens=max_new_tokens,
                               system=logged_system or system, source=f"feedback:{e.id}"))
    return tests
