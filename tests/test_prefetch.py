"""Read-ahead of source batches (runtime/engine/prefetch.py): same items, same errors, real overlap,
and an iterator stopped early is closed on the thread it ran on."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from llmspec.runtime.engine.prefetch import prefetched
from llmspec.spec.errors import DataError, Diagnostic


def test_items_arrive_in_order_and_all_of_them():
    assert list(prefetched(iter(range(1000)))) == list(range(1000))
    assert list(prefetched([])) == []
    assert list(prefetched(range(5), depth=3)) == list(range(5))


def test_the_next_item_is_produced_while_the_caller_holds_this_one():
    produced_second = threading.Event()

    def items():
        yield 1
        yield 2
        produced_second.set()
        yield 3

    it = prefetched(items())
    assert next(it) == 1
    # the caller is still "working" on item 1; the reader has gone on to item 2 meanwhile
    assert produced_second.wait(timeout=10)
    assert list(it) == [2, 3]


def test_an_error_reaches_the_caller_as_raised_after_the_items_before_it():
    def items():
        yield "a"
        yield "b"
        raise DataError(Diagnostic("bad-row", "tickets.jsonl:3: not JSON"))

    got = []
    with pytest.raises(DataError) as err:
        for x in prefetched(items()):
            got.append(x)
    assert got == ["a", "b"]
    assert "tickets.jsonl:3" in str(err.value)


def test_stopping_early_closes_the_iterator_on_its_own_thread():
    closed_on = []
    ran_on = []

    def items():
        ran_on.append(threading.current_thread())
        try:
            for i in range(10**6):
                yield i
        finally:
            closed_on.append(threading.current_thread())

    it = prefetched(items())
    for x in it:
        if x == 3:
            break
    it.close()  # what a for loop's owner does when it is dropped
    assert closed_on and closed_on == ran_on
    assert closed_on[0] is not threading.current_thread()


def test_an_error_in_the_caller_stops_the_reader():
    reads = []

    def items():
        for i in range(10**6):
            reads.append(i)
            yield i

    with pytest.raises(RuntimeError):
        for x in prefetched(items()):
            if x == 5:
                raise RuntimeError("caller failed")
    n = len(reads)
    assert n < 10  # stopped: the item in hand, the one read ahead, and the one being put
    assert len(reads) == n


def test_a_connection_made_by_the_iterator_is_used_on_one_thread(tmp_path):
    """sqlite3 refuses a connection used from another thread than its own: the whole iterator
    (connect, fetch, close) runs on the reader's thread."""
    db = tmp_path / "t.db"
    with sqlite3.connect(db) as con:
        con.execute("create table t (x int)")
        con.executemany("insert into t values (?)", [(i,) for i in range(100)])

    def rows():
        con = sqlite3.connect(db)
        try:
            cur = con.execute("select x from t order by x")
            while chunk := cur.fetchmany(7):
                yield [r[0] for r in chunk]
        finally:
            con.close()

    assert [x for chunk in prefetched(rows()) for x in chunk] == list(range(100))
