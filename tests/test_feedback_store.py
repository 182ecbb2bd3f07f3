"""The feedback store (SQLite, and PostgreSQL against the server CI starts), its redaction, and the
`format: feedback` source reading it. No model: these run in seconds."""

from __future__ import annotations

import os
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from llmspec.runtime.feedback.log import InteractionLog, redactor
from llmspec.runtime.feedback.store import FeedbackStore, iter_training_rows

PG_URL = os.environ.get("LLMSPEC_TEST_POSTGRES_URL")


def exchange(i: int, run: str = "run-1") -> dict:
    return {"id": f"chatcmpl-{i}", "run": run, "kind": "chat", "latency_s": 0.01, "prompt_tokens": 3,
            "completion_tokens": 2, "finish_reason": "stop", "answer": f"answer {i}",
            "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": f"question {i}"}]}


def exercise(store: FeedbackStore) -> None:
    """What the server does, from many threads at once, then what plan and the source read."""
    before = store.fingerprint()

    def work(i):
        store.log_exchange(exchange(i, run="run-1" if i % 2 else "run-2"))
        if i % 3 == 0:
            store.add_feedback(f"chatcmpl-{i}", rating="down", correction=f"fixed {i}", note=None)
        elif i % 3 == 1:
            store.add_feedback(f"chatcmpl-{i}", rating="up", correction=None, note="good")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(work, range(60)))
    assert store.exchanges_count() == 60 and store.feedback_count() == 40
    entries = store.entries()
    assert len(entries) == 40
    assert len(store.entries(rating="corrected")) == 20 and len(store.entries(rating="up")) == 20
    assert {e.run for e in store.entries(run="run-2")} == {"run-2"}
    assert store.entries(since="2999-01-01") == []
    assert len(store.entries(with_feedback=False)) == 60
    # The latest verdict counts: a thumbs-up after a correction replaces it.
    store.add_feedback("chatcmpl-0", rating="up", correction=None, note=None)
    assert store.get("chatcmpl-0").rating == "up" and store.get("chatcmpl-0").correction is None
    # Fingerprint: moves with feedback, not with logged exchanges that have none.
    after = store.fingerprint()
    assert after != before
    store.log_exchange(exchange(1000))
    assert store.fingerprint() == after
    store.add_feedback("chatcmpl-1000", rating="down", correction="better", note=None)
    assert store.fingerprint() != after


def test_sqlite_store_loses_nothing_under_concurrency(tmp_path):
    store = FeedbackStore.open(tmp_path / ".llmspec" / "feedback.sqlite")
    try:
        exercise(store)
    finally:
        store.close()


@pytest.mark.postgres
def test_postgres_store(tmp_path):
    if not PG_URL:
        pytest.skip("LLMSPEC_TEST_POSTGRES_URL is not set (.ci/postgres.sh starts a server and sets it)")
    import psycopg

    schema = f"fb_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in PG_URL else "?"
    store = FeedbackStore.open(f"{PG_URL}{sep}options=-csearch_path%3D{schema}")
    try:
        exercise(store)
    finally:
        store.close()
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def test_training_rows_and_their_reject_reasons(tmp_path):
    store = FeedbackStore.open(tmp_path / "fb.sqlite")
    for i in range(4):
        store.log_exchange(exchange(i))
    store.add_feedback("chatcmpl-0", rating="down", correction="The right answer.", note=None)
    store.add_feedback("chatcmpl-1", rating="up", correction=None, note=None)
    store.add_feedback("chatcmpl-2", rating="down", correction=None, note="wrong")
    entries = store.entries()
    rows = {i: (row, reason) for i, row, reason in iter_training_rows(entries, include_up=False)}
    assert rows["chatcmpl-0"][0]["answer"] == "The right answer." and rows["chatcmpl-0"][0]["rejected"] == "answer 0"
    assert rows["chatcmpl-0"][0]["prompt"] == "question 0" and rows["chatcmpl-0"][0]["system"] == "Be brief."
    assert rows["chatcmpl-1"][0] is None and "include_up" in rows["chatcmpl-1"][1]
    assert rows["chatcmpl-2"][0] is None and "without a correction" in rows["chatcmpl-2"][1]
    with_up = {i: row for i, row, _ in iter_training_rows(entries, include_up=True)}
    assert with_up["chatcmpl-1"]["answer"] == "answer 1"
    store.close()


def test_feedback_source_accounts_for_every_entry(tmp_path):
    from llmspec.runtime.sources import read_source
    from llmspec.spec.models import FeedbackSource

    store = FeedbackStore.open(tmp_path / ".llmspec" / "feedback.sqlite")
    for i in range(3):
        store.log_exchange(exchange(i))
    store.add_feedback("chatcmpl-0", rating="down", correction="Fixed.", note=None)
    store.add_feedback("chatcmpl-1", rating="down", correction=None, note=None)
    store.close()
    batch = read_source("fb", FeedbackSource(format="feedback"), tmp_path)
    assert batch.rows_in == 2 and batch.rows.height == 1 and batch.rejected.height == 1
    assert batch.rows["answer"].to_list() == ["Fixed."]
    assert batch.rejected["_rule"].to_list() == ["feedback"]
    assert batch.rows["_origin"].to_list() == ["fb:exchange chatcmpl-0"]


def test_redaction_uses_the_specs_placeholders(tmp_path):
    from llmspec.spec.models import QualitySpec

    quality = QualitySpec.model_validate({"rules": [{"redact_pii": {"kinds": ["email"], "placeholder": "[{KIND}]"}}]})
    log = InteractionLog(FeedbackStore.open(tmp_path / "fb.sqlite"), redactor(quality))
    record = exchange(1)
    record["messages"][1]["content"] = "I am ann@example.com"
    record["answer"] = "Hello ann@example.com, call +49 30 1234567"
    log.log_exchange(record)
    assert log.add_feedback("chatcmpl-1", rating="down", correction="Write to ann@example.com", note=None)
    assert not log.add_feedback("chatcmpl-404", rating="up", correction=None, note=None)
    entry = log.store.get("chatcmpl-1")
    assert entry.messages[1]["content"] == "I am [EMAIL]"
    assert entry.answer == "Hello [EMAIL], call +49 30 1234567"  # phones were not asked for
    assert entry.correction == "Write to [EMAIL]"
    everything = redactor(QualitySpec())("mail ann@example.com or +49 30 1234567")
    assert "ann@example.com" not in everything and "1234567" not in everything
    log.close()
