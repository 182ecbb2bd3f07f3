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
        produced_second.set()  # item 2 is being made
        yield 2
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


def test_the_reader_reads_one_item_ahead_of_the_caller_and_no_more():
    """Memory: the batch in hand and the one read ahead, never a queue of batches."""
    import time

    reads = []

    def items():
        for i in range(100):
            reads.append(i)
            yield i

    it = prefetched(items())
    assert next(it) == 0
    time.sleep(0.5)  # a slow caller: the reader must wait, not fill a queue
    assert reads == [0, 1]
    assert next(it) == 1
    time.sleep(0.3)
    assert reads == [0, 1, 2]
    it.close()


def test_an_interrupt_while_waiting_for_a_slow_read_stops_the_caller_at_once():
    """Ctrl-C reaches the main thread only: the caller must not wait for the read in progress
    (a folder of documents, a long query) before it stops."""
    import signal
    import time

    class Interrupted(Exception):
        pass

    def slow():
        yield 1
        time.sleep(5)  # a read that takes long
        yield 2

    def on_signal(signum, frame):
        raise Interrupted()

    old = signal.signal(signal.SIGUSR1, on_signal)
    try:
        it = prefetched(slow())
        assert next(it) == 1
        timer = threading.Timer(0.3, lambda: signal.pthread_kill(threading.main_thread().ident, signal.SIGUSR1))
        timer.start()
        t0 = time.perf_counter()
        with pytest.raises(Interrupted):
            next(it)
        assert time.perf_counter() - t0 < 2.5
    finally:
        signal.signal(signal.SIGUSR1, old)


def test_something_that_is_not_iterable_fails_at_the_first_item_with_its_own_error():
    with pytest.raises(TypeError):
        next(prefetched(5))
