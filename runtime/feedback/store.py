"""The interaction log and feedback store: every exchange `llmspec serve` answered, and the
ratings and corrections posted for them.

SQLite in the project's state folder by default (stdlib, WAL mode so readers never block the
server), PostgreSQL when given a URL. Two tables: ``exchanges`` (one row per answered request)
and ``feedback`` (append-only; the latest row for an exchange is its current verdict). Writes
are serialised by a lock: the server logs from worker threads.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from llmspec.spec.errors import DataError, Diagnostic, Pos

STORE_FILE = "feedback.sqlite"

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS exchanges (
        id TEXT PRIMARY KEY, created_at TEXT NOT NULL, run TEXT, kind TEXT, system TEXT,
        messages TEXT NOT NULL, answer TEXT NOT NULL, latency_ms DOUBLE PRECISION,
        prompt_tokens INTEGER, completion_tokens INTEGER, finish_reason TEXT)""",
    """CREATE TABLE IF NOT EXISTS feedback (
        seq {serial} PRIMARY KEY, exchange_id TEXT NOT NULL, created_at TEXT NOT NULL,
        rating TEXT, correction TEXT, note TEXT)""",
    "CREATE INDEX IF NOT EXISTS feedback_exchange ON feedback (exchange_id)",
)


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Feedback:
    """An exchange with its latest feedback."""

    id: str
    created_at: str
    run: str | None
    messages: list[dict[str, str]]   # what the model saw, system prompt first when there was one
    answer: str
    rating: str | None
    correction: str | None
    note: str | None
    feedback_at: str | None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class FeedbackStore:
    """``FeedbackStore.open(url_or_path)``: a ``postgresql://`` URL or a SQLite file path."""

    def __init__(self, conn: Any, *, postgres: bool, where: str):
        self.conn = conn
        self.postgres = postgres
        self.where = where
        self.lock = threading.Lock()
        self.mark = "%s" if postgres else "?"
        with self.lock:
            cur = conn.cursor()
            for statement in _SCHEMA:
                cur.execute(statement.format(serial="BIGSERIAL" if postgres else "INTEGER"))
            conn.commit()

    @classmethod
    def open(cls, target: str | Path, *, create: bool = True) -> "FeedbackStore":
        text = str(target)
        if text.startswith(("postgres://", "postgresql://")):
            try:
                import psycopg
            except ImportError:
                raise DataError(Diagnostic("feedback-store", "a PostgreSQL feedback store needs psycopg",
                                           hint="pip install 'llmspec-tune[postgres]'")) from None
            try:
                conn = psycopg.connect(text, connect_timeout=10)
            except psycopg.Error as exc:
                raise DataError(Diagnostic("feedback-store", "cannot connect to the feedback store: "
                                           f"{type(exc).__name__}")) from None
            return cls(conn, postgres=True, where="postgresql (url from the environment)")
        import sqlite3

        path = Path(text)
        if not create and not path.exists():
            raise DataError(Diagnostic("feedback-store-missing", f"there is no feedback store at {path}", Pos(text),
                                       hint="`llmspec serve` creates it when it answers its first request"))
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(path), check_same_thread=False, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        return cls(conn, postgres=False, where=str(path))

    def close(self) -> None:
        with self.lock:
            self.conn.close()

    def _write(self, sql: str, params: Iterable[Any]) -> None:
        with self.lock:
            cur = self.conn.cursor()
            cur.execute(sql.replace("?", self.mark), tuple(params))
            self.conn.commit()

    def _read(self, sql: str, params: Iterable[Any] = ()) -> list[tuple]:
        with self.lock:
            cur = self.conn.cursor()
            cur.execute(sql.replace("?", self.mark), tuple(params))
            rows = cur.fetchall()
            if self.postgres:
                self.conn.commit()  # end the read transaction: later reads see new rows
            return rows

    # ------------------------------------------------------------------ writes

    def log_exchange(self, record: dict[str, Any]) -> None:
        messages = record["messages"]
        system = messages[0]["content"] if messages and messages[0]["role"] == "system" else None
        self._write("INSERT INTO exchanges (id, created_at, run, kind, system, messages, answer, latency_ms, "
                    "prompt_tokens, completion_tokens, finish_reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (record["id"], record.get("created_at") or now_iso(), record.get("run"), record.get("kind"),
                     system, json.dumps(messages, ensure_ascii=False), record["answer"],
                     round(float(record.get("latency_s", 0.0)) * 1000, 3), record.get("prompt_tokens"),
                     record.get("completion_tokens"), record.get("finish_reason")))

    def exists(self, exchange_id: str) -> bool:
        return bool(self._read("SELECT 1 FROM exchanges WHERE id = ?", (exchange_id,)))

    def add_feedback(self, exchange_id: str, *, rating: str | None, correction: str | None,
                     note: str | None) -> None:
        self._write("INSERT INTO feedback (exchange_id, created_at, rating, correction, note) VALUES (?, ?, ?, ?, ?)",
                    (exchange_id, now_iso(), rating, correction, note))

    # ------------------------------------------------------------------ reads

    def exchanges_count(self) -> int:
        return int(self._read("SELECT COUNT(*) FROM exchanges")[0][0])

    def feedback_count(self) -> int:
        return int(self._read("SELECT COUNT(*) FROM feedback")[0][0])

    def entries(self, *, rating: str | None = None, run: str | None = None, since: str | None = None,
                until: str | None = None, with_feedback: bool = True) -> list[Feedback]:
        """Exchanges with their latest feedback (only those with feedback unless
        ``with_feedback`` is False), oldest first. ``rating``: up | down | corrected."""
        sql = ("SELECT e.id, e.created_at, e.run, e.messages, e.answer, f.rating, f.correction, f.note, f.created_at "
               "FROM exchanges e {join} feedback f ON f.exchange_id = e.id AND f.seq = "
               "(SELECT MAX(seq) FROM feedback g WHERE g.exchange_id = e.id)")
        sql = sql.format(join="JOIN" if with_feedback else "LEFT JOIN")
        where, params = [], []
        if rating == "corrected":
            where.append("f.correction IS NOT NULL AND f.correction <> ''")
        elif rating is not None:
            where.append("f.rating = ?")
            params.append(rating)
        if run is not None:
            where.append("e.run = ?")
            params.append(run)
        if since is not None:
            where.append("e.created_at >= ?")
            params.append(since)
        if until is not None:
            where.append("e.created_at < ?")
            params.append(until)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY e.created_at, e.id"
        return [Feedback(id=r[0], created_at=r[1], run=r[2], messages=json.loads(r[3]), answer=r[4], rating=r[5],
                         correction=r[6], note=r[7], feedback_at=r[8]) for r in self._read(sql, params)]

    def get(self, exchange_id: str) -> Feedback | None:
        rows = [e for e in self.entries(with_feedback=False) if e.id == exchange_id]
        return rows[0] if rows else None

    def fingerprint(self) -> str:
        """A hash of every exchange with feedback and its current verdict: changes when feedback
        arrives, not when exchanges without feedback are logged."""
        digest = hashlib.sha256()
        for e in self.entries():
            digest.update(json.dumps([e.id, e.messages, e.answer, e.rating, e.correction], ensure_ascii=False,
                                     sort_keys=True).encode())
            digest.update(b"\n")
        return digest.hexdigest()


