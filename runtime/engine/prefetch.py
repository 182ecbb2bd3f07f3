"""Read ahead: the next item of an iterator produced on a background thread while the caller works
on the current one.

A JSON Lines source's batches are read and parsed (Polars' JSON and Parquet readers release the
GIL) while the previous batch is profiled, cleaned and written, so reading costs wall time only
where it is slower than the work after it. The iterator runs wholly on the one background thread
(a file handle or a connection is used by one thread only); its errors reach the caller as
raised, after the items before them; closing the result early stops and closes it on its thread.

Memory: the item in hand and at most ``depth`` more, read or being read: the reader waits for
the caller to take an item before it reads the next one.

Signals reach the main thread only: a Ctrl-C while the caller waits stops the caller at once
(the reader, a daemon thread, is told to stop and not waited for; it ends after the read in
progress). Use it where one item is a slice of the source, not the whole of it.
"""

from __future__ import annotations

import queue
import threading
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")

_DONE = object()
_POLL = 0.1  # seconds between looks at the stop flag while waiting


class _Raised:
    def __init__(self, exc: BaseException):
        self.exc = exc


def prefetched(items: Iterable[T], depth: int = 1) -> Iterator[T]:
    """``items``, up to ``depth`` read ahead on a thread of their own."""
    slots: queue.Queue = queue.Queue()
    credit = threading.Semaphore(depth)  # items the reader may read before the caller takes one
    stop = threading.Event()

    def allowed() -> bool:
        while not stop.is_set():
            if credit.acquire(timeout=_POLL):
                return True
        return False

    def produce() -> None:
        it = None
        try:
            it = iter(items)
            while allowed():
                try:
                    item = next(it)
                except StopIteration:
                    slots.put(_DONE)
                    return
                slots.put(item)
        except BaseException as exc:  # noqa: BLE001: handed to the caller, who raises it
            slots.put(_Raised(exc))
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()  # on this thread, where the generator ran

    worker = threading.Thread(target=produce, name="llmspec-read-ahead", daemon=True)
    worker.start()
    interrupted = False
    try:
        while True:
            try:
                item = slots.get(timeout=_POLL)
            except queue.Empty:
                if not worker.is_alive() and slots.empty():
                    raise RuntimeError("the read-ahead thread ended without a result") from None
                continue
            if item is _DONE:
                return
            if isinstance(item, _Raised):
                raise item.exc
            credit.release()
            yield item
    except GeneratorExit:
        raise  # closed by the caller: stop the reader and wait for it below
    except BaseException:
        interrupted = True  # Ctrl-C, or the caller's own error: do not wait for a read in progress
        raise
    finally:
        stop.set()
        if not interrupted:
            worker.join()