def iter_training_rows(entries: Iterable[Feedback], *, include_up: bool,
                       include_down: bool = False) -> Iterator[tuple[str, dict | None, str]]:
    """(exchange id, training row or None, reject reason) for each entry: a correction teaches
    the correction (the original answer rides along as ``rejected``); a thumbs-up teaches the
    answer when ``include_up``; a thumbs-down without a correction is a row labelled false when
    ``include_down`` (for kto, which learns what not to say), else rejected with a reason."""
    for e in entries:
        if e.correction and e.correction.strip():
            yield e.id, _row(e, e.correction, label=True, rating="corrected"), ""
        elif e.rating == "up":
            if include_up:
                yield e.id, _row(e, e.answer, label=True, rating="up"), ""
            else:
                yield e.id, None, "thumbs-up answers are not included (feedback.include_up: false)"
        elif e.rating == "down":
            if include_down:
                yield e.id, _row(e, e.answer, label=False, rating="down"), ""
            else:
                yield e.id, None, "rated down without a correction: nothing to learn the right answer from"
        else:
            yield e.id, None, "no rating and no correction"


def _row(e: Feedback, answer: str, *, label: bool, rating: str) -> dict[str, Any]:
    turns = [m for m in e.messages if m["role"] != "system"]
    system = next((m["content"] for m in e.messages if m["role"] == "system"), None)
    prompt = turns[-1]["content"] if turns else ""
    return {"prompt": prompt, "answer": answer, "rejected": e.answer, "label": label, "system": system,
            "messages": json.dumps(turns, ensure_ascii=False), "exchange_id": e.id, "run": e.run, "rating": rating}
